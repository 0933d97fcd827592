package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

const subjectUsage = `usage: eventvault subject export -tenant <tenant> -subject <id> [-o <file>] [store and root flags]
       eventvault subject rectify -tenant <tenant> -subject <id> -token <token> -value <JSON> [store and root flags]
       eventvault subject restrict -tenant <tenant> -subject <id> -reason <text> [store and root flags]
       eventvault subject unrestrict -tenant <tenant> -subject <id> [store and root flags]

A data subject's rights for the operator, as the API serves them
(docs/pii.md): 'export' is POST /v1/subject-exports (GDPR Art. 15, 20),
'rectify' POST /v1/rectifications (Art. 16), 'restrict' and 'unrestrict'
PUT and DELETE /v1/restrictions (Art. 18). Erasure (Art. 17) is
POST /v1/erasure-requests. Each opens the database and the root of trust
as 'eventvault server' does (the embedded store only while no server holds
it) and is recorded in the tenant's audit log, the subject by pseudonym.

The subject id may be given as -subject - to read it from stdin, so that it
stays out of the shell's history and the process list.
`

func runSubject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, subjectUsage)
		return errors.New("missing subcommand (want export, rectify, restrict or unrestrict)")
	}
	cmd := args[0]
	switch cmd {
	case "export", "rectify", "restrict", "unrestrict":
	default:
		fmt.Fprint(stderr, subjectUsage)
		return fmt.Errorf("unknown subcommand %q (want export, rectify, restrict or unrestrict)", cmd)
	}
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("subject "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, subjectUsage+"\nflags:\n"); fs.PrintDefaults() }
	tenant := fs.String("tenant", "", "the tenant (required)")
	subject := fs.String("subject", "", "the data subject's id, or - to read it from stdin (required)")
	out := fs.String("o", "", "export: write the export to this file instead of stdout")
	token := fs.String("token", "", "rectify: the token that stands for the value")
	value := fs.String("value", "", "rectify: the corrected value, as JSON (a string is \"quoted\")")
	reason := fs.String("reason", "", "restrict: why processing is restricted (GDPR Art. 18(1)); no personal data")
	storeAndRootFlags(fs, &c)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *tenant == "" || *subject == "" {
		return errors.New("-tenant and -subject are required")
	}
	if err := eventvault.ValidateTenant(eventvault.TenantID(*tenant)); err != nil {
		return err
	}
	if *subject == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, eventvault.MaxSubjectLength+2))
		if err != nil {
			return fmt.Errorf("read the subject id from stdin: %w", err)
		}
		*subject = string(trimNewline(b))
	}
	if err := c.validate(); err != nil {
		return err
	}
	logger := newCommandLogger(c.LogFormat, stderr)
	root, store, dk, err := openOperatorKeys(ctx, c, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	rec := &audit.Recorder{}
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{TTL: c.KeyCacheTTL, CacheSize: c.KeyCacheSize})
	events := engine.NewEvents(store, keys, logger, engine.WithPseudonymizer(dk.Pseudonyms), engine.WithPII(evcrypto.NewSubjectKeys(keys, store), store), engine.WithAudit(rec, nil))
	rights := engine.NewSubjects(events, store, dk.Pseudonyms, rec)
	p := auth.Operator
	p.Tenant = eventvault.TenantID(*tenant)
	switch cmd {
	case "export":
		x, err := rights.Export(ctx, p, *subject)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(x, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *out == "" {
			_, err = stdout.Write(b)
			return err
		}
		if err := os.WriteFile(*out, b, 0o600); err != nil {
			return fmt.Errorf("write the export: %w", err)
		}
		fmt.Fprintf(stderr, "wrote the export of subject %s (%d values, %d events) to %s\n", x.SubjectPseudonym, len(x.PersonalData), len(x.Events), *out)
	case "rectify":
		if *token == "" || *value == "" {
			return errors.New("-token and -value are required")
		}
		if !json.Valid([]byte(*value)) {
			// The value is not echoed: it is personal data.
			return errors.New(`-value is not valid JSON: give the corrected value as JSON; text is a JSON string, in double quotes inside the shell's quotes, such as -value '"sam@new.example"' (not -value sam@new.example)`)
		}
		r, err := rights.Rectify(ctx, p, *subject, *token, []byte(*value))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %s now resolves to version %d\n", r.Token, r.Version)
	case "restrict":
		r, err := rights.Restrict(ctx, p, *subject, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "processing of subject %s restricted\n", r.Subject)
	case "unrestrict":
		if err := rights.Unrestrict(ctx, p, *subject); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "restriction lifted")
	}
	return nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
