package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// testErasure checks crypto-shredding and what erasure requests need of a
// store. Where eventvault.ErasureStore's docs are silent, it fixes this:
//
//   - An append names its stream's owner (a pseudonym) or none. The first
//     append that writes and names one sets it; one that fails sets
//     nothing. Naming another is ECONFLICT, checked after the stream's key
//     and before idempotency, and the message names neither pseudonym.
//   - StreamsOfSubject lists in byte order of names, and is empty (not an
//     error) for a subject that owns nothing.
//   - A shredded stream: StreamKey, CreateStreamKey, RewrapStreamKey and
//     Append answer EERASED and nothing gets a new key. ReadStream returns a
//     page with ShreddedAt, a zero key, the stream's version and the events
//     not purged (envelope, MAC and payload as stored), even when none are
//     left. ReadAll gives it the zero key. Purged events leave ReadAll, and
//     their global positions are not reused.
//   - ShredStream of a stream that never existed is ENOTFOUND and fences
//     nothing; so is ShredTenant of a tenant the store never held.
//   - ShredTenant destroys every KEK version and returns the distinct KEK
//     ids in the order of their first version. Afterwards TenantKey and
//     TenantKeyVersion are ENOTFOUND (no key), CreateTenantKey and
//     CreateStreamKey are EERASED and store nothing, and AddTenantKey stores
//     nothing (EERASED; ENOTFOUND is tolerated, as "no key to add to").
//   - Times come back equal to what was stored at microsecond precision.
//   - Legal holds and erasure request ids are scoped to a tenant: the same
//     id in two tenants is two requests.
func testErasure(t *testing.T, open opener) {
	t.Run("SubjectOwnership", func(t *testing.T) { testSubjectOwnership(t, open) })
	t.Run("StreamsOfSubject", func(t *testing.T) { testStreamsOfSubject(t, open) })
	t.Run("ShredStream", func(t *testing.T) { testShredStream(t, open) })
	t.Run("ShredIdempotentThenPurge", func(t *testing.T) { testShredIdempotentThenPurge(t, open) })
	t.Run("PurgeOnFirstShred", func(t *testing.T) { testPurgeOnFirstShred(t, open) })
	t.Run("ShredNotFound", func(t *testing.T) { testShredNotFound(t, open) })
	t.Run("ShredTenant", func(t *testing.T) { testShredTenant(t, open) })
	t.Run("ShredTenantRace", func(t *testing.T) { testShredTenantRace(t, open) })
	t.Run("Holds", func(t *testing.T) { testHolds(t, open) })
	t.Run("ErasureRequests", func(t *testing.T) { testErasureRequests(t, open) })
	t.Run("ErasureIsolation", func(t *testing.T) { testErasureIsolation(t, open) })
}

// pseudonym returns a pseudonym shaped like the real ones (hex SHA-256).
func pseudonym(label string) eventvault.Pseudonym {
	sum := sha256.Sum256([]byte(label))
	return eventvault.Pseudonym(hex.EncodeToString(sum[:]))
}

// stamp returns now at the stores' precision.
func stamp() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// appendOwned appends evs with ExpectAny naming subject as the owner.
func (h *harness) appendOwned(tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, subject eventvault.Pseudonym, evs []eventvault.ProposedEvent) ([]int64, error) {
	var s sealer
	_, calls, err := h.appendWith(tenant, eventvault.AppendRequest{
		Stream: stream, Expected: eventvault.ExpectAny, KeyID: keyID, Subject: subject, Events: evs, Seal: s.seal(evs),
	}, &s)
	return calls, err
}

func (h *harness) mustAppendOwned(tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, subject eventvault.Pseudonym, evs []eventvault.ProposedEvent) {
	h.t.Helper()
	if _, err := h.appendOwned(tenant, stream, keyID, subject, evs); err != nil {
		h.t.Fatalf("append to %s/%s naming a subject: %v", tenant, stream, err)
	}
}

