package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/policies"
)

// Limits of one call. The HTTP layer documents them.
const (
	MaxBatchEvents   = 500
	DefaultReadLimit = 100
	MaxReadLimit     = 1000
)

// Events appends and reads events on behalf of a principal.
type Events struct {
	store  eventvault.EventStore
	keys   StreamKeys
	pseud  Pseudonymizer
	logger *slog.Logger
	// reads gathers reads into audit records; nil records none.
	reads *ReadLog
	// audit records appends in their transaction; nil records none.
	audit eventvault.AuditRecorder
	// auditStore writes the reads a policy wants recorded one by one.
	auditStore eventvault.AuditStore
	// feed, when set, is woken after each append commits (WithFeed).
	feed *Feed
	// subjects and pii keep personal values apart (WithPII); nil: none.
	subjects SubjectKeys
	pii      eventvault.PIIStore
	// piiCache keeps the ciphertext of values reads fetched.
	piiCache *piiCache
	// subjectStates keeps the subject states of pages, by PII generation.
	subjectStates *subjectStateCache
}

// StreamKeys is what appends and reads need of the keyring:
// crypto.Keyring implements it. Unwrapped keys stay behind it; a
// StreamCipher seals and opens without handing out its key.
type StreamKeys interface {
	// LoadStreamCipher returns the cipher of the stream's stored key for
	// an append, creating nothing. Errors: ENOTFOUND for a stream without
	// a key row; EERASED for a shredded stream or tenant; the store's and
	// root key's codes.
	LoadStreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (*evcrypto.StreamCipher, error)
	// NewStreamKey makes a key for the first append to a stream without a
	// key row, storing nothing of it (the append carries it: see
	// eventvault.AppendRequest.NewKey). It creates the tenant's KEK if the
	// tenant has none. Errors: EERASED for a shredded tenant; the store's
	// and root key's codes.
	NewStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (evcrypto.NewStreamKey, error)
	// KeepStreamKey caches a new key once the append that stored it
	// committed.
	KeepStreamKey(tenant eventvault.TenantID, stream eventvault.StreamName, nk evcrypto.NewStreamKey)
	// OpenStreamCipher returns the cipher of wk, the key row read with the
	// events it opens. Errors: EERASED for a shredded key; EINTERNAL for a
	// row that does not authenticate.
	OpenStreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey) (*evcrypto.StreamCipher, error)
	// CachedStreamCipher returns the cipher of wk if it is cached for that
	// very row, as OpenStreamCipher serves it, and false otherwise, with
	// no store or root key call: what a reader still receiving a page may
	// use.
	CachedStreamCipher(tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey) (*evcrypto.StreamCipher, bool)
	// CachedStreamCipherAt returns the stream's cached cipher if a read
	// checked its key row at key epoch epoch (eventvault.AllPage.KeyEpoch),
	// and false otherwise, with no store or root key call; a page read at
	// that epoch may use it without its key row.
	CachedStreamCipherAt(tenant eventvault.TenantID, stream eventvault.StreamName, epoch int64) (*evcrypto.StreamCipher, bool)
	// MarkStreamKeyChecked records that wk, whose cipher is cached, is the
	// stream's key row on a snapshot at key epoch epoch.
	MarkStreamKeyChecked(tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey, epoch int64)
	// EvictStream forgets a cached stream key the store no longer holds.
	EvictStream(tenant eventvault.TenantID, stream eventvault.StreamName)
	// EvictTenant forgets every cached key of the tenant, its KEK included:
	// a crypto-period on another node destroyed the KEK version it holds.
	EvictTenant(tenant eventvault.TenantID)
}

// Pseudonymizer turns a subject id into its pseudonym within a tenant:
// pseudonym.Key implements it.
type Pseudonymizer interface {
	Pseudonym(tenant eventvault.TenantID, subject string) eventvault.Pseudonym
}

// EventsOption configures Events.
type EventsOption func(*Events)

// WithPseudonymizer lets appends name the data subject who owns a stream;
// without it, an append that names one is refused.
func WithPseudonymizer(p Pseudonymizer) EventsOption {
	return func(e *Events) { e.pseud = p }
}

// WithAudit records appends in the transaction that writes them and reads
// through reads (gathered per window).
func WithAudit(rec eventvault.AuditRecorder, reads *ReadLog) EventsOption {
	return func(e *Events) {
		e.audit, e.reads = rec, reads
		if reads != nil {
			e.auditStore = reads.store
		}
	}
}

