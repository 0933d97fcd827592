package main

import (
	"bufio"
	"context"
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

const tenantUsage = `usage:
  eventvault tenant shred -tenant <tenant> [-yes] [flags]
      offboard a tenant: destroy every version of its KEK, so that none of
      its events can ever be decrypted again (on every node, in every
      backup), and revoke all of its tokens. It cannot be undone. Asks for
      the tenant's name as confirmation unless -yes. Prints what it
      destroyed. Running it again revokes the tokens again.

It needs the database and the root of trust, as 'eventvault server' opens
them (same flags and EVENTVAULT_* variables). This is the production path:
POST /v1/admin/tenants/{tenant}/shred takes the dev root token, which a
production server never honours.
`

// stdin is where 'tenant shred' reads its confirmation.
var stdin io.Reader = os.Stdin

type tenantOptions struct {
	tenant eventvault.TenantID
	yes    bool
}

func runTenant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, cfg, err := parseTenantFlags(args, stderr)
	if err != nil {
		return err
	}
	if !opts.yes {
		fmt.Fprintf(stderr, "This destroys every key of tenant %s: none of its events can be read again, and all of its tokens are revoked. It cannot be undone.\nType the tenant's name to go on: ", opts.tenant)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != string(opts.tenant) {
			return errors.New("not confirmed: nothing was destroyed")
		}
	}
	logger := newCommandLogger(cfg.LogFormat, stderr)
	root, store, _, err := openOperator(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	revoked := -1
	revoke := func(ctx context.Context, tenant eventvault.TenantID) error {
		n, err := store.DeleteTenantTokens(ctx, tenant)
		if err != nil {
			return err
		}
		revoked = n
		return nil
	}
	e := engine.NewErasure(store, keys, nil, nil, logger, engine.WithTokenRevoker(revoke), engine.WithErasureAudit(&audit.Recorder{}))
	sh, err := e.ShredTenant(ctx, auth.Operator, opts.tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s shredded at %s\n", sh.Tenant, sh.ShreddedAt.Format(time.RFC3339))
	fmt.Fprintf(stdout, "  KEK versions destroyed: %d\n", len(sh.KeyIDs))
	for _, id := range sh.KeyIDs {
		fmt.Fprintf(stdout, "    %s\n", id)
	}
	fmt.Fprintf(stdout, "  tokens revoked: %d (servers stop honouring them within their token cache TTL)\n", revoked)
	return nil
}

func parseTenantFlags(args []string, stderr io.Writer) (tenantOptions, Config, error) {
	var o tenantOptions
	if len(args) == 0 || args[0] != "shred" {
		fmt.Fprint(stderr, tenantUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return o, Config{}, flag.ErrHelp
		}
		return o, Config{}, errors.New("say what to do: shred")
	}
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("tenant shred", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, tenantUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	var tenant string
	fs.StringVar(&tenant, "tenant", "", "the tenant to shred (required)")
	fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args[1:]); err != nil {
		return o, Config{}, err
	}
	if fs.NArg() > 0 {
		return o, Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if tenant == "" {
		return o, Config{}, errors.New("-tenant is required: name the tenant to shred")
	}
	o.tenant = eventvault.TenantID(tenant)
	if err := eventvault.ValidateTenant(o.tenant); err != nil {
		return o, Config{}, err
	}
	if err := c.validate(); err != nil {
		return o, Config{}, err
	}
	return o, c, nil
}
