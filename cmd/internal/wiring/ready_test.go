package wiring

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// TestReadinessComesBackWithTheStore: the keys check, over a real Vault
// and PostgreSQL, fails while the store does not answer (its tenants
// table locked by another session past the probe's deadline) and passes
// at the next probe once the store answers again, not KeysCheckTTL later:
// a failure to scan is not cached, a verdict is.
func TestReadinessComesBackWithTheStore(t *testing.T) {
	v := vaulttest.Start(t)
	transit, err := vault.New(t.Context(), v.Config(), nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys := evcrypto.NewKeyring(transit, store, evcrypto.KeyringOptions{})
	if _, err := keys.StreamCipher(t.Context(), "acme", "order-1"); err != nil {
		t.Fatalf("a tenant with a KEK: %v", err)
	}
	keysCheck := func() func(context.Context) error {
		for _, c := range ReadyChecks(store, evcrypto.NewKeyManager(keys)) {
			if c.Name == "keys" {
				return c.Check
			}
		}
		t.Fatal("no keys check")
		return nil
	}
	check := keysCheck()

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err = check(ctx)
	cancel()
	if err == nil || eventvault.ErrorCode(err) == eventvault.EKEYRETIRED {
		t.Fatalf("keys check, store not answering: %v; want a failure", err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := check(t.Context()); err != nil {
		t.Fatalf("keys check, store answering again: %v; want it back at once", err)
	}
}
