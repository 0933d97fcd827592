package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/policies"
)

const tokenUsage = `usage:
  eventvault token create -tenant <tenant> -name <name> [-policies a,b] [-rules '<json>'] [-ttl 720h] [flags]
      issue an API token and print it, once, on stdout (nothing else goes
      to stdout; it is never logged). -policies attaches policy documents
      of the tenant (each must exist: PUT /v1/policies/{name}, or the
      server's -policy-dir). Without -policies or -rules the token gets the
      default rules; to bootstrap a tenant, grant admin:
        -rules '[{"capabilities":["admin"],"streams":"*"}]'
      and issue the application tokens with it (POST /v1/tokens).
  eventvault token list -tenant <tenant> [flags]
      list the tenant's tokens: id, name, rules, created, expires (never a
      secret)
  eventvault token revoke -tenant <tenant> -id <tok_...> [flags]
      revoke a token: servers stop honouring it within their token cache
      TTL (-token-cache-ttl, 5 s by default)
  eventvault token revoke-root [flags]
      remove every dev root token from the database (a production server
      never honours one, but one left behind by a dev start is removed so)

These need the database and the root of trust, as 'eventvault server'
opens them (same flags and EVENTVAULT_* variables); that is what makes the
caller an operator, admin over every tenant.
`

type tokenOptions struct {
	what   string
	tenant eventvault.TenantID
	name   string
	rules  []eventvault.Rule
	pols   []string
	ttl    time.Duration
	id     string
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, cfg, err := parseTokenFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newCommandLogger(cfg.LogFormat, stderr)
	// The root of trust proves the caller an operator and unwraps the
	// token-verifier deployment key, which binds what the store keeps of a
	// token to a secret the database does not hold.
	_, store, dk, err := openOperatorKeys(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	tokens := auth.NewTokens(store, 0)
	tokens.Key = dk.TokenVerifier
	tokens.Policies = policies.NewResolver(store, 0, logger)
	tokens.Audit = &audit.Recorder{}
	switch opts.what {
	case "create":
		secret, t, err := tokens.Issue(ctx, auth.Operator, auth.NewTokenRequest{Tenant: opts.tenant, Name: opts.name, Rules: opts.rules, Policies: opts.pols, TTL: opts.ttl})
		if err != nil {
			return err
		}
		expires := "never"
		if !t.ExpiresAt.IsZero() {
			expires = t.ExpiresAt.Format(time.RFC3339)
		}
		rules, _ := json.Marshal(t.Rules)
		fmt.Fprintf(stderr, "issued token %s for tenant %s (name %q, policies %s, rules %s, expires %s); it is printed once, on stdout, and cannot be shown again\n", t.ID, t.Tenant, t.Name, listOrNone(t.Policies), rules, expires)
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		ts, err := tokens.List(ctx, auth.Operator, opts.tenant)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tCREATED\tEXPIRES\tPOLICIES\tRULES")
		now := time.Now()
		for _, t := range ts {
			expires := "never"
			if !t.ExpiresAt.IsZero() {
				expires = t.ExpiresAt.UTC().Format(time.RFC3339)
				if !now.Before(t.ExpiresAt) {
					expires += " (expired)"
				}
			}
			rules, _ := json.Marshal(t.Rules)
			if t.Rules == nil {
				rules = []byte("[]")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.UTC().Format(time.RFC3339), expires, listOrNone(t.Policies), rules)
		}
		return w.Flush()
	case "revoke":
		if err := tokens.Revoke(ctx, auth.Operator, opts.tenant, opts.id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %s of tenant %s; servers stop honouring it within their token cache TTL (-token-cache-ttl)\n", opts.id, opts.tenant)
		return nil
	}
	n, err := tokens.RevokeRoot(ctx)
	if err != nil {
		return err
	}
	switch n {
	case 0:
		fmt.Fprintln(stdout, "there was no root token: nothing removed")
	case 1:
		fmt.Fprintln(stdout, "removed 1 root token")
	default:
		fmt.Fprintf(stdout, "removed %d root tokens\n", n)
	}
	return nil
}

func parseTokenFlags(args []string, stderr io.Writer) (tokenOptions, Config, error) {
	var o tokenOptions
	commands := map[string]bool{"create": true, "list": true, "revoke": true, "revoke-root": true}
	if len(args) == 0 || !commands[args[0]] {
		fmt.Fprint(stderr, tokenUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return o, Config{}, flag.ErrHelp
		}
		return o, Config{}, errors.New("say what to do: create, list, revoke or revoke-root")
	}
	o.what = args[0]
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("token "+o.what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, tokenUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	var tenant, rules, pols string
	if o.what != "revoke-root" {
		fs.StringVar(&tenant, "tenant", "", "the tenant (required)")
	}
	switch o.what {
	case "create":
		fs.StringVar(&o.name, "name", "", "the token's name, shown in lists and logs (required)")
		fs.StringVar(&pols, "policies", "", "names of the tenant's policy documents to attach, comma-separated")
		fs.StringVar(&rules, "rules", "", `the rules it grants, as JSON: [{"capabilities":["admin"],"streams":"*"}]; default the default rules`)
		fs.DurationVar(&o.ttl, "ttl", 0, "how long it authenticates, 1m to 8784h (366 days); 0: it does not expire")
	case "revoke":
		fs.StringVar(&o.id, "id", "", "the token's id, tok_... (required; see 'eventvault token list')")
	}
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args[1:]); err != nil {
		return o, Config{}, err
	}
	if fs.NArg() > 0 {
		return o, Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.what != "revoke-root" {
		if tenant == "" {
			return o, Config{}, errors.New("-tenant is required")
		}
		o.tenant = eventvault.TenantID(tenant)
		if err := eventvault.ValidateTenant(o.tenant); err != nil {
			return o, Config{}, err
		}
	}
	switch o.what {
	case "create":
		if o.name == "" {
			return o, Config{}, errors.New("-name is required: name the token after who or what uses it")
		}
		if rules != "" {
			if err := json.Unmarshal([]byte(rules), &o.rules); err != nil {
				return o, Config{}, fmt.Errorf(`-rules must be a JSON array of rules such as [{"capabilities":["admin"],"streams":"*"}]: %w`, err)
			}
		}
		if pols != "" {
			o.pols = strings.Split(pols, ",")
		}
		if err := auth.ValidateTTL(o.ttl); err != nil {
			return o, Config{}, fmt.Errorf("-ttl: %w", err)
		}
	case "revoke":
		if o.id == "" {
			return o, Config{}, errors.New("-id is required: see 'eventvault token list'")
		}
	}
	if err := c.validate(); err != nil {
		return o, Config{}, err
	}
	return o, c, nil
}

// listOrNone is names comma-separated, or "-" for none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}
