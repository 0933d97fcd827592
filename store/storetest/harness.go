package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

const (
	tenantA eventvault.TenantID = "tenant-a"
	tenantB eventvault.TenantID = "tenant-b"
)

// recordedAtSlack is how far a store's clock may be from the test's when
// it stamps recorded_at: a database on loopback shares the machine's clock.
const recordedAtSlack = 5 * time.Second

// harness is one store under test and a ledger of what was appended to it,
// against which every event read back is checked.
type harness struct {
	t     *testing.T
	ctx   context.Context
	store eventvault.Store

	mu     *sync.Mutex
	ledger map[eventvault.TenantID]map[uuid.UUID]written
	// pages counts the read-all pages read (readPage), shared by sub.
	pages *atomic.Int64
}

// written is an event as the suite appended it; RecordedAt is unset, the
// store stamps it between before and after.
type written struct {
	ev            eventvault.StoredEvent
	before, after time.Time
}

func setup(t *testing.T, open opener) *harness {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	return &harness{
		t:      t,
		ctx:    t.Context(),
		store:  s,
		mu:     new(sync.Mutex),
		ledger: map[eventvault.TenantID]map[uuid.UUID]written{},
		pages:  new(atomic.Int64),
	}
}

// sub returns the harness for a subtest that shares its store.
func (h *harness) sub(t *testing.T) *harness {
	c := *h
	c.t = t
	c.ctx = t.Context()
	return &c
}

// newStreamKey returns a fake wrapped data key with a random id.
func newStreamKey() eventvault.WrappedKey {
	id := uuid.New()
	return eventvault.WrappedKey{
		ID:         id,
		Version:    1,
		KEKVersion: 1,
		Ciphertext: []byte("wrapped-stream-key:" + id.String()),
		CreatedAt:  time.Now().UTC().Truncate(time.Microsecond),
	}
}

// newTenantKey returns a fake wrapped tenant KEK with a random id.
func newTenantKey() eventvault.WrappedKey {
	id := uuid.New()
	return eventvault.WrappedKey{
		ID:         id,
		Version:    1,
		Ciphertext: []byte("wrapped-tenant-kek:" + id.String()),
		CreatedAt:  time.Now().UTC().Truncate(time.Microsecond),
	}
}

// newEvents returns n proposed events with random ids and fake MACs.
func newEvents(n int) []eventvault.ProposedEvent {
	evs := make([]eventvault.ProposedEvent, n)
	for i := range evs {
		id := uuid.New()
		evs[i] = eventvault.ProposedEvent{
			ID:         id,
			Type:       fmt.Sprintf("Thing%dHappened", i),
			ContentMAC: []byte("mac:" + id.String()),
		}
	}
	return evs
}

// payloadFor is the fake ciphertext Seal makes for an event at a position.
func payloadFor(id uuid.UUID, pos int64) []byte {
	return fmt.Appendf(nil, "sealed:%s:%d", id, pos)
}

// sealer is a SealFunc factory that records the first position of each call.
type sealer struct {
	mu    sync.Mutex
	calls []int64
}

func (s *sealer) record(first int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, first)
}

func (s *sealer) seal(evs []eventvault.ProposedEvent) eventvault.SealFunc {
	return func(first int64) ([][]byte, error) {
		s.record(first)
		out := make([][]byte, len(evs))
		for i, ev := range evs {
			out[i] = payloadFor(ev.ID, first+int64(i))
		}
		return out, nil
	}
}

func (s *sealer) Calls() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// tryAppend appends evs with a recording sealer and returns the first
// positions Seal was called with. A successful, non-replayed append goes
// into the ledger. Safe for concurrent use; it never fails the test.
func (h *harness) tryAppend(tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, expected eventvault.ExpectedVersion, evs []eventvault.ProposedEvent) (eventvault.AppendResult, []int64, error) {
	var s sealer
	return h.appendWith(tenant, eventvault.AppendRequest{
		Stream: stream, Expected: expected, KeyID: keyID, Events: evs, Seal: s.seal(evs),
	}, &s)
}

func (h *harness) appendWith(tenant eventvault.TenantID, req eventvault.AppendRequest, s *sealer) (eventvault.AppendResult, []int64, error) {
	before := time.Now()
	res, err := h.store.Append(h.ctx, tenant, req)
	after := time.Now()
	if err == nil && !res.Replayed && len(res.Events) == len(req.Events) {
		h.record(tenant, req.Stream, req.Events, res, before, after)
	}
	return res, s.Calls(), err
}

