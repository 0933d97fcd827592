package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

const (
	aliceEmail  = "EVCANARY-alice-7f3a@example.com"
	aliceFixed  = "EVCANARY-alice-fixed-91c2@example.com"
	alicePhone  = "+44 20 7946 0958"
	bobEmail    = "EVCANARY-bob-22d1@example.com"
	canaryAlice = "EVCANARY-alice"
)

func rightsEvent(stream string) eventvault.NewEvent {
	return eventvault.NewEvent{ID: uuid.New(), Type: "CustomerRegistered",
		Data: fmt.Appendf(nil, `{"amount":42,"email":%q,"friend":{"email":%q},"phone":%q,"stream":%q}`, aliceEmail, bobEmail, alicePhone, stream),
		PII: []eventvault.PIIMark{
			{Pointer: "/email", Subject: "alice", Class: eventvault.PIIEmail},
			{Pointer: "/phone", Subject: "alice", Class: eventvault.PIIPhone},
			{Pointer: "/friend/email", Subject: "bob", Class: eventvault.PIIEmail},
		}}
}

func exportOf(t *testing.T, r *piiRig, p eventvault.Principal, subject string) (engine.SubjectExport, []byte) {
	t.Helper()
	x, err := r.rights.Export(context.Background(), p, subject)
	if err != nil {
		t.Fatalf("export %s: %v", subject, err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return x, b
}

// TestSubjectRightsEndToEnd walks a data subject's rights on both stores:
// the export holds the subject's values and events with other subjects'
// redacted; a rectification changes what every read resolves and keeps
// the history in the export; a restriction redacts for every caller
// without read_restricted_pii (the root token included) and shows in the
// export; an erasure destroys the subject key and values (listed in the
// certificate), leaves other subjects readable with the erased values
// marked, fences the subject, and leaves the canary values nowhere: not in
// the stores' files, the logs, the audit log, another subject's export or
// through any key left.
func TestSubjectRightsEndToEnd(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			dpo := withPolicy(t, decryptAll+`permit (principal, action in [Action::"subject_rights", Action::"erase", Action::"hold"], resource is Tenant);`)
			if _, err := r.events.Append(ctx, dpo, "order-1", eventvault.ExpectAny, []eventvault.NewEvent{rightsEvent("order-1")}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.events.AppendForSubject(ctx, dpo, "profile-1", "alice", eventvault.ExpectAny, []eventvault.NewEvent{rightsEvent("profile-1")}); err != nil {
				t.Fatal(err)
			}

			// Access and portability.
			x, raw := exportOf(t, r, dpo, "alice")
			if len(x.PersonalData) != 4 || len(x.Events) != 2 || x.Erased {
				t.Fatalf("export of alice: %d values, %d events, erased %v; want 4 and 2\n%s", len(x.PersonalData), len(x.Events), x.Erased, raw)
			}
			if !bytes.Contains(raw, []byte(aliceEmail)) || bytes.Contains(raw, []byte(bobEmail)) {
				t.Fatalf("alice's export must hold her values and not bob's:\n%s", raw)
			}
			var emailToken string
			for _, v := range x.PersonalData {
				if v.Stream == "order-1" && v.Pointer == "/email" {
					emailToken = v.Token
				}
			}
			if _, err := r.rights.Export(ctx, withPolicy(t, decryptAll), "alice"); eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
				t.Fatalf("export without subject_rights: %v", err)
			}

			// A read keeps alice's opened values with her subject key.
			pAlice := r.pseud.Pseudonym("acme", "alice")
			if sl, err := r.events.ReadStream(ctx, dpo, "order-1", eventvault.ReadOptions{}); err != nil || field(t, sl.Events[0].Data, "email") != aliceEmail {
				t.Fatalf("read before rectification: %v", err)
			}
			if !r.subjects.KeepsValue("acme", pAlice, []byte(aliceEmail)) {
				t.Fatal("a read kept no opened value of alice with her key: the checks below would prove nothing")
			}

			// Rectification.
			fixed, _ := json.Marshal(aliceFixed)
			if _, err := r.rights.Rectify(ctx, dpo, "bob", emailToken, fixed); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Fatalf("rectify naming another subject: %v", err)
			}
			if got, err := r.rights.Rectify(ctx, dpo, "alice", emailToken, fixed); err != nil || got.Version != 2 {
				t.Fatalf("rectify: %+v, %v", got, err)
			}
			sl, err := r.events.ReadStream(ctx, dpo, "order-1", eventvault.ReadOptions{})
			if err != nil || field(t, sl.Events[0].Data, "email") != aliceFixed {
				t.Fatalf("after rectification the read shows %s, %v", sl.Events[0].Data, err)
			}
			// The value before rectification is no longer kept: the read
			// saw a newer generation of alice.
			if r.subjects.KeepsValue("acme", pAlice, []byte(aliceEmail)) || !r.subjects.KeepsValue("acme", pAlice, []byte(aliceFixed)) {
				t.Fatal("after rectification the key's cache entry still keeps the earlier value, or not the current one")
			}
			x, raw = exportOf(t, r, dpo, "alice")
			if !bytes.Contains(raw, []byte(aliceFixed)) || !bytes.Contains(raw, []byte(aliceEmail)) {
				t.Fatalf("the export keeps the earlier value and the current one:\n%s", raw)
			}

			// Restriction.
			if _, err := r.rights.Restrict(ctx, dpo, "alice", "accuracy contested (Art. 18(1)(a))"); err != nil {
				t.Fatal(err)
			}
			root := eventvault.Principal{Root: true, TokenID: "tok_root", Tenant: "acme"}
			explicit := withPolicy(t, decryptAll+`permit (principal, action == Action::"read_restricted_pii", resource);`)
			for _, c := range []struct {
				name  string
				p     eventvault.Principal
				shown bool
			}{{"dpo", dpo, false}, {"root", root, false}, {"explicit grant", explicit, true}} {
				sl, err := r.events.ReadStream(ctx, c.p, "order-1", eventvault.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				email := field(t, sl.Events[0].Data, "email")
				if shown := email == aliceFixed; shown != c.shown {
					t.Errorf("restricted, %s reads email %v; want shown=%v", c.name, email, c.shown)
				}
				if field(t, sl.Events[0].Data, "friend", "email") != bobEmail {
					t.Errorf("restricted alice, %s no longer reads bob's value", c.name)
				}
			}
			if x, _ = exportOf(t, r, dpo, "alice"); x.Restriction == nil || x.Restriction.Reason == "" {
				t.Fatalf("the export does not show the restriction")
			}
			if err := r.rights.Unrestrict(ctx, dpo, "alice"); err != nil {
				t.Fatal(err)
			}
			if sl, _ := r.events.ReadStream(ctx, dpo, "order-1", eventvault.ReadOptions{}); field(t, sl.Events[0].Data, "email") != aliceFixed {
				t.Fatal("after the restriction is lifted the value is not shown")
			}

			// Erasure. Alice's stored ciphertext, kept as an attacker with a
			// copy of the database would keep it.
			alice, bob := r.pseud.Pseudonym("acme", "alice"), r.pseud.Pseudonym("acme", "bob")
			kept, _, err := r.store.SubjectPII(ctx, "acme", alice)
			if err != nil || len(kept) == 0 {
				t.Fatalf("alice's values before erasure: %d, %v", len(kept), err)
			}
			cachedCipher, err := r.subjects.SubjectCipher(ctx, "acme", alice)
			if err != nil || cachedCipher.KeptValues() == 0 || !r.subjects.KeepsValue("acme", alice, []byte(canaryAlice)) {
				t.Fatalf("before erasure alice's key keeps no opened value (%v): the checks below would prove nothing", err)
			}
			req, _, err := r.erasure.RequestErasure(ctx, dpo, "alice")
			if err != nil || req.State != eventvault.ErasureCompleted {
				t.Fatalf("erasure: %+v, %v", req, err)
			}
			cert, ok := engine.CertificateOf(req)
			kinds := map[string]int{}
			for _, k := range cert.DestroyedKeys {
				kinds[k.Kind]++
			}
			if !ok || kinds["subject"] != 1 || kinds["stream"] != 1 || cert.Outcome() != eventvault.OutcomeErased {
				t.Fatalf("certificate %+v: want the subject key and the stream key listed", cert)
			}
			if err := r.reads.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sl, err = r.events.ReadStream(ctx, dpo, "order-1", eventvault.ReadOptions{})
			if err != nil {
				t.Fatalf("another subject's stream after erasure: %v", err)
			}
			data := sl.Events[0].Data
			for _, f := range [][]string{{"email"}, {"phone"}} {
				if m, ok := field(t, data, f...).(map[string]any); !ok || m["erased"] != true {
					t.Errorf("erased alice's %v reads %v; want {\"erased\": true}", f, field(t, data, f...))
				}
			}
			if field(t, data, "friend", "email") != bobEmail || field(t, data, "amount") != 42.0 {
				t.Errorf("after alice's erasure order-1 reads %s", data)
			}
			if _, err := r.events.ReadStream(ctx, dpo, "profile-1", eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.EERASED {
				t.Fatalf("alice's own stream after erasure: %v", err)
			}
			// The fence: alice never gets a key again.
			_, err = r.events.Append(ctx, dpo, "order-2", eventvault.ExpectAny, []eventvault.NewEvent{rightsEvent("order-2")})
			if eventvault.ErrorCode(err) != eventvault.ECONFLICT || !errors.Is(err, eventvault.ErrSubjectErased) {
				t.Fatalf("marking a value of erased alice: %v; want ECONFLICT wrapping ErrSubjectErased", err)
			}
			if x, raw = exportOf(t, r, dpo, "alice"); !x.Erased || len(x.PersonalData) != 0 || bytes.Contains(raw, []byte(canaryAlice)) {
				t.Fatalf("alice's export after erasure:\n%s", raw)
			}
			if _, raw = exportOf(t, r, dpo, "bob"); bytes.Contains(raw, []byte(canaryAlice)) || !bytes.Contains(raw, []byte(bobEmail)) {
				t.Fatalf("bob's export after alice's erasure:\n%s", raw)
			}
			// Every key that is left: bob's subject key, under alice's
			// places and under bob's own.
			bobKey, err := r.store.SubjectKey(ctx, "acme", bob)
			if err != nil {
				t.Fatal(err)
			}
			bobCipher, err := r.subjects.OpenSubjectCipher(ctx, "acme", bob, bobKey)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range kept {
				for _, subject := range []eventvault.Pseudonym{alice, bob} {
					ref := evcrypto.PIIRef{Tenant: "acme", Subject: subject, Token: v.Token, Pointer: v.Pointer, Class: v.Class, Version: v.Version}
					if plain, err := bobCipher.OpenValue(ref, v.Ciphertext); err == nil {
						t.Fatalf("bob's key opened alice's erased value: %s", plain)
					}
				}
			}
			if _, err := r.subjects.OpenSubjectCipher(ctx, "acme", alice, eventvault.WrappedKey{}); eventvault.ErrorCode(err) != eventvault.EERASED {
				t.Fatalf("a cipher for alice without her key row: %v", err)
			}
			// The caches: no key of alice is left on this node.
			if r.subjects.Cached("acme", r.pseud.Pseudonym("acme", "alice")) {
				t.Fatal("alice's subject key is still cached")
			}
			// Nor any value opened with it: the evicted cipher keeps none.
			if n := cachedCipher.KeptValues(); n != 0 || r.subjects.CachedValues("acme", alice) != 0 || r.subjects.KeepsValue("acme", alice, []byte(canaryAlice)) {
				t.Fatalf("after erasure alice's evicted cipher still keeps %d opened values", n)
			}
			if _, err := r.subjects.SubjectCipher(ctx, "acme", r.pseud.Pseudonym("acme", "alice")); !errors.Is(err, eventvault.ErrSubjectErased) {
				t.Fatalf("a fresh key for erased alice: %v", err)
			}
			// The audit log records reads and exports, and no value.
			size, err := r.store.AuditSize(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			lines, err := r.store.AuditRecords(ctx, "acme", 0, size)
			if err != nil {
				t.Fatal(err)
			}
			log := bytes.Join(lines, []byte("\n"))
			for _, want := range []string{engine.AuditReadPII, engine.AuditSubjectExported, engine.AuditPIIRectified, engine.AuditRestrictionPlaced, engine.AuditSubjectKeyDestroyed} {
				if !bytes.Contains(log, []byte(`"`+want+`"`)) {
					t.Errorf("the audit log has no %s record", want)
				}
			}
			for _, where := range []struct {
				name string
				b    []byte
			}{{"audit log", log}, {"logs", r.logs.Bytes()}} {
				if bytes.Contains(where.b, []byte("EVCANARY")) || bytes.Contains(where.b, []byte(`"alice"`)) {
					t.Errorf("the %s holds a canary value or the subject id", where.name)
				}
			}
			if err := r.store.Close(); err != nil {
				t.Fatal(err)
			}
			// The raw bytes at rest: alice's values nowhere; bob's only as
			// ciphertext.
			if hits := b.scan(t, []byte(canaryAlice), []byte(bobEmail), []byte(alicePhone)); len(hits) > 0 {
				t.Fatalf("canary values at rest: %s", strings.Join(hits, "; "))
			}
		})
	}
}
