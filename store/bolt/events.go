package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// Append writes a batch atomically, in bbolt's single write transaction, so
// that versions are checked and positions assigned in commit order. The
// checks run in the order storetest fixes: the request, the stream's key,
// idempotency, the expected version; Seal runs last, once the positions are
// fixed, and only for a batch that will be written.
// The first append that names a subject makes it the stream's owner.
// With req.NewKey the stream's key record is written by the same
// transaction, and only if the append writes (see newStream); any refusal
// rolls the transaction back, so it leaves no record behind.
// Errors: EINVALID for a malformed request; ENOTFOUND if the stream has no
// key and req.NewKey is nil; ECONFLICT wrapping ErrStreamKeyExists or
// ErrKEKRetired for a req.NewKey the store cannot take; EERASED if the stream was shredded or req.KeyID is not its key;
// ECONFLICT for a subject other than the stream's owner, an expected
// version that does not hold or an event id reused; the Seal's error;
// EINTERNAL if Seal returns the wrong number of payloads.
func (db *DB) Append(ctx context.Context, tenant eventvault.TenantID, req eventvault.AppendRequest) (eventvault.AppendResult, error) {
	const op = "bolt.Append"
	if err := req.Validate(tenant); err != nil {
		return eventvault.AppendResult{}, err
	}
	if req.Subject != "" {
		if err := eventvault.ValidatePseudonym(req.Subject); err != nil {
			return eventvault.AppendResult{}, err
		}
	}
	if len(req.PII) > 0 {
		if err := eventvault.ValidatePIIValues(tenant, req.PII); err != nil {
			return eventvault.AppendResult{}, err
		}
	}
	var res eventvault.AppendResult
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		var tb *tenantBuckets
		var head streamRecord
		var err error
		if req.NewKey != nil {
			tb, head, err = newStream(tx, op, tenant, req.Stream, *req.NewKey)
		} else {
			tb, head, err = existingStream(tx, op, tenant, req.Stream, noStreamKey)
		}
		if err != nil {
			return err
		}
		if head.Shred != nil {
			return streamShredded(tx, op, tenant, req.Stream)
		}
		if head.Key.ID != req.KeyID {
			return &eventvault.Error{
				Code: eventvault.EERASED, Op: op,
				Message: fmt.Sprintf("stream %s is no longer protected by the key the events were sealed with; nothing was appended", req.Stream),
			}
		}
		if req.Subject != "" && head.Subject != "" && head.Subject != req.Subject {
			return eventvault.OwnerConflictError(op, req.Stream)
		}
		if replay, ok, err := tb.replay(op, req); err != nil || ok {
			res = replay
			return err
		}
		if !req.Expected.Check(head.Version) {
			return eventvault.ConflictError(op, req.Stream, req.Expected, head.Version)
		}
		if req.Subject != "" && head.Subject == "" {
			head.Subject = req.Subject
			if err := recordOwner(tx, tenant, req.Subject, req.Stream); err != nil {
				return err
			}
		}
		if res, err = db.write(op, tb, req, head); err != nil {
			return err
		}
		// The personal values commit with their events, or neither does.
		if err := db.writeAppendPII(tx, op, tenant, req.Stream, req.PII); err != nil {
			return err
		}
		// The append's audit record commits with it, or neither does.
		if req.Audit != nil {
			line, err := req.Audit(res.Events[0].Position)
			if err != nil {
				return fmt.Errorf("audit record of the append: %w", err)
			}
			if _, err := appendAudit(tx, tenant, [][]byte{line}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return eventvault.AppendResult{}, err
	}
	return res, nil
}

// newStream is the record of a stream that gets its first key, k, with
// the append: checked as CreateStreamKey checks it (the tenant's and the
// KEK's fences), and not yet put: write puts it with the events, so that a
// refused append leaves no record.
func newStream(tx *bbolt.Tx, op string, tenant eventvault.TenantID, stream eventvault.StreamName, k eventvault.WrappedKey) (*tenantBuckets, streamRecord, error) {
	if err := checkTenantLive(tx, op, tenant); err != nil {
		return nil, streamRecord{}, err
	}
	if err := checkKEKLive(tx, op, tenant, k.KEKVersion); err != nil {
		var e *eventvault.Error
		if errors.As(err, &e) {
			e.Err = eventvault.ErrKEKRetired
		}
		return nil, streamRecord{}, err
	}
	tb, err := writeTenant(tx, tenant)
	if err != nil {
		return nil, streamRecord{}, err
	}
	rec, found, err := tb.stream(stream)
	switch {
	case err != nil:
		return nil, streamRecord{}, err
	case found && rec.Shred != nil:
		return nil, streamRecord{}, streamShredded(tx, op, tenant, stream)
	case found:
		return nil, streamRecord{}, eventvault.StreamKeyExistsError(op, stream)
	}
	return tb, streamRecord{Version: eventvault.NoStream, Key: toKeyRecord(k)}, nil
}

// replay looks the batch's ids up in the tenant's id index and lets
// eventvault.Replay decide. An event of another stream is not read: Replay
// refuses it on the stream alone.
func (tb *tenantBuckets) replay(op string, req eventvault.AppendRequest) (eventvault.AppendResult, bool, error) {
	prior := make(map[uuid.UUID]eventvault.PriorEvent)
	for _, ev := range req.Events {
		loc := tb.ids.Get(ev.ID[:])
		if loc == nil {
			continue
		}
		stream, pos, err := decodeLocator(loc)
		if err != nil {
			return eventvault.AppendResult{}, false, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		p := eventvault.PriorEvent{Stream: stream, Position: pos}
		if stream == req.Stream {
			rec, err := tb.event(stream, pos)
			if err != nil {
				return eventvault.AppendResult{}, false, err
			}
			p.GlobalPosition, p.ContentMAC = rec.GlobalPosition, rec.ContentMAC
		}
		prior[ev.ID] = p
	}
	return eventvault.Replay(op, req, prior)
}

// write seals the batch at the stream's next position and stores it.
func (db *DB) write(op string, tb *tenantBuckets, req eventvault.AppendRequest, head streamRecord) (eventvault.AppendResult, error) {
	first := head.Version + 1
	payloads, err := req.Seal(first)
	if err != nil {
		return eventvault.AppendResult{}, fmt.Errorf("seal %d events of stream %s: %w", len(req.Events), req.Stream, err)
	}
	if len(payloads) != len(req.Events) {
		return eventvault.AppendResult{}, internal(op, fmt.Errorf("seal returned %d payloads for %d events", len(payloads), len(req.Events)))
	}

	events, err := tb.events.CreateBucketIfNotExists([]byte(req.Stream))
	if err != nil {
		return eventvault.AppendResult{}, fmt.Errorf("create events bucket of stream %s: %w", req.Stream, err)
	}
	global := int64(tb.log.Sequence())
	now := db.now().UTC().Truncate(time.Microsecond)
	res := eventvault.AppendResult{Stream: req.Stream, Events: make([]eventvault.Positions, len(req.Events))}
	for i, ev := range req.Events {
		p := eventvault.Positions{Position: first + int64(i), GlobalPosition: global + int64(i)}
		rec := encodeEvent(eventRecord{
			ID: ev.ID, GlobalPosition: p.GlobalPosition, RecordedAt: now,
			Type: ev.Type, ContentMAC: ev.ContentMAC, Payload: payloads[i],
		})
		loc := encodeLocator(req.Stream, p.Position)
		if err := events.Put(be64(p.Position), rec); err != nil {
			return eventvault.AppendResult{}, fmt.Errorf("put event %s: %w", ev.ID, err)
		}
		if err := tb.log.Put(be64(p.GlobalPosition), loc); err != nil {
			return eventvault.AppendResult{}, fmt.Errorf("put log entry %d: %w", p.GlobalPosition, err)
		}
		if err := tb.ids.Put(clone(ev.ID[:]), loc); err != nil {
			return eventvault.AppendResult{}, fmt.Errorf("put id %s: %w", ev.ID, err)
		}
		res.Events[i] = p
	}
	if err := tb.log.SetSequence(uint64(global) + uint64(len(req.Events))); err != nil {
		return eventvault.AppendResult{}, fmt.Errorf("advance global position: %w", err)
	}
	head.Version = first + int64(len(req.Events)) - 1
	if err := tb.putStream(req.Stream, head); err != nil {
		return eventvault.AppendResult{}, err
	}
	res.Version = head.Version
	return res, nil
}

// event reads the event at a stream position.
func (tb *tenantBuckets) event(stream eventvault.StreamName, pos int64) (eventRecord, error) {
	b := tb.events.Bucket([]byte(stream))
	if b == nil {
		return eventRecord{}, fmt.Errorf("stream %s has no events bucket", stream)
	}
	v := b.Get(be64(pos))
	if v == nil {
		return eventRecord{}, fmt.Errorf("stream %s has no event at %d", stream, pos)
	}
	rec, err := decodeEvent(v)
	if err != nil {
		return eventRecord{}, fmt.Errorf("stream %s position %d: %w", stream, pos, err)
	}
	return rec, nil
}

func storedEvent(stream eventvault.StreamName, pos int64, r eventRecord) eventvault.StoredEvent {
	return eventvault.StoredEvent{
		ID: r.ID, Stream: stream, Type: r.Type, Position: pos, GlobalPosition: r.GlobalPosition,
		RecordedAt: r.RecordedAt, ContentMAC: r.ContentMAC, Payload: r.Payload,
	}
}

// ReadStream returns up to opts.Limit events of one stream (fewer when
// their payloads would pass eventvault.MaxPageBytes) with the key that
// protects it, read in one transaction. A shredded stream's page has
// ShreddedAt, a zero key and the envelopes of the events not purged; it is a
// page even when none are left.
// Errors: ENOTFOUND if the stream has no events and was never shredded;
// EINVALID for a malformed name or options.
func (db *DB) ReadStream(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, opts eventvault.ReadOptions) (eventvault.StreamPage, error) {
	const op = "bolt.ReadStream"
	if err := validateStream(tenant, stream); err != nil {
		return eventvault.StreamPage{}, err
	}
	if err := opts.Validate(); err != nil {
		return eventvault.StreamPage{}, err
	}
	var page eventvault.StreamPage
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		notFound := &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s has no events", stream)}
		tb := readTenant(tx, tenant)
		if tb == nil {
			return notFound
		}
		head, found, err := tb.stream(stream)
		if err != nil {
			return err
		}
		if !found || (head.Version == eventvault.NoStream && head.Shred == nil) {
			return notFound
		}
		page.Version, page.PIIGeneration = head.Version, db.piiGeneration(tx)
		if head.Shred != nil {
			page.ShreddedAt = head.Shred.At
		} else {
			page.Key = head.Key.wrappedKey()
		}
		b := tb.events.Bucket([]byte(stream))
		if b == nil && head.Shred != nil {
			return nil // purged, or shredded before its first event
		}
		if b == nil {
			return fmt.Errorf("stream %s at version %d has no events bucket", stream, head.Version)
		}

		c := b.Cursor()
		var k, v []byte
		switch {
		case !opts.Backward:
			k, v = c.Seek(be64(opts.From))
		case opts.From == -1 || opts.From > head.Version:
			k, v = c.Last()
		default:
			k, v = c.Seek(be64(opts.From))
		}
		size := 0 // payload bytes in the page: eventvault.MaxPageBytes
		for ; k != nil && len(page.Events) < opts.Limit; k, v = step(c, opts.Backward) {
			rec, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("stream %s: %w", stream, err)
			}
			se := storedEvent(stream, int64(u64(k)), rec)
			if eventvault.PageFull(len(page.Events), size, len(se.Payload)) {
				break
			}
			size += len(se.Payload)
			page.Events = append(page.Events, se)
		}
		return nil
	})
	if err != nil {
		return eventvault.StreamPage{}, err
	}
	return page, nil
}

