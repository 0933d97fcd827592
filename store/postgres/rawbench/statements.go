package rawbench

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNoStatementStats says the server does not collect statement
// statistics: pg_stat_statements is not in its shared_preload_libraries
// (scripts/with-postgres.sh loads it when the server has it).
var ErrNoStatementStats = errors.New("pg_stat_statements is not loaded (shared_preload_libraries)")

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
// at dbURL if needed and resets its figures. ErrNoStatementStats if the
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
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
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
