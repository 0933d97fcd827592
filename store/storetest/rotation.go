package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// testRotation checks what key rotation needs of a store: KEK versions,
// the list of tenants, paging through stale stream keys, and
// compare-and-swap re-wraps that lose cleanly to a concurrent change.
func testRotation(t *testing.T, open opener) {
	t.Run("TenantKeyVersions", func(t *testing.T) { testTenantKeyVersions(t, open) })
	t.Run("AddTenantKeyRace", func(t *testing.T) { testAddTenantKeyRace(t, open) })
	t.Run("Tenants", func(t *testing.T) { testTenants(t, open) })
	t.Run("StreamKeysBefore", func(t *testing.T) { testStreamKeysBefore(t, open) })
	t.Run("RewrapStreamKey", func(t *testing.T) { testRewrapStreamKey(t, open) })
	t.Run("RewrapStreamKeyRace", func(t *testing.T) { testRewrapStreamKeyRace(t, open) })
	t.Run("RewrapTenantKey", func(t *testing.T) { testRewrapTenantKey(t, open) })
}

// kekVersion returns a fake wrapped KEK: version v of the tenant key id.
func kekVersion(id uuid.UUID, v uint32) eventvault.WrappedKey {
	k := newTenantKey()
	k.ID, k.Version = id, v
	k.Ciphertext = fmt.Appendf(nil, "wrapped-tenant-kek:%s:v%d:%s", id, v, uuid.New())
	return k
}

// rewrapped returns k re-wrapped under KEK version kek: same id, version
// and time, another ciphertext.
func rewrapped(k eventvault.WrappedKey, kek uint32) eventvault.WrappedKey {
	k.KEKVersion = kek
	k.Ciphertext = fmt.Appendf(nil, "rewrapped:%s:kek-v%d:%s", k.ID, kek, uuid.New())
	return k
}

func testTenantKeyVersions(t *testing.T, open opener) {
	h := setup(t, open)
	if _, err := h.store.TenantKeyVersion(h.ctx, tenantA, 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("TenantKeyVersion of a tenant without a key = %v, want ENOTFOUND", err)
	}
	first := newTenantKey()
	if err := h.store.AddTenantKey(h.ctx, tenantA, kekVersion(first.ID, 2)); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("AddTenantKey to a tenant without a key = %v, want ENOTFOUND (CreateTenantKey makes the first)", err)
	}
	if _, err := h.store.CreateTenantKey(h.ctx, tenantA, first); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	got, err := h.store.TenantKeyVersion(h.ctx, tenantA, 1)
	if err != nil {
		t.Fatalf("TenantKeyVersion 1: %v", err)
	}
	wantKey(t, "TenantKeyVersion 1", got, first)
	if _, err := h.store.TenantKeyVersion(h.ctx, tenantA, 2); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("TenantKeyVersion of a version not yet added = %v, want ENOTFOUND", err)
	}
	if _, err := h.store.TenantKeyVersion(h.ctx, tenantA, 0); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Fatalf("TenantKeyVersion 0 = %v, want EINVALID", err)
	}

	second := kekVersion(first.ID, 2)
	for _, v := range []uint32{1, 3, 7} {
		err := h.store.AddTenantKey(h.ctx, tenantA, kekVersion(first.ID, v))
		if eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("AddTenantKey version %d while the newest is 1 = %v, want ECONFLICT", v, err)
		}
	}
	if err := h.store.AddTenantKey(h.ctx, tenantA, second); err != nil {
		t.Fatalf("AddTenantKey version 2: %v", err)
	}
	if err := h.store.AddTenantKey(h.ctx, tenantA, kekVersion(first.ID, 2)); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("AddTenantKey of a version taken = %v, want ECONFLICT", err)
	}
	newest, err := h.store.TenantKey(h.ctx, tenantA)
	if err != nil {
		t.Fatalf("TenantKey: %v", err)
	}
	wantKey(t, "TenantKey after adding version 2", newest, second)
	for v, want := range map[uint32]eventvault.WrappedKey{1: first, 2: second} {
		got, err := h.store.TenantKeyVersion(h.ctx, tenantA, v)
		if err != nil {
			t.Fatalf("TenantKeyVersion %d: %v", v, err)
		}
		wantKey(t, fmt.Sprintf("TenantKeyVersion %d", v), got, want)
	}
	if _, err := h.store.TenantKeyVersion(h.ctx, tenantB, 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("tenant B reads a key version of tenant A: %v, want ENOTFOUND", err)
	}
	if err := h.store.AddTenantKey(h.ctx, tenantB, kekVersion(first.ID, 3)); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("AddTenantKey to tenant B next to tenant A's versions = %v, want ENOTFOUND", err)
	}
}