// NewEvents returns Events over store and keys. logger may be nil.
func NewEvents(store eventvault.EventStore, keys StreamKeys, logger *slog.Logger, opts ...EventsOption) *Events {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Events{store: store, keys: keys, logger: logger, piiCache: newPIICache(), subjectStates: newSubjectStateCache()}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Append seals events under the stream's key and appends them atomically.
// Data and metadata must be JSON; they are stored compacted.
// Errors: EINVALID for a bad stream name, batch or event; ETOOLARGE for a
// batch over MaxBatchEvents; EFORBIDDEN without the append capability;
// ECONFLICT for an expected version that does not hold or a reused id.
func (e *Events) Append(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, expected eventvault.ExpectedVersion, events []eventvault.NewEvent) (eventvault.AppendResult, error) {
	return e.AppendForSubject(ctx, p, stream, "", expected, events)
}

// AppendForSubject is Append naming the data subject who owns the stream
// (empty for none). The subject id is kept only as its pseudonym; erasing
// the subject shreds the stream.
// A refused append writes nothing, not even the stream's first key (see
// appendOnce). To a principal without read on the stream, every conflict
// of the append (version, owner, an event id used in another stream or
// with other content, a batch mixing stored and new ids) is one ECONFLICT
// with StateConflictMessage and no fields; with read, each is told. The
// erasure fence (an erased stream or tenant) stays its own ECONFLICT: it
// says the stream is closed, nothing about who owns it. A replay (the same
// ids with the same content, on the same stream) is a replay for anyone:
// only the writer holds them.
// Errors: as Append; ECONFLICT if the stream is owned by another subject
// or was erased; EINVALID for a bad subject id or a server without a
// pseudonym key.
func (e *Events) AppendForSubject(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, subject string, expected eventvault.ExpectedVersion, events []eventvault.NewEvent) (eventvault.AppendResult, error) {
	if err := eventvault.ValidateStream(stream); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := refuseReserved(stream); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := refuseReservedTypes(events); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := validateBatch(events); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := validatePII(events); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := authorizeAppend(p, stream, events); err != nil {
		return eventvault.AppendResult{}, err
	}
	var owner eventvault.Pseudonym
	if subject != "" {
		if err := eventvault.ValidateNewSubject(subject); err != nil {
			return eventvault.AppendResult{}, eventvault.AtPointer(err, "/subject")
		}
		if e.pseud == nil {
			return eventvault.AppendResult{}, eventvault.Errorf(eventvault.EINVALID, "this server has no pseudonym key, so appends cannot name a subject")
		}
		owner = e.pseud.Pseudonym(p.Tenant, subject)
	}
	// A stream key cached here may have been replaced by another node; the
	// store refuses a payload sealed under a key that is no longer the
	// stream's (EERASED), and one retry with a fresh key settles it. A new
	// stream's first key may lose to another writer's (ErrStreamKeyExists)
	// or be wrapped under a KEK version another node destroyed
	// (ErrKEKRetired): a retry loads the stored key, or the newest KEK.
	pii, err := e.preparePII(ctx, p.Tenant, events)
	if errors.Is(err, eventvault.ErrTenantShredded) {
		return eventvault.AppendResult{}, tenantShreddedConflict(p.Tenant, stream, err)
	}
	if err != nil {
		return eventvault.AppendResult{}, err
	}
	var res eventvault.AppendResult
	for attempt := 0; ; attempt++ {
		res, err = e.appendOnce(ctx, p.Tenant, p.Actor(), stream, owner, expected, events, pii)
		if errors.Is(err, eventvault.ErrSubjectErased) && pii != nil {
			// Erased meanwhile (perhaps on another node): the fence.
			for _, s := range pii.subjects {
				e.subjects.EvictSubject(p.Tenant, s)
			}
			return eventvault.AppendResult{}, subjectErasedConflict(err)
		}
		if attempt < 2 && errors.Is(err, eventvault.ErrStreamKeyExists) {
			e.keys.EvictStream(p.Tenant, stream)
			continue
		}
		if attempt < 2 && errors.Is(err, eventvault.ErrKEKRetired) {
			e.keys.EvictTenant(p.Tenant)
			continue
		}
		if eventvault.ErrorCode(err) == eventvault.EERASED && attempt == 0 {
			e.keys.EvictStream(p.Tenant, stream)
			continue
		}
		break
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, eventvault.ErrTenantShredded):
		return eventvault.AppendResult{}, tenantShreddedConflict(p.Tenant, stream, err)
	case eventvault.ErrorCode(err) == eventvault.EERASED:
		// The erasure fence: an erased stream never takes new events
		// under a fresh key.
		return eventvault.AppendResult{}, &eventvault.Error{Code: eventvault.ECONFLICT, Err: err,
			Message: fmt.Sprintf("stream %s, or its tenant, was erased: it takes no new events; an erased stream stays closed, so append to a new one", stream),
			Fields:  map[string]any{"stream": string(stream), "erased": true}}
	case eventvault.ErrorCode(err) == eventvault.ECONFLICT:
		// Every other conflict of an append (version, owner, an id used in
		// another stream or with other content, a batch mixing stored and
		// new ids) is the one answer to a caller without read.
		if policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Read, Stream: stream}) != nil {
			return eventvault.AppendResult{}, stateConflict(err)
		}
	}
	return eventvault.AppendResult{}, err
}

