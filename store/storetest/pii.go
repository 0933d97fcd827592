package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// The decisions of the PII store the interface leaves open:
//
//   - Subject keys follow the rules of stream keys: the first stored wins,
//     an erased subject never gets one again (EERASED wrapping
//     ErrSubjectErased), in either tenant's scope only.
//   - An append's values are written with its events or not at all: a
//     refused append (a version conflict, a value under a key that is not
//     its subject's live key) leaves no value behind.
//   - PIIValues leaves out tokens it does not hold (erased ones included);
//     a subject's key state comes with every value of the page.
//   - Rectification adds the next version; the value's place (stream, event,
//     pointer, class) is the one appended, whatever the request says.
//   - Erasing a subject that never had a key fences it all the same.

// newSubjectKey returns a fake wrapped subject key.
func newSubjectKey() eventvault.WrappedKey {
	id := uuid.New()
	return eventvault.WrappedKey{ID: id, Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped-subject-key:" + id.String()),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

func piiToken() string { return eventvault.PIITokenPrefix + uuid.NewString()[:26] }

// fakePII is a value as an append carries it, with fake ciphertext.
func fakePII(subject eventvault.Pseudonym, key uuid.UUID, event uuid.UUID, pointer string) eventvault.PIIValue {
	tok := piiToken()
	return eventvault.PIIValue{Token: tok, Subject: subject, EventID: event, Pointer: pointer, Class: eventvault.PIIEmail,
		Version: 1, KeyID: key, Ciphertext: []byte("sealed-pii:" + tok)}
}

func (h *harness) subjectKey(tenant eventvault.TenantID, subject eventvault.Pseudonym) eventvault.WrappedKey {
	h.t.Helper()
	k, err := h.store.CreateSubjectKey(h.ctx, tenant, subject, newSubjectKey())
	if err != nil {
		h.t.Fatalf("CreateSubjectKey: %v", err)
	}
	return k
}

func (h *harness) appendPII(tenant eventvault.TenantID, stream eventvault.StreamName, expected eventvault.ExpectedVersion, evs []eventvault.ProposedEvent, values []eventvault.PIIValue) (eventvault.AppendResult, error) {
	var s sealer
	k, err := h.store.StreamKey(h.ctx, tenant, stream)
	req := eventvault.AppendRequest{Stream: stream, Expected: expected, Events: evs, Seal: s.seal(evs), PII: values}
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		nk := newStreamKey()
		req.NewKey, req.KeyID = &nk, nk.ID
	} else if err != nil {
		h.t.Fatalf("StreamKey: %v", err)
	} else {
		req.KeyID = k.ID
	}
	res, _, err := h.appendWith(tenant, req, &s)
	return res, err
}

func testPII(t *testing.T, open opener) {
	h := setup(t, open)
	const alice, bob eventvault.Pseudonym = "p-alice", "p-bob"

	t.Run("SubjectKeys", func(t *testing.T) {
		h := h.sub(t)
		if _, err := h.store.SubjectKey(h.ctx, tenantA, "p-nobody"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("SubjectKey of a subject without one: %v, want ENOTFOUND", err)
		}
		first := h.subjectKey(tenantA, "p-keys")
		again, err := h.store.CreateSubjectKey(h.ctx, tenantA, "p-keys", newSubjectKey())
		if err != nil {
			t.Fatal(err)
		}
		wantKey(t, "the second CreateSubjectKey", again, first)
		got, err := h.store.SubjectKey(h.ctx, tenantA, "p-keys")
		if err != nil {
			t.Fatal(err)
		}
		wantKey(t, "SubjectKey", got, first)
		if _, err := h.store.SubjectKey(h.ctx, tenantB, "p-keys"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("tenant B sees tenant A's subject key: %v", err)
		}
		for _, bad := range []eventvault.WrappedKey{{}, {ID: uuid.New()}} {
			if _, err := h.store.CreateSubjectKey(h.ctx, tenantA, "p-bad", bad); eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Errorf("CreateSubjectKey(%+v): %v, want EINVALID", bad, err)
			}
		}
	})

	t.Run("AppendWritesValuesWithItsEvents", func(t *testing.T) {
		h := h.sub(t)
		ka, kb := h.subjectKey(tenantA, alice), h.subjectKey(tenantA, bob)
		evs := newEvents(2)
		va := fakePII(alice, ka.ID, evs[0].ID, "/email")
		vb := fakePII(bob, kb.ID, evs[1].ID, "/friend/email")
		if _, err := h.appendPII(tenantA, "order-pii1", eventvault.ExpectNoStream, evs, []eventvault.PIIValue{va, vb}); err != nil {
			t.Fatalf("append with values: %v", err)
		}
		page, err := h.store.PIIValues(h.ctx, tenantA, []string{va.Token, vb.Token, piiToken()})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Values) != 2 || len(page.Keys) != 2 {
			t.Fatalf("PIIValues: %d values and %d keys, want 2 and 2 (the unknown token left out)", len(page.Values), len(page.Keys))
		}
		got := page.Values[va.Token]
		if got.Subject != alice || got.Stream != "order-pii1" || got.EventID != evs[0].ID || got.Pointer != "/email" || got.Class != eventvault.PIIEmail ||
			got.Version != 1 || got.KeyID != ka.ID || string(got.Ciphertext) != string(va.Ciphertext) {
			t.Errorf("PIIValues gave %+v for %+v", got, va)
		}
		wantKey(t, "the page's key of alice", page.Keys[alice].Key, ka)
		if other, err := h.store.PIIValues(h.ctx, tenantB, []string{va.Token}); err != nil || len(other.Values) != 0 {
			t.Fatalf("tenant B reads tenant A's value: %+v, %v", other, err)
		}

		// A refused append writes no value.
		refused := newEvents(1)
		vr := fakePII(alice, ka.ID, refused[0].ID, "/email")
		if _, err := h.appendPII(tenantA, "order-pii1", eventvault.ExpectNoStream, refused, []eventvault.PIIValue{vr}); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("append at a wrong version: %v, want ECONFLICT", err)
		}
		// A value under a key that is not the subject's.
		stale := fakePII(alice, uuid.New(), refused[0].ID, "/email")
		_, err = h.appendPII(tenantA, "order-pii1", eventvault.ExpectAny, refused, []eventvault.PIIValue{stale})
		if eventvault.ErrorCode(err) != eventvault.EERASED || !errors.Is(err, eventvault.ErrSubjectErased) {
			t.Fatalf("append of a value under a stale subject key: %v, want EERASED wrapping ErrSubjectErased", err)
		}
		// A value of a subject without a key.
		orphan := fakePII("p-keyless", uuid.New(), refused[0].ID, "/email")
		if _, err := h.appendPII(tenantA, "order-pii1", eventvault.ExpectAny, refused, []eventvault.PIIValue{orphan}); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("append of a value of a subject without a key: %v, want EERASED", err)
		}
		page, err = h.store.PIIValues(h.ctx, tenantA, []string{vr.Token, stale.Token, orphan.Token})
		if err != nil || len(page.Values) != 0 {
			t.Fatalf("refused appends left values behind: %+v, %v", page.Values, err)
		}
		if v := h.version(tenantA, "order-pii1"); v != 1 {
			t.Fatalf("refused appends moved the stream to version %d", v)
		}
		for _, bad := range []eventvault.PIIValue{{}, {Token: va.Token, Subject: alice}} {
			if _, err := h.appendPII(tenantA, "order-pii1", eventvault.ExpectAny, newEvents(1), []eventvault.PIIValue{bad}); eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Errorf("append with value %+v: %v, want EINVALID", bad, err)
			}
		}
	})

	t.Run("RectifyAndRestrict", func(t *testing.T) {
		h := h.sub(t)
		const carol eventvault.Pseudonym = "p-carol"
		kc := h.subjectKey(tenantA, carol)
		evs := newEvents(1)
		v := fakePII(carol, kc.ID, evs[0].ID, "/phone")
		if _, err := h.appendPII(tenantA, "order-pii2", eventvault.ExpectAny, evs, []eventvault.PIIValue{v}); err != nil {
			t.Fatal(err)
		}
		next := v
		next.Version, next.Ciphertext, next.Pointer, next.Class = 2, []byte("sealed-pii:v2"), "/elsewhere", eventvault.PIIFreeText
		if err := h.store.RectifyPII(h.ctx, tenantA, next); err != nil {
			t.Fatalf("RectifyPII: %v", err)
		}
		if err := h.store.RectifyPII(h.ctx, tenantA, next); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("RectifyPII of a version stored already: %v, want ECONFLICT", err)
		}
		wrong := next
		wrong.Version, wrong.Subject = 3, alice
		if err := h.store.RectifyPII(h.ctx, tenantA, wrong); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("RectifyPII naming another subject: %v, want ENOTFOUND", err)
		}
		if err := h.store.RectifyPII(h.ctx, tenantB, eventvault.PIIValue{Token: v.Token, Subject: carol, Version: 3, KeyID: kc.ID, Ciphertext: []byte("x")}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("RectifyPII from another tenant: %v, want ENOTFOUND", err)
		}
		page, err := h.store.PIIValues(h.ctx, tenantA, []string{v.Token})
		if err != nil {
			t.Fatal(err)
		}
		cur := page.Values[v.Token]
		if cur.Version != 2 || string(cur.Ciphertext) != "sealed-pii:v2" || cur.Pointer != "/phone" || cur.Class != eventvault.PIIEmail {
			t.Fatalf("after rectification PIIValues gives %+v; want version 2 at the appended pointer and class", cur)
		}
		all, st, err := h.store.SubjectPII(h.ctx, tenantA, carol)
		// A new key's generation is 0; the rectification moved it.
		if err != nil || len(all) != 2 || all[0].Version != 1 || all[1].Version != 2 || st.Restricted || st.Generation <= 0 {
			t.Fatalf("SubjectPII: %+v %+v %v; want versions 1 and 2, unrestricted, a generation past 0", all, st, err)
		}
		states, _, err := h.store.SubjectStates(h.ctx, tenantA, []eventvault.Pseudonym{carol, "p-unknown"})
		if err != nil || len(states) != 1 || states[carol].Generation != st.Generation || states[carol].Key.ID != kc.ID {
			t.Fatalf("SubjectStates: %+v, %v; want carol alone, at generation %d with her key", states, err, st.Generation)
		}
		if other, _, err := h.store.SubjectStates(h.ctx, tenantB, []eventvault.Pseudonym{carol}); err != nil || len(other) != 0 {
			t.Fatalf("tenant B's SubjectStates sees tenant A's subject: %+v, %v", other, err)
		}

		if _, err := h.store.Restriction(h.ctx, tenantA, carol); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("Restriction before one is placed: %v", err)
		}
		r := eventvault.Restriction{Subject: carol, Reason: "accuracy contested", PlacedAt: time.Now(), PlacedBy: "tok_dpo"}
		if err := h.store.PutRestriction(h.ctx, tenantA, r); err != nil {
			t.Fatal(err)
		}
		got, err := h.store.Restriction(h.ctx, tenantA, carol)
		if err != nil || got.Reason != r.Reason || got.PlacedBy != "tok_dpo" || !got.PlacedAt.Equal(r.PlacedAt.UTC().Truncate(time.Microsecond)) {
			t.Fatalf("Restriction: %+v, %v", got, err)
		}
		if page, err := h.store.PIIValues(h.ctx, tenantA, []string{v.Token}); err != nil || !page.Keys[carol].Restricted {
			t.Fatalf("PIIValues of a restricted subject: %+v, %v", page.Keys, err)
		}
		if states, _, err := h.store.SubjectStates(h.ctx, tenantA, []eventvault.Pseudonym{carol}); err != nil || !states[carol].Restricted {
			t.Fatalf("SubjectStates of a restricted subject: %+v, %v", states, err)
		}
		if _, err := h.store.Restriction(h.ctx, tenantB, carol); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("tenant B sees tenant A's restriction: %v", err)
		}
		if err := h.store.DeleteRestriction(h.ctx, tenantA, carol); err != nil {
			t.Fatal(err)
		}
		if err := h.store.DeleteRestriction(h.ctx, tenantA, carol); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("lifting a restriction twice: %v, want ENOTFOUND", err)
		}
	})

	// A page read returns the tenant's PII generation on its snapshot, and
	// SubjectStates the one it read at: equal while nothing changed, and
	// moved on by every change to a state a node may have kept (a
	// restriction placed, replaced or lifted, a rectification, an
	// erasure), seen at once by the next page, on any node (one store).
	t.Run("PIIGeneration", func(t *testing.T) {
		h := h.sub(t)
		const frank eventvault.Pseudonym = "p-frank"
		kf := h.subjectKey(tenantA, frank)
		evs := newEvents(1)
		v := fakePII(frank, kf.ID, evs[0].ID, "/email")
		if _, err := h.appendPII(tenantA, "order-pii-gen", eventvault.ExpectAny, evs, []eventvault.PIIValue{v}); err != nil {
			t.Fatal(err)
		}
		generation := func(what string) int64 {
			t.Helper()
			page, err := h.store.ReadStream(h.ctx, tenantA, "order-pii-gen", eventvault.ReadOptions{Limit: 10})
			if err != nil {
				t.Fatalf("%s: ReadStream: %v", what, err)
			}
			all, err := h.store.ReadAll(h.ctx, tenantA, 0, 1)
			if err != nil {
				t.Fatalf("%s: ReadAll: %v", what, err)
			}
			states, at, err := h.store.SubjectStates(h.ctx, tenantA, []eventvault.Pseudonym{frank})
			if err != nil || len(states) != 1 {
				t.Fatalf("%s: SubjectStates: %+v, %v", what, states, err)
			}
			if all.PIIGeneration != page.PIIGeneration || at != page.PIIGeneration {
				t.Fatalf("%s: nothing changed between the reads, yet ReadStream says generation %d, ReadAll %d, SubjectStates %d",
					what, page.PIIGeneration, all.PIIGeneration, at)
			}
			return page.PIIGeneration
		}
		last := generation("after the append")
		if again := generation("read again"); again != last {
			t.Fatalf("the generation moved from %d to %d with nothing changed", last, again)
		}
		next := v
		next.Version, next.Ciphertext = 2, []byte("sealed-pii:v2")
		changes := []struct {
			name string
			do   func() error
		}{
			{"a restriction placed", func() error {
				return h.store.PutRestriction(h.ctx, tenantA, eventvault.Restriction{Subject: frank, Reason: "contested", PlacedAt: time.Now(), PlacedBy: "tok_dpo"})
			}},
			{"a restriction replaced", func() error {
				return h.store.PutRestriction(h.ctx, tenantA, eventvault.Restriction{Subject: frank, Reason: "objection", PlacedAt: time.Now(), PlacedBy: "tok_dpo"})
			}},
			{"a restriction lifted", func() error { return h.store.DeleteRestriction(h.ctx, tenantA, frank) }},
			{"a rectification", func() error { return h.store.RectifyPII(h.ctx, tenantA, next) }},
			{"an erasure", func() error { _, err := h.store.EraseSubjectPII(h.ctx, tenantA, frank, time.Now()); return err }},
		}
		for _, c := range changes {
			if err := c.do(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if now := generation("after " + c.name); now <= last {
				t.Fatalf("after %s the generation is %d, was %d: a node would keep using the states from before", c.name, now, last)
			} else {
				last = now
			}
		}
	})

	t.Run("EraseSubject", func(t *testing.T) {
		h := h.sub(t)
		const dave eventvault.Pseudonym = "p-dave"
		kd := h.subjectKey(tenantA, dave)
		ke := h.subjectKey(tenantA, "p-erin")
		evs := newEvents(3)
		var values []eventvault.PIIValue
		for i, ev := range evs {
			values = append(values, fakePII(dave, kd.ID, ev.ID, fmt.Sprintf("/v%d", i)))
		}
		kept := fakePII("p-erin", ke.ID, evs[0].ID, "/other")
		if _, err := h.appendPII(tenantA, "order-pii3", eventvault.ExpectAny, evs, append(values, kept)); err != nil {
			t.Fatal(err)
		}
		rect := values[0]
		rect.Version, rect.Ciphertext = 2, []byte("sealed-pii:rectified")
		if err := h.store.RectifyPII(h.ctx, tenantA, rect); err != nil {
			t.Fatal(err)
		}
		// The erasure's audit record is written with it only if it
		// destroyed a key.
		recorded := func(what string, want int64, erase func(ctx context.Context) error) {
			t.Helper()
			before, err := h.store.AuditSize(h.ctx, tenantA)
			if err != nil {
				t.Fatal(err)
			}
			tmpl := []byte(`{"version":1,"tenant":"tenant-a","index":0,"time":"2026-12-01T00:00:00.000000Z","action":"subject_key_destroyed"}`)
			if err := erase(eventvault.WithAudit(h.ctx, &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{tmpl}})); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if after, err := h.store.AuditSize(h.ctx, tenantA); err != nil || after-before != want {
				t.Fatalf("%s wrote %d audit records (%v); want %d", what, after-before, err, want)
			}
		}
		var e eventvault.SubjectErasure
		recorded("an erasure that destroys a key", 1, func(ctx context.Context) (err error) {
			e, err = h.store.EraseSubjectPII(ctx, tenantA, dave, time.Now())
			return err
		})
		if e.KeyID != kd.ID || e.Values != 4 {
			t.Fatalf("EraseSubjectPII destroyed %+v; want key %s and 4 value versions", e, kd.ID)
		}
		tokens := []string{kept.Token}
		for _, v := range values {
			tokens = append(tokens, v.Token)
		}
		page, err := h.store.PIIValues(h.ctx, tenantA, tokens)
		if err != nil || len(page.Values) != 1 || page.Values[kept.Token].Subject != "p-erin" {
			t.Fatalf("after erasure PIIValues gives %+v, %v; want only the other subject's value", page.Values, err)
		}
		if _, err := h.store.SubjectKey(h.ctx, tenantA, dave); !errors.Is(err, eventvault.ErrSubjectErased) || eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("SubjectKey after erasure: %v, want EERASED", err)
		}
		if _, err := h.store.CreateSubjectKey(h.ctx, tenantA, dave, newSubjectKey()); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("CreateSubjectKey after erasure: %v, want EERASED (the fence)", err)
		}
		if _, _, err := h.store.SubjectPII(h.ctx, tenantA, dave); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("SubjectPII after erasure: %v, want EERASED", err)
		}
		if states, _, err := h.store.SubjectStates(h.ctx, tenantA, []eventvault.Pseudonym{dave}); err != nil || len(states) != 1 || len(states[dave].Key.Ciphertext) != 0 {
			t.Fatalf("SubjectStates after erasure: %+v, %v; want dave with no key", states, err)
		}
		stale := fakePII(dave, kd.ID, uuid.New(), "/late")
		if _, err := h.appendPII(tenantA, "order-pii3", eventvault.ExpectAny, newEvents(1), []eventvault.PIIValue{stale}); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("append of a value under the destroyed key: %v, want EERASED", err)
		}
		recorded("erasing again", 0, func(ctx context.Context) error {
			if again, err := h.store.EraseSubjectPII(ctx, tenantA, dave, time.Now()); err != nil || again != (eventvault.SubjectErasure{KeyID: kd.ID, Before: true}) {
				t.Fatalf("erasing again: %+v, %v; want nothing destroyed now, and the key the first erasure destroyed", again, err)
			}
			return nil
		})
		// A subject that never had a key has nothing destroyed and is not
		// fenced: an id under which nothing was held takes a key later
		// (and an erasure after that destroys it, and fences it).
		recorded("an erasure of a subject without a key", 0, func(ctx context.Context) error {
			if e, err := h.store.EraseSubjectPII(ctx, tenantA, "p-never", time.Now()); err != nil || e != (eventvault.SubjectErasure{}) {
				t.Fatalf("EraseSubjectPII of a subject without a key: %+v, %v; want nothing destroyed", e, err)
			}
			return nil
		})
		if states, _, err := h.store.SubjectStates(h.ctx, tenantA, []eventvault.Pseudonym{"p-never"}); err != nil || len(states) != 0 {
			t.Fatalf("SubjectStates after erasing a subject without a key: %+v, %v; want no row (no fence)", states, err)
		}
		later := h.subjectKey(tenantA, "p-never")
		if e, err := h.store.EraseSubjectPII(h.ctx, tenantA, "p-never", time.Now()); err != nil || e.KeyID != later.ID {
			t.Fatalf("EraseSubjectPII of the key given later: %+v, %v; want key %s destroyed", e, err, later.ID)
		}
		if _, err := h.store.CreateSubjectKey(h.ctx, tenantA, "p-never", newSubjectKey()); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("CreateSubjectKey after its key was erased: %v, want EERASED", err)
		}
		// Tenant B's subject of the same pseudonym is another subject.
		h.subjectKey(tenantB, dave)
	})
}

