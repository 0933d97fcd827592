package rawbench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const createTableSQL = `CREATE TABLE IF NOT EXISTS raw_events (
	global_position bigserial PRIMARY KEY,
	stream text NOT NULL,
	position bigint NOT NULL,
	id uuid NOT NULL UNIQUE,
	type text NOT NULL,
	data bytea NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
	UNIQUE (stream, position)
)`

const insertOneSQL = `INSERT INTO raw_events (stream, position, id, type, data)
	VALUES ($1, $2, $3, $4, $5)
	RETURNING global_position`

// insertBatchSQL inserts a batch in one statement; global positions of one
// statement come from the sequence in the order of unnest.
const insertBatchSQL = `INSERT INTO raw_events (stream, position, id, type, data)
	SELECT $1, $2::bigint + e.ord - 1, e.id, e.type, e.data
	FROM unnest($3::uuid[], $4::text[], $5::bytea[]) WITH ORDINALITY AS e(id, type, data, ord)
	RETURNING global_position`

const rowColumns = `global_position, stream, position, id, type, data, recorded_at`

const readStreamSQL = `SELECT ` + rowColumns + ` FROM raw_events
	WHERE stream = $1 AND position >= $2
	ORDER BY position
	LIMIT $3`

const readAllSQL = `SELECT ` + rowColumns + ` FROM raw_events
	WHERE global_position >= $1
	ORDER BY global_position
	LIMIT $2`

// Event is an event to append.
type Event struct {
	ID   uuid.UUID
	Type string
	Data []byte
}

// Row is an event as read back.
type Row struct {
	GlobalPosition int64
	Stream         string
	Position       int64
	ID             uuid.UUID
	Type           string
	Data           []byte
	RecordedAt     time.Time
}

// Table is the raw_events table on a pgx pool. It is safe for concurrent
// use.
//
// Event ids go to and come from pgx as [16]byte, which pgx encodes and
// decodes as uuid directly, as the EventVault store passes them; a
// uuid.UUID would go through its driver.Valuer and sql.Scanner, a string
// formatted and parsed again for every id, and charge the baseline's
// client CPU that plain pgx need not spend.
type Table struct {
	pool *pgxpool.Pool
}

// Open connects to the database at dbURL with a pool of at most maxConns
// connections (0: pgxpool's default, as store/postgres uses) and creates
// the raw_events table if it is missing.
func Open(ctx context.Context, dbURL string, maxConns int32) (*Table, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse the database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "evbench-raw"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	if _, err := pool.Exec(ctx, createTableSQL); err != nil {
		pool.Close()
		return nil, fmt.Errorf("create raw_events: %w", err)
	}
	return &Table{pool: pool}, nil
}

// Close closes the pool.
func (t *Table) Close() { t.pool.Close() }

// Append inserts events into stream at positions first, first+1, … in one
// statement, committed on its own, and returns their global positions. The
// caller is the stream's only writer and so knows first; a position taken
// already fails on the unique constraint.
func (t *Table) Append(ctx context.Context, stream string, first int64, events []Event) ([]int64, error) {
	switch len(events) {
	case 0:
		return nil, fmt.Errorf("append to %s: no events", stream)
	case 1:
		var g int64
		e := events[0]
		if err := t.pool.QueryRow(ctx, insertOneSQL, stream, first, [16]byte(e.ID), e.Type, e.Data).Scan(&g); err != nil {
			return nil, fmt.Errorf("append to %s: %w", stream, err)
		}
		return []int64{g}, nil
	}
	ids := make([][16]byte, len(events))
	types := make([]string, len(events))
	data := make([][]byte, len(events))
	for i, e := range events {
		ids[i], types[i], data[i] = e.ID, e.Type, e.Data
	}
	rows, err := t.pool.Query(ctx, insertBatchSQL, stream, first, ids, types, data)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", stream, err)
	}
	globals, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", stream, err)
	}
	return globals, nil
}

// ReadStream returns up to limit events of stream from position from on.
func (t *Table) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error) {
	rows, err := t.pool.Query(ctx, readStreamSQL, stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	out, err := scanRows(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// ReadAll returns up to limit events with global position >= from, in
// global order.
func (t *Table) ReadAll(ctx context.Context, from int64, limit int) ([]Row, error) {
	rows, err := t.pool.Query(ctx, readAllSQL, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read all from %d: %w", from, err)
	}
	out, err := scanRows(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read all from %d: %w", from, err)
	}
	return out, nil
}

func scanRows(rows pgx.Rows, limit int) ([]Row, error) {
	defer rows.Close()
	out := make([]Row, 0, limit)
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.GlobalPosition, &r.Stream, &r.Position, (*[16]byte)(&r.ID), &r.Type, &r.Data, &r.RecordedAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CopyAppend writes events into stream at positions first, first+1, … with
// one COPY (pgx's CopyFrom), committed on its own: PostgreSQL's fastest
// bulk write, the ceiling for batches. It returns how many rows it wrote;
// global positions come from the table's sequence and are not returned.
func (t *Table) CopyAppend(ctx context.Context, stream string, first int64, events []Event) (int64, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("copy to %s: no events", stream)
	}
	n, err := t.pool.CopyFrom(ctx, pgx.Identifier{"raw_events"}, []string{"stream", "position", "id", "type", "data"},
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := events[i]
			return []any{stream, first + int64(i), [16]byte(e.ID), e.Type, e.Data}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy to %s: %w", stream, err)
	}
	return n, nil
}
