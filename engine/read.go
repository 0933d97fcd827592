package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/policies"
)

// StreamSlice is what ReadStream returns.
type StreamSlice struct {
	Stream  eventvault.StreamName
	Version int64
	Events  []eventvault.Event
}

// ReadStream reads and opens a slice of one stream. Limit 0 means
// DefaultReadLimit.
// Errors: EINVALID for a bad stream name or limit; EFORBIDDEN without read;
// ENOTFOUND for a stream without events; EERASED when its key is destroyed;
// EINTERNAL when a payload fails authentication (it was moved or altered).
func (e *Events) ReadStream(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, opts eventvault.ReadOptions) (StreamSlice, error) {
	var d policies.Decision
	out, err := e.readStream(ctx, p, stream, opts, &d)
	if err != nil {
		return out, err
	}
	if d.AuditEach {
		// The policy wants this read recorded on its own: recorded before
		// the events are returned, or not returned.
		if err := eventvault.AppendAuditEvents(ctx, e.audit, e.auditStore, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: "read", Resource: streamResource(stream), Outcome: AuditOutcomeOK,
			Detail: map[string]any{"events": len(out.Events), "requests": 1, "by": d.By[0]}}); err != nil {
			return StreamSlice{}, err
		}
		return out, nil
	}
	e.reads.Read(p.Tenant, p.Actor(), "read", streamResource(stream), len(out.Events))
	return out, nil
}

func (e *Events) readStream(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, opts eventvault.ReadOptions, d *policies.Decision) (StreamSlice, error) {
	if err := eventvault.ValidateStream(stream); err != nil {
		return StreamSlice{}, err
	}
	var err error
	if *d, err = policies.Check(p, policies.Request{Tenant: p.Tenant, Action: policies.Read, Stream: stream}); err != nil {
		return StreamSlice{}, err
	}
	limit, err := readLimit(opts.Limit)
	if err != nil {
		return StreamSlice{}, err
	}
	opts.Limit = limit
	if err := opts.Validate(); err != nil {
		return StreamSlice{}, err
	}
	page, err := e.store.ReadStream(ctx, p.Tenant, stream, opts)
	if err != nil {
		return StreamSlice{}, fmt.Errorf("read %s: %w", stream, err)
	}
	if !page.ShreddedAt.IsZero() {
		at := page.ShreddedAt.UTC()
		return StreamSlice{}, &eventvault.Error{Code: eventvault.EERASED,
			Message: fmt.Sprintf("stream %s was erased at %s: its key was destroyed and its events can never be read again", stream, at.Format(time.RFC3339)),
			Fields:  map[string]any{"stream": string(stream), "erased": true, "erased_at": at}}
	}
	// The events' slice is openEvents's: one allocated here too would be
	// a page's worth of pointer-holding memory (192 bytes an event) the
	// collector scans and frees unused.
	out := StreamSlice{Stream: stream, Version: page.Version, Events: []eventvault.Event{}}
	if len(page.Events) == 0 {
		return out, nil
	}
	c, err := e.keys.OpenStreamCipher(ctx, p.Tenant, stream, page.Key)
	if err != nil {
		return StreamSlice{}, fmt.Errorf("key of stream %s: %w", stream, err)
	}
	out.Events, err = e.openEvents(ctx, p, page.Events, page.PIIGeneration, func(eventvault.StreamName) *evcrypto.StreamCipher { return c }, nil, true)
	if err != nil {
		return StreamSlice{}, err
	}
	return out, nil
}

// ReadAll reads and opens the tenant's events from global position from.
// It needs read on every stream ("*"). Limit 0 means DefaultReadLimit.
// Errors: as ReadStream; EINVALID (with the head) for a from past the
// tenant's next global position, which the feed refuses too: from equal
// to it is the next page of a reader at the end, an empty page.
func (e *Events) ReadAll(ctx context.Context, p eventvault.Principal, from int64, limit int) ([]eventvault.Event, error) {
	var d policies.Decision
	out, err := e.readAll(ctx, p, from, limit, &d)
	if err != nil {
		return out, err
	}
	if d.AuditEach {
		if err := eventvault.AppendAuditEvents(ctx, e.audit, e.auditStore, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: "read_all", Resource: auditResourceTenant, Outcome: AuditOutcomeOK,
			Detail: map[string]any{"events": len(out), "requests": 1, "by": d.By[0]}}); err != nil {
			return nil, err
		}
		return out, nil
	}
	e.reads.Read(p.Tenant, p.Actor(), "read_all", auditResourceTenant, len(out))
	return out, nil
}

func (e *Events) readAll(ctx context.Context, p eventvault.Principal, from int64, limit int, d *policies.Decision) ([]eventvault.Event, error) {
	var err error
	if *d, err = policies.Check(p, policies.Request{Tenant: p.Tenant, Action: policies.ReadAll}); err != nil {
		return nil, err
	}
	limit, err = readLimit(limit)
	if err != nil {
		return nil, err
	}
	if err := eventvault.ValidateReadAll(from, limit); err != nil {
		return nil, err
	}
	// The page is opened as the store hands it over (allPageOpener).
	o := newAllPageOpener(ctx, e, p, from, limit)
	err = e.store.ReadAllTo(ctx, p.Tenant, from, limit, o)
	out, manifests, err := o.finish(err)
	if err != nil {
		return nil, err
	}
	return e.resolveOpened(ctx, p, out, manifests, o.piiGen, nil, true)
}