// testAddTenantKeyRace races eight rotations proposing the same version:
// exactly one is stored, the others get ECONFLICT.
func testAddTenantKeyRace(t *testing.T, open opener) {
	h := setup(t, open)
	first := newTenantKey()
	if _, err := h.store.CreateTenantKey(h.ctx, tenantA, first); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	const n = 8
	proposed := make([]eventvault.WrappedKey, n)
	for i := range proposed {
		proposed[i] = kekVersion(first.ID, 2)
	}
	winner := onlyOneWins(t, "AddTenantKey of version 2", n, func(i int) error {
		return h.store.AddTenantKey(h.ctx, tenantA, proposed[i])
	})
	got, err := h.store.TenantKey(h.ctx, tenantA)
	if err != nil {
		t.Fatalf("TenantKey: %v", err)
	}
	wantKey(t, "TenantKey after the race", got, proposed[winner])
}

func testTenants(t *testing.T, open opener) {
	h := setup(t, open)
	got, err := h.store.Tenants(h.ctx)
	if err != nil {
		t.Fatalf("Tenants of an empty store: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Tenants of an empty store = %v", got)
	}
	if _, err := h.store.CreateTenantKey(h.ctx, tenantB, newTenantKey()); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	h.streamKey(tenantA, "order-1")
	got, err = h.store.Tenants(h.ctx)
	if err != nil {
		t.Fatalf("Tenants: %v", err)
	}
	if want := []eventvault.TenantID{tenantA, tenantB}; !slices.Equal(got, want) {
		t.Fatalf("Tenants = %v, want %v", got, want)
	}
}

func testStreamKeysBefore(t *testing.T, open opener) {
	h := setup(t, open)
	stale := map[eventvault.StreamName]eventvault.WrappedKey{}
	for i := range 7 {
		stream := eventvault.StreamName(fmt.Sprintf("order-%d", i))
		k := newStreamKey()
		if i%3 == 2 {
			k.KEKVersion = 2 // already under the newest version
		} else {
			stale[stream] = k
		}
		if _, err := h.store.CreateStreamKey(h.ctx, tenantA, stream, k); err != nil {
			t.Fatalf("CreateStreamKey %s: %v", stream, err)
		}
	}
	// Tenant B's stale keys never show in tenant A's pages.
	h.streamKey(tenantB, "order-1")
	h.streamKey(tenantB, "invoice-1")

	for _, limit := range []int{1, 2, 100} {
		var seen []eventvault.StreamName
		after := eventvault.StreamName("")
		for page := 0; ; page++ {
			if page > len(stale)+1 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			rows, err := h.store.StreamKeysBefore(h.ctx, tenantA, 2, after, limit)
			if err != nil {
				t.Fatalf("StreamKeysBefore after %q limit %d: %v", after, limit, err)
			}
			if len(rows) > limit {
				t.Fatalf("StreamKeysBefore with limit %d returned %d rows", limit, len(rows))
			}
			if len(rows) == 0 {
				break
			}
			for _, r := range rows {
				want, ok := stale[r.Stream]
				if !ok {
					t.Fatalf("StreamKeysBefore(2) returned %s, whose key is under KEK version %d or is not tenant A's", r.Stream, r.Key.KEKVersion)
				}
				wantKey(t, "StreamKeysBefore row "+string(r.Stream), r.Key, want)
				seen = append(seen, r.Stream)
			}
			after = rows[len(rows)-1].Stream
		}
		slices.Sort(seen)
		want := mapKeys(stale)
		slices.Sort(want)
		if !slices.Equal(seen, want) {
			t.Fatalf("limit %d: paging visited %v, want each of %v once", limit, seen, want)
		}
	}
	rows, err := h.store.StreamKeysBefore(h.ctx, tenantA, 1, "", 100)
	if err != nil || len(rows) != 0 {
		t.Fatalf("StreamKeysBefore(1) = %d rows, %v; want none (no KEK version is below 1)", len(rows), err)
	}
	rows, err = h.store.StreamKeysBefore(h.ctx, "tenant-c", 2, "", 100)
	if err != nil || len(rows) != 0 {
		t.Fatalf("StreamKeysBefore of an unknown tenant = %d rows, %v; want none", len(rows), err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := h.store.StreamKeysBefore(h.ctx, tenantA, 2, "", limit); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("StreamKeysBefore limit %d = %v, want EINVALID", limit, err)
		}
	}
}

