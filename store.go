package eventvault

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// WrappedKey is a key as it is stored: encrypted under the key one level up
// the hierarchy. It never holds key material in clear.
type WrappedKey struct {
	// ID identifies the key; it goes into every ciphertext header the key
	// produces.
	ID uuid.UUID
	// Version is the key's own version (a tenant KEK's rotation counter).
	Version uint32
	// KEKVersion is, for a data key, the version of the tenant KEK that
	// wraps it; zero for a tenant KEK.
	KEKVersion uint32
	// Ciphertext is the wrapped key, header included.
	Ciphertext []byte
	CreatedAt  time.Time
}

// KeyStore keeps wrapped keys. Implementations never see an unwrapped key.
//
// It enforces the erasure fence that the keyring relies on: a shredded
// stream, or any stream of a shredded tenant, and a shredded tenant never
// get a key again (EERASED below), so old ciphertext never meets a new key
// under the same id. Every EERASED that a shredded tenant causes (its
// KEK, a new stream, a stream of it) wraps ErrTenantShredded.
type KeyStore interface {
	// TenantKey returns the newest version of the tenant's wrapped KEK.
	// Errors: ENOTFOUND if the tenant has none yet (or was shredded: its
	// versions are destroyed); EINVALID for a malformed tenant.
	TenantKey(ctx context.Context, tenant TenantID) (WrappedKey, error)
	// CreateTenantKey stores k as the tenant's KEK unless one exists, and
	// returns the one that is stored (k, or the one that won a race).
	// Errors: EERASED if the tenant was shredded (nothing is stored);
	// EINVALID for a malformed tenant.
	CreateTenantKey(ctx context.Context, tenant TenantID, k WrappedKey) (WrappedKey, error)
	// StreamKey returns the stream's wrapped data key.
	// Errors: ENOTFOUND if the stream has no key yet (including a stream
	// that a shredded tenant never created); EERASED if the stream was
	// shredded, alone or with its tenant; EINVALID for a malformed tenant
	// or stream name.
	StreamKey(ctx context.Context, tenant TenantID, stream StreamName) (WrappedKey, error)
	// CreateStreamKey stores k as the stream's key unless one exists, and
	// returns the one that is stored (k, or the one that won a race).
	// Errors: EERASED if the stream or its tenant was shredded (nothing is
	// stored); ECONFLICT if k is wrapped under a KEK version that
	// DestroyTenantKeysBefore destroyed (the caller's KEK is stale);
	// EINVALID for a malformed tenant or stream name.
	CreateStreamKey(ctx context.Context, tenant TenantID, stream StreamName, k WrappedKey) (WrappedKey, error)

	// TenantKeyVersion returns one version of the tenant's wrapped KEK: the
	// one that wrapped a stream key row naming it.
	// Errors: ENOTFOUND if the tenant has no such version (never had one,
	// or it was destroyed); EINVALID for a malformed tenant or version 0.
	TenantKeyVersion(ctx context.Context, tenant TenantID, version uint32) (WrappedKey, error)
	// AddTenantKey stores k as a new version of the tenant's KEK, which
	// becomes its newest. k.Version must be the newest version stored plus
	// one, so that two concurrent rotations cannot both add the same
	// version.
	// Errors: ENOTFOUND if the tenant has no KEK yet (CreateTenantKey makes
	// the first); ECONFLICT if k.Version is not the newest version plus one
	// (another rotation won); EINVALID for a malformed tenant or version.
	AddTenantKey(ctx context.Context, tenant TenantID, k WrappedKey) error
	// RewrapTenantKey replaces the wrapping of one version of the tenant's
	// KEK, as a root rotation does, if the stored row still equals old (key
	// id, version and ciphertext). next keeps old's id and version.
	// Errors: ECONFLICT if the row changed since old was read; ENOTFOUND if
	// the version is gone; EINVALID if next changes the id or version.
	RewrapTenantKey(ctx context.Context, tenant TenantID, old, next WrappedKey) error
	// Tenants returns every tenant the store holds, in name order. It is an
	// administrative call: it is the one read across tenants.
	// Errors: EUNAVAILABLE.
	Tenants(ctx context.Context) ([]TenantID, error)
	// StreamKeysBefore returns, in stream name order, up to limit of the
	// tenant's live stream keys wrapped under a KEK version older than
	// kekVersion, of streams whose names sort after after ("" for the
	// first page). Shredded streams are left out.
	// Errors: EINVALID for a malformed tenant or a limit that is not
	// positive.
	StreamKeysBefore(ctx context.Context, tenant TenantID, kekVersion uint32, after StreamName, limit int) ([]StreamKeyRow, error)
	// RewrapStreamKey replaces a stream's wrapped key, as a KEK rotation
	// does, if the stored row still equals old (key id, version, KEK
	// version and ciphertext). next keeps old's id and version: a stream
	// key never changes, only the KEK version that wraps it.
	// Errors: ECONFLICT if the row changed since old was read; ENOTFOUND if
	// the stream has no key; EERASED if it was shredded; EINVALID if next
	// changes the id or version, or is not under a newer KEK version.
	RewrapStreamKey(ctx context.Context, tenant TenantID, stream StreamName, old, next WrappedKey) error
	// DestroyTenantKeysBefore destroys every version of the tenant's KEK
	// older than version, for good, and returns how many it destroyed. It
	// is how erasure reaches backups: once the old versions are gone from
	// the live database and the root versions that wrapped them are
	// retired, a backup that still holds them can no longer be decrypted.
	// Destroying nothing (no older version is left) returns 0. Afterwards
	// CreateStreamKey refuses a key wrapped under a destroyed version.
	// Errors: ECONFLICT while a stream key is still wrapped under one of
	// them (re-wrap first); ENOTFOUND if the tenant has no KEK version >=
	// version, so the newest version always stays; EINVALID for a malformed
	// tenant or version 0.
	DestroyTenantKeysBefore(ctx context.Context, tenant TenantID, version uint32) (int, error)
}

