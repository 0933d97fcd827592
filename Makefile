# EventVault. `make run` starts a dev server; `make test` runs every test,
# starting a throwaway PostgreSQL itself (scripts/with-postgres.sh).
GO ?= go
BIN := bin/eventvault

.PHONY: all build run test test-short vet fmt clean bench

all: build

build:
	$(GO) build -o $(BIN) ./cmd/eventvault

run:
	$(GO) run ./cmd/eventvault server -dev

# vet, then every test with the race detector against a real PostgreSQL.
test:
	$(GO) vet ./...
	bash scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 20m ./...

# EventVault (over HTTP) against a plain-pgx baseline, side by side, on a
# throwaway PostgreSQL with fsync on, so that both sides pay real commits.
# BENCH_FLAGS passes flags to cmd/evbench, e.g. BENCH_FLAGS='-rounds 5 -json bench.json'.
bench:
	EVENTVAULT_PG_FSYNC=on bash scripts/with-postgres.sh $(GO) run ./cmd/evbench $(BENCH_FLAGS)

fmt:
	gofmt -w .

clean:
	rm -rf bin
