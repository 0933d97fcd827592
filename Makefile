# EventVault. `make run` starts a dev server; `make test` runs every test,
# starting a throwaway PostgreSQL itself (scripts/with-postgres.sh).
GO ?= go
BIN := bin/eventvault

.PHONY: all build run lint test fmt clean bench vault-dev

# staticcheck, pinned: 2026.2.2 is the release built for Go 1.26. Run through
# 'go run', so nothing is installed and go.mod stays free of tools.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

all: build

build:
	$(GO) build -o $(BIN) ./cmd/eventvault

# RUN_FLAGS adds server flags, such as RUN_FLAGS='-listen 127.0.0.1:8090'.
run:
	$(GO) run ./cmd/eventvault server -dev $(RUN_FLAGS)

# go vet and staticcheck (its default checks); the first run downloads and
# builds staticcheck, a few minutes, then the Go build cache keeps it.
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# lint, then every test with the race detector against a real PostgreSQL and
# a real Vault: scripts/vault-bin.sh builds Vault once (about 10 minutes the
# first time, then cached) and the tests start their own servers from it.
test: lint
	vault_bin="$${EVENTVAULT_VAULT_BIN:-$$(bash scripts/vault-bin.sh)}" && \
	message_db="$${EVENTVAULT_MESSAGE_DB_DIR:-$$(bash scripts/message-db.sh)}" && \
	EVENTVAULT_VAULT_BIN="$$vault_bin" EVENTVAULT_MESSAGE_DB_DIR="$$message_db" bash scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 20m ./...

# A Vault on 127.0.0.1:8200 with Transit and the root key, for trying
# production mode by hand; prints the lines to export. Ctrl-C stops it.
vault-dev:
	bash scripts/vault-dev.sh

# EventVault (over HTTP) against a plain-pgx baseline and message-db, side by
# side, on a throwaway PostgreSQL with fsync on, so that every side pays real
# commits. scripts/message-db.sh fetches message-db (npm) once and caches it.
# BENCH_FLAGS passes flags to cmd/evbench, e.g. BENCH_FLAGS='-rounds 5 -json bench.json'.
bench:
	message_db="$${EVENTVAULT_MESSAGE_DB_DIR:-$$(bash scripts/message-db.sh)}" && \
	EVENTVAULT_MESSAGE_DB_DIR="$$message_db" EVENTVAULT_PG_FSYNC=on bash scripts/with-postgres.sh $(GO) run ./cmd/evbench $(BENCH_FLAGS)

fmt:
	gofmt -w .

clean:
	rm -rf bin