// StreamKeyRow is a stream's wrapped data key with the stream it belongs to.
type StreamKeyRow struct {
	Stream StreamName
	Key    WrappedKey
}

// SameKeyRow reports whether a and b are the same stored key row: id,
// versions and ciphertext (not the time). Compare-and-swap methods use it.
func SameKeyRow(a, b WrappedKey) bool {
	return a.ID == b.ID && a.Version == b.Version && a.KEKVersion == b.KEKVersion && bytes.Equal(a.Ciphertext, b.Ciphertext)
}

// CheckRewrap returns EINVALID unless next re-wraps old: the same key id and
// version, and a ciphertext.
func CheckRewrap(old, next WrappedKey) error {
	switch {
	case next.ID != old.ID || next.Version != old.Version:
		return Errorf(EINVALID, "a re-wrap keeps the key: key %s v%d cannot replace key %s v%d", next.ID, next.Version, old.ID, old.Version)
	case len(next.Ciphertext) == 0:
		return Errorf(EINVALID, "a re-wrap of key %s needs a ciphertext", old.ID)
	}
	return nil
}

// ProposedEvent is what the store needs of an event before it is sealed.
type ProposedEvent struct {
	ID   uuid.UUID
	Type string
	// ContentMAC is a keyed MAC of type, data and metadata under the
	// stream's key: it decides idempotency without the store seeing data.
	ContentMAC []byte
}

// SealFunc seals a batch whose first event lands at stream position first.
// It returns one sealed payload per proposed event, in order. The store calls
// it inside the append's transaction, once the positions are fixed. A store
// that retries a transaction (after a serialization failure) calls it again,
// perhaps with another first position, and keeps only the last payloads, so
// a SealFunc must have no side effects.
type SealFunc func(first int64) ([][]byte, error)

