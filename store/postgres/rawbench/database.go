package rawbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// Database is a database created for one benchmark run.
type Database struct {
	// URL names the new database: the server URL with the database swapped.
	URL   string
	admin string
	name  string
}

// CreateDatabase creates a database with a random name (evbench_<hex>) on
// the server that adminURL names, which must be a postgres:// URL of a role
// allowed to create databases.
func CreateDatabase(ctx context.Context, adminURL string) (*Database, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("the server URL must be a postgres:// URL (the value does not parse as one)")
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("database name: %w", err)
	}
	name := "evbench_" + hex.EncodeToString(suffix[:])
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return &Database{URL: u.String(), admin: adminURL, name: name}, nil
}

// Name is the database's name.
func (d *Database) Name() string { return d.name }

// Drop drops the database, closing whatever connections still use it.
func (d *Database) Drop(ctx context.Context) error {
	if err := adminExec(ctx, d.admin, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	return nil
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// ServerInfo is what the benchmark reports of the server it ran on.
type ServerInfo struct {
	Version           string `json:"version"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
}

// Server reads the server's version and its durability settings.
func Server(ctx context.Context, dbURL string) (ServerInfo, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("connect to the server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var info ServerInfo
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&info.Version, &info.Fsync, &info.SynchronousCommit)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read server settings: %w", err)
	}
	return info, nil
}

// Analyze runs ANALYZE on every table of the database at dbURL, so that the
// planner of both sides works from statistics of the rows written before
// the measurement, as it would on a database in service, not from the
// guesses it makes for a table never analyzed.
func Analyze(ctx context.Context, dbURL string) error {
	if err := adminExec(ctx, dbURL, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}
