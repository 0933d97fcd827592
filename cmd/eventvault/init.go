package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/eventvault/eventvault"

	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
)

const initUsage = `usage: eventvault init [-import-pseudonym-key-file F] [-import-signing-key-file F] [flags]

Creates the deployment keys that every node of the deployment shares, once:
the pseudonym key, the key that signs erasure certificates and the key that
binds API token verifiers. Each is 32 random bytes, stored in the database
wrapped by the root key (Vault Transit), bound to its name and version.
Keys that exist are left alone; running init again changes nothing.
A production server refuses to start until init has run; a dev-mode server
creates the keys itself.

-import-pseudonym-key-file and -import-signing-key-file take the key files
that servers used before deployment keys existed (<data-dir>/pseudonym.key,
<data-dir>/signing.key), so that existing pseudonyms and published
certificates stay valid. Import before any node has created the keys; a key
that exists and differs from the file is refused, never replaced.

The store and the root key are opened as 'eventvault server' opens them
(same flags and EVENTVAULT_* variables). Nothing printed holds key bytes.
`

type initOptions struct {
	importPseudonym string
	importSigning   string
}

func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, cfg, err := parseInitFlags(args, stderr)
	if err != nil {
		return err
	}
	imports := map[string][]byte{}
	defer func() {
		for _, b := range imports {
			clear(b)
		}
	}()
	for name, path := range map[string]string{deploykeys.Pseudonym: opts.importPseudonym, deploykeys.Signing: opts.importSigning} {
		if path == "" {
			continue
		}
		b, err := deploykeys.ReadKeyFile(name, path)
		if err != nil {
			return fmt.Errorf("import the %s key: %w", name, err)
		}
		imports[name] = b
	}
	logger := newCommandLogger(cfg.LogFormat, stderr)
	root, store, where, err := openOperator(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	results, err := deploykeys.Init(ctx, root, store, imports, nil)
	for _, r := range results {
		line := fmt.Sprintf("%-15s version %d: %s", r.Name, r.Version, r.Outcome)
		if r.KeyID != "" {
			line += " (public key id " + r.KeyID + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	if err != nil {
		return fmt.Errorf("deployment keys: %w", err)
	}
	// Every node loads them as this does; a failure here is one a server
	// would meet at start.
	if _, err := deploykeys.Load(ctx, root, store); err != nil {
		return fmt.Errorf("deployment keys: %w", err)
	}
	fmt.Fprintf(stdout, "Deployment keys are in the %s store, wrapped by %s.\n", where, rootKeyDescription(cfg))
	fmt.Fprintln(stdout, "Back up the database, and keep the root key: without it the deployment keys cannot be unwrapped.")
	return nil
}

func parseInitFlags(args []string, stderr io.Writer) (initOptions, Config, error) {
	var o initOptions
	c := Config{LogFormat: "text", KeyCacheTTL: evcrypto.DefaultTTL, KeyCacheSize: evcrypto.DefaultCacheSize}
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, initUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.importPseudonym, "import-pseudonym-key-file", "", "import this pseudonym key file (32 raw bytes, mode 0600) instead of creating the pseudonym key")
	fs.StringVar(&o.importSigning, "import-signing-key-file", "", "import this signing key seed file (32 raw bytes, mode 0600) instead of creating the signing key")
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args); err != nil {
		return o, Config{}, err
	}
	if fs.NArg() > 0 {
		return o, Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return o, Config{}, err
	}
	return o, c, nil
}

// legacyKeyFiles are the key files servers kept in -data-dir before
// deployment keys, by the deployment key they become.
var legacyKeyFiles = []struct{ name, file, flag string }{
	{deploykeys.Pseudonym, "pseudonym.key", "-import-pseudonym-key-file"},
	{deploykeys.Signing, "signing.key", "-import-signing-key-file"},
}

// refuseUnimportedKeyFiles stops a server (dev mode included) that finds
// in dataDir a key file of an earlier EventVault whose deployment key the
// store does not hold yet: creating a new key would silently change every
// pseudonym, or the key certificates verify against. It names the import.
func refuseUnimportedKeyFiles(ctx context.Context, store eventvault.DeploymentKeyStore, dataDir string) error {
	for _, l := range legacyKeyFiles {
		path := filepath.Join(dataDir, l.file)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		_, err := store.DeploymentKey(ctx, l.name)
		if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			continue // present (or unreadable: loading will say so)
		}
		return fmt.Errorf("found %s, the %s key file of an earlier EventVault, but the database holds no %s deployment key: "+
			"import it once with 'eventvault init %s %s' (and the other key files; same database and root key flags), so that existing pseudonyms and certificates stay valid, "+
			"or remove the file to start with new keys", path, l.name, l.name, l.flag, path)
	}
	return nil
}
