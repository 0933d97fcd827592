package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestPageReadsRunOnGenericPlans holds the page reads to what read.go says
// of them: after PostgreSQL's five first executions of a statement, it
// plans a read-all page and a stream page no more (generic plans only),
// and the answers are still the rows asked for.
func TestPageReadsRunOnGenericPlans(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	// One connection: the one whose prepared statements are counted.
	db, err := Open(ctx, url, Options{MaxConns: 1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	const tenant = eventvault.TenantID("tenant-plans")
	streams := []eventvault.StreamName{"plans-1", "plans-2"}
	for _, s := range streams {
		k, err := db.CreateStreamKey(ctx, tenant, s, eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped"), CreatedAt: time.Now()})
		if err != nil {
			t.Fatalf("CreateStreamKey: %v", err)
		}
		evs := make([]eventvault.ProposedEvent, 20)
		payloads := make([][]byte, len(evs))
		for i := range evs {
			evs[i] = eventvault.ProposedEvent{ID: uuid.New(), Type: "Happened", ContentMAC: []byte("mac")}
			payloads[i] = []byte("sealed")
		}
		if _, err := db.Append(ctx, tenant, eventvault.AppendRequest{Stream: s, Expected: eventvault.ExpectAny, KeyID: k.ID, Events: evs,
			Seal: func(int64) ([][]byte, error) { return payloads, nil }}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	for i := range 12 {
		page, err := db.ReadAll(ctx, tenant, int64(i), 7)
		if err != nil || len(page.Events) != 7 || len(page.Keys) == 0 {
			t.Fatalf("ReadAll from %d: %d events, %d keys, %v", i, len(page.Events), len(page.Keys), err)
		}
		sp, err := db.ReadStream(ctx, tenant, streams[i%2], eventvault.ReadOptions{From: int64(i), Limit: 5})
		if err != nil || len(sp.Events) != 5 || sp.Events[0].Position != int64(i) {
			t.Fatalf("ReadStream from %d: %+v, %v", i, sp.Events, err)
		}
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE (statement LIKE '%FROM events%LIMIT 7%' OR statement LIKE '%FROM events%LIMIT 5')
			AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatalf("pg_prepared_statements: %v", err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var stmt string
		var generic, custom int64
		if err := rows.Scan(&stmt, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		seen++
		if custom > 0 || generic != 12 {
			t.Errorf("%d generic and %d custom plans of 12 executions of %s", generic, custom, stmt)
		}
	}
	if err := rows.Err(); err != nil || seen != 3 {
		t.Fatalf("found %d page statements prepared (%v), want 3: the events of read-all, their keys, the stream page", seen, err)
	}
}