// tenantShreddedConflict is the ECONFLICT of an append to a stream of a
// shredded tenant. No stream of it takes events again, old or new:
// advising another stream, as for a shredded stream, would send the
// caller round in circles.
func tenantShreddedConflict(tenant eventvault.TenantID, stream eventvault.StreamName, cause error) error {
	return &eventvault.Error{Code: eventvault.ECONFLICT, Err: cause,
		Message: fmt.Sprintf("tenant %s was shredded: none of its streams, old or new, takes events again, and nothing was appended; its data is gone for good", tenant),
		Fields:  map[string]any{"stream": string(stream), "tenant": string(tenant), "erased": true}}
}

// StateConflictMessage is the one answer to every conflict of a refused
// append but the erasure fence, for a caller without read on the stream.
const StateConflictMessage = "the append conflicts with the stream's current state or with events already stored: its version, its owning subject, or an event id used before; a token with read on the stream is told which"

// stateConflict is the ECONFLICT a caller without read on the stream gets
// for a version conflict and for an owner conflict alike: one message, no
// fields. Told apart, the two would let an append-only token learn who
// owns a stream it cannot read (the right subject with a version far
// ahead gets a version conflict, a wrong one an owner conflict), and
// the actual version would tell it how long the stream is. Event ids
// count too: an id the caller wrote elsewhere, sent with a guessed
// subject and no_stream, would otherwise be "used by another stream"
// only once the guess passed the owner check.
func stateConflict(cause error) error {
	return &eventvault.Error{Code: eventvault.ECONFLICT, Op: "engine.Append", Message: StateConflictMessage, Err: cause}
}

