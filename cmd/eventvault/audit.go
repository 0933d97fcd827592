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
	"strings"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

const auditUsage = `usage: eventvault audit verify <bundle> -public-key <file> [-trusted-checkpoint <file>] [-save-checkpoint <file>]
       eventvault audit export -tenant <tenant> [-from N] [-to N] [-resource R] [-old-size N] [-o <file>] [store and root flags]
       eventvault audit processing -tenant <tenant> [-from <RFC 3339>] [-to <RFC 3339>] [store flags]

'audit export' is GET /v1/audit/export for the operator: it opens the
database and the root of trust as 'eventvault server' does, publishes a
checkpoint of the records written since the last, and writes the bundle
(to stdout, or -o). The export is itself recorded.

Checks an audit export bundle offline (docs/audit.md): the checkpoint's
signature against the pinned key only, the order and contiguity of the
records, the recomputed root or each record's inclusion proof, and the
consistency proof from your trusted checkpoint. <bundle> may be - for stdin.

  -public-key          the tenant log's verifier key (<origin>+<key id>+<key>),
                       or the deployment's signing key: the JSON of
                       GET /v1/keys/signing or its base64 public key
  -trusted-checkpoint  a checkpoint you kept from before (the signed note that
                       -save-checkpoint wrote): refuses a rollback or a fork
  -save-checkpoint     after success, write the bundle's signed checkpoint
                       here, to pass as -trusted-checkpoint next time

Exit codes: 0 verified, 1 usage or unreadable input, 10 tampered (a record
edited or inserted, a root or proof mismatch), 11 truncated (records
missing), 12 reordered, 13 wrong key or bad signature, 14 fork, 15 rollback.
`

// Exit codes of 'audit verify', one per audit.Failure (docs/audit.md).
var auditExitCodes = map[audit.Failure]int{
	audit.Unusable:     1,
	audit.Tampered:     10,
	audit.Truncated:    11,
	audit.Reordered:    12,
	audit.BadSignature: 13,
	audit.Fork:         14,
	audit.Rollback:     15,
}

// exitCodeError makes run exit with code rather than 1.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("expected 'audit verify'")
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(args[1:], stdout, stderr)
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr)
	case "processing":
		return runAuditProcessing(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("unknown audit command %q", args[0])
	}
}

func runAuditVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	keyFile := fs.String("public-key", "", "the pinned verifier key or signing public key")
	trustedFile := fs.String("trusted-checkpoint", "", "a signed checkpoint kept from before")
	saveFile := fs.String("save-checkpoint", "", "write the bundle's signed checkpoint here after success")
	// The bundle may come before or after the flags.
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *keyFile == "" || len(positional) != 1 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("need -public-key and one bundle file")
	}
	pinned, err := readPinnedKey(*keyFile)
	if err != nil {
		return err
	}
	var trusted *audit.Checkpoint
	if *trustedFile != "" {
		c, err := readTrustedCheckpoint(*trustedFile, pinned)
		if err != nil {
			return err
		}
		trusted = &c
	}
	var in io.Reader = os.Stdin
	if positional[0] != "-" {
		f, err := os.Open(positional[0])
		if err != nil {
			return fmt.Errorf("read bundle: %w", err)
		}
		defer f.Close()
		in = f
	}
	v, err := audit.VerifyBundle(in, pinned, trusted)
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return &exitCodeError{code: auditExitCodes[ve.Failure], err: fmt.Errorf("%s (exit %d): %s", strings.ToUpper(ve.Failure.String()), auditExitCodes[ve.Failure], verifyErrorWhere(ve))}
	}
	if err != nil {
		return err
	}
	if *saveFile != "" {
		if err := os.WriteFile(*saveFile, v.Note, 0o644); err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
	}
	h := v.Header
	fmt.Fprintf(stdout, "OK: audit bundle verified against the pinned key\n")
	fmt.Fprintf(stdout, "  tenant:             %s\n", h.Tenant)
	fmt.Fprintf(stdout, "  origin:             %s\n", v.Checkpoint.Origin)
	fmt.Fprintf(stdout, "  tree size:          %d\n", v.Checkpoint.Size)
	fmt.Fprintf(stdout, "  root:               %s\n", v.Checkpoint.Root)
	switch {
	case h.Complete():
		fmt.Fprintf(stdout, "  records:            %d, the whole log (root recomputed)\n", h.Count)
	case h.Filtered:
		fmt.Fprintf(stdout, "  records:            %d selected by %q, as the unsigned header says (each proven included; a selection cannot prove it is complete)\n", h.Count, h.Filter)
	case h.Count == 0:
		fmt.Fprintf(stdout, "  records:            none\n")
	default:
		fmt.Fprintf(stdout, "  records:            %d, indexes %d to %d (each proven included)\n", h.Count, h.First, h.First+h.Count-1)
	}
	switch {
	case trusted == nil:
		fmt.Fprintf(stdout, "  trusted checkpoint: none given; pass -trusted-checkpoint to detect a rollback or a fork\n")
	case trusted.Size == v.Checkpoint.Size:
		// VerifyBundle refused another root at the same size (a fork).
		fmt.Fprintf(stdout, "  trusted checkpoint: size %d, the same size and root as this one (nothing added since; no rollback, no fork)\n", trusted.Size)
	default:
		// VerifyBundle refused a smaller size (a rollback).
		fmt.Fprintf(stdout, "  trusted checkpoint: size %d, extended by this one (%d records added; no rollback, no fork)\n", trusted.Size, v.Checkpoint.Size-trusted.Size)
	}
	if *saveFile != "" {
		fmt.Fprintf(stdout, "  saved checkpoint:   %s\n", *saveFile)
	}
	return nil
}

