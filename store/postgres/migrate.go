package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/eventvault/eventvault"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key that serialises migrations
// of one database ("evvault" in ASCII). Migrate holds it, at session level,
// for the whole run: the takeover of the legacy table, goose's migrations,
// the mirror and the grant.
const migrationLockKey int64 = 0x65767661756c74

// versionTable is goose's version table: the schema version the server
// checks at start (see DB.checkSchema).
const versionTable = goose.DefaultTablename // goose_db_version

// legacyTable is the version table of the runner goose replaced. Migration
// 0001 grants SELECT on it, so it exists on every database; Migrate keeps
// it as a mirror of goose's table (version, name), so that the schema of a
// fresh database stays what it was and an older binary started against a
// newer schema still sees that it is newer and refuses.
const createLegacyTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

type migration struct {
	version int
	name    string
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
		ms = append(ms, migration{version: v, name: m[2]})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: expected version %d (versions start at 1 and have no gaps)", m.version, m.name, i+1)
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
	return len(ms)
}

// LatestVersion is the schema version this package needs: the number of
// its newest migration.
func LatestVersion() int { return latestVersion() }

// Migrate brings the database at url to the schema this package needs,
// with goose (github.com/pressly/goose/v3) over the embedded SQL files:
// each migration not yet recorded in goose_db_version runs in its own
// transaction. Migrate holds a session-level advisory lock for the whole
// run, so that commands that migrate at once wait for each other. Applying
// twice is a no-op.
//
// A database migrated by the runner goose replaced (its versions are in
// schema_migrations, goose_db_version does not exist) is taken over first:
// its applied versions are recorded in goose_db_version, in one
// transaction, and nothing is run again. Migrate then mirrors goose's
// versions into schema_migrations, and grants eventvault_app SELECT on
// goose_db_version, which Open reads to check the schema.
//
// url must name a role allowed to create tables and roles (the first
// migration creates the role eventvault_app) and must own the tables (the
// role that ran the first migration); the server then connects as a login
// role that is only a member of eventvault_app, and never migrates.
//
// Errors: EUNAVAILABLE if the database cannot be reached; EINTERNAL if a
// migration fails or the database is newer than this package, or if the
// role of url lacks a privilege the migrations need (its message says to
// migrate as the schema's owner).
func Migrate(ctx context.Context, url string) error {
	const op = "postgres.Migrate"
	ms, err := loadMigrations()
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: urlProblem(url), Err: err}
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	lockConn, err := db.Conn(ctx)
	if err != nil {
		return mapMigrateError(op, cfg.User, fmt.Errorf("connect: %w", err))
	}
	defer lockConn.Close()
	if _, err := lockConn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return mapMigrateError(op, cfg.User, fmt.Errorf("take migration lock: %w", err))
	}
	defer func() {
		_, _ = lockConn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	}()

	if err := takeOver(ctx, db, len(ms)); err != nil {
		return mapMigrateError(op, cfg.User, err)
	}
	newest, err := gooseVersion(ctx, db)
	if err != nil {
		return mapMigrateError(op, cfg.User, err)
	}
	if newest > int64(len(ms)) {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("the database schema is at version %d, newer than this server knows (%d): upgrade the server", newest, len(ms))}
	}

	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: fmt.Errorf("goose: %w", err)}
	}
	if _, err := p.Up(ctx); err != nil {
		var perr *goose.PartialError
		if errors.As(err, &perr) && perr.Failed != nil && perr.Failed.Source != nil {
			return mapMigrateError(op, cfg.User, fmt.Errorf("migration %s: %w", path.Base(perr.Failed.Source.Path), perr.Err))
		}
		return mapMigrateError(op, cfg.User, fmt.Errorf("goose up: %w", err))
	}
	if err := finish(ctx, db, ms); err != nil {
		return mapMigrateError(op, cfg.User, err)
	}
	return nil
}

// mapMigrateError is mapError for Migrate. A privilege refused to Migrate
// means that url names a role that may not migrate (the server's login
// role, say), so its message says which role migrates; the store's other
// operations say instead to migrate and to connect as a member of
// eventvault_app (mapCode). It names the role connected as, never the URL,
// which may hold a password.
func mapMigrateError(op, user string, err error) error {
	var domain *eventvault.Error
	if sqlState(err) != sqlInsufficientPrivilege || errors.As(err, &domain) {
		return mapError(op, err)
	}
	mapped := mapError(op, err)
	var e *eventvault.Error
	if errors.As(mapped, &e) {
		e.Message = fmt.Sprintf("the database refused role %q a privilege the migrations need: run `eventvault migrate` as the schema's owner, "+
			"the role that owns the EventVault tables and has CREATE on the schema (and CREATEROLE for the first migration, which creates %s); "+
			"the server's login role cannot migrate", user, appRole)
	}
	return mapped
}

func tableExists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT to_regclass(quote_ident(current_schema()) || '.' || $1) IS NOT NULL`, name).Scan(&ok)
	return ok, err
}

// takeOver prepares the version tables, in one transaction. On a fresh
// database it creates the legacy table (0001 grants on it). On a database
// the old runner migrated, it creates goose's table with version 0 (as
// goose does) and every version the old runner applied, in order.
func takeOver(ctx context.Context, db *sql.DB, known int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	hasGoose, err := tableExists(ctx, tx, versionTable)
	if err != nil {
		return fmt.Errorf("look for %s: %w", versionTable, err)
	}
	if hasGoose {
		return nil
	}
	hasLegacy, err := tableExists(ctx, tx, "schema_migrations")
	if err != nil {
		return fmt.Errorf("look for schema_migrations: %w", err)
	}
	if !hasLegacy {
		if _, err := tx.ExecContext(ctx, createLegacyTableSQL); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		return tx.Commit()
	}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	var versions []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for i, v := range versions {
		if v != int64(i+1) {
			return fmt.Errorf("schema_migrations holds versions %v: expected 1..n, cannot take it over", versions)
		}
	}
	if len(versions) > known {
		return fmt.Errorf("schema_migrations is at version %d, newer than this server knows (%d): upgrade the server", len(versions), known)
	}
	store, err := database.NewStore(goose.DialectPostgres, versionTable)
	if err != nil {
		return err
	}
	if err := store.CreateVersionTable(ctx, tx); err != nil {
		return fmt.Errorf("create %s: %w", versionTable, err)
	}
	for _, v := range append([]int64{0}, versions...) {
		if err := store.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return fmt.Errorf("record version %d in %s: %w", v, versionTable, err)
		}
	}
	return tx.Commit()
}

// gooseVersion is the newest version recorded in goose's table, 0 without
// one.
func gooseVersion(ctx context.Context, db *sql.DB) (int64, error) {
	ok, err := tableExists(ctx, db, versionTable)
	if err != nil || !ok {
		return 0, err
	}
	var v int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM `+versionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read %s: %w", versionTable, err)
	}
	return v, nil
}

// finish mirrors goose's versions into the legacy table and lets the app
// role read goose's table.
func finish(ctx context.Context, db *sql.DB, ms []migration) error {
	newest, err := gooseVersion(ctx, db)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, m := range ms {
		if int64(m.version) > newest {
			break
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING`, m.version, m.name); err != nil {
			return fmt.Errorf("mirror version %d into schema_migrations: %w", m.version, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `GRANT SELECT ON `+versionTable+` TO `+appRole); err != nil {
		return fmt.Errorf("grant SELECT on %s: %w", versionTable, err)
	}
	return tx.Commit()
}
