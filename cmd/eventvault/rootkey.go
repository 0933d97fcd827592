package main

import (
	"context"
	"fmt"
	"log/slog"

	evcrypto "github.com/eventvault/eventvault/crypto"
)

// openRootProvider returns the root key provider cfg names: Vault Transit
// when a Vault address is configured (checked before it is returned: the
// mount, the key and a test round trip), else the local root key file, which
// production mode accepts only with -insecure-local-root-key and a loud
// warning. The server and the rotate commands both build their root of trust
// here.
func openRootProvider(ctx context.Context, cfg Config, logger *slog.Logger) (evcrypto.RootKeyProvider, error) {
	_ = ctx
	root, err := evcrypto.OpenLocalRootKey(cfg.RootKeyFile)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if !cfg.Dev {
		logger.Warn("the root key is a local file: anyone who copies it with the database can read every event; use it only until Vault Transit is configured", slog.String("root_key_file", cfg.RootKeyFile))
	}
	return root, nil
}
