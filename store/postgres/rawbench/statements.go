package rawbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoStatementStats says the server keeps no statement statistics this
// package reads: pg_stat_statements is not in its shared_preload_libraries
// (scripts/with-postgres.sh loads it when the server has it), or, for
// StatementCounts, the server is older than PostgreSQL 14 (its toplevel
// column and pg_stat_statements_info). The error returned wraps it and
// says which.
var ErrNoStatementStats = errors.New("no statement statistics")

// Statement is one normalized statement's figures from
// pg_stat_statements since the last reset.
type Statement struct {
	Query       string  `json:"query"` // its first 80 characters
	Calls       int64   `json:"calls"`
	TotalMs     float64 `json:"total_ms"`
	MeanMs      float64 `json:"mean_ms"`
	Rows        int64   `json:"rows"`
	WALBytes    float64 `json:"wal_bytes"`
	SharedDirty int64   `json:"shared_blks_dirtied"`
}

// ResetStatements creates the pg_stat_statements extension in the database
// at dbURL if needed and resets that database's figures. ErrNoStatementStats if the
// server does not load the module.
func ResetStatements(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("statement statistics: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := enableStatementStats(ctx, conn); err != nil {
		return err
	}
	// This database's figures only: other databases of the server may be
	// another run's, reading theirs.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)`); err != nil {
		return fmt.Errorf("statement statistics: reset: %w", err)
	}
	return nil
}

// TopStatements returns the n statements of the database at dbURL that
// took the most execution time since the last reset.
func TopStatements(ctx context.Context, dbURL string, n int) ([]Statement, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("statement statistics: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 80), calls, total_exec_time, mean_exec_time, rows, wal_bytes::float8, shared_blks_dirtied
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = current_database()
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("statement statistics: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Statement, error) {
		var s Statement
		err := r.Scan(&s.Query, &s.Calls, &s.TotalMs, &s.MeanMs, &s.Rows, &s.WALBytes, &s.SharedDirty)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("statement statistics: %w", err)
	}
	return out, nil
}

// enableStatementStats creates pg_stat_statements in conn's database if it
// is not there. ErrNoStatementStats if the server does not load it or is
// older than PostgreSQL 14.
func enableStatementStats(ctx context.Context, conn *pgx.Conn) error {
	var (
		loaded  bool
		version int
	)
	if err := conn.QueryRow(ctx, `SELECT 'pg_stat_statements' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
		current_setting('server_version_num')::int`).Scan(&loaded, &version); err != nil {
		return fmt.Errorf("statement statistics: %w", err)
	}
	switch {
	case !loaded:
		return fmt.Errorf("%w: pg_stat_statements is not loaded (shared_preload_libraries)", ErrNoStatementStats)
	case version < 140000:
		return fmt.Errorf("%w: the figures read need PostgreSQL 14 or later", ErrNoStatementStats)
	}
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return fmt.Errorf("statement statistics: %w", err)
	}
	return nil
}

// StatementTotals is what ran between two readings of StatementCounts:
// how many top-level statements, for how long and with how much WAL.
//
// ExecMs is pg_stat_statements' total_exec_time: the statements' wall time
// in the executor, with whatever they waited on there (locks, I/O, the
// client: a COPY FROM STDIN executes while its rows arrive) and, for a
// PL/pgSQL function, the planning of the statements inside it; without
// the top-level statements' parsing and planning, and without the WAL
// flush of a commit, which follows the COMMIT statement's execution.
// WALBytes is the WAL the statements wrote, commit records excepted.
type StatementTotals struct {
	Calls    int64
	ExecMs   float64
	WALBytes float64
}

// statementKey names one pg_stat_statements entry of a database.
type statementKey struct {
	user    uint32
	queryID int64
}

// StatementCounts is one reading of pg_stat_statements for a database's
// top-level statements, by entry, and when its figures were last reset.
type StatementCounts struct {
	entries map[statementKey]StatementTotals
	reset   time.Time
}

// statementCountsSQL reads the database's top-level entries, leaving out
// the sampler's own (its polls of pg_stat_activity and this query).
const statementCountsSQL = `SELECT s.userid, s.queryid, s.calls, s.total_exec_time, s.wal_bytes::float8
	FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
	WHERE d.datname = current_database() AND s.toplevel
	  AND coalesce(s.query, '') NOT LIKE '%pg_stat_activity%' AND coalesce(s.query, '') NOT LIKE '%pg_stat_statements%'`

// NoStatementStats says why StatementCounts cannot answer, found when the
// sampler connected (an error wrapping ErrNoStatementStats), or nil if it
// can.
func (s *WaitSampler) NoStatementStats() error { return s.noStatements }

// StatementCounts reads the database's statement counters.
// ErrNoStatementStats if the server does not load pg_stat_statements or
// is older than PostgreSQL 14. It must not run while Sample does.
func (s *WaitSampler) StatementCounts(ctx context.Context) (StatementCounts, error) {
	if s.noStatements != nil {
		return StatementCounts{}, s.noStatements
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := StatementCounts{entries: map[statementKey]StatementTotals{}}
	var reset *time.Time
	if err := s.conn.QueryRow(ctx, `SELECT stats_reset FROM pg_stat_statements_info`).Scan(&reset); err != nil {
		return StatementCounts{}, fmt.Errorf("statement statistics: %w", err)
	}
	if reset != nil {
		c.reset = *reset
	}
	rows, err := s.conn.Query(ctx, statementCountsSQL)
	if err != nil {
		return StatementCounts{}, fmt.Errorf("statement statistics: %w", err)
	}
	var (
		k statementKey
		t StatementTotals
	)
	if _, err := pgx.ForEachRow(rows, []any{&k.user, &k.queryID, &t.Calls, &t.ExecMs, &t.WALBytes}, func() error {
		c.entries[k] = t
		return nil
	}); err != nil {
		return StatementCounts{}, fmt.Errorf("statement statistics: %w", err)
	}
	return c, nil
}

// Since returns what ran between an earlier reading o and c, entry by
// entry: an entry of both counts its growth; one new in c (or evicted
// from pg_stat_statements and back, its calls fewer than in o) counts in
// full, all of it having run since; one evicted since o and not back is
// lost, with what it ran meanwhile (pg_stat_statements evicts the least
// used). It reports false if the figures were reset between the two.
func (c StatementCounts) Since(o StatementCounts) (StatementTotals, bool) {
	if !c.reset.Equal(o.reset) {
		return StatementTotals{}, false
	}
	var sum StatementTotals
	for k, t := range c.entries {
		if b, ok := o.entries[k]; ok && t.Calls >= b.Calls {
			t = StatementTotals{Calls: t.Calls - b.Calls, ExecMs: t.ExecMs - b.ExecMs, WALBytes: t.WALBytes - b.WALBytes}
		}
		sum.Calls += t.Calls
		sum.ExecMs += t.ExecMs
		sum.WALBytes += t.WALBytes
	}
	return sum, true
}
