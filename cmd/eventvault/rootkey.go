package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/cmd/internal/wiring"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
	"github.com/eventvault/eventvault/vault"
)

// openRootProvider returns the root key provider cfg names: Vault Transit
// when a Vault address is configured, checked before it is returned (Vault
// answers, the token or AppRole login is good, the mount is Transit, the
// key exists and a test key wraps and unwraps), else the local root key
// file, which production mode accepts only with -insecure-local-root-key
// and a loud warning. The server and the rotate commands both build their
// root of trust here. The Vault provider also implements
// evcrypto.RootRewrapper and evcrypto.RootRotator.
func openRootProvider(ctx context.Context, cfg Config, logger *slog.Logger) (evcrypto.RootKeyProvider, error) {
	if cfg.Vault.Address != "" {
		t, err := vault.New(ctx, cfg.Vault, logger)
		if err != nil {
			return nil, fmt.Errorf("root key: %w", err)
		}
		if err := t.Check(ctx); err != nil {
			return nil, fmt.Errorf("root key: %w", err)
		}
		return t, nil
	}
	root, err := evcrypto.OpenLocalRootKey(cfg.RootKeyFile)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if !cfg.Dev {
		logger.Warn("INSECURE: -insecure-local-root-key: the root key is a local file, not Vault Transit. "+
			"Anyone who copies this file together with the database can read every event of every tenant, and no retired root version protects old backups. "+
			"Configure Vault (-vault-addr) for production.",
			slog.String("root_key_file", cfg.RootKeyFile))
	}
	return root, nil
}

// rootKeyDescription says, for the start-up banner, which root key serves.
func rootKeyDescription(cfg Config) string {
	if cfg.Vault.Address != "" {
		mount, key := cfg.Vault.Mount, cfg.Vault.Key
		if mount == "" {
			mount = vault.DefaultMount
		}
		if key == "" {
			key = vault.DefaultKey
		}
		return fmt.Sprintf("Vault Transit key %s/keys/%s at %s", mount, key, cfg.Vault.Address)
	}
	if cfg.Dev {
		return cfg.RootKeyFile + " (local file)"
	}
	return cfg.RootKeyFile + " (local file, INSECURE: -insecure-local-root-key)"
}

// openOperator opens what an operator command (init, rotate, token,
// tenant) acts on: the root of trust first, so that a Vault that is not
// ready fails the command before the database is touched, then the store,
// which the caller closes. where says which store it is, for messages.
// openOperatorKeys is openOperator, then the deployment keys (unwrapped
// by the root; created first in dev mode), for the commands that act as
// the server would: tokens, subject rights, audit. The caller closes store.
func openOperatorKeys(ctx context.Context, cfg Config, logger *slog.Logger) (evcrypto.RootKeyProvider, eventvault.Store, *deploykeys.Keys, error) {
	root, store, _, err := openOperator(ctx, cfg, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	dk, err := wiring.DeploymentKeys(ctx, root, store, cfg.Dev, logger)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return root, store, dk, nil
}

func openOperator(ctx context.Context, cfg Config, logger *slog.Logger) (root evcrypto.RootKeyProvider, store eventvault.Store, where string, err error) {
	root, err = openRootProvider(ctx, cfg, logger)
	if err != nil {
		return nil, nil, "", err
	}
	store, where, err = wiring.OpenStore(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, nil, "", err
	}
	return root, store, where, nil
}