// appendOnce seals and appends the batch under the stream's key. A stream
// without a key row has no events, so an expected version that needs
// events is refused at once, with the store's conflict, and no key is
// made; otherwise a new key rides with the append (AppendRequest.NewKey),
// stored only if the append commits, and cached only then.
func (e *Events) appendOnce(ctx context.Context, tenant eventvault.TenantID, actor string, stream eventvault.StreamName, owner eventvault.Pseudonym, expected eventvault.ExpectedVersion, events []eventvault.NewEvent, pii *piiBatch) (eventvault.AppendResult, error) {
	var newKey *evcrypto.NewStreamKey
	c, err := e.keys.LoadStreamCipher(ctx, tenant, stream)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		if !expected.Check(eventvault.NoStream) {
			return eventvault.AppendResult{}, eventvault.ConflictError("engine.Append", stream, expected, eventvault.NoStream)
		}
		nk, nerr := e.keys.NewStreamKey(ctx, tenant, stream)
		c, err, newKey = nk.Cipher, nerr, &nk
	}
	if err != nil {
		return eventvault.AppendResult{}, fmt.Errorf("key of stream %s: %w", stream, err)
	}
	proposed := make([]eventvault.ProposedEvent, len(events))
	for i, ev := range events {
		data := ev.Data
		if pii != nil {
			data = pii.macData[i]
		}
		proposed[i] = eventvault.ProposedEvent{ID: ev.ID, Type: ev.Type, ContentMAC: c.ContentMAC(ev.Type, data, ev.Metadata)}
	}
	seal := func(first int64) ([][]byte, error) {
		out := make([][]byte, len(events))
		for i, ev := range events {
			ref := evcrypto.EventRef{Tenant: tenant, Stream: stream, ID: ev.ID, Position: first + int64(i), Type: ev.Type}
			data, manifest := ev.Data, []byte(nil)
			if pii != nil {
				data, manifest = pii.sealData[i], pii.manifests[i]
			}
			sealed, err := c.SealEventPII(ref, data, ev.Metadata, manifest)
			if err != nil {
				return nil, fmt.Errorf("seal event %s: %w", ev.ID, err)
			}
			out[i] = sealed
		}
		return out, nil
	}
	req := eventvault.AppendRequest{
		Stream:   stream,
		Expected: expected,
		KeyID:    c.KeyID(),
		Subject:  owner,
		Events:   proposed,
		Seal:     seal,
	}
	if pii != nil {
		req.PII = pii.values
	}
	if newKey != nil {
		req.NewKey = &newKey.Wrapped
	}
	if e.audit != nil {
		req.Audit = func(first int64) ([]byte, error) {
			detail := map[string]any{"count": len(events), "first_position": first, "last_position": first + int64(len(events)) - 1}
			if pii != nil {
				detail["pii_values"] = len(pii.values)
			}
			lines, err := e.audit.Lines(ctx, eventvault.AuditEvent{Tenant: tenant, Actor: actor, Action: AuditAppend, Resource: streamResource(stream), Outcome: AuditOutcomeOK,
				Detail: detail})
			if err != nil {
				return nil, err
			}
			return lines.Lines[0], nil
		}
	}
	res, err := e.store.Append(ctx, tenant, req)
	if err != nil {
		return eventvault.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
	}
	if newKey != nil {
		e.keys.KeepStreamKey(tenant, stream, *newKey)
	}
	if e.feed != nil && !res.Replayed {
		e.feed.Notify(tenant)
	}
	return res, nil
}

func validateBatch(events []eventvault.NewEvent) error {
	if len(events) == 0 {
		return eventvault.FieldErrorf("/events", "the batch is empty: send at least one event in \"events\"")
	}
	if len(events) > MaxBatchEvents {
		return eventvault.Errorf(eventvault.ETOOLARGE, "the batch holds %d events; the limit is %d per request: split it", len(events), MaxBatchEvents)
	}
	seen := make(map[uuid.UUID]int, len(events))
	for i, ev := range events {
		if ev.ID == uuid.Nil {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/id", i), "events[%d].id is missing or the nil UUID: give every event a UUID of your choice, which makes retries idempotent", i)
		}
		if j, dup := seen[ev.ID]; dup {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/id", i), "events[%d] and events[%d] share the id %s: every event needs its own id", j, i, ev.ID)
		}
		seen[ev.ID] = i
		if err := eventvault.ValidateEventType(ev.Type); err != nil {
			// The type is not echoed (it may be anything); its place is.
			return &eventvault.Error{Code: eventvault.ErrorCode(err), Err: err,
				Message: fmt.Sprintf("events[%d].type (at /events/%d/type): %s", i, i, eventvault.ErrorMessage(err)),
				Fields:  map[string]any{"pointer": fmt.Sprintf("/events/%d/type", i)}}
		}
		if len(ev.Data) == 0 {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/data", i), "events[%d].data is missing or null: send a JSON value, usually an object", i)
		}
		// Reads copy data and metadata into responses as they are, so only
		// valid JSON may be stored, whoever calls; compacting checks that
		// in the same pass, and lets a retry with other white space be
		// recognised as the same event.
		var err error
		if events[i].Data, err = compactJSON(ev.Data); err != nil {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/data", i), "events[%d].data is not valid JSON", i)
		}
		if ev.Metadata != nil {
			if events[i].Metadata, err = compactJSON(ev.Metadata); err != nil {
				return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/metadata", i), "events[%d].metadata is not valid JSON", i)
			}
		}
	}
	return nil
}

// compactJSON returns raw without insignificant white space, or an error if
// raw is not one valid JSON value.
func compactJSON(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(raw))
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// authorizeAppend decides an append once per distinct event type of the
// batch: a policy may permit some types on a stream and not others.
func authorizeAppend(p eventvault.Principal, stream eventvault.StreamName, events []eventvault.NewEvent) error {
	var seen []string
	for _, ev := range events {
		if slices.Contains(seen, ev.Type) {
			continue
		}
		seen = append(seen, ev.Type)
		if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Append, Stream: stream, EventType: ev.Type}); err != nil {
			return err
		}
	}
	return nil
}