// AppendRequest is an append as the store sees it: ids, types, MACs and,
// through Seal, ciphertext.
type AppendRequest struct {
	Stream   StreamName
	Expected ExpectedVersion
	// KeyID is the stream key the payloads are sealed with. The store
	// refuses the append (EERASED) unless it is still the stream's key, so
	// an append never lands under a key that was shredded meanwhile.
	KeyID uuid.UUID
	// Subject, when set, is the pseudonym of the data subject who owns the
	// stream. The first append that names one makes it the owner; naming
	// another owner later is ECONFLICT; appends that name none are fine.
	Subject Pseudonym
	// NewKey, when set, is the first key of a stream that has no key row:
	// made for this append and stored by nobody yet. The store stores it as
	// the stream's key row in the append's own transaction, so that the key
	// row exists only if the append commits, and a refused append leaves
	// nothing behind (no key row, no stream). KeyID must be NewKey.ID.
	// The store refuses it, writing nothing, with ECONFLICT wrapping
	// ErrStreamKeyExists if the stream has a key row (another writer's,
	// stored meanwhile, or NewKey itself, from an earlier append that
	// carried it: load it and retry); EERASED if the stream or its
	// tenant was shredded; ECONFLICT wrapping ErrKEKRetired if NewKey is
	// wrapped under a KEK version DestroyTenantKeysBefore destroyed (reload
	// the tenant's newest KEK and retry). A stream with a key row never
	// needs it: the hot path of a known stream is unchanged.
	NewKey *WrappedKey
	Events []ProposedEvent
	Seal   SealFunc
	// Audit, when set, returns the audit record line of the append once
	// its first stream position is fixed (like Seal): the store writes it
	// in the append's transaction, at the next index of the tenant's log
	// (AuditLines's placeholder set), so that an append that cannot be
	// recorded is not written. A replay writes no record.
	Audit func(first int64) ([]byte, error)
	// PII are the personal values the events mark, sealed under their
	// subjects' keys (version 1 each): the store writes them in the
	// append's transaction, or nothing. It refuses the append (EERASED,
	// writing nothing) unless each value's KeyID is still its subject's
	// live key, so that no value lands beside a key an erasure destroyed.
	// A replay writes none.
	PII []PIIValue
}

// Sentinels of the append errors a caller acts on (errors.Is).
var (
	// ErrStreamKeyExists is wrapped by the ECONFLICT an append carrying
	// AppendRequest.NewKey gets when the stream has a key row already.
	ErrStreamKeyExists = errors.New("the stream has a key already")
	// ErrKEKRetired is wrapped by the ECONFLICT an append carrying
	// AppendRequest.NewKey gets when NewKey is wrapped under a destroyed
	// KEK version.
	ErrKEKRetired = errors.New("the key is wrapped under a destroyed KEK version")
	// ErrVersionConflict is wrapped by the ECONFLICT of ConflictError: the
	// expected version does not hold.
	ErrVersionConflict = errors.New("expected version conflict")
	// ErrOwnerConflict is wrapped by the ECONFLICT of OwnerConflictError:
	// the append names a subject other than the stream's owner.
	ErrOwnerConflict = errors.New("owner conflict")
)

// StreamKeyExistsError returns the ECONFLICT error for an append carrying
// NewKey to a stream that has a key row.
func StreamKeyExistsError(op string, stream StreamName) *Error {
	return &Error{Code: ECONFLICT, Op: op, Err: ErrStreamKeyExists,
		Message: "stream " + string(stream) + " got its key from another writer while this append was prepared; nothing was appended: retry"}
}

// Validate refuses an append that can never succeed: an invalid tenant or
// stream name, an empty batch, a missing Seal, or an id twice in the batch.
// Errors: EINVALID.
func (r AppendRequest) Validate(tenant TenantID) error {
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	if err := ValidateStream(r.Stream); err != nil {
		return err
	}
	if len(r.Events) == 0 {
		return Errorf(EINVALID, "an append needs at least one event")
	}
	if r.Seal == nil {
		return Errorf(EINVALID, "append to stream %s without a seal function", r.Stream)
	}
	if r.NewKey != nil && (r.NewKey.ID != r.KeyID || len(r.NewKey.Ciphertext) == 0) {
		return Errorf(EINVALID, "append to stream %s with a new key that is not the key its events are sealed with, or has no ciphertext", r.Stream)
	}
	seen := make(map[uuid.UUID]bool, len(r.Events))
	for _, e := range r.Events {
		if seen[e.ID] {
			return Errorf(EINVALID, "event id %s appears twice in the batch; every event needs its own id", e.ID)
		}
		seen[e.ID] = true
	}
	return nil
}

