package rawbench_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

func TestTableRoundTripAndDrop(t *testing.T) {
	admin := os.Getenv(pgtest.EnvURL)
	if admin == "" {
		t.Fatal(pgtest.EnvURL + " is not set: run the tests with `make test`, which starts a throwaway PostgreSQL")
	}
	ctx := context.Background()
	db, err := rawbench.CreateDatabase(ctx, admin)
	if err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}
	dropped := false
	t.Cleanup(func() {
		if !dropped {
			_ = db.Drop(context.Background())
		}
	})
	table, err := rawbench.Open(ctx, db.URL, 2)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	one := []rawbench.Event{{ID: uuid.New(), Type: "A", Data: []byte(`{"a":1}`)}}
	g1, err := table.Append(ctx, "s-1", 0, one)
	if err != nil || len(g1) != 1 {
		t.Fatalf("Append one = %v, %v", g1, err)
	}
	batch := []rawbench.Event{
		{ID: uuid.New(), Type: "B", Data: []byte(`{"b":1}`)},
		{ID: uuid.New(), Type: "B", Data: []byte(`{"b":2}`)},
		{ID: uuid.New(), Type: "B", Data: []byte(`{"b":3}`)},
	}
	g2, err := table.Append(ctx, "s-1", 1, batch)
	if err != nil || len(g2) != 3 || !slices.IsSorted(g2) || g2[0] <= g1[0] {
		t.Fatalf("Append batch = %v, %v; want three ascending positions after %v", g2, err, g1)
	}
	if _, err := table.Append(ctx, "s-1", 3, one[:0]); err == nil {
		t.Error("Append of no events succeeded")
	}
	if _, err := table.Append(ctx, "s-1", 3, []rawbench.Event{{ID: uuid.New(), Type: "C", Data: []byte("{}")}}); err == nil {
		t.Error("Append at a position taken already succeeded")
	}

	rows, err := table.ReadStream(ctx, "s-1", 1, 2)
	if err != nil || len(rows) != 2 || rows[0].Position != 1 || rows[1].Position != 2 || string(rows[1].Data) != `{"b":2}` || rows[0].ID != batch[0].ID {
		t.Fatalf("ReadStream(from 1, limit 2) = %+v, %v", rows, err)
	}
	copied := []rawbench.Event{
		{ID: uuid.New(), Type: "D", Data: []byte(`{"d":1}`)},
		{ID: uuid.New(), Type: "D", Data: []byte(`{"d":2}`)},
	}
	if n, err := table.CopyAppend(ctx, "s-1", 4, copied); err != nil || n != 2 {
		t.Fatalf("CopyAppend = %d, %v; want 2 rows", n, err)
	}
	if _, err := table.CopyAppend(ctx, "s-1", 5, copied[:1]); err == nil {
		t.Error("CopyAppend at a position taken already succeeded")
	}
	all, err := table.ReadAll(ctx, g1[0], 10)
	if err != nil || len(all) != 6 || all[0].GlobalPosition != g1[0] || all[3].GlobalPosition != g2[2] {
		t.Fatalf("ReadAll = %+v, %v; want the six events in global order", all, err)
	}
	// Every id comes back as it went in, by every write path (ids go to
	// pgx as [16]byte).
	wrote := slices.Concat(one, batch, copied)
	for i, r := range all {
		if r.ID != wrote[i].ID || r.Type != wrote[i].Type || string(r.Data) != string(wrote[i].Data) || r.Position != int64(i) {
			t.Errorf("ReadAll row %d = {id %v, type %s, data %s, position %d}; want {id %v, type %s, data %s, position %d}",
				i, r.ID, r.Type, r.Data, r.Position, wrote[i].ID, wrote[i].Type, wrote[i].Data, i)
		}
	}
	table.Close()

	if err := rawbench.Analyze(ctx, db.URL); err != nil {
		t.Errorf("Analyze: %v", err)
	}
	info, err := rawbench.Server(ctx, db.URL)
	if err != nil || info.Version == "" || info.Fsync == "" || info.SynchronousCommit == "" {
		t.Errorf("Server = %+v, %v", info, err)
	}

	if err := db.Drop(ctx); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	dropped = true
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db.Name()).Scan(&n); err != nil || n != 0 {
		t.Errorf("after Drop, %d databases named %s (%v); want none", n, db.Name(), err)
	}
}