func (h *harness) shred(tenant eventvault.TenantID, stream eventvault.StreamName, purge bool, at time.Time) eventvault.Shred {
	h.t.Helper()
	s, err := h.store.ShredStream(h.ctx, tenant, stream, purge, at)
	if err != nil {
		h.t.Fatalf("ShredStream %s/%s (purge %v): %v", tenant, stream, purge, err)
	}
	return s
}

func (h *harness) streamsOf(tenant eventvault.TenantID, subject eventvault.Pseudonym) []eventvault.StreamName {
	h.t.Helper()
	got, err := h.store.StreamsOfSubject(h.ctx, tenant, subject)
	if err != nil {
		h.t.Fatalf("StreamsOfSubject %s: %v", tenant, err)
	}
	return got
}

func wantStreams(t *testing.T, what string, got []eventvault.StreamName, want ...eventvault.StreamName) {
	t.Helper()
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantShred(t *testing.T, what string, got, want eventvault.Shred) {
	t.Helper()
	if got.Stream != want.Stream || got.KeyID != want.KeyID || !got.ShreddedAt.Equal(want.ShreddedAt) ||
		got.Subject != want.Subject || got.Purged != want.Purged {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// wantErased checks that nothing gives the shredded stream a key again or
// appends to it.
func (h *harness) wantErased(tenant eventvault.TenantID, stream eventvault.StreamName, oldKey eventvault.WrappedKey) {
	h.t.Helper()
	t := h.t
	if _, err := h.store.StreamKey(h.ctx, tenant, stream); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("StreamKey of shredded %s = %v, want EERASED", stream, err)
	}
	if k, err := h.store.CreateStreamKey(h.ctx, tenant, stream, newStreamKey()); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("CreateStreamKey of shredded %s = key %s, %v; want EERASED", stream, k.ID, err)
	}
	if _, err := h.store.StreamKey(h.ctx, tenant, stream); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("StreamKey of shredded %s after CreateStreamKey = %v, want EERASED still", stream, err)
	}
	if err := h.store.RewrapStreamKey(h.ctx, tenant, stream, oldKey, rewrapped(oldKey, oldKey.KEKVersion+1)); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("RewrapStreamKey of shredded %s = %v, want EERASED", stream, err)
	}
	before := h.snapshot(tenant, stream)
	for _, keyID := range []uuid.UUID{oldKey.ID, uuid.New()} {
		calls, err := h.appendOwned(tenant, stream, keyID, "", newEvents(1))
		if eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("Append to shredded %s under key %s = %v, want EERASED", stream, keyID, err)
		}
		if len(calls) != 0 {
			t.Errorf("Append to shredded %s called Seal with %v", stream, calls)
		}
	}
	h.unchanged(tenant, before)
}

func testSubjectOwnership(t *testing.T, open opener) {
	h := setup(t, open)
	alice, bob := pseudonym("alice"), pseudonym("bob")
	key := h.streamKey(tenantA, "order-1")

	h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(1))
	wantStreams(t, "streams of alice before any append names her", h.streamsOf(tenantA, alice))

	// An append that fails sets no owner.
	var s sealer
	evs := newEvents(1)
	_, _, err := h.appendWith(tenantA, eventvault.AppendRequest{
		Stream: "order-1", Expected: eventvault.ExpectNoStream, KeyID: key.ID, Subject: bob, Events: evs, Seal: s.seal(evs),
	}, &s)
	wantCode(t, err, eventvault.ECONFLICT)
	wantStreams(t, "streams of bob after a failed append named him", h.streamsOf(tenantA, bob))

	h.mustAppendOwned(tenantA, "order-1", key.ID, alice, newEvents(2))
	wantStreams(t, "streams of alice", h.streamsOf(tenantA, alice), "order-1")

	t.Run("another subject is a conflict", func(t *testing.T) {
		h := h.sub(t)
		before := h.snapshot(tenantA, "order-1")
		calls, err := h.appendOwned(tenantA, "order-1", key.ID, bob, newEvents(1))
		wantCode(t, err, eventvault.ECONFLICT)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		h.unchanged(tenantA, before)
		text := err.Error() + " " + eventvault.ErrorMessage(err) + " " + fmt.Sprint(eventvault.ErrorFields(err))
		for name, p := range map[string]eventvault.Pseudonym{"owner": alice, "requested": bob} {
			if strings.Contains(text, string(p)) {
				t.Errorf("the conflict names the %s pseudonym: %s", name, text)
			}
		}
		wantStreams(t, "streams of bob", h.streamsOf(tenantA, bob))
		wantStreams(t, "streams of alice", h.streamsOf(tenantA, alice), "order-1")
	})
	t.Run("naming none or the owner again is fine", func(t *testing.T) {
		h := h.sub(t)
		h.mustAppendOwned(tenantA, "order-1", key.ID, "", newEvents(1))
		h.mustAppendOwned(tenantA, "order-1", key.ID, alice, newEvents(1))
		if v := h.version(tenantA, "order-1"); v != 4 {
			t.Errorf("order-1 at version %d, want 4", v)
		}
		wantStreams(t, "streams of alice", h.streamsOf(tenantA, alice), "order-1")
	})
	t.Run("an over-long pseudonym is invalid", func(t *testing.T) {
		h := h.sub(t)
		long := eventvault.Pseudonym(strings.Repeat("a", eventvault.MaxPseudonymLength+1))
		calls, err := h.appendOwned(tenantA, "order-1", key.ID, long, newEvents(1))
		wantCode(t, err, eventvault.EINVALID)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
	})
}