func testRewrapStreamKey(t *testing.T, open opener) {
	h := setup(t, open)
	old := h.streamKey(tenantA, "order-1")
	res := h.mustAppend(tenantA, "order-1", old.ID, eventvault.ExpectNoStream, newEvents(2))

	for _, tc := range []struct {
		name string
		next func() eventvault.WrappedKey
	}{
		{"another key id", func() eventvault.WrappedKey { k := rewrapped(old, 2); k.ID = uuid.New(); return k }},
		{"another key version", func() eventvault.WrappedKey { k := rewrapped(old, 2); k.Version++; return k }},
		{"no ciphertext", func() eventvault.WrappedKey { k := rewrapped(old, 2); k.Ciphertext = nil; return k }},
		{"the same KEK version", func() eventvault.WrappedKey { return rewrapped(old, old.KEKVersion) }},
	} {
		err := h.store.RewrapStreamKey(h.ctx, tenantA, "order-1", old, tc.next())
		if eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("RewrapStreamKey with %s = %v, want EINVALID", tc.name, err)
		}
	}
	if err := h.store.RewrapStreamKey(h.ctx, tenantA, "order-2", old, rewrapped(old, 2)); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("RewrapStreamKey of a stream without a key = %v, want ENOTFOUND", err)
	}
	if err := h.store.RewrapStreamKey(h.ctx, tenantB, "order-1", old, rewrapped(old, 2)); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("RewrapStreamKey of tenant A's stream as tenant B = %v, want ENOTFOUND", err)
	}
	got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	wantKey(t, "StreamKey after refused re-wraps", got, old)

	next := rewrapped(old, 2)
	if err := h.store.RewrapStreamKey(h.ctx, tenantA, "order-1", old, next); err != nil {
		t.Fatalf("RewrapStreamKey: %v", err)
	}
	got, err = h.store.StreamKey(h.ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	wantKey(t, "StreamKey after the re-wrap (same id, version and time)", got, next)
	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{Limit: 10})
	wantKey(t, "the key ReadStream returns with the events", page.Key, next)
	h.checkEvents(tenantA, page.Events)
	if len(page.Events) != 2 {
		t.Fatalf("ReadStream after the re-wrap returned %d events, want 2", len(page.Events))
	}

	// The CAS loses to the change it did not see: old is stale now.
	if err := h.store.RewrapStreamKey(h.ctx, tenantA, "order-1", old, rewrapped(old, 3)); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("RewrapStreamKey from a stale row = %v, want ECONFLICT", err)
	}
	got, _ = h.store.StreamKey(h.ctx, tenantA, "order-1")
	wantKey(t, "StreamKey after the lost compare-and-swap", got, next)

	// The key id is unchanged, so appends sealed under it go on.
	more := h.mustAppend(tenantA, "order-1", old.ID, eventvault.ExpectPosition(res.Version), newEvents(1))
	if more.Version != 2 {
		t.Fatalf("append after the re-wrap: version %d, want 2", more.Version)
	}
}

// testRewrapStreamKeyRace races eight re-wraps of one row: exactly one
// wins, the others get ECONFLICT, and the row is the winner's.
func testRewrapStreamKeyRace(t *testing.T, open opener) {
	h := setup(t, open)
	old := h.streamKey(tenantA, "order-1")
	const n = 8
	proposed := make([]eventvault.WrappedKey, n)
	for i := range proposed {
		proposed[i] = rewrapped(old, 2)
	}
	winner := onlyOneWins(t, "RewrapStreamKey from one row", n, func(i int) error {
		return h.store.RewrapStreamKey(h.ctx, tenantA, "order-1", old, proposed[i])
	})
	got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	wantKey(t, "StreamKey after the race", got, proposed[winner])
}

