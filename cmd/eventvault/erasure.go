package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/eventvault/eventvault/store/postgres"
)

const erasureUsage = `usage: eventvault erasure reapply -from <live database URL> -database-url <restored database URL>

After restoring a PostgreSQL backup, re-applies to the restored database
every erasure the live database completed since the backup: the same
tenants shredded, the same streams shredded (and purged), and the same
completed erasure requests recorded, certificates included. It works by
tenant, stream and subject pseudonym (raw subject ids are never kept), needs
no Vault, and is idempotent: run it again and it does nothing. Run it before
any server serves the restored database. See docs/operations.md, "Backup and
restore".
`

func runErasure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reapply" {
		fmt.Fprint(stderr, erasureUsage)
		return fmt.Errorf("unknown or missing subcommand (want reapply)")
	}
	fs := flag.NewFlagSet("erasure reapply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, erasureUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	// The defaults are read from the environment after parsing, so that
	// -h never prints a URL (it may carry a password).
	from := fs.String("from", "", "PostgreSQL URL of the live database, the source of the erasures (EVENTVAULT_ERASURE_FROM_URL)")
	to := fs.String("database-url", "", "PostgreSQL URL of the restored database, which gets them (EVENTVAULT_DATABASE_URL)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *from == "" {
		*from = os.Getenv("EVENTVAULT_ERASURE_FROM_URL")
	}
	if *to == "" {
		*to = os.Getenv("EVENTVAULT_DATABASE_URL")
	}
	if *from == "" || *to == "" {
		return fmt.Errorf("-from (the live database) and -database-url (the restored one) are both required")
	}
	if *from == *to {
		return fmt.Errorf("-from and -database-url name the same database: -from is the live database, -database-url the restored one")
	}
	src, err := postgres.Open(ctx, *from, postgres.Options{})
	if err != nil {
		return fmt.Errorf("open the live database (-from): %w", err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to, postgres.Options{})
	if err != nil {
		return fmt.Errorf("open the restored database (-database-url): %w", err)
	}
	defer dst.Close()
	n, err := dst.ReapplyErasures(ctx, src, func(format string, args ...any) {
		fmt.Fprintf(stdout, format+"\n", args...)
	})
	fmt.Fprintf(stdout, "%d tenants and %d streams shredded, %d subjects' personal data erased, %d erasure requests recorded; %d tenants and %d streams were not in the restored database\n",
		n.TenantsShredded, n.StreamsShredded, n.SubjectsErased, n.RequestsWritten, n.TenantsAbsent, n.StreamsAbsent)
	return err
}