// StoredEvent is an event as stored: envelope in clear, payload sealed.
type StoredEvent struct {
	ID             uuid.UUID
	Stream         StreamName
	Type           string
	Position       int64
	GlobalPosition int64
	RecordedAt     time.Time
	ContentMAC     []byte // nil in pages that leave it out (ReadStream, ReadAll)
	Payload        []byte // sealed data and metadata
}

// MaxPageBytes bounds the payload bytes (sealed data and metadata, summed
// over StoredEvent.Payload) of one page of ReadStream or ReadAll, so that
// one read of large events cannot take hundreds of MB of a server's memory
// (an event's data is up to 4 MiB; its JSON, escaped, several times that).
// A store adds events to a page in order while their payloads stay within
// it and stops before the first that would pass it; the first event is
// always added, whatever its size. So a page may hold fewer events than
// its limit before the end: a reader pages on from the last event it got,
// and only an empty page (or, for a stream, a last position at the
// stream's version) says it reached the end. 4 MiB is the bound of an
// append's body: a page holds at most about one batch of the largest kind.
const MaxPageBytes = 4 << 20

// PageFull reports whether a page whose payloads so far sum to bytes, with
// n events, has no room for an event of size more payload bytes
// (MaxPageBytes): never for the first event.
func PageFull(n, bytes, more int) bool {
	return n > 0 && bytes+more > MaxPageBytes
}

// ReadOptions select a slice of a stream.
type ReadOptions struct {
	// From is the first position read. Backward reads may pass -1 for the
	// stream's last event.
	From     int64
	Limit    int
	Backward bool
}

// Validate refuses options no store can serve: a limit that is not
// positive, or a negative first position other than -1 read backward.
// Errors: EINVALID.
func (o ReadOptions) Validate() error {
	if o.Limit <= 0 {
		return Errorf(EINVALID, "read limit is %d; it must be positive", o.Limit)
	}
	if o.From < 0 && !(o.Backward && o.From == -1) {
		return Errorf(EINVALID, "cannot read from position %d; use a position >= 0, or -1 backward for the end", o.From)
	}
	return nil
}

// ValidateReadAll refuses a read of a tenant's events in global order that
// no store can serve: a negative first global position or a limit that is
// not positive. Errors: EINVALID.
func ValidateReadAll(from int64, limit int) error {
	if limit <= 0 {
		return Errorf(EINVALID, "read limit is %d; it must be positive", limit)
	}
	if from < 0 {
		return Errorf(EINVALID, "cannot read from global position %d; use a position >= 0", from)
	}
	return nil
}

// StreamPage is a slice of one stream with the key that protects it, read
// together so that a shredded key is noticed at once.
type StreamPage struct {
	Key     WrappedKey
	Version int64 // the stream's last position
	// ShreddedAt is when the stream's key was destroyed; zero while it
	// lives. A shredded stream's page has a zero Key, and its events (unless
	// purged) with their envelopes only.
	ShreddedAt time.Time
	Events     []StoredEvent
	// PIIGeneration is the tenant's generation of its data subjects'
	// states on the snapshot the page was read on (see PIIStore
	// SubjectStates): states read at the same generation still hold for
	// the page. -1 is unknown: no states kept are used for the page.
	PIIGeneration int64
}

