package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

const subjectUsage = `usage: eventvault subject erase -tenant <tenant> -subject <id> [-o <file>] [store and root flags]
       eventvault subject export -tenant <tenant> -subject <id> [-o <file>] [store and root flags]
       eventvault subject rectify -tenant <tenant> -subject <id> -token <token> -value <JSON> [store and root flags]
       eventvault subject restrict -tenant <tenant> -subject <id> -reason <text> [store and root flags]
       eventvault subject unrestrict -tenant <tenant> -subject <id> [store and root flags]

A data subject's rights for the operator, as the API serves them
(docs/pii.md): 'erase' is POST /v1/erasure-requests (GDPR Art. 17): it
shreds what the subject owns and prints the request, and -o writes its
signed certificate to a file; 'export' is POST /v1/subject-exports
(Art. 15, 20), 'rectify' POST /v1/rectifications (Art. 16), 'restrict' and
'unrestrict' PUT and DELETE /v1/restrictions (Art. 18). Each opens the
database and the root of trust
as 'eventvault server' does (the embedded store only while no server holds
it) and is recorded in the tenant's audit log, the subject by pseudonym.

The subject id may be given as -subject - to read it from stdin, so that it
stays out of the shell's history and the process list.
`

func runSubject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, subjectUsage)
		return errors.New("missing subcommand (want erase, export, rectify, restrict or unrestrict)")
	}
	cmd := args[0]
	switch cmd {
	case "erase", "export", "rectify", "restrict", "unrestrict":
	default:
		fmt.Fprint(stderr, subjectUsage)
		return fmt.Errorf("unknown subcommand %q (want erase, export, rectify, restrict or unrestrict)", cmd)
	}
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("subject "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, subjectUsage+"\nflags:\n"); fs.PrintDefaults() }
	tenant := fs.String("tenant", "", "the tenant (required)")
	subject := fs.String("subject", "", "the data subject's id, or - to read it from stdin (required)")
	out := fs.String("o", "", "export: write the export to this file instead of stdout; erase: write the erasure certificate (a DSSE envelope) to this file")
	token := fs.String("token", "", "rectify: the token that stands for the value")
	value := fs.String("value", "", "rectify: the corrected value, as JSON (a string is \"quoted\")")
	reason := fs.String("reason", "", "restrict: why processing is restricted (GDPR Art. 18(1)); no personal data")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args[1:]); err != nil {
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
	case "erase":
		subjectKeys := evcrypto.NewSubjectKeys(keys, store)
		erasure := engine.NewErasure(store, keys, dk.Pseudonyms, dk.Signer, logger,
			engine.WithErasureAudit(rec), engine.WithPIIErasure(store, subjectKeys), engine.WithPropagation(events, store))
		return eraseSubject(ctx, erasure, p, *subject, *out, stdout, stderr)
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

// eraseSubject carries out an erasure request for subject, as POST
// /v1/erasure-requests does, and prints the request: its id, state and
// outcome. A completed request's certificate goes to the file out, if
// given. A request rejected under a legal hold is an error that names the
// hold's reason; one still propagating says which consumers it waits for.
func eraseSubject(ctx context.Context, erasure *engine.Erasure, p eventvault.Principal, subject, out string, stdout, stderr io.Writer) error {
	r, created, err := erasure.RequestErasure(ctx, p, subject)
	if err != nil {
		return err
	}
	if r.State == eventvault.ErasureRejected {
		return fmt.Errorf("erasure request %s is rejected under a %s: lift the hold (DELETE /v1/holds), then ask again", r.ID, r.Reason)
	}
	var pending []engine.PendingConsumer
	if r.State == eventvault.ErasurePropagating {
		// Read once more, as the API does: a consumer may have passed the
		// tombstone meanwhile.
		if r, _, pending, err = erasure.Propagation(ctx, p, r.ID); err != nil {
			return err
		}
	}
	what := "new"
	if !created {
		what = "the subject's existing request"
	}
	fmt.Fprintf(stdout, "erasure request %s (%s): %s\n", r.ID, what, r.State)
	fmt.Fprintf(stdout, "  subject pseudonym: %s\n", r.Subject)
	fmt.Fprintf(stdout, "  received: %s\n", r.ReceivedAt.Format(time.RFC3339))
	switch r.State {
	case eventvault.ErasureCompleted:
		fmt.Fprintf(stdout, "  completed: %s\n", r.CompletedAt.Format(time.RFC3339))
		if cert, ok := engine.CertificateOf(r); ok {
			fmt.Fprintf(stdout, "  outcome: %s\n", cert.Outcome())
		}
		if out != "" {
			if err := os.WriteFile(out, append(bytes.Clone(r.Certificate), '\n'), 0o600); err != nil {
				return fmt.Errorf("erasure request %s is completed, but its certificate could not be written (run the command again with another -o to get it): %w", r.ID, err)
			}
			fmt.Fprintf(stderr, "wrote the certificate of erasure request %s to %s (check it offline: eventvault certificate verify -public-key <the answer of GET /v1/keys/signing> <file>)\n", r.ID, out)
		}
	case eventvault.ErasurePropagating:
		fmt.Fprintf(stdout, "  the subject's keys are destroyed; the request completes once these consumers pass its tombstone:\n")
		for _, pc := range pending {
			fmt.Fprintf(stdout, "    %s (checkpoint %d, %d positions behind)\n", pc.Consumer, pc.Checkpoint, pc.Lag)
		}
		fmt.Fprintf(stdout, "  run the command again, or GET /v1/erasure-requests/%s, to see it complete\n", r.ID)
	default:
		// Received: a failure interrupted it (RequestErasure returned
		// the error then); asking again resumes it.
		fmt.Fprintf(stdout, "  not finished: run the command again to resume it\n")
	}
	return nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