// openAll opens a page of the tenant's events in global order for p: the
// one place where read-all decrypts and decides, shared by ReadAll and the
// feed (GET /v1/subscribe), so that what one returns the other does. A
// shredded stream's events come back as erased envelopes. own is
// openEvents's.
func (e *Events) openAll(ctx context.Context, p eventvault.Principal, page eventvault.AllPage, own bool) ([]eventvault.Event, error) {
	// The ciphers first, in page order (a key that fails fails the read
	// as it did event by event), then the events, a large page on more
	// than one core.
	ciphers := make(map[eventvault.StreamName]*evcrypto.StreamCipher)
	for _, se := range page.Events {
		if _, ok := ciphers[se.Stream]; ok || page.Keys[se.Stream].ID == uuid.Nil {
			continue
		}
		c, err := e.keys.OpenStreamCipher(ctx, p.Tenant, se.Stream, page.Keys[se.Stream])
		if err != nil {
			return nil, fmt.Errorf("key of stream %s: %w", se.Stream, err)
		}
		ciphers[se.Stream] = c
	}
	return e.openEvents(ctx, p, page.Events, page.PIIGeneration, func(s eventvault.StreamName) *evcrypto.StreamCipher { return ciphers[s] }, nil, own)
}

// openEvents opens a page of stored events for p and resolves their
// personal values field by field (resolvePII, with decide, or p's policies
// when decide is nil). It is the one path by which events leave the engine:
// stream reads, read-all, subject exports and subscriptions all take it, so
// that one policy decides every field wherever it is read. piiGen is the
// tenant's PII generation of the page's snapshot (StreamPage.PIIGeneration;
// unknownPIIGeneration if the read has none). cipherOf returns
// the cipher of a stream's key, or nil for a shredded stream, whose events
// come back as envelopes marked erased (global order holds). A large page
// is opened on more than one core (openPage). own says that the caller
// owns stored, a page read for this call alone: payloads are then
// decrypted in place (overwritten, the events' data aliasing them) instead
// of into new memory. A page shared with other readers (the feed's) is not.
// Errors: EINTERNAL when a payload or a value fails authentication; the
// PII store's codes.
func (e *Events) openEvents(ctx context.Context, p eventvault.Principal, stored []eventvault.StoredEvent, piiGen int64, cipherOf func(eventvault.StreamName) *evcrypto.StreamCipher, decide piiDecider, own bool) ([]eventvault.Event, error) {
	out := make([]eventvault.Event, len(stored))
	manifests := make([][]byte, len(stored))
	err := openPage(len(stored), func(i int) error {
		se := stored[i]
		c := cipherOf(se.Stream)
		if c == nil {
			out[i] = eventvault.Event{ID: se.ID, Stream: se.Stream, Type: se.Type, Position: se.Position,
				GlobalPosition: se.GlobalPosition, RecordedAt: se.RecordedAt, Erased: true}
			return nil
		}
		var err error
		out[i], manifests[i], err = open(c, p.Tenant, se, own)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A page shared with other readers (the feed's) or an export's is
	// whole; a page read for one caller is bounded.
	return e.resolveOpened(ctx, p, out, manifests, piiGen, decide, own)
}

// resolveOpened resolves the personal values of opened events, manifests
// as open returned them (openEvents's second half), with the page's PII
// generation piiGen, and returns the events: if bounded, those of the
// first eventvault.MaxPageBytes of data and metadata with their values in
// place (at least one), so that values kept apart do not make a page
// larger than the store's pages; else all. Errors: as openEvents.
func (e *Events) resolveOpened(ctx context.Context, p eventvault.Principal, out []eventvault.Event, manifests [][]byte, piiGen int64, decide piiDecider, bounded bool) ([]eventvault.Event, error) {
	if !slices.ContainsFunc(manifests, func(m []byte) bool { return m != nil }) {
		return out, nil // nothing marked: no decisions to make
	}
	if decide == nil {
		decide = policyDecider(p)
	}
	reads, cut, err := e.resolvePII(ctx, p.Tenant, out, manifests, piiGen, decide, bounded)
	if err != nil {
		return nil, err
	}
	e.recordPIIReads(p, reads)
	return out[:cut], nil
}

// open opens one stored event, in place if inPlace (see openEvents), and
// returns its manifest of personal values (nil if it marks none).
func open(c *evcrypto.StreamCipher, tenant eventvault.TenantID, se eventvault.StoredEvent, inPlace bool) (eventvault.Event, []byte, error) {
	ref := evcrypto.EventRef{Tenant: tenant, Stream: se.Stream, ID: se.ID, Position: se.Position, Type: se.Type}
	openEvent := c.OpenEventPII
	if inPlace {
		openEvent = c.OpenEventPIIInPlace
	}
	data, md, manifest, err := openEvent(ref, se.Payload)
	if err != nil {
		return eventvault.Event{}, nil, fmt.Errorf("open event %s: %w", se.ID, err)
	}
	return eventvault.Event{
		ID:             se.ID,
		Stream:         se.Stream,
		Type:           se.Type,
		Data:           data,
		Metadata:       md,
		Position:       se.Position,
		GlobalPosition: se.GlobalPosition,
		RecordedAt:     se.RecordedAt,
	}, manifest, nil
}

// readLimit applies the engine's bounds on top of the stores' rule
// (ReadOptions.Validate and ValidateReadAll, which refuse a negative limit):
// 0 means DefaultReadLimit, and no read returns more than MaxReadLimit
// events.
func readLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultReadLimit, nil
	case limit > MaxReadLimit:
		return 0, eventvault.Errorf(eventvault.EINVALID, "limit must be between 1 and %d", MaxReadLimit)
	}
	return limit, nil
}