// AllPage is a page of a tenant's events in global order, with the keys of
// the streams they belong to; a shredded stream's key is the zero value.
type AllPage struct {
	Events []StoredEvent
	Keys   map[StreamName]WrappedKey
	// Next is the tenant's next global position on the snapshot the page
	// was read on, as FeedLog.NextGlobalPosition returns it: every event
	// below it is committed, and a read from beyond it would skip whatever
	// commits below its start (0 for a tenant without events).
	Next int64
	// PIIGeneration is as StreamPage's.
	PIIGeneration int64
	// KeyEpoch is the tenant's stream key epoch on the page's snapshot:
	// it moves on with every change to one of the tenant's stream key rows
	// that exists (re-wrapped, shredded, deleted, written straight into
	// the store), never with a new stream or an append, and never takes a
	// value twice, also on two histories of one database (a failover, a
	// restore). Two snapshots with the same epoch see the same key row for
	// every stream both hold. It is set when Keys is nil
	// (AllPageKeysOnRequest); 0 is unknown (a store that always reads the
	// keys leaves it so): no cipher is trusted at it.
	KeyEpoch int64
}

// EventStore appends and reads sealed events. Within a tenant, global
// positions are assigned in commit order: a reader paging by global position
// never skips an event that commits later.
type EventStore interface {
	// Append writes a batch atomically. If every event id exists already in
	// this stream with the same content MAC, nothing is written and the
	// original positions come back with Replayed set.
	// Errors: ECONFLICT for an expected version that does not hold (with
	// the actual version) or an event id reused with other content or in
	// another stream; ENOTFOUND if the stream has no key and req.NewKey is
	// nil; EERASED if req.KeyID is no longer the stream's key; EINVALID for
	// an empty batch or a duplicate id within it; the code of an error
	// returned by Seal; for req.NewKey, the errors its doc names. Whatever
	// the error, nothing is written: no event, no key row, no stream.
	Append(ctx context.Context, tenant TenantID, req AppendRequest) (AppendResult, error)
	// ReadStream returns up to opts.Limit events of one stream, fewer when
	// their payloads would pass MaxPageBytes (at least one). A page
	// read is its caller's: the store keeps no reference to its payloads,
	// which the caller may overwrite (the engine decrypts them in place),
	// and no two StoredEvents' slices share bytes. Its events may leave
	// ContentMAC nil, as ReadAll's.
	// Errors: ENOTFOUND if the stream has no events.
	ReadStream(ctx context.Context, tenant TenantID, stream StreamName, opts ReadOptions) (StreamPage, error)
	// ReadAll returns up to limit events of the tenant with global position
	// >= from, in global order (fewer when their payloads would pass
	// MaxPageBytes, at least one), and the tenant's next global position
	// (AllPage.Next), read together: a from past it is not refused here.
	// The page is its caller's, as ReadStream's. Its events may leave
	// ContentMAC nil: only an append's replay compares it.
	ReadAll(ctx context.Context, tenant TenantID, from int64, limit int) (AllPage, error)
	// ReadAllTo reads what ReadAll reads, on one snapshot, and hands it
	// to r as it arrives: r.Head once, with the page's keys and Next and
	// no events, then r.Events with the events in global order, a chunk at
	// a time, so that r can work on the first events while the store still
	// receives the last. Nothing is handed over twice (a store that would
	// read the page again fails instead), and no more than limit events in
	// all. An error returned by r stops the read and ReadAllTo returns it
	// as it is (errors.Is holds).
	// Errors: as ReadAll; r's.
	ReadAllTo(ctx context.Context, tenant TenantID, from int64, limit int, r AllPageReceiver) error
}

// AllPageReceiver takes a read-all page as a store reads it
// (EventStore.ReadAllTo). Its methods are called one after the other, never
// concurrently.
type AllPageReceiver interface {
	// Head receives the page without its events (Events nil): the keys
	// of the streams it holds, a shredded stream's the zero key (or no
	// keys, to a receiver that takes them on request:
	// AllPageKeysOnRequest), and Next. It comes before any event.
	Head(page AllPage) error
	// Events receives the page's next events, at least one, in global
	// order. The chunk, its events' slices and their bytes are the
	// receiver's, as ReadAll's page is its caller's: the store keeps no
	// reference to them, and no two StoredEvents' slices share bytes.
	Events(chunk []StoredEvent) error
}

