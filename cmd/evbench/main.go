// Command evbench measures EventVault against a raw PostgreSQL baseline,
// side by side in one run (`make bench`).
//
// It creates a fresh database on the PostgreSQL server named by
// $EVENTVAULT_TEST_DATABASE_URL (a superuser URL; scripts/with-postgres.sh
// sets it), migrates it, serves the real EventVault stack on a loopback
// port (PostgreSQL store, keyring over a local root key, engine, token
// authentication, HTTP API) and calls it over HTTP, while the baseline
// (store/postgres/rawbench) writes and reads the same number and size of
// plaintext rows with plain pgx into a plain table of the same database.
// Each round runs every workload for a slice on each side, the order
// alternating, and the figures are aggregated over the rounds:
//
//  1. append, one event per request and per commit, 8 clients;
//  2. append, batches of 100 events per request, 4 clients;
//  3. read a 1,000-event stream from the start, 8 readers;
//  4. read all by global position in pages of 500, walking a 10,000-event log.
//
// It prints, per workload, events/s for both, the ratio EventVault/raw
// against the goal, p50 and p99 latency per request; then the CPU time per
// event of the crypto path (Go benchmarks of the stream cipher) and the
// number of root key provider calls made during the run. -json writes the
// same as JSON. The database is dropped at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && os.Args[1] == generatorCommand {
		// The overload workload's load generator (overload_child.go).
		err := runGenerator(ctx, os.Stdin, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "evbench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	err := mainErr(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "evbench: %v\n", err)
		os.Exit(1)
	}
}

// mainErr parses args, runs the benchmark and writes the report: the table
// to stdout, or to stderr when the JSON goes to stdout.
func mainErr(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	rep, err := run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	tableOut := stdout
	if cfg.JSON == "-" {
		tableOut = stderr
	}
	if err := rep.writeTable(tableOut); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	switch cfg.JSON {
	case "":
	case "-":
		if err := rep.writeJSON(stdout); err != nil {
			return fmt.Errorf("write the JSON report: %w", err)
		}
	default:
		f, err := os.Create(cfg.JSON)
		if err != nil {
			return fmt.Errorf("write the JSON report: %w", err)
		}
		err = rep.writeJSON(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write the JSON report to %s: %w", cfg.JSON, err)
		}
	}
	return nil
}
