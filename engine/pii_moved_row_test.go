package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestAValueRowRelabelledToAnotherSubjectIsAnIntegrityError plays an
// attacker with the database who relabels a personal value's row as
// another data subject's (the row, not its ciphertext): a node that reads
// it answers an integrity error, never the value shown as erased, and
// never the value.
func TestAValueRowRelabelledToAnotherSubjectIsAnIntegrityError(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := newPIIRig(t, backend{}, db)
	p := withPolicy(t, decryptAll)
	if _, err := r.events.Append(ctx, p, "customer-1", eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()}); err != nil {
		t.Fatal(err)
	}
	sl, err := r.events.ReadStream(ctx, withPolicy(t, readAll), "customer-1", eventvault.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := fmt.Sprint(field(t, sl.Events[0].Data, "email").(map[string]any)["token"])
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	bob := r.pseud.Pseudonym("acme", "bob@example.com")
	tag, err := conn.Exec(ctx, `UPDATE pii_values SET subject = $1 WHERE token = $2`, string(bob), token)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("relabel the row: %v, %v", tag, err)
	}
	// A cold node: nothing of the value kept anywhere.
	keys := evcrypto.NewKeyring(r.root, db, evcrypto.KeyringOptions{})
	cold := engine.NewEvents(db, keys, nil, engine.WithPII(evcrypto.NewSubjectKeys(keys, db), db))
	_, err = cold.ReadStream(ctx, p, "customer-1", eventvault.ReadOptions{})
	if eventvault.ErrorCode(err) != eventvault.EINTERNAL || !strings.Contains(err.Error(), "another data subject") {
		t.Fatalf("read of a relabelled value: %v; want EINTERNAL saying it is held under another data subject", err)
	}
	if strings.Contains(err.Error(), "jane.doe") {
		t.Fatalf("the error quotes the value: %v", err)
	}
}
