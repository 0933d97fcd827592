package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// refuseReserved returns EINVALID for a stream of the reserved category:
// only the server writes tombstones, and nobody shreds them.
func refuseReserved(stream eventvault.StreamName) error {
	if stream.Category() == eventvault.TombstoneCategory {
		return eventvault.Errorf(eventvault.EINVALID, "stream category %q is reserved for the server's tombstones: choose another category", eventvault.TombstoneCategory)
	}
	return nil
}

// ReservedTypePrefix starts the event types only the server writes
// (eventvault.TombstoneType): a client event of such a type could pass for
// a tombstone with a consumer that checks the type alone, and make it drop
// what was never erased.
const ReservedTypePrefix = "eventvault."

// refuseReservedTypes returns EINVALID, naming the event's place, for a
// client event whose type starts with ReservedTypePrefix.
func refuseReservedTypes(events []eventvault.NewEvent) error {
	for i, ev := range events {
		if strings.HasPrefix(strings.ToLower(ev.Type), ReservedTypePrefix) {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/type", i), "events[%d].type (at /events/%d/type) starts with %q, which is reserved for the server's own events (tombstones): choose another type", i, i, ReservedTypePrefix)
		}
	}
	return nil
}

// Tombstoner writes a tombstone into the tenant's feed and returns its
// global position: Events implements it.
type Tombstoner interface {
	// AppendTombstone appends ts with event id id (a random one for
	// uuid.Nil); the same id and tombstone again is a replay, which
	// writes nothing and returns the first position.
	AppendTombstone(ctx context.Context, tenant eventvault.TenantID, actor string, id uuid.UUID, ts eventvault.Tombstone) (int64, error)
}

// AppendTombstone appends ts as an event of type eventvault.TombstoneType
// to the reserved stream eventvault.TombstoneStream, sealed like any event,
// with no personal data (stream names, a pseudonym, ids and a time), and
// returns its global position. A replay (the same id and tombstone)
// writes nothing and returns the first position. No policy is consulted: the server writes
// it on behalf of the shred or erasure that actor carried out, and the
// append is audited as such. Errors: the store's and the keyring's.
func (e *Events) AppendTombstone(ctx context.Context, tenant eventvault.TenantID, actor string, id uuid.UUID, ts eventvault.Tombstone) (int64, error) {
	data, err := json.Marshal(ts)
	if err != nil {
		return 0, fmt.Errorf("tombstone: %w", err)
	}
	if id == uuid.Nil {
		id = uuid.New()
	}
	ev := []eventvault.NewEvent{{ID: id, Type: eventvault.TombstoneType, Data: data}}
	res, err := e.appendOnce(ctx, tenant, actor, eventvault.TombstoneStream, "", eventvault.ExpectAny, ev, nil)
	if eventvault.ErrorCode(err) == eventvault.EERASED {
		// A key replaced by another node since it was cached: once more
		// with the stored one, as AppendForSubject does.
		e.keys.EvictStream(tenant, eventvault.TombstoneStream)
		res, err = e.appendOnce(ctx, tenant, actor, eventvault.TombstoneStream, "", eventvault.ExpectAny, ev, nil)
	}
	if err != nil {
		return 0, fmt.Errorf("append tombstone: %w", err)
	}
	return res.Events[0].GlobalPosition, nil
}
