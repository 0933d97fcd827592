package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_xact_lock key that serialises
// migrations of one database ("evvault" in ASCII).
const migrationLockKey int64 = 0x65767661756c74

const createMigrationsTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

type migration struct {
	version int
	name    string
	sql     string
}

var migrationNameRE = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations returns the embedded migrations in order. Versions start
// at 1 and have no gaps, so that a missing file cannot go unnoticed.
func loadMigrations() ([]migration, error) {
	return parseMigrations(migrationFiles, "migrations")
}

func parseMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationNameRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name it NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: m[2], sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	// Versions start at 1 and increase; a gap is allowed (branches number
	// their migrations apart: 0006 may land before 0005), a duplicate is not.
	for i, m := range ms {
		if (i == 0 && m.version != 1) || (i > 0 && m.version <= ms[i-1].version) {
			return nil, fmt.Errorf("migration %04d_%s: versions start at 1 and each is used once", m.version, m.name)
		}
	}
	return ms, nil
}

// latestVersion is the schema version this package needs.
func latestVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate brings the database at url to the schema this package needs. It
// applies each embedded migration not yet recorded in schema_migrations, in
// its own transaction, under a transaction-level advisory lock: servers that
// start at once wait for each other instead of racing. Applying twice is a
// no-op. url must name a role allowed to create tables and roles (the first
// migration creates the role eventvault_app); the server may then connect as
// any role that is a member of eventvault_app.
//
// Errors: EUNAVAILABLE if the database cannot be reached; EINTERNAL if a
// migration fails or the database is newer than this package.
func Migrate(ctx context.Context, url string) error {
	const op = "postgres.Migrate"
	ms, err := loadMigrations()
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "the database URL does not parse", Err: err}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return mapError(op, fmt.Errorf("connect: %w", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))

	for _, m := range ms {
		if err := applyMigration(ctx, conn, m); err != nil {
			return mapError(op, fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err))
		}
	}
	var newest int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return mapError(op, fmt.Errorf("read schema version: %w", err))
	}
	if known := ms[len(ms)-1].version; newest > known {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("the database schema is at version %d, newer than this server knows (%d): upgrade the server", newest, known)}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, createMigrationsTableSQL); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var applied bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.version).Scan(&applied)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if applied {
			return nil
		}
		// Without arguments, Exec uses the simple protocol, which runs a
		// file of several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return fmt.Errorf("record migration: %w", err)
		}
		return nil
	})
}