func testRewrapTenantKey(t *testing.T, open opener) {
	h := setup(t, open)
	first := newTenantKey()
	if _, err := h.store.CreateTenantKey(h.ctx, tenantA, first); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	second := kekVersion(first.ID, 2)
	if err := h.store.AddTenantKey(h.ctx, tenantA, second); err != nil {
		t.Fatalf("AddTenantKey: %v", err)
	}
	rewrap := func(k eventvault.WrappedKey) eventvault.WrappedKey {
		k.Ciphertext = fmt.Appendf(nil, "root-rewrapped:%s:v%d:%s", k.ID, k.Version, uuid.New())
		return k
	}
	for name, next := range map[string]eventvault.WrappedKey{
		"another key id":  func() eventvault.WrappedKey { k := rewrap(first); k.ID = uuid.New(); return k }(),
		"another version": func() eventvault.WrappedKey { k := rewrap(first); k.Version = 2; return k }(),
		"no ciphertext":   func() eventvault.WrappedKey { k := first; k.Ciphertext = nil; return k }(),
	} {
		if err := h.store.RewrapTenantKey(h.ctx, tenantA, first, next); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("RewrapTenantKey with %s = %v, want EINVALID", name, err)
		}
	}
	if err := h.store.RewrapTenantKey(h.ctx, tenantA, kekVersion(first.ID, 3), rewrap(kekVersion(first.ID, 3))); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("RewrapTenantKey of a version that does not exist = %v, want ENOTFOUND", err)
	}
	if err := h.store.RewrapTenantKey(h.ctx, tenantB, first, rewrap(first)); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("RewrapTenantKey of tenant A's key as tenant B = %v, want ENOTFOUND", err)
	}

	next := rewrap(first)
	if err := h.store.RewrapTenantKey(h.ctx, tenantA, first, next); err != nil {
		t.Fatalf("RewrapTenantKey version 1: %v", err)
	}
	got, err := h.store.TenantKeyVersion(h.ctx, tenantA, 1)
	if err != nil {
		t.Fatalf("TenantKeyVersion 1: %v", err)
	}
	wantKey(t, "version 1 after the re-wrap (same id, version and time)", got, next)
	got, _ = h.store.TenantKey(h.ctx, tenantA)
	wantKey(t, "the newest version, untouched", got, second)

	// A compare-and-swap from the row as it was before loses.
	if err := h.store.RewrapTenantKey(h.ctx, tenantA, first, rewrap(first)); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("RewrapTenantKey from a stale row = %v, want ECONFLICT", err)
	}
	got, _ = h.store.TenantKeyVersion(h.ctx, tenantA, 1)
	wantKey(t, "version 1 after the lost compare-and-swap", got, next)

	// Concurrent re-wraps of version 2: one wins.
	const n = 8
	proposed := make([]eventvault.WrappedKey, n)
	for i := range proposed {
		proposed[i] = rewrap(second)
	}
	winner := onlyOneWins(t, "RewrapTenantKey of version 2", n, func(i int) error {
		return h.store.RewrapTenantKey(h.ctx, tenantA, second, proposed[i])
	})
	got, _ = h.store.TenantKey(h.ctx, tenantA)
	wantKey(t, "version 2 after the race", got, proposed[winner])
}

// onlyOneWins runs try(0..n-1) at once and returns the one index that
// succeeded; it fails t unless exactly one did and every other got
// ECONFLICT.
func onlyOneWins(t *testing.T, what string, n int, try func(i int) error) int {
	t.Helper()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = try(i)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch eventvault.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Fatalf("%s: two of %d racing calls succeeded", what, n)
			}
			winner = i
		case eventvault.ECONFLICT:
		default:
			t.Fatalf("%s, call %d: %v, want success or ECONFLICT", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: none of %d racing calls succeeded", what, n)
	}
	return winner
}
