package rawbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitsSQL names what each busy session of the database is doing: its wait
// event, or CPU for an active session that waits on nothing. A session idle
// inside a transaction waits for its client.
const waitsSQL = `SELECT CASE
		WHEN state = 'idle in transaction' THEN 'Client:idle in transaction'
		WHEN wait_event IS NULL THEN 'CPU'
		ELSE wait_event_type || ':' || wait_event END
	FROM pg_stat_activity
	WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
	  AND state IN ('active', 'idle in transaction')`

// WaitSampler samples, from a connection of its own, what the database's
// busy sessions wait on (pg_stat_activity): lock waits, WAL flushes, CPU.
// It is evidence of where a workload's time goes inside PostgreSQL. It is
// not safe for concurrent use.
type WaitSampler struct {
	conn *pgx.Conn
	// noStatements is why StatementCounts cannot answer (nil if it can).
	noStatements error
}

// NewWaitSampler connects to the database at dbURL and, where the server
// loads pg_stat_statements (PostgreSQL 14 or later), creates the extension
// there (if it is not) for StatementCounts.
func NewWaitSampler(ctx context.Context, dbURL string) (*WaitSampler, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("wait sampler: connect: %w", err)
	}
	s := &WaitSampler{conn: conn}
	switch err := enableStatementStats(ctx, conn); {
	case errors.Is(err, ErrNoStatementStats):
		s.noStatements = err
	case err != nil:
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// Waits is what a WaitSampler saw.
type Waits struct {
	// Polls is how often it looked.
	Polls int
	// Seen counts each wait ("type:event", or "CPU") across sessions and
	// polls; the sum over Polls is the mean number of busy sessions.
	Seen map[string]int
}

// Sample polls every interval until ctx ends and returns what it saw.
func (s *WaitSampler) Sample(ctx context.Context, every time.Duration) (Waits, error) {
	got := Waits{Seen: map[string]int{}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return got, nil
		case <-tick.C:
		}
		// Not under ctx: cancelling a query mid-flight would close the
		// connection, and the next slice needs it.
		waits, err := s.poll(context.WithoutCancel(ctx))
		if err != nil {
			return Waits{}, err
		}
		got.Polls++
		for _, w := range waits {
			got.Seen[w]++
		}
	}
}

func (s *WaitSampler) poll(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := s.conn.Query(ctx, waitsSQL)
	if err != nil {
		return nil, fmt.Errorf("wait sampler: %w", err)
	}
	waits, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("wait sampler: %w", err)
	}
	return waits, nil
}

// Close closes the sampler's connection.
func (s *WaitSampler) Close(ctx context.Context) error {
	return s.conn.Close(ctx)
}