func testStreamsOfSubject(t *testing.T, open opener) {
	h := setup(t, open)
	alice, bob := pseudonym("alice"), pseudonym("bob")
	for _, o := range []struct {
		stream eventvault.StreamName
		owner  eventvault.Pseudonym
	}{
		{"payment-7", alice}, {"order-2", bob}, {"order-1", alice}, {"order-4", ""}, {"order-3", alice},
	} {
		k := h.streamKey(tenantA, o.stream)
		h.mustAppendOwned(tenantA, o.stream, k.ID, o.owner, newEvents(1))
	}
	h.shred(tenantA, "order-3", false, stamp())
	wantStreams(t, "streams of alice", h.streamsOf(tenantA, alice), "order-1", "order-3", "payment-7")
	wantStreams(t, "streams of bob", h.streamsOf(tenantA, bob), "order-2")
	wantStreams(t, "streams of a subject who owns none", h.streamsOf(tenantA, pseudonym("carol")))
	wantStreams(t, "streams of alice in tenant B", h.streamsOf(tenantB, alice))

	if _, err := h.store.StreamsOfSubject(h.ctx, tenantA, ""); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("StreamsOfSubject of an empty pseudonym = %v, want EINVALID", err)
	}
	if _, err := h.store.StreamsOfSubject(h.ctx, "Tenant A", alice); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Errorf("StreamsOfSubject of a malformed tenant = %v, want EINVALID", err)
	}
}