func TestCreateDatabaseRefusesANonPostgresURL(t *testing.T) {
	if _, err := rawbench.CreateDatabase(context.Background(), "mysql://root@localhost/x"); err == nil {
		t.Error("CreateDatabase accepted a mysql:// URL")
	}
}

func TestWaitSamplerSeesASleepingSession(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	s, err := rawbench.NewWaitSampler(ctx, url)
	if err != nil {
		t.Fatalf("NewWaitSampler: %v", err)
	}
	defer s.Close(ctx)
	sleeper, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer sleeper.Close(ctx)

	sctx, stop := context.WithCancel(ctx)
	type result struct {
		w   rawbench.Waits
		err error
	}
	done := make(chan result, 1)
	go func() {
		w, err := s.Sample(sctx, 20*time.Millisecond)
		done <- result{w, err}
	}()
	if _, err := sleeper.Exec(ctx, "SELECT pg_sleep(0.4)"); err != nil {
		t.Fatalf("pg_sleep: %v", err)
	}
	stop()
	r := <-done
	if r.err != nil {
		t.Fatalf("Sample: %v", r.err)
	}
	if r.w.Polls == 0 || r.w.Seen["Timeout:PgSleep"] == 0 {
		t.Errorf("Sample saw %+v over %d polls; want the session in Timeout:PgSleep", r.w.Seen, r.w.Polls)
	}
	// The connection survives the cancellation, for the next slice.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	again, err := s.Sample(short, 10*time.Millisecond)
	if err != nil || again.Polls == 0 {
		t.Errorf("a second Sample = %+v, %v; want polls and no error", again, err)
	}
}

// TestStatementCountsCountWhatRanSince reads what a database's statements
// did between two readings of StatementCounts: the statements another
// session ran there, and not the sampler's own polls in between; a reset
// of that database's figures (ResetStatements) drops what ran before it.
func TestStatementCountsCountWhatRanSince(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	s, err := rawbench.NewWaitSampler(ctx, url)
	if err != nil {
		t.Fatalf("NewWaitSampler: %v", err)
	}
	defer s.Close(ctx)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE counted (n int)`); err != nil {
		t.Fatal(err)
	}
	before, err := s.StatementCounts(ctx)
	if err != nil {
		t.Fatalf("StatementCounts: %v (make test's PostgreSQL loads pg_stat_statements: scripts/with-postgres.sh)", err)
	}
	short, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
	defer cancel()
	if w, err := s.Sample(short, 10*time.Millisecond); err != nil || w.Polls == 0 {
		t.Fatalf("Sample = %+v, %v", w, err)
	}
	for i := range 5 {
		if _, err := conn.Exec(ctx, `INSERT INTO counted VALUES ($1)`, i); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.StatementCounts(ctx)
	if err != nil {
		t.Fatalf("StatementCounts: %v", err)
	}
	if d, ok := after.Since(before); !ok || d.Calls != 5 || d.ExecMs <= 0 || d.WALBytes <= 0 {
		t.Errorf("the five inserts: %+v, %v; want 5 calls with time and WAL", d, ok)
	}
	if err := rawbench.ResetStatements(ctx, url); err != nil {
		t.Fatalf("ResetStatements: %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO counted VALUES (5)`); err != nil {
		t.Fatal(err)
	}
	again, err := s.StatementCounts(ctx)
	if err != nil {
		t.Fatalf("StatementCounts: %v", err)
	}
	if d, ok := again.Since(after); !ok || d.Calls != 1 {
		t.Errorf("after the database's reset: %+v, %v; want the one insert since", d, ok)
	}
}