func step(c *bbolt.Cursor, backward bool) ([]byte, []byte) {
	if backward {
		return c.Prev()
	}
	return c.Next()
}

// ReadAllTo reads the page ReadAll reads, in one transaction, and then
// hands it to r: its head, then its events in one chunk (an embedded store
// has no network transfer to overlap).
// Errors: as ReadAll; r's as r returned it.
func (db *DB) ReadAllTo(ctx context.Context, tenant eventvault.TenantID, from int64, limit int, r eventvault.AllPageReceiver) error {
	page, err := db.ReadAll(ctx, tenant, from, limit)
	if err != nil {
		return err
	}
	events := page.Events
	page.Events = nil
	if err := r.Head(page); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	return r.Events(events[:len(events):len(events)])
}

// ReadAll returns up to limit events of the tenant with global position >=
// from, in global order (fewer when their payloads would pass
// eventvault.MaxPageBytes), with the keys of their streams (the zero key
// for a shredded stream) and the tenant's next global position, read in
// one transaction. The positions of purged events are gone: a page skips
// them.
// Errors: EINVALID for a malformed tenant, a negative from or a limit that
// is not positive.
func (db *DB) ReadAll(ctx context.Context, tenant eventvault.TenantID, from int64, limit int) (eventvault.AllPage, error) {
	const op = "bolt.ReadAll"
	if err := validateTenant(tenant); err != nil {
		return eventvault.AllPage{}, err
	}
	if err := eventvault.ValidateReadAll(from, limit); err != nil {
		return eventvault.AllPage{}, err
	}
	page := eventvault.AllPage{Keys: map[eventvault.StreamName]eventvault.WrappedKey{}}
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		tb := readTenant(tx, tenant)
		if tb == nil {
			return nil
		}
		page.Next, page.PIIGeneration = int64(tb.log.Sequence()), db.piiGeneration(tx)
		c := tb.log.Cursor()
		size := 0 // payload bytes in the page: eventvault.MaxPageBytes
		for k, loc := c.Seek(be64(from)); k != nil && len(page.Events) < limit; k, loc = c.Next() {
			stream, pos, err := decodeLocator(loc)
			if err != nil {
				return fmt.Errorf("log entry %d: %w", u64(k), err)
			}
			rec, err := tb.event(stream, pos)
			if err != nil {
				return err
			}
			se := storedEvent(stream, pos, rec)
			if eventvault.PageFull(len(page.Events), size, len(se.Payload)) {
				break
			}
			size += len(se.Payload)
			page.Events = append(page.Events, se)
			if _, ok := page.Keys[stream]; ok {
				continue
			}
			head, found, err := tb.stream(stream)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("stream %s has events and no record", stream)
			}
			if head.Shred != nil {
				page.Keys[stream] = eventvault.WrappedKey{}
				continue
			}
			page.Keys[stream] = head.Key.wrappedKey()
		}
		return nil
	})
	if err != nil {
		return eventvault.AllPage{}, err
	}
	return page, nil
}