func testShredStream(t *testing.T, open opener) {
	h := setup(t, open)
	alice := pseudonym("alice")
	key1 := h.streamKey(tenantA, "order-1")
	key2 := h.streamKey(tenantA, "order-2")
	h.mustAppendOwned(tenantA, "order-1", key1.ID, alice, newEvents(2))
	h.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectNoStream, newEvents(1))
	h.mustAppend(tenantA, "order-1", key1.ID, eventvault.ExpectPosition(1), newEvents(1))

	at := stamp()
	s := h.shred(tenantA, "order-1", false, at)
	wantShred(t, "ShredStream", s, eventvault.Shred{Stream: "order-1", KeyID: key1.ID, ShreddedAt: at, Subject: alice})

	t.Run("no key, no append", func(t *testing.T) {
		h.sub(t).wantErased(tenantA, "order-1", key1)
	})
	t.Run("ReadStream returns the envelopes", func(t *testing.T) {
		h := h.sub(t)
		page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
		wantKey(t, "StreamPage.Key of a shredded stream", page.Key, eventvault.WrappedKey{})
		if !page.ShreddedAt.Equal(at) {
			t.Errorf("StreamPage.ShreddedAt = %v, want %v", page.ShreddedAt, at)
		}
		if page.Version != 2 {
			t.Errorf("StreamPage.Version = %d, want 2", page.Version)
		}
		if got := positionsOf(page.Events); !slices.Equal(got, []int64{0, 1, 2}) {
			t.Errorf("positions %v, want [0 1 2]", got)
		}
		h.checkEvents(tenantA, page.Events)
		back := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: -1, Limit: 1, Backward: true})
		if got := positionsOf(back.Events); !slices.Equal(got, []int64{2}) || !back.ShreddedAt.Equal(at) {
			t.Errorf("backward read: positions %v, ShreddedAt %v; want [2], %v", got, back.ShreddedAt, at)
		}
	})
	t.Run("ReadAll gives it the zero key", func(t *testing.T) {
		h := h.sub(t)
		page := h.readAll(tenantA, 0, 10)
		if got := globalsOf(page.Events); !slices.Equal(got, []int64{0, 1, 2, 3}) {
			t.Errorf("global positions %v, want [0 1 2 3]", got)
		}
		h.checkEvents(tenantA, page.Events)
		wantPageKeys(t, page, map[eventvault.StreamName]eventvault.WrappedKey{"order-1": {}, "order-2": key2})
	})
	t.Run("other streams are untouched", func(t *testing.T) {
		h := h.sub(t)
		page := h.readStream(tenantA, "order-2", eventvault.ReadOptions{From: 0, Limit: 10})
		wantKey(t, "key of order-2", page.Key, key2)
		if !page.ShreddedAt.IsZero() {
			t.Errorf("order-2 ShreddedAt = %v, want zero", page.ShreddedAt)
		}
		h.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectPosition(0), newEvents(1))
		rows, err := h.store.StreamKeysBefore(h.ctx, tenantA, 99, "", 10)
		if err != nil {
			t.Fatalf("StreamKeysBefore: %v", err)
		}
		if len(rows) != 1 || rows[0].Stream != "order-2" {
			t.Errorf("StreamKeysBefore = %v, want order-2 only", rows)
		}
	})
	t.Run("a stream shredded before its first event", func(t *testing.T) {
		h := h.sub(t)
		key := h.streamKey(tenantA, "order-5")
		at := stamp()
		wantShred(t, "ShredStream", h.shred(tenantA, "order-5", false, at), eventvault.Shred{Stream: "order-5", KeyID: key.ID, ShreddedAt: at})
		page := h.readStream(tenantA, "order-5", eventvault.ReadOptions{From: 0, Limit: 10})
		if !page.ShreddedAt.Equal(at) || page.Version != eventvault.NoStream || len(page.Events) != 0 {
			t.Errorf("page of a stream shredded without events: ShreddedAt %v, version %d, %d events; want %v, -1, 0",
				page.ShreddedAt, page.Version, len(page.Events), at)
		}
		h.wantErased(tenantA, "order-5", key)
	})
}

func testShredIdempotentThenPurge(t *testing.T, open opener) {
	h := setup(t, open)
	alice := pseudonym("alice")
	key1 := h.streamKey(tenantA, "order-1")
	key2 := h.streamKey(tenantA, "order-2")
	h.mustAppendOwned(tenantA, "order-1", key1.ID, alice, newEvents(2))
	h.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectNoStream, newEvents(2))
	h.mustAppend(tenantA, "order-1", key1.ID, eventvault.ExpectPosition(1), newEvents(1))
	// Global positions: order-1 at 0, 1 and 4; order-2 at 2 and 3.

	at := stamp()
	first := eventvault.Shred{Stream: "order-1", KeyID: key1.ID, ShreddedAt: at, Subject: alice}
	wantShred(t, "first ShredStream", h.shred(tenantA, "order-1", false, at), first)
	wantShred(t, "ShredStream again", h.shred(tenantA, "order-1", false, at.Add(time.Hour)), first)

	purged := first
	purged.Purged = true
	wantShred(t, "ShredStream again with purge", h.shred(tenantA, "order-1", true, at.Add(2*time.Hour)), purged)
	wantShred(t, "ShredStream after the purge", h.shred(tenantA, "order-1", false, at.Add(3*time.Hour)), purged)

	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
	if len(page.Events) != 0 || !page.ShreddedAt.Equal(at) || page.Version != 2 {
		t.Errorf("purged stream: %d events, ShreddedAt %v, version %d; want 0, %v, 2", len(page.Events), page.ShreddedAt, page.Version, at)
	}
	wantKey(t, "key of a purged stream", page.Key, eventvault.WrappedKey{})
	all := h.allEvents(tenantA, 10)
	if got := globalsOf(all); !slices.Equal(got, []int64{2, 3}) {
		t.Errorf("global positions after the purge %v, want [2 3] (order-2's)", got)
	}
	h.checkEvents(tenantA, all)
	res := h.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectPosition(1), newEvents(1))
	if got := res.Events[0].GlobalPosition; got != 5 {
		t.Errorf("the next append took global position %d, want 5: purged positions are not reused", got)
	}
	h.wantErased(tenantA, "order-1", key1)
	wantStreams(t, "streams of alice after the purge", h.streamsOf(tenantA, alice), "order-1")
}