func (h *harness) record(tenant eventvault.TenantID, stream eventvault.StreamName, evs []eventvault.ProposedEvent, res eventvault.AppendResult, before, after time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.ledger[tenant]
	if m == nil {
		m = map[uuid.UUID]written{}
		h.ledger[tenant] = m
	}
	for i, ev := range evs {
		p := res.Events[i]
		m[ev.ID] = written{
			ev: eventvault.StoredEvent{
				ID: ev.ID, Stream: stream, Type: ev.Type,
				Position: p.Position, GlobalPosition: p.GlobalPosition,
				ContentMAC: ev.ContentMAC, Payload: payloadFor(ev.ID, p.Position),
			},
			before: before, after: after,
		}
	}
}

// mustAppend appends evs and checks the plain outcome of a write: Seal
// called once with the first position, contiguous positions, Version the
// last of them, not replayed.
func (h *harness) mustAppend(tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, expected eventvault.ExpectedVersion, evs []eventvault.ProposedEvent) eventvault.AppendResult {
	h.t.Helper()
	res, calls, err := h.tryAppend(tenant, stream, keyID, expected, evs)
	if err != nil {
		h.t.Fatalf("append %d events to %s/%s with expected version %s: %v", len(evs), tenant, stream, expected, err)
	}
	if res.Replayed {
		h.t.Fatalf("append of new events to %s/%s: Replayed = true", tenant, stream)
	}
	if res.Stream != stream {
		h.t.Errorf("AppendResult.Stream = %q, want %q", res.Stream, stream)
	}
	if len(res.Events) != len(evs) {
		h.t.Fatalf("AppendResult.Events has %d entries for %d events", len(res.Events), len(evs))
	}
	first := res.Events[0]
	for i, p := range res.Events {
		want := eventvault.Positions{Position: first.Position + int64(i), GlobalPosition: first.GlobalPosition + int64(i)}
		if p != want {
			h.t.Errorf("AppendResult.Events[%d] = %+v, want %+v (contiguous from the first)", i, p, want)
		}
	}
	if want := first.Position + int64(len(evs)) - 1; res.Version != want {
		h.t.Errorf("AppendResult.Version = %d, want %d (the last position)", res.Version, want)
	}
	if !slices.Equal(calls, []int64{first.Position}) {
		h.t.Errorf("Seal called with first positions %v, want exactly once with %d", calls, first.Position)
	}
	return res
}

// streamKey creates a fresh key for the stream and returns the stored one.
func (h *harness) streamKey(tenant eventvault.TenantID, stream eventvault.StreamName) eventvault.WrappedKey {
	h.t.Helper()
	k, err := h.store.CreateStreamKey(h.ctx, tenant, stream, newStreamKey())
	if err != nil {
		h.t.Fatalf("CreateStreamKey %s/%s: %v", tenant, stream, err)
	}
	return k
}

func (h *harness) readStream(tenant eventvault.TenantID, stream eventvault.StreamName, opts eventvault.ReadOptions) eventvault.StreamPage {
	h.t.Helper()
	page, err := h.store.ReadStream(h.ctx, tenant, stream, opts)
	if err != nil {
		h.t.Fatalf("ReadStream %s/%s %+v: %v", tenant, stream, opts, err)
	}
	return page
}

func (h *harness) readAll(tenant eventvault.TenantID, from int64, limit int) eventvault.AllPage {
	h.t.Helper()
	page, err := h.readPage(tenant, from, limit)
	if err != nil {
		h.t.Fatalf("ReadAll %s from %d limit %d: %v", tenant, from, limit, err)
	}
	return page
}

// readPage reads a page of the tenant's log with ReadAll or, in turn, with
// ReadAllTo through a receiver that checks what ReadAllTo promises of its
// calls and through one that also takes the keys on request, so that every
// read-all check of the suite holds of all three.
func (h *harness) readPage(tenant eventvault.TenantID, from int64, limit int) (eventvault.AllPage, error) {
	var r interface {
		eventvault.AllPageReceiver
		checked() *checkingReceiver
	}
	switch h.pages.Add(1) % 3 {
	case 1:
		return h.store.ReadAll(h.ctx, tenant, from, limit)
	case 2:
		r = &checkingReceiver{limit: limit}
	default:
		// Every third page through a receiver that takes the keys on
		// request and asks for them, so that every key check of the suite
		// holds of the keys read after the events too.
		r = &keysOnRequest{checkingReceiver: checkingReceiver{limit: limit}, want: true}
	}
	if err := h.store.ReadAllTo(h.ctx, tenant, from, limit, r); err != nil {
		return eventvault.AllPage{}, err
	}
	if r, ok := r.(*keysOnRequest); ok {
		r.finish()
	}
	return h.checkedPage(tenant, from, limit, r.checked())
}

