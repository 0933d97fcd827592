package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// Batch shape of the store benchmarks: the batched append, 100
// events of 500 bytes of data (564 sealed) per batch, 4 writers.
const (
	benchBatch   = 100
	benchData    = 500
	benchSealed  = benchData + 64
	benchWriters = 4
)

// BenchmarkAppendBatch measures the store layer alone appending batches,
// each writer on a stream of its own (expected version any), beside COPY
// of the same number and size of rows into a plain table of the same
// database ("copy"), the ceiling for bulk writes. Run it with fsync on for
// figures that pay real commits:
//
//	EVENTVAULT_PG_FSYNC=on bash scripts/with-postgres.sh go test -run '^$' -bench AppendBatch ./store/postgres/
//
// events/s is the figure to compare; `make bench` runs the same pair as
// its "EventVault store" and "raw COPY" sides.
func BenchmarkAppendBatch(b *testing.B) {
	url := pgtest.URL(b)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, url); err != nil {
		b.Fatalf("Migrate: %v", err)
	}
	// Writers' streams are new at every run of a sub-benchmark (the
	// testing package runs each several times to find b.N).
	var writer atomic.Int64
	b.Run("store", func(b *testing.B) {
		db, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		defer db.Close()
		payload, mac := make([]byte, benchSealed), make([]byte, 32)
		runWriters(b, func() func() error {
			stream := eventvault.StreamName(fmt.Sprintf("bench-%d", writer.Add(1)))
			k, err := db.CreateStreamKey(ctx, tenantA, stream, wrappedKey(string(stream)))
			if err != nil {
				return func() error { return err }
			}
			return func() error {
				evs := make([]eventvault.ProposedEvent, benchBatch)
				payloads := make([][]byte, benchBatch)
				for i := range evs {
					evs[i] = eventvault.ProposedEvent{ID: uuid.New(), Type: "BenchEvent", ContentMAC: mac}
					payloads[i] = payload
				}
				_, err := db.Append(ctx, tenantA, eventvault.AppendRequest{Stream: stream, Expected: eventvault.ExpectAny, KeyID: k.ID, Events: evs,
					Seal: func(int64) ([][]byte, error) { return payloads, nil }})
				return err
			}
		})
	})
	b.Run("copy", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatalf("connect: %v", err)
		}
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_copy (global_position bigserial PRIMARY KEY, stream text NOT NULL,
			position bigint NOT NULL, id uuid NOT NULL UNIQUE, type text NOT NULL, data bytea NOT NULL,
			recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(), UNIQUE (stream, position))`)
		conn.Close(ctx)
		if err != nil {
			b.Fatalf("create table: %v", err)
		}
		data := make([]byte, benchData)
		runWriters(b, func() func() error {
			stream := fmt.Sprintf("bench-%d", writer.Add(1))
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return func() error { return err }
			}
			b.Cleanup(func() { conn.Close(context.Background()) })
			var next int64
			return func() error {
				_, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, []string{"stream", "position", "id", "type", "data"},
					pgx.CopyFromSlice(benchBatch, func(i int) ([]any, error) {
						return []any{stream, next + int64(i), uuid.New(), "BenchEvent", data}, nil
					}))
				next += benchBatch
				return err
			}
		})
	})
}

// runWriters runs b.N batches over benchWriters goroutines, each with the
// append newWriter returns, and reports events/s.
func runWriters(b *testing.B, newWriter func() func() error) {
	b.Helper()
	appends := make([]func() error, benchWriters)
	for i := range appends {
		appends[i] = newWriter()
	}
	var next atomic.Int64
	errs := make(chan error, benchWriters)
	b.ResetTimer()
	for _, write := range appends {
		go func() {
			for next.Add(1) <= int64(b.N) {
				if err := write(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range appends {
		if err := <-errs; err != nil {
			b.Fatalf("append: %v", err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}