func testPurgeOnFirstShred(t *testing.T, open opener) {
	h := setup(t, open)
	key3 := h.streamKey(tenantA, "order-3")
	key4 := h.streamKey(tenantA, "order-4")
	h.mustAppend(tenantA, "order-3", key3.ID, eventvault.ExpectNoStream, newEvents(2))
	h.mustAppend(tenantA, "order-4", key4.ID, eventvault.ExpectNoStream, newEvents(1))

	at := stamp()
	wantShred(t, "ShredStream with purge", h.shred(tenantA, "order-3", true, at),
		eventvault.Shred{Stream: "order-3", KeyID: key3.ID, ShreddedAt: at, Purged: true})
	page := h.readStream(tenantA, "order-3", eventvault.ReadOptions{From: 0, Limit: 10})
	if len(page.Events) != 0 || !page.ShreddedAt.Equal(at) {
		t.Errorf("purged stream: %d events, ShreddedAt %v; want 0, %v", len(page.Events), page.ShreddedAt, at)
	}
	all := h.allEvents(tenantA, 10)
	if got := globalsOf(all); !slices.Equal(got, []int64{2}) {
		t.Errorf("global positions %v, want [2]", got)
	}
	wantPageKeys(t, h.readAll(tenantA, 0, 10), map[eventvault.StreamName]eventvault.WrappedKey{"order-4": key4})
	h.wantErased(tenantA, "order-3", key3)
}

func testShredNotFound(t *testing.T, open opener) {
	h := setup(t, open)
	key := h.streamKey(tenantA, "order-1")
	h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(1))

	if _, err := h.store.ShredStream(h.ctx, tenantA, "order-99", false, stamp()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("ShredStream of a stream never seen = %v, want ENOTFOUND", err)
	}
	if _, err := h.store.ShredStream(h.ctx, tenantA, "order-99", true, stamp()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("ShredStream with purge of a stream never seen = %v, want ENOTFOUND", err)
	}
	// The failed shred fenced nothing: the stream can start life.
	if _, err := h.store.StreamKey(h.ctx, tenantA, "order-99"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("StreamKey after a failed shred = %v, want ENOTFOUND", err)
	}
	h.streamKey(tenantA, "order-99")

	if _, err := h.store.ShredStream(h.ctx, tenantB, "order-1", true, stamp()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("ShredStream of A's stream by tenant B = %v, want ENOTFOUND", err)
	}
	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
	wantKey(t, "A's key after B tried to shred it", page.Key, key)
	if len(page.Events) != 1 || !page.ShreddedAt.IsZero() {
		t.Errorf("A's stream after B tried to shred it: %d events, ShreddedAt %v", len(page.Events), page.ShreddedAt)
	}

	for _, tc := range []struct {
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}{{"Tenant A", "order-1"}, {tenantA, "order 1"}, {tenantA, ""}} {
		if _, err := h.store.ShredStream(h.ctx, tc.tenant, tc.stream, false, stamp()); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("ShredStream(%q, %q) = %v, want EINVALID", tc.tenant, tc.stream, err)
		}
	}
}
