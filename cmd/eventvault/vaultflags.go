package main

import (
	"flag"
	"fmt"

	"github.com/eventvault/eventvault/vault"
)

// vaultFlags defines the flags of the Vault Transit root key. The token and
// the AppRole secret id have no flag, so that they never show in a process
// list: they come from EVENTVAULT_VAULT_TOKEN and
// EVENTVAULT_VAULT_APPROLE_SECRET_ID, or from files.
func vaultFlags(fs *flag.FlagSet, v *vault.Config) {
	v.Token = env("EVENTVAULT_VAULT_TOKEN", "")
	v.SecretID = env("EVENTVAULT_VAULT_APPROLE_SECRET_ID", "")
	fs.StringVar(&v.Address, "vault-addr", env("EVENTVAULT_VAULT_ADDR", ""), "Vault address, e.g. https://vault.example:8200: the root key is a Vault Transit key (EVENTVAULT_VAULT_ADDR); required in production")
	fs.StringVar(&v.Namespace, "vault-namespace", env("EVENTVAULT_VAULT_NAMESPACE", ""), "Vault Enterprise namespace (EVENTVAULT_VAULT_NAMESPACE)")
	fs.StringVar(&v.Mount, "vault-transit-mount", env("EVENTVAULT_VAULT_TRANSIT_MOUNT", vault.DefaultMount), "path of the Transit secrets engine (EVENTVAULT_VAULT_TRANSIT_MOUNT)")
	fs.StringVar(&v.Key, "vault-transit-key", env("EVENTVAULT_VAULT_TRANSIT_KEY", vault.DefaultKey), "name of the Transit root key (EVENTVAULT_VAULT_TRANSIT_KEY)")
	fs.BoolVar(&v.CreateKey, "vault-create-key", envBool("EVENTVAULT_VAULT_CREATE_KEY"), "create the Transit key (aes256-gcm96, derived) at start when it is missing (EVENTVAULT_VAULT_CREATE_KEY)")
	fs.StringVar(&v.TokenFile, "vault-token-file", env("EVENTVAULT_VAULT_TOKEN_FILE", ""), "file holding the Vault token (EVENTVAULT_VAULT_TOKEN_FILE; or the token itself in EVENTVAULT_VAULT_TOKEN)")
	fs.StringVar(&v.RoleID, "vault-approle-role-id", env("EVENTVAULT_VAULT_APPROLE_ROLE_ID", ""), "AppRole role id (EVENTVAULT_VAULT_APPROLE_ROLE_ID)")
	fs.StringVar(&v.RoleIDFile, "vault-approle-role-id-file", env("EVENTVAULT_VAULT_APPROLE_ROLE_ID_FILE", ""), "file holding the AppRole role id (EVENTVAULT_VAULT_APPROLE_ROLE_ID_FILE)")
	fs.StringVar(&v.SecretIDFile, "vault-approle-secret-id-file", env("EVENTVAULT_VAULT_APPROLE_SECRET_ID_FILE", ""), "file holding the AppRole secret id, read at each login (EVENTVAULT_VAULT_APPROLE_SECRET_ID_FILE; or the secret id itself in EVENTVAULT_VAULT_APPROLE_SECRET_ID)")
	fs.StringVar(&v.AppRoleMount, "vault-approle-mount", env("EVENTVAULT_VAULT_APPROLE_MOUNT", vault.DefaultAppRoleMount), "path of the AppRole auth method (EVENTVAULT_VAULT_APPROLE_MOUNT)")
	fs.StringVar(&v.CACert, "vault-cacert", env("EVENTVAULT_VAULT_CACERT", ""), "PEM file of the CAs that sign Vault's certificate; default the system's (EVENTVAULT_VAULT_CACERT)")
	fs.StringVar(&v.ClientCert, "vault-client-cert", env("EVENTVAULT_VAULT_CLIENT_CERT", ""), "PEM client certificate for TLS to Vault (EVENTVAULT_VAULT_CLIENT_CERT)")
	fs.StringVar(&v.ClientKey, "vault-client-key", env("EVENTVAULT_VAULT_CLIENT_KEY", ""), "PEM private key of -vault-client-cert (EVENTVAULT_VAULT_CLIENT_KEY)")
	fs.StringVar(&v.TLSServerName, "vault-tls-server-name", env("EVENTVAULT_VAULT_TLS_SERVER_NAME", ""), "name to check in Vault's certificate (EVENTVAULT_VAULT_TLS_SERVER_NAME)")
	fs.DurationVar(&v.Timeout, "vault-timeout", envDuration("EVENTVAULT_VAULT_TIMEOUT", vault.DefaultTimeout), "time limit of one Vault operation, retries included (EVENTVAULT_VAULT_TIMEOUT)")
	fs.IntVar(&v.MaxRetries, "vault-max-retries", envInt("EVENTVAULT_VAULT_MAX_RETRIES", 2), "retries of a Vault request after a connection error, 5xx or 429, with back-off (EVENTVAULT_VAULT_MAX_RETRIES)")
}

// validateRootKey checks that exactly one root of trust is configured:
// Vault, or the local root key file (dev mode, or production with
// -insecure-local-root-key).
func (c *Config) validateRootKey() error {
	v := c.Vault
	if v.Address != "" {
		switch {
		case c.InsecureLocalRootKey:
			return fmt.Errorf("-insecure-local-root-key and -vault-addr name two root keys: give one")
		case c.RootKeyFile != "":
			return fmt.Errorf("-root-key-file and -vault-addr name two root keys: give one (a root key file serves dev mode or -insecure-local-root-key)")
		}
		if err := v.Validate(); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
		return nil
	}
	if v.Token != "" || v.TokenFile != "" || v.RoleID != "" || v.RoleIDFile != "" || v.SecretID != "" || v.SecretIDFile != "" {
		return fmt.Errorf("a Vault token or AppRole credentials are set but no Vault address: set -vault-addr (EVENTVAULT_VAULT_ADDR)")
	}
	if c.Dev {
		return nil
	}
	if !c.InsecureLocalRootKey {
		return fmt.Errorf("production mode needs Vault for the root key: set -vault-addr (EVENTVAULT_VAULT_ADDR) and a token (EVENTVAULT_VAULT_TOKEN) or AppRole credentials; " +
			"'make vault-dev' starts a local Vault to try it. To run without Vault anyway, pass -insecure-local-root-key with -root-key-file")
	}
	if c.RootKeyFile == "" {
		return fmt.Errorf("-insecure-local-root-key needs -root-key-file (EVENTVAULT_ROOT_KEY_FILE): the local root key file")
	}
	return nil
}
