package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// TestAnActionThatCannotBeAuditedDoesNotHappen revokes the app role's
// INSERT on audit_records, as an attacker or a broken grant would: an
// action carrying its audit record then fails as unavailable and writes
// nothing, and works again once the grant is back.
func TestAnActionThatCannotBeAuditedDoesNotHappen(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `REVOKE INSERT ON audit_records FROM eventvault_app`); err != nil {
		t.Fatal(err)
	}
	tok := token(tenantA, false)
	lines := &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{[]byte(`{"action":"token_issued"}`)}}
	err = db.CreateToken(eventvault.WithAudit(ctx, lines), tok)
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("CreateToken with the audit log unwritable = %v, want EUNAVAILABLE", err)
	}
	if _, err := db.TokenByHash(ctx, tok.Hash); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("the token was created without its audit record: %v", err)
	}
	if _, err := db.AppendAudit(ctx, tenantA, [][]byte{[]byte(`{}`)}); eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("AppendAudit with the log unwritable = %v, want EUNAVAILABLE", err)
	}
	if _, err := conn.Exec(ctx, `GRANT INSERT ON audit_records TO eventvault_app`); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateToken(eventvault.WithAudit(ctx, lines), tok); err != nil {
		t.Fatalf("CreateToken once the grant is back: %v", err)
	}
	if size, err := db.AuditSize(ctx, tenantA); err != nil || size != 1 {
		t.Fatalf("audit log after the retry: %d, %v; want 1 record", size, err)
	}
}
