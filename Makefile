# EventVault. `make run` starts a dev server; `make test` runs every test,
# starting a throwaway PostgreSQL itself (scripts/with-postgres.sh).
GO ?= go
BIN := bin/eventvault

.PHONY: all build run test test-short vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/eventvault

run:
	$(GO) run ./cmd/eventvault server -dev

# vet, then every test with the race detector against a real PostgreSQL.
test:
	$(GO) vet ./...
	bash scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 20m ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin
