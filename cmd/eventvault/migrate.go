package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/eventvault/eventvault/store/postgres"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := env("EVENTVAULT_DATABASE_URL", "")
	url := &dbURL
	fs.Var(urlFlag{url}, "database-url", "PostgreSQL `URL` of the schema's owner, a role that may create tables and roles, not the server's login role (EVENTVAULT_DATABASE_URL; -h shows it without its password)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" {
		return fmt.Errorf("-database-url (or EVENTVAULT_DATABASE_URL) is required")
	}
	if err := postgres.Migrate(ctx, *url); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