// testPIIRotation: subject keys under an old KEK version are listed,
// re-wrapped by compare-and-swap, and keep DestroyTenantKeysBefore from
// destroying the version they need until they are.
func testPIIRotation(t *testing.T, open opener) {
	h := setup(t, open)
	if _, err := h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey()); err != nil {
		t.Fatal(err)
	}
	v2 := newTenantKey()
	v2.Version = 2
	if err := h.store.AddTenantKey(h.ctx, tenantA, v2); err != nil {
		t.Fatal(err)
	}
	var subjects []eventvault.Pseudonym
	for i := range 3 {
		s := eventvault.Pseudonym(fmt.Sprintf("p-rot-%d", i))
		subjects = append(subjects, s)
		h.subjectKey(tenantA, s)
	}
	if _, err := h.store.EraseSubjectPII(h.ctx, tenantA, subjects[2], time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.DestroyTenantKeysBefore(h.ctx, tenantA, 2); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("destroying KEK version 1 under live subject keys: %v, want ECONFLICT", err)
	}
	var rows []eventvault.SubjectKeyRow
	for after := eventvault.Pseudonym(""); ; {
		page, err := h.store.SubjectKeysBefore(h.ctx, tenantA, 2, after, 1)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page...)
		if len(page) < 1 {
			break
		}
		after = page[len(page)-1].Subject
	}
	if len(rows) != 2 || rows[0].Subject != subjects[0] || rows[1].Subject != subjects[1] {
		t.Fatalf("SubjectKeysBefore paged %+v; want the two live subjects in order, not the erased one", rows)
	}
	if _, err := h.store.SubjectKeysBefore(h.ctx, tenantA, 2, "", 0); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Fatalf("SubjectKeysBefore with limit 0: %v", err)
	}
	for _, r := range rows {
		next := r.Key
		next.KEKVersion, next.Ciphertext = 2, []byte("rewrapped:"+string(r.Subject))
		stale := r.Key
		stale.Ciphertext = []byte("stale")
		if err := h.store.RewrapSubjectKey(h.ctx, tenantA, r.Subject, stale, next); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("a re-wrap of a row that changed: %v, want ECONFLICT", err)
		}
		same := r.Key
		if err := h.store.RewrapSubjectKey(h.ctx, tenantA, r.Subject, r.Key, same); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("a re-wrap to the same KEK version: %v, want EINVALID", err)
		}
		if err := h.store.RewrapSubjectKey(h.ctx, tenantA, r.Subject, r.Key, next); err != nil {
			t.Fatalf("RewrapSubjectKey: %v", err)
		}
		got, err := h.store.SubjectKey(h.ctx, tenantA, r.Subject)
		if err != nil || got.KEKVersion != 2 || string(got.Ciphertext) != string(next.Ciphertext) || got.ID != r.Key.ID {
			t.Fatalf("after the re-wrap: %+v, %v", got, err)
		}
	}
	erased := eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("x")}
	next := erased
	next.KEKVersion = 2
	if err := h.store.RewrapSubjectKey(h.ctx, tenantA, subjects[2], erased, next); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Fatalf("a re-wrap of an erased subject's key: %v, want EERASED", err)
	}
	if n, err := h.store.DestroyTenantKeysBefore(h.ctx, tenantA, 2); err != nil || n != 1 {
		t.Fatalf("destroying KEK version 1 once no key needs it: %d, %v", n, err)
	}
	late := newSubjectKey()
	if _, err := h.store.CreateSubjectKey(h.ctx, tenantA, "p-late", late); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("a subject key under a destroyed KEK version: %v, want ECONFLICT", err)
	}
}