// AllPageKeysOnRequest is an AllPageReceiver that may take a page without
// its streams' keys, because it holds ciphers it checked against the key
// rows of an earlier page at the same AllPage.KeyEpoch. A store may then
// call Head with Keys nil and KeyEpoch set, hand over the events, and ask
// WantsKeys once after the last of them: if it answers true, the store
// reads the keys and hands them to Keys before ReadAllTo returns. A store
// may also ignore this and hand the keys with the head as to any receiver
// (then WantsKeys and Keys are not called).
type AllPageKeysOnRequest interface {
	AllPageReceiver
	WantsKeys() bool
	// Keys receives the keys of the page's streams (as AllPage.Keys), read
	// on a snapshot at key epoch epoch: the page's own, or a later one
	// (epoch then at least the page's). A key row read later is the
	// page's, or what became of it since: re-wrapped, or shredded (the
	// zero key); an epoch equal to the page's says that every row is the
	// page's.
	Keys(keys map[StreamName]WrappedKey, epoch int64) error
}

// AllPageCollector is an AllPageReceiver that gathers the page ReadAllTo
// hands over, as ReadAll returns it.
type AllPageCollector struct {
	Page AllPage
}

// Head keeps the page's keys and Next.
func (c *AllPageCollector) Head(page AllPage) error {
	events := c.Page.Events
	c.Page = page
	c.Page.Events = events
	return nil
}

// Events appends the chunk to the page's events.
func (c *AllPageCollector) Events(chunk []StoredEvent) error {
	if c.Page.Events == nil {
		c.Page.Events = chunk
		return nil
	}
	c.Page.Events = append(c.Page.Events, chunk...)
	return nil
}

// DeploymentKey is a key every node of a deployment shares (the pseudonym
// key, the certificate signing key, the token-verifier key), as stored:
// wrapped by the root key, never in clear. It belongs to no tenant.
type DeploymentKey struct {
	// Name says what the key is for ("pseudonym", "signing",
	// "token-verifier"); it is bound into the wrapping's associated data
	// with Version, so a wrapped key moved to another name or version does
	// not unwrap.
	Name    string
	Version uint32
	// Wrapped is the key wrapped by the root key.
	Wrapped   []byte
	CreatedAt time.Time
}

// DeploymentKeyStore keeps the wrapped deployment keys. A key is written
// once and never changed or deleted through it.
type DeploymentKeyStore interface {
	// DeploymentKey returns the newest version of the named key.
	// Errors: ENOTFOUND if there is none; EINVALID for an empty name.
	DeploymentKey(ctx context.Context, name string) (DeploymentKey, error)
	// CreateDeploymentKey stores k unless a key of that name exists, and
	// returns the one stored (k, or the one that was there or won a race).
	// Errors: EINVALID for an empty name, a zero version or no wrapped key.
	CreateDeploymentKey(ctx context.Context, k DeploymentKey) (DeploymentKey, error)
	// DeploymentKeys returns every stored deployment key, for the root's
	// rotation to re-wrap them.
	DeploymentKeys(ctx context.Context) ([]DeploymentKey, error)
	// RewrapDeploymentKey replaces the wrapped bytes of old (same name and
	// version) by wrapped if old's are still the ones stored: the same key,
	// re-wrapped under a newer root key version (compare-and-swap).
	// Errors: ECONFLICT if the stored bytes are not old's; ENOTFOUND if
	// there is no such key; EINVALID for an empty wrapped.
	RewrapDeploymentKey(ctx context.Context, old DeploymentKey, wrapped []byte) error
}

// Store is everything a store provides. Only the command's wiring and
// storetest need all of it; every other part asks for the interfaces it
// uses.
type Store interface {
	KeyStore
	EventStore
	TokenStore
	ErasureStore
	PolicyStore
	AuditStore
	DeploymentKeyStore
	SubscriptionStore
	FeedStore
	PIIStore
	// Ping reports whether the store can serve. Errors: EUNAVAILABLE.
	Ping(ctx context.Context) error
	Close() error
}