// checkedPage reports what r noted of a ReadAllTo's calls and returns the
// page it gathered.
func (h *harness) checkedPage(tenant eventvault.TenantID, from int64, limit int, r *checkingReceiver) (eventvault.AllPage, error) {
	if r.problem != "" {
		h.t.Errorf("ReadAllTo %s from %d limit %d: %s", tenant, from, limit, r.problem)
	}
	if !r.headed {
		h.t.Errorf("ReadAllTo %s from %d limit %d returned without calling Head", tenant, from, limit)
	}
	return r.page, nil
}

// checkingReceiver gathers what ReadAllTo hands over and notes the first
// way in which it breaks its contract: Head once, before any event and
// with no events; chunks not empty; no more than limit events; no chunk
// that shares its array with another.
type checkingReceiver struct {
	limit   int
	headed  bool
	page    eventvault.AllPage
	problem string
}

func (r *checkingReceiver) checked() *checkingReceiver { return r }

// keysOnRequest is a checkingReceiver that takes the keys on request
// (eventvault.AllPageKeysOnRequest) and answers WantsKeys with want. It
// notes a store that asks WantsKeys of a page whose head had the keys, asks
// it twice or before an event it then hands over, or hands the keys when
// not asked or twice, or not when asked (finish).
type keysOnRequest struct {
	checkingReceiver
	want         bool
	keysInHead   bool
	asked, keyed int
	// headEpoch and keysEpoch are the key epochs of the head and the
	// keys.
	headEpoch, keysEpoch int64
}

func (r *keysOnRequest) Head(page eventvault.AllPage) error {
	r.keysInHead, r.headEpoch = page.Keys != nil, page.KeyEpoch
	return r.checkingReceiver.Head(page)
}

func (r *keysOnRequest) Events(chunk []eventvault.StoredEvent) error {
	if r.asked > 0 {
		r.note("Events called after WantsKeys")
	}
	return r.checkingReceiver.Events(chunk)
}

func (r *keysOnRequest) WantsKeys() bool {
	r.asked++
	switch {
	case !r.headed:
		r.note("WantsKeys asked before Head")
	case r.keysInHead:
		r.note("WantsKeys asked of a page whose head had the keys")
	case r.asked > 1:
		r.note("WantsKeys asked twice")
	}
	return r.want
}

func (r *keysOnRequest) Keys(keys map[eventvault.StreamName]eventvault.WrappedKey, epoch int64) error {
	r.keyed++
	r.keysEpoch = epoch
	switch {
	case r.asked == 0 || !r.want:
		r.note("Keys handed over without being asked for")
	case r.keyed > 1:
		r.note("Keys handed over twice")
	case keys == nil:
		r.note("Keys handed over a nil map")
	case epoch < r.headEpoch:
		r.note("Keys read at key epoch %d, before the page's %d", epoch, r.headEpoch)
	}
	r.page.Keys = keys
	return nil
}

// finish notes what a ReadAllTo that returned left undone: a head without
// keys and no WantsKeys, or keys asked for and never handed over.
func (r *keysOnRequest) finish() {
	switch {
	case !r.headed || r.keysInHead:
	case r.asked == 0:
		r.note("the head had no keys and WantsKeys was never asked")
	case r.want && r.keyed == 0:
		r.note("the keys were asked for and never handed over")
	}
}

func (r *checkingReceiver) note(format string, args ...any) {
	if r.problem == "" {
		r.problem = fmt.Sprintf(format, args...)
	}
}

func (r *checkingReceiver) Head(page eventvault.AllPage) error {
	switch {
	case r.headed:
		r.note("Head called twice")
	case page.Events != nil:
		r.note("Head handed %d events", len(page.Events))
	}
	r.headed = true
	r.page.Keys, r.page.Next = page.Keys, page.Next
	return nil
}

func (r *checkingReceiver) Events(chunk []eventvault.StoredEvent) error {
	switch {
	case !r.headed:
		r.note("Events called before Head")
	case len(chunk) == 0:
		r.note("Events called with an empty chunk")
	case len(r.page.Events)+len(chunk) > r.limit:
		r.note("%d events handed over, past the limit %d", len(r.page.Events)+len(chunk), r.limit)
	}
	// The chunk is the receiver's: write over it, as a receiver may, and
	// keep a copy of what it held.
	kept := slices.Clone(chunk)
	clear(chunk[:cap(chunk)])
	r.page.Events = append(r.page.Events, kept...)
	return nil
}

