package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// pgTool finds a PostgreSQL client program, failing with how to get it.
func pgTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: install Debian's postgresql-client (make test installs postgresql, which brings it)", name)
	}
	return p
}

func openPostgresAt(t *testing.T, url string) *postgres.DB {
	t.Helper()
	if err := postgres.Migrate(context.Background(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// restore loads a plain pg_dump file into a fresh database and opens it.
func restore(t *testing.T, dump string) *postgres.DB {
	t.Helper()
	url := pgtest.URL(t)
	out, err := exec.Command(pgTool(t, "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", dump).CombinedOutput()
	if err != nil {
		t.Fatalf("restore the backup: %v\n%s", err, out)
	}
	return openPostgresAt(t, url)
}

// TestErasureReachesBackupsAfterACryptoPeriod is the backup story of
// docs/design.md, tried as it happens: a pg_dump taken before an erasure is
// restored afterwards. Before the crypto-period ends, the restored backup
// still brings the erased data back (that is the window); once it has
// ended, nothing in that backup can be decrypted, while the live database
// reads as before.
func TestErasureReachesBackupsAfterACryptoPeriod(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	transit, err := vault.New(ctx, v.Config(), nil)
	if err != nil {
		t.Fatalf("vault: %v", err)
	}
	liveURL := pgtest.URL(t)
	live := openPostgresAt(t, liveURL)
	dir := t.TempDir()
	pseud, signer := erasureKeys(t, dir)
	keys := evcrypto.NewKeyring(transit, live, evcrypto.KeyringOptions{})
	e := engine.NewEvents(live, keys, nil, engine.WithPseudonymizer(pseud))

	marker := []byte("EVMARKER-" + uuid.NewString())
	ev := func(data string) []eventvault.NewEvent {
		return []eventvault.NewEvent{{ID: uuid.New(), Type: "Noted", Data: []byte(data)}}
	}
	if _, err := e.AppendForSubject(ctx, dpo, "profile-881", "customer-881", eventvault.ExpectAny, ev(fmt.Sprintf(`{"m":%q}`, marker))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Append(ctx, dpo, "order-2", eventvault.ExpectAny, ev(`{"kept":true}`)); err != nil {
		t.Fatal(err)
	}

	dump := filepath.Join(dir, "before-erasure.sql")
	if out, err := exec.Command(pgTool(t, "pg_dump"), "-d", liveURL, "-f", dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}

	if _, _, err := engine.NewErasure(live, keys, pseud, signer, nil).RequestErasure(ctx, dpo, "customer-881"); err != nil {
		t.Fatal(err)
	}

	readFromBackup := func(t *testing.T, stream eventvault.StreamName) ([]eventvault.Event, error) {
		t.Helper()
		db := restore(t, dump)
		cold := engine.NewEvents(db, evcrypto.NewKeyring(transit, db, evcrypto.KeyringOptions{}), nil)
		s, err := cold.ReadStream(ctx, dpo, stream, eventvault.ReadOptions{})
		return s.Events, err
	}

	// Within the window: the old backup still holds the erased data. This
	// is the exposure the crypto-period bounds, shown so this test cannot
	// pass by a backup that was unreadable anyway.
	got, err := readFromBackup(t, "profile-881")
	if err != nil || len(got) != 1 || !bytes.Contains(got[0].Data, marker) {
		t.Fatalf("before the crypto-period ends, the backup should still read (the window): %v, %d events", err, len(got))
	}

	period, err := evcrypto.NewKeyManager(keys).EndCryptoPeriod(ctx, nil)
	if err != nil {
		t.Fatalf("end the crypto-period: %v", err)
	}
	if period.Tenants != 1 || period.DestroyedKEKs != 1 || period.RetiredBefore != period.RootVersion {
		t.Fatalf("crypto-period %+v: want 1 tenant, 1 destroyed KEK version, root versions retired", period)
	}

	// After it: nothing in the old backup decrypts, erased or not.
	for _, s := range []eventvault.StreamName{"profile-881", "order-2"} {
		got, err := readFromBackup(t, s)
		if err == nil {
			t.Fatalf("after the crypto-period, the old backup still reads %s: %d events", s, len(got))
		}
		for _, e := range got {
			if bytes.Contains(e.Data, marker) {
				t.Fatal("the marker came back from the backup")
			}
		}
		t.Logf("backup read of %s after the crypto-period: %s (%v)", s, eventvault.ErrorCode(err), err)
	}

	// The live database reads as before, through a cold keyring.
	cold := engine.NewEvents(live, evcrypto.NewKeyring(transit, live, evcrypto.KeyringOptions{}), nil)
	if s, err := cold.ReadStream(ctx, dpo, "order-2", eventvault.ReadOptions{}); err != nil || string(s.Events[0].Data) != `{"kept":true}` {
		t.Fatalf("live read after the crypto-period: %+v, %v", s, err)
	}
	if _, err := cold.ReadStream(ctx, dpo, "profile-881", eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Fatalf("live read of the erased stream: %v, want EERASED", err)
	}
}
