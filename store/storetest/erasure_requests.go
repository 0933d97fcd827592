package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func wantHold(t *testing.T, what string, got, want eventvault.Hold) {
	t.Helper()
	if got.Subject != want.Subject || got.Reason != want.Reason || !got.PlacedAt.Equal(want.PlacedAt) || got.PlacedBy != want.PlacedBy {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func wantRequest(t *testing.T, what string, got, want eventvault.ErasureRequest) {
	t.Helper()
	if got.ID != want.ID || got.Tenant != want.Tenant || got.Subject != want.Subject || got.State != want.State ||
		got.Reason != want.Reason || got.RequestedBy != want.RequestedBy ||
		!got.ReceivedAt.Equal(want.ReceivedAt) || !got.CompletedAt.Equal(want.CompletedAt) ||
		!bytes.Equal(got.Certificate, want.Certificate) {
		t.Errorf("%s =\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

func testHolds(t *testing.T, open opener) {
	h := setup(t, open)
	alice, bob := pseudonym("alice"), pseudonym("bob")
	if _, err := h.store.Hold(h.ctx, tenantA, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("Hold of a subject without one = %v, want ENOTFOUND", err)
	}
	if err := h.store.DeleteHold(h.ctx, tenantA, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("DeleteHold of a subject without one = %v, want ENOTFOUND", err)
	}

	first := eventvault.Hold{Subject: alice, Reason: "litigation 2026-17", PlacedAt: stamp(), PlacedBy: "tok_legal"}
	if err := h.store.PutHold(h.ctx, tenantA, first); err != nil {
		t.Fatalf("PutHold: %v", err)
	}
	got, err := h.store.Hold(h.ctx, tenantA, alice)
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	wantHold(t, "Hold", got, first)
	if _, err := h.store.Hold(h.ctx, tenantA, bob); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("Hold of another subject = %v, want ENOTFOUND", err)
	}

	second := eventvault.Hold{Subject: alice, Reason: "tax audit", PlacedAt: first.PlacedAt.Add(time.Minute), PlacedBy: "tok_tax"}
	if err := h.store.PutHold(h.ctx, tenantA, second); err != nil {
		t.Fatalf("PutHold again: %v", err)
	}
	if got, err = h.store.Hold(h.ctx, tenantA, alice); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	wantHold(t, "Hold after PutHold replaced it", got, second)

	if err := h.store.DeleteHold(h.ctx, tenantA, alice); err != nil {
		t.Fatalf("DeleteHold: %v", err)
	}
	if _, err := h.store.Hold(h.ctx, tenantA, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("Hold after DeleteHold = %v, want ENOTFOUND", err)
	}
	if err := h.store.DeleteHold(h.ctx, tenantA, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("DeleteHold twice = %v, want ENOTFOUND", err)
	}

	if err := h.store.PutHold(h.ctx, tenantA, eventvault.Hold{Reason: "no subject"}); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("PutHold without a subject = %v, want EINVALID", err)
	}
	if _, err := h.store.Hold(h.ctx, tenantA, ""); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("Hold of an empty pseudonym = %v, want EINVALID", err)
	}
	if err := h.store.DeleteHold(h.ctx, "Tenant A", alice); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("DeleteHold of a malformed tenant = %v, want EINVALID", err)
	}
}

func testErasureRequests(t *testing.T, open opener) {
	h := setup(t, open)
	alice, bob := pseudonym("alice"), pseudonym("bob")
	id := uuid.MustParse("00000000-0000-4000-8000-000000000005")

	if _, err := h.store.ErasureRequest(h.ctx, tenantA, id); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("ErasureRequest never created = %v, want ENOTFOUND", err)
	}
	if _, err := h.store.LatestErasureRequest(h.ctx, tenantA, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("LatestErasureRequest of a subject without any = %v, want ENOTFOUND", err)
	}
	received := stamp()
	r := eventvault.ErasureRequest{ID: id, Tenant: tenantA, Subject: alice, State: eventvault.ErasureReceived, RequestedBy: "tok_dpo", ReceivedAt: received}
	if err := h.store.UpdateErasureRequest(h.ctx, r); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("UpdateErasureRequest never created = %v, want ENOTFOUND", err)
	}

	if err := h.store.CreateErasureRequest(h.ctx, r); err != nil {
		t.Fatalf("CreateErasureRequest: %v", err)
	}
	got, err := h.store.ErasureRequest(h.ctx, tenantA, id)
	if err != nil {
		t.Fatalf("ErasureRequest: %v", err)
	}
	wantRequest(t, "ErasureRequest", got, r)
	dup := r
	dup.Subject, dup.ReceivedAt = bob, received.Add(time.Hour)
	if err := h.store.CreateErasureRequest(h.ctx, dup); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Errorf("CreateErasureRequest with an id taken = %v, want ECONFLICT", err)
	}

	done := r
	done.State, done.CompletedAt, done.Certificate = eventvault.ErasureCompleted, received.Add(time.Second), []byte(`{"payload":"signed"}`)
	update := done
	update.Subject, update.RequestedBy, update.ReceivedAt = bob, "tok_other", received.Add(time.Hour) // never change
	if err := h.store.UpdateErasureRequest(h.ctx, update); err != nil {
		t.Fatalf("UpdateErasureRequest: %v", err)
	}
	if got, err = h.store.ErasureRequest(h.ctx, tenantA, id); err != nil {
		t.Fatalf("ErasureRequest: %v", err)
	}
	wantRequest(t, "ErasureRequest after the update", got, done)

	// The latest: received last, then the greater id.
	later := eventvault.ErasureRequest{ID: uuid.MustParse("00000000-0000-4000-8000-000000000002"), Tenant: tenantA, Subject: alice,
		State: eventvault.ErasureRejected, Reason: "legal hold: litigation", RequestedBy: "tok_dpo",
		ReceivedAt: received.Add(time.Minute), CompletedAt: received.Add(time.Minute)}
	sameTime := later
	sameTime.ID, sameTime.State, sameTime.Reason, sameTime.CompletedAt = uuid.MustParse("00000000-0000-4000-8000-000000000009"), eventvault.ErasureReceived, "", time.Time{}
	lowerID := later
	lowerID.ID = uuid.MustParse("00000000-0000-4000-8000-000000000001")
	ofBob := eventvault.ErasureRequest{ID: uuid.New(), Tenant: tenantA, Subject: bob, State: eventvault.ErasureReceived, RequestedBy: "tok_dpo", ReceivedAt: received.Add(time.Hour)}
	for _, x := range []eventvault.ErasureRequest{later, sameTime, lowerID, ofBob} {
		if err := h.store.CreateErasureRequest(h.ctx, x); err != nil {
			t.Fatalf("CreateErasureRequest %s: %v", x.ID, err)
		}
	}
	got, err = h.store.LatestErasureRequest(h.ctx, tenantA, alice)
	if err != nil {
		t.Fatalf("LatestErasureRequest: %v", err)
	}
	wantRequest(t, "LatestErasureRequest of alice", got, sameTime)
	if got, err = h.store.LatestErasureRequest(h.ctx, tenantA, bob); err != nil {
		t.Fatalf("LatestErasureRequest of bob: %v", err)
	}
	wantRequest(t, "LatestErasureRequest of bob", got, ofBob)

	invalid := map[string]eventvault.ErasureRequest{
		"nil id":           {Tenant: tenantA, Subject: alice, State: eventvault.ErasureReceived, ReceivedAt: received},
		"no subject":       {ID: uuid.New(), Tenant: tenantA, State: eventvault.ErasureReceived, ReceivedAt: received},
		"unknown state":    {ID: uuid.New(), Tenant: tenantA, Subject: alice, State: "pending", ReceivedAt: received},
		"malformed tenant": {ID: uuid.New(), Tenant: "Tenant A", Subject: alice, State: eventvault.ErasureReceived, ReceivedAt: received},
	}
	for name, x := range invalid {
		if err := h.store.CreateErasureRequest(h.ctx, x); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("CreateErasureRequest with %s = %v, want EINVALID", name, err)
		}
		if err := h.store.UpdateErasureRequest(h.ctx, x); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("UpdateErasureRequest with %s = %v, want EINVALID", name, err)
		}
	}
	if _, err := h.store.LatestErasureRequest(h.ctx, tenantA, ""); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("LatestErasureRequest of an empty pseudonym = %v, want EINVALID", err)
	}
}