// allEvents pages through the tenant's whole log.
func (h *harness) allEvents(tenant eventvault.TenantID, limit int) []eventvault.StoredEvent {
	h.t.Helper()
	var all []eventvault.StoredEvent
	for from := int64(0); ; {
		page := h.readAll(tenant, from, limit)
		if len(page.Events) == 0 {
			return all
		}
		if len(page.Events) > limit {
			h.t.Fatalf("ReadAll with limit %d returned %d events", limit, len(page.Events))
		}
		last := page.Events[len(page.Events)-1].GlobalPosition
		if last < from {
			h.t.Fatalf("ReadAll from %d returned global position %d", from, last)
		}
		all = append(all, page.Events...)
		from = last + 1
	}
}

// version returns the stream's version, NoStream if it has no events.
func (h *harness) version(tenant eventvault.TenantID, stream eventvault.StreamName) int64 {
	h.t.Helper()
	page, err := h.store.ReadStream(h.ctx, tenant, stream, eventvault.ReadOptions{From: -1, Limit: 1, Backward: true})
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return eventvault.NoStream
	}
	if err != nil {
		h.t.Fatalf("ReadStream %s/%s backward from the end: %v", tenant, stream, err)
	}
	return page.Version
}

// snapshot is what the suite can see of a tenant: its log and the versions
// of some streams. Nothing-was-written checks compare two snapshots.
type snapshot struct {
	events   []eventvault.StoredEvent
	versions map[eventvault.StreamName]int64
}

func (h *harness) snapshot(tenant eventvault.TenantID, streams ...eventvault.StreamName) snapshot {
	h.t.Helper()
	s := snapshot{events: h.allEvents(tenant, 100), versions: map[eventvault.StreamName]int64{}}
	for _, st := range streams {
		s.versions[st] = h.version(tenant, st)
	}
	return s
}

// unchanged fails the test unless the tenant looks as it did in before.
func (h *harness) unchanged(tenant eventvault.TenantID, before snapshot) {
	h.t.Helper()
	after := h.snapshot(tenant, mapKeys(before.versions)...)
	if !slices.EqualFunc(before.events, after.events, eventsEqual) {
		h.t.Errorf("the log of %s changed: had %d events, now %d", tenant, len(before.events), len(after.events))
	}
	for st, v := range before.versions {
		if after.versions[st] != v {
			h.t.Errorf("stream %s/%s moved from version %d to %d", tenant, st, v, after.versions[st])
		}
	}
}

// checkEvents checks every event against what the suite appended.
func (h *harness) checkEvents(tenant eventvault.TenantID, got []eventvault.StoredEvent) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range got {
		w, ok := h.ledger[tenant][ev.ID]
		if !ok {
			h.t.Errorf("read event %s from tenant %s, which the suite never appended there", ev.ID, tenant)
			continue
		}
		want := w.ev
		if ev.Stream != want.Stream || ev.Type != want.Type || ev.Position != want.Position || ev.GlobalPosition != want.GlobalPosition {
			h.t.Errorf("event %s read as %s@%d (global %d, type %s), want %s@%d (global %d, type %s)",
				ev.ID, ev.Stream, ev.Position, ev.GlobalPosition, ev.Type, want.Stream, want.Position, want.GlobalPosition, want.Type)
		}
		// Pages of ReadAll and ReadStream may leave the MAC out (no
		// reader needs it); if it is there, it is the one appended.
		if ev.ContentMAC != nil && !bytes.Equal(ev.ContentMAC, want.ContentMAC) {
			h.t.Errorf("event %s: ContentMAC = %q, want %q", ev.ID, ev.ContentMAC, want.ContentMAC)
		}
		if !bytes.Equal(ev.Payload, want.Payload) {
			h.t.Errorf("event %s: Payload = %q, want %q", ev.ID, ev.Payload, want.Payload)
		}
		if ev.RecordedAt.Before(w.before.Add(-recordedAtSlack)) || ev.RecordedAt.After(w.after.Add(recordedAtSlack)) {
			h.t.Errorf("event %s: RecordedAt = %v, want between %v and %v", ev.ID, ev.RecordedAt, w.before, w.after)
		}
	}
}

// lookup returns the ledger's record of an appended event.
func (h *harness) lookup(tenant eventvault.TenantID, id uuid.UUID) eventvault.StoredEvent {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.ledger[tenant][id]
	if !ok {
		h.t.Fatalf("event %s was never appended to %s", id, tenant)
	}
	return w.ev
}
