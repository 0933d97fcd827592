package rawbench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// InstallMessageDB installs message-db (the npm package @eventide/message-db)
// into the database at dbURL by running the package's own install script,
// scriptsDir/install.sh (scripts/message-db.sh fetches and caches it), with
// psql, as its README says, told not to create a database of its own. It
// creates the message_store role (once per server), schema, table,
// functions, indexes and views.
func InstallMessageDB(ctx context.Context, dbURL, scriptsDir string) error {
	install := filepath.Join(scriptsDir, "install.sh")
	if _, err := os.Stat(install); err != nil {
		return fmt.Errorf("message-db: no install script at %s: run `bash scripts/message-db.sh`, which fetches @eventide/message-db with npm and prints its folder", install)
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return fmt.Errorf("message-db: its install script needs psql (Debian/Ubuntu: apt-get install postgresql-client)")
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("message-db: the database URL does not parse")
	}
	env := append(os.Environ(), "CREATE_DATABASE=off", "DATABASE_NAME="+strings.TrimPrefix(u.Path, "/"),
		"PGHOST="+u.Hostname(), "PGPORT="+u.Port(), "PGUSER="+u.User.Username(), "PGSSLMODE=disable")
	if p, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+p)
	}
	cmd := exec.CommandContext(ctx, "bash", install)
	cmd.Dir, cmd.Env = scriptsDir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("message-db: %s failed: %w\n%s", install, err, out.String())
	}
	return nil
}

// MessageDB is message-db's functions on a pgx pool, called as its Ruby
// and Node clients call them: write_message for an append (one commit),
// get_stream_messages and get_category_messages for reads. It is safe for
// concurrent use.
type MessageDB struct {
	pool *pgxpool.Pool
}

// OpenMessageDB connects to the database at dbURL, where InstallMessageDB
// ran, with a pool of at most maxConns (0: pgxpool's default).
func OpenMessageDB(ctx context.Context, dbURL string, maxConns int32) (*MessageDB, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse the database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "evbench-message-db"
	cfg.ConnConfig.RuntimeParams["search_path"] = "message_store,public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, "SELECT message_store_version()").Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("message-db is not installed: %w", err)
	}
	return &MessageDB{pool: pool}, nil
}

// Close closes the pool.
func (m *MessageDB) Close() { m.pool.Close() }

// Write appends one message with write_message, expected version any, in
// its own transaction, and returns its stream position.
func (m *MessageDB) Write(ctx context.Context, stream string, e Event) (int64, error) {
	var p int64
	if err := m.pool.QueryRow(ctx, "SELECT write_message($1, $2, $3, $4::jsonb)", e.ID.String(), stream, e.Type, string(e.Data)).Scan(&p); err != nil {
		return 0, fmt.Errorf("write_message to %s: %w", stream, err)
	}
	return p, nil
}

// WriteBatch appends messages with write_message in one transaction, as a
// message-db client writes a batch, and returns the position of the last.
func (m *MessageDB) WriteBatch(ctx context.Context, stream string, events []Event) (int64, error) {
	var last int64
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, e := range events {
			b.Queue("SELECT write_message($1, $2, $3, $4::jsonb)", e.ID.String(), stream, e.Type, string(e.Data)).QueryRow(func(r pgx.Row) error {
				return r.Scan(&last)
			})
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("write_message batch to %s: %w", stream, err)
	}
	return last, nil
}

// ReadStream reads up to limit messages of stream from position from with
// get_stream_messages.
func (m *MessageDB) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error) {
	rows, err := m.pool.Query(ctx, "SELECT id, stream_name, type, position, global_position, data, time FROM get_stream_messages($1, $2, $3)", stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("get_stream_messages %s: %w", stream, err)
	}
	return scanMessages(rows, limit)
}

// ReadCategory reads up to limit messages of category from global position
// from with get_category_messages: message-db's read of everything, per
// category.
func (m *MessageDB) ReadCategory(ctx context.Context, category string, from int64, limit int) ([]Row, error) {
	rows, err := m.pool.Query(ctx, "SELECT id, stream_name, type, position, global_position, data, time FROM get_category_messages($1, $2, $3)", category, from, limit)
	if err != nil {
		return nil, fmt.Errorf("get_category_messages %s: %w", category, err)
	}
	return scanMessages(rows, limit)
}

// CategoryBounds returns the first and last global positions of category.
func (m *MessageDB) CategoryBounds(ctx context.Context, category string) (first, last int64, err error) {
	err = m.pool.QueryRow(ctx, "SELECT coalesce(min(global_position), -1), coalesce(max(global_position), -1) FROM messages WHERE category(stream_name) = $1", category).Scan(&first, &last)
	return first, last, err
}

func scanMessages(rows pgx.Rows, limit int) ([]Row, error) {
	defer rows.Close()
	out := make([]Row, 0, limit)
	for rows.Next() {
		var r Row
		var id, data string
		if err := rows.Scan(&id, &r.Stream, &r.Type, &r.Position, &r.GlobalPosition, &data, &r.RecordedAt); err != nil {
			return nil, err
		}
		var err error
		if r.ID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("message id %q: %w", id, err)
		}
		r.Data = []byte(data)
		out = append(out, r)
	}
	return out, rows.Err()
}