// testErasureIsolation checks that tenant B neither sees nor changes what
// tenant A keeps for erasure, and that ids do not collide across tenants.
func testErasureIsolation(t *testing.T, open opener) {
	h := setup(t, open)
	alice := pseudonym("alice")
	key := h.streamKey(tenantA, "order-1")
	h.mustAppendOwned(tenantA, "order-1", key.ID, alice, newEvents(1))
	hold := eventvault.Hold{Subject: alice, Reason: "litigation", PlacedAt: stamp(), PlacedBy: "tok_legal"}
	if err := h.store.PutHold(h.ctx, tenantA, hold); err != nil {
		t.Fatalf("PutHold: %v", err)
	}
	r := eventvault.ErasureRequest{ID: uuid.New(), Tenant: tenantA, Subject: alice, State: eventvault.ErasureReceived, RequestedBy: "tok_dpo", ReceivedAt: stamp()}
	if err := h.store.CreateErasureRequest(h.ctx, r); err != nil {
		t.Fatalf("CreateErasureRequest: %v", err)
	}

	if _, err := h.store.Hold(h.ctx, tenantB, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("B reads A's hold: %v, want ENOTFOUND", err)
	}
	if err := h.store.DeleteHold(h.ctx, tenantB, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("B lifts A's hold: %v, want ENOTFOUND", err)
	}
	if err := h.store.PutHold(h.ctx, tenantB, eventvault.Hold{Subject: alice, Reason: "B's own", PlacedAt: stamp(), PlacedBy: "tok_b"}); err != nil {
		t.Fatalf("PutHold B: %v", err)
	}
	got, err := h.store.Hold(h.ctx, tenantA, alice)
	if err != nil {
		t.Fatalf("Hold A: %v", err)
	}
	wantHold(t, "A's hold after B placed its own", got, hold)

	if _, err := h.store.ErasureRequest(h.ctx, tenantB, r.ID); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("B reads A's request: %v, want ENOTFOUND", err)
	}
	if _, err := h.store.LatestErasureRequest(h.ctx, tenantB, alice); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("B reads A's latest request: %v, want ENOTFOUND", err)
	}
	forged := r
	forged.Tenant, forged.State, forged.CompletedAt, forged.Certificate = tenantB, eventvault.ErasureCompleted, stamp(), []byte("forged")
	if err := h.store.UpdateErasureRequest(h.ctx, forged); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("B updates A's request: %v, want ENOTFOUND", err)
	}
	ofB := r
	ofB.Tenant, ofB.ReceivedAt = tenantB, r.ReceivedAt.Add(time.Second)
	if err := h.store.CreateErasureRequest(h.ctx, ofB); err != nil {
		t.Errorf("B creates a request with the id of one of A's: %v, want success (ids are per tenant)", err)
	}
	gotB, err := h.store.ErasureRequest(h.ctx, tenantB, r.ID)
	if err != nil {
		t.Fatalf("ErasureRequest B: %v", err)
	}
	wantRequest(t, "B's request", gotB, ofB)
	gotA, err := h.store.ErasureRequest(h.ctx, tenantA, r.ID)
	if err != nil {
		t.Fatalf("ErasureRequest A: %v", err)
	}
	wantRequest(t, "A's request after B's attempts", gotA, r)

	wantStreams(t, "B's streams of alice", h.streamsOf(tenantB, alice))
	if _, err := h.store.ShredTenant(h.ctx, tenantB, stamp()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("ShredTenant of B, which holds only a hold and a request = %v, want ENOTFOUND", err)
	}
	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
	wantKey(t, "A's key", page.Key, key)
}
