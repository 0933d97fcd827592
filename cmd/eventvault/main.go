// Command eventvault runs the EventVault server and its administrative
// commands.
//
//	eventvault server -dev        dev mode: embedded store and a local root key in ./data
//	eventvault server             production: PostgreSQL (EVENTVAULT_DATABASE_URL) and Vault Transit (EVENTVAULT_VAULT_ADDR)
//	eventvault migrate            apply PostgreSQL schema migrations and exit
//	eventvault init               create the deployment keys, once per deployment
//	eventvault certificate verify check an erasure certificate offline
//	eventvault rotate tenant|root rotate a tenant's KEK or the root key, re-wrapping what they wrap
//	eventvault rotate cycle       end a crypto-period, so that backups from before it can no longer be decrypted
//	eventvault erasure reapply    re-apply to a restored backup the erasures the live database completed since
//	eventvault token create|list|revoke|revoke-root   manage API tokens as the operator
//	eventvault tenant shred       offboard a tenant: destroy its keys, revoke its tokens
//	eventvault audit verify       check an audit export bundle offline (exit codes in docs/audit.md)
//
// Every flag has an EVENTVAULT_* environment variable; a flag given on the
// command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: eventvault <command> [flags]

commands:
  server    run the HTTP API (add -dev for the embedded dev mode)
  migrate   apply the PostgreSQL schema migrations and exit
  init      create the deployment keys (pseudonym, signing, token verifier)
            in the database, once per deployment, before the first server
  rotate tenant -tenant <tenant> | rotate root [-retire]
            rotate a tenant's KEK or the root key and re-wrap what it wraps
  rotate cycle
            end a crypto-period: new KEK and root versions, old ones destroyed
            or retired, so that backups from before it can no longer be
            decrypted (run it on a schedule; needs Vault Transit)
  token create -tenant <tenant> -name <name> [-policies a,b] [-rules <json>] [-ttl 720h]
  token list -tenant <tenant> | token revoke -tenant <tenant> -id <id>
  token revoke-root
            manage API tokens as the operator (the first admin token of a
            tenant; prints a new token once, on stdout)
  policy validate -dir <dir> | policy explain ... | policy from-rules -rules <json>
            check policy documents offline, decide a request and name the
            statement that decided, or turn a token's rules into a document
  tenant shred -tenant <tenant> [-yes]
            offboard a tenant: destroy its keys and revoke its tokens
  certificate verify -public-key <file> <file>
            check an erasure certificate offline
  audit export -tenant <tenant> [-o <file>]
            export a tenant's audit log as a bundle, from the database
  audit verify <bundle> -public-key <file> [-trusted-checkpoint <file>]
            check an audit export bundle offline; exit 10 tampered,
            11 truncated, 12 reordered, 13 wrong key, 14 fork, 15 rollback
  audit processing -tenant <tenant> [-from <time>] [-to <time>]
            the records of processing (GDPR Art. 30) from the audit log
  subject erase|export|rectify|restrict|unrestrict -tenant <t> -subject <id>
            a data subject's rights (GDPR Art. 15, 16, 17, 18, 20)
  erasure reapply -from <live URL> -database-url <restored URL>
            after restoring a backup, re-apply the erasures done since

Run 'eventvault <command> -h' for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "server":
		err = runServer(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "certificate":
		err = runCertificate(args[1:], stdout, stderr)
	case "audit":
		err = runAudit(ctx, args[1:], stdout, stderr)
	case "rotate":
		err = runRotate(ctx, args[1:], stdout, stderr)
	case "init":
		err = runInit(ctx, args[1:], stdout, stderr)
	case "erasure":
		err = runErasure(ctx, args[1:], stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], stdout, stderr)
	case "tenant":
		err = runTenant(ctx, args[1:], stdout, stderr)
	case "subject":
		err = runSubject(ctx, args[1:], stdout, stderr)
	case "policy":
		err = runPolicy(args[1:], stdout, stderr)
		if errors.Is(err, errDenied) {
			return exitDenied
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "eventvault: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		// No error shows a secret, even one a library quoted.
		fmt.Fprintf(stderr, "eventvault %s: %s\n", args[0], scrub(describe(err), secretsIn(args)))
		var coded *exitCodeError
		if errors.As(err, &coded) {
			return coded.code
		}
		return 1
	}
	return 0
}