func verifyErrorWhere(e *audit.VerifyError) string {
	var where []string
	if e.Line > 0 {
		where = append(where, fmt.Sprintf("line %d", e.Line))
	}
	if e.Index >= 0 {
		where = append(where, fmt.Sprintf("record %d", e.Index))
	}
	if len(where) == 0 {
		return e.Reason
	}
	return strings.Join(where, ", ") + ": " + e.Reason
}

// readPinnedKey reads a note verifier key, or else the deployment's
// signing public key in the forms 'certificate verify' reads.
func readPinnedKey(path string) (audit.Pinned, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	if pinned, err := audit.PinVerifierKey(string(b)); err == nil {
		return pinned, nil
	}
	pub, err := readPublicKey(path)
	if err != nil {
		return nil, fmt.Errorf("public key file %s holds neither a verifier key (<origin>+<key id>+<key>), the JSON of GET /v1/keys/signing, nor a base64 Ed25519 public key", path)
	}
	return audit.PublicKeyVerifiers(pub), nil
}

// readTrustedCheckpoint reads a signed checkpoint note, checked against
// the pinned key, or a bare checkpoint body the auditor vouches for.
func readTrustedCheckpoint(path string, pinned audit.Pinned) (audit.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("read trusted checkpoint: %w", err)
	}
	if !bytes.Contains(b, []byte("\n\n")) {
		c, err := audit.ParseCheckpoint(b)
		if err != nil {
			return audit.Checkpoint{}, fmt.Errorf("trusted checkpoint %s: %w", path, err)
		}
		return c, nil
	}
	c, err := audit.OpenCheckpoint(b, pinned)
	if errors.Is(err, audit.ErrBadSignature) {
		return audit.Checkpoint{}, &exitCodeError{code: auditExitCodes[audit.BadSignature], err: fmt.Errorf("BAD SIGNATURE (exit 13): trusted checkpoint %s: %w", path, err)}
	}
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("trusted checkpoint %s: %w", path, err)
	}
	return c, nil
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage+"\nflags:\n"); fs.PrintDefaults() }
	tenant := fs.String("tenant", "", "the tenant whose log to export (required)")
	var req audit.ExportRequest
	fs.Int64Var(&req.From, "from", 0, "first record index")
	fs.Int64Var(&req.To, "to", 0, "record index after the last; 0: up to the latest checkpoint")
	fs.StringVar(&req.Resource, "resource", "", "keep only the records about this resource (subject:<pseudonym hex>, never a subject id; stream:order-7, token:tok_…, policy:app, consumer:emails)")
	fs.Int64Var(&req.OldSize, "old-size", 0, "size of a checkpoint you hold: adds the consistency proof from it")
	out := fs.String("o", "", "write the bundle to this file instead of stdout")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *tenant == "" {
		return errors.New("-tenant is required")
	}
	if err := c.validate(); err != nil {
		return err
	}
	logger := newCommandLogger(c.LogFormat, stderr)
	_, store, dk, err := openOperatorKeys(ctx, c, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	signer, err := audit.NewSigner(audit.DefaultLogName, dk.Signer.CryptoSigner())
	if err != nil {
		return err
	}
	if _, err := (&audit.Publisher{Store: store, Signer: signer}).PublishOnce(ctx); err != nil {
		return fmt.Errorf("publish checkpoints: %w", err)
	}
	// Export writes the bundle in one Write, once it is whole: to stdout
	// as it is; for a file, kept so that a failed export leaves no file.
	var buf bytes.Buffer
	w := stdout
	if *out != "" {
		w = &buf
	}
	if err := engine.NewAuditLog(store, &audit.Recorder{}, nil).Export(ctx, auth.Operator, eventvault.TenantID(*tenant), req, w); err != nil {
		return err
	}
	// The key to pin, printed apart from the bundle: an auditor should
	// pin it from a trusted channel, then keep it.
	fmt.Fprintf(stderr, "verifier key of this log (pin it once, from a channel you trust): %s\n", signer.VerifierKey(*tenant))
	if *out == "" {
		return nil
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the bundle: %w", err)
	}
	fmt.Fprintf(stderr, "wrote the audit bundle of tenant %s to %s; check it with: eventvault audit verify %s -public-key <file holding the verifier key>\n", *tenant, *out, *out)
	return nil
}

// recordOperator writes an operator's action at the command line into
// log before the action starts: an action that cannot be recorded does
// not start.
func recordOperator(ctx context.Context, store eventvault.AuditStore, log eventvault.TenantID, action, resource string, detail map[string]any) error {
	if err := eventvault.AppendAuditEvents(ctx, &audit.Recorder{}, store, eventvault.AuditEvent{Tenant: log, Actor: "operator", Action: action, Resource: resource, Outcome: "ok", Detail: detail}); err != nil {
		return fmt.Errorf("record %s: %w", action, err)
	}
	return nil
}

// runAuditProcessing prints the records of processing (GDPR Art. 30) of a
// tenant over a period, derived from its audit log, as JSON.
func runAuditProcessing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("audit processing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage+"\nflags:\n"); fs.PrintDefaults() }
	tenant := fs.String("tenant", "", "the tenant (required)")
	fromText := fs.String("from", "", "start of the period, RFC 3339 (default: 30 days ago)")
	toText := fs.String("to", "", "end of the period, exclusive, RFC 3339 (default: now)")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *tenant == "" {
		return errors.New("-tenant is required")
	}
	from, to, err := audit.ParsePeriod("-from", *fromText, "-to", *toText, time.Now())
	if err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	logger := newCommandLogger(c.LogFormat, stderr)
	_, store, _, err := openOperator(ctx, c, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	p, err := engine.NewAuditLog(store, nil, nil).Processing(ctx, auth.Operator, eventvault.TenantID(*tenant), from, to)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
