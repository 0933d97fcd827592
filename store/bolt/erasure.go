package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

var _ eventvault.ErasureStore = (*DB)(nil)

var (
	keyTenantShred = []byte("tenant_shred")
	bucketSubjects = []byte("subjects")
	bucketHolds    = []byte("holds")
	bucketRequests = []byte("requests")
)

// tenantShredRecord is a tenant's shred record (JSON): when, and the ids of
// the KEKs destroyed.
type tenantShredRecord struct {
	At     time.Time   `json:"at"`
	KeyIDs []uuid.UUID `json:"key_ids"`
}

// ShredStream destroys the stream's key at time at (the stream record keeps
// only the key's id and the time), and with purge deletes its events with
// their log and id entries, then scrubs the file (see scrub.go). The record
// stays: CreateStreamKey never gives the stream a key again, and appends are
// refused. Shredding again returns the first shred, purging now if asked.
// Purged events' global positions disappear from ReadAll.
// Errors: ENOTFOUND for a stream that never existed; EINVALID for a
// malformed tenant or stream name; EINTERNAL if the shred committed but the
// file could not be scrubbed (a retry scrubs again).
func (db *DB) ShredStream(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, purge bool, at time.Time) (eventvault.Shred, error) {
	const op = "bolt.ShredStream"
	if err := validateStream(tenant, stream); err != nil {
		return eventvault.Shred{}, err
	}
	at = db.stamp(at)
	var s eventvault.Shred
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		tb, rec, err := existingStream(tx, op, tenant, stream, noStream)
		if err != nil {
			return err
		}
		changed := shredRec(&rec, at)
		if purge && !rec.Shred.Purged {
			if err := tb.purge(stream); err != nil {
				return err
			}
			rec.Shred.Purged, changed = true, true
		}
		if changed {
			if err := tb.putStream(stream, rec); err != nil {
				return err
			}
			if err := db.markScrub(tx); err != nil {
				return err
			}
		}
		s = eventvault.Shred{Stream: stream, KeyID: rec.Shred.KeyID, ShreddedAt: rec.Shred.At, Subject: rec.Subject, Purged: rec.Shred.Purged}
		return nil
	})
	if err != nil {
		return eventvault.Shred{}, err
	}
	if err := db.scrub(); err != nil {
		return eventvault.Shred{}, internal(op, fmt.Errorf("stream %s is shredded, but the file still holds its old pages: %w", stream, err))
	}
	return s, nil
}

// shredRec destroys the key of a stream record, unless it is shredded
// already, and reports whether it did.
func shredRec(rec *streamRecord, at time.Time) bool {
	if rec.Shred != nil {
		return false
	}
	rec.Shred = &shredRecord{KeyID: rec.Key.ID, At: at}
	rec.Key = keyRecord{}
	return true
}

// purge deletes a stream's events, and their log and id entries.
func (tb *tenantBuckets) purge(stream eventvault.StreamName) error {
	b := tb.events.Bucket([]byte(stream))
	if b == nil {
		return nil
	}
	err := b.ForEach(func(k, v []byte) error {
		rec, err := decodeEvent(v)
		if err != nil {
			return fmt.Errorf("purge stream %s: %w", stream, err)
		}
		if loc := tb.ids.Get(rec.ID[:]); loc != nil {
			if owner, _, err := decodeLocator(loc); err == nil && owner == stream {
				if err := tb.ids.Delete(rec.ID[:]); err != nil {
					return fmt.Errorf("purge id %s: %w", rec.ID, err)
				}
			}
		}
		if err := tb.log.Delete(be64(rec.GlobalPosition)); err != nil {
			return fmt.Errorf("purge log entry %d: %w", rec.GlobalPosition, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tb.events.DeleteBucket([]byte(stream)); err != nil {
		return fmt.Errorf("purge events of stream %s: %w", stream, err)
	}
	return nil
}

// ShredTenant destroys every KEK version of the tenant and every stream key
// it still has, records the tenant as shredded, and scrubs the file. From
// then on CreateTenantKey and CreateStreamKey refuse it (EERASED). It
// returns the ids of the KEKs destroyed, in the order of their first
// version (versions of one KEK share its id); shredding again returns the
// first record.
// Errors: ENOTFOUND for a tenant the store has never held; EINVALID for a
// malformed tenant; EINTERNAL if the shred committed but the file could not
// be scrubbed (a retry scrubs again).
func (db *DB) ShredTenant(ctx context.Context, tenant eventvault.TenantID, at time.Time) (eventvault.TenantShred, error) {
	const op = "bolt.ShredTenant"
	if err := validateTenant(tenant); err != nil {
		return eventvault.TenantShred{}, err
	}
	at = db.stamp(at)
	var s eventvault.TenantShred
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		tb := readTenant(tx, tenant)
		if tb == nil {
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s does not exist", tenant)}
		}
		eb, err := writeErasure(tx, tenant)
		if err != nil {
			return err
		}
		rec, shredded, err := tenantShredOf(eb)
		if err != nil {
			return err
		}
		changed := !shredded
		if !shredded {
			rec = tenantShredRecord{At: at}
			if rec.KeyIDs, err = destroyKEKs(tb); err != nil {
				return err
			}
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := eb.Put(keyTenantShred, v); err != nil {
				return fmt.Errorf("record the shred of tenant %s: %w", tenant, err)
			}
		}
		n, err := tb.shredStreams(rec.At)
		if err != nil {
			return err
		}
		if changed || n > 0 {
			if err := db.markScrub(tx); err != nil {
				return err
			}
		}
		s = eventvault.TenantShred{Tenant: tenant, KeyIDs: append([]uuid.UUID{}, rec.KeyIDs...), ShreddedAt: rec.At}
		return nil
	})
	if err != nil {
		return eventvault.TenantShred{}, err
	}
	if err := db.scrub(); err != nil {
		return eventvault.TenantShred{}, internal(op, fmt.Errorf("tenant %s is shredded, but the file still holds its old pages: %w", tenant, err))
	}
	return s, nil
}

// destroyKEKs deletes every version of the tenant's KEK and returns their
// distinct ids, in the order of their first version.
func destroyKEKs(tb *tenantBuckets) ([]uuid.UUID, error) {
	ids := []uuid.UUID{}
	seen := map[uuid.UUID]bool{}
	var versions [][]byte
	err := tb.keks.ForEach(func(k, v []byte) error {
		key, err := decodeKey(v)
		if err != nil {
			return err
		}
		if !seen[key.ID] {
			seen[key.ID] = true
			ids = append(ids, key.ID)
		}
		versions = append(versions, clone(k))
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range versions {
		if err := tb.keks.Delete(k); err != nil {
			return nil, fmt.Errorf("destroy KEK version %x: %w", k, err)
		}
	}
	return ids, nil
}

// shredStreams shreds every stream of the tenant whose key lives, and
// returns how many it shredded.
func (tb *tenantBuckets) shredStreams(at time.Time) (int, error) {
	live := map[string]streamRecord{}
	err := tb.streams.ForEach(func(k, v []byte) error {
		rec, err := decodeStream(v)
		if err != nil {
			return fmt.Errorf("stream %s: %w", k, err)
		}
		if rec.Shred == nil {
			live[string(k)] = rec
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for name, rec := range live {
		shredRec(&rec, at)
		if err := tb.putStream(eventvault.StreamName(name), rec); err != nil {
			return 0, err
		}
	}
	return len(live), nil
}

// StreamsOfSubject lists the streams the subject owns, shredded or not, in
// byte order of their names.
// Errors: EINVALID for a malformed tenant or an empty or over-long
// pseudonym.
func (db *DB) StreamsOfSubject(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) ([]eventvault.StreamName, error) {
	const op = "bolt.StreamsOfSubject"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return nil, err
	}
	out := []eventvault.StreamName{}
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		b := nested(tx.Bucket(bucketErasure), []byte(tenant), bucketSubjects, []byte(subject))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, eventvault.StreamName(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordOwner indexes stream under its owner, in the transaction of the
// append that names the owner first.
func recordOwner(tx *bbolt.Tx, tenant eventvault.TenantID, subject eventvault.Pseudonym, stream eventvault.StreamName) error {
	eb, err := writeErasure(tx, tenant)
	if err != nil {
		return err
	}
	sb, err := eb.CreateBucketIfNotExists(bucketSubjects)
	if err != nil {
		return fmt.Errorf("create subjects bucket of tenant %s: %w", tenant, err)
	}
	pb, err := sb.CreateBucketIfNotExists([]byte(subject))
	if err != nil {
		return fmt.Errorf("create a subject's bucket of tenant %s: %w", tenant, err)
	}
	return pb.Put([]byte(stream), []byte{1})
}

// checkTenantLive returns EERASED if the tenant was shredded: the fence
// that keeps it from ever getting a key again.
func checkTenantLive(tx *bbolt.Tx, op string, tenant eventvault.TenantID) error {
	_, shredded, err := tenantShredOf(nested(tx.Bucket(bucketErasure), []byte(tenant)))
	if err != nil {
		return err
	}
	if shredded {
		return eventvault.TenantShreddedError(op, tenant, nil)
	}
	return nil
}

// tenantShredOf reads the shred record in a tenant's erasure bucket (which
// may be nil).
func tenantShredOf(eb *bbolt.Bucket) (tenantShredRecord, bool, error) {
	if eb == nil {
		return tenantShredRecord{}, false, nil
	}
	v := eb.Get(keyTenantShred)
	if v == nil {
		return tenantShredRecord{}, false, nil
	}
	var rec tenantShredRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return tenantShredRecord{}, false, fmt.Errorf("corrupt tenant shred record: %w", err)
	}
	return rec, true, nil
}

// writeErasure returns the tenant's erasure bucket, creating it.
func writeErasure(tx *bbolt.Tx, tenant eventvault.TenantID) (*bbolt.Bucket, error) {
	b, err := tx.Bucket(bucketErasure).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return nil, fmt.Errorf("create erasure bucket of tenant %s: %w", tenant, err)
	}
	return b, nil
}

// nested returns the bucket at path under b, or nil if any is missing.
func nested(b *bbolt.Bucket, path ...[]byte) *bbolt.Bucket {
	for _, name := range path {
		if b == nil {
			return nil
		}
		b = b.Bucket(name)
	}
	return b
}

// existingStream returns the tenant's buckets and the stream's record, or
// missing(op, stream) when the stream has never existed.
func existingStream(tx *bbolt.Tx, op string, tenant eventvault.TenantID, stream eventvault.StreamName, missing func(string, eventvault.StreamName) error) (*tenantBuckets, streamRecord, error) {
	tb := readTenant(tx, tenant)
	if tb == nil {
		return nil, streamRecord{}, missing(op, stream)
	}
	rec, found, err := tb.stream(stream)
	if err != nil {
		return nil, streamRecord{}, err
	}
	if !found {
		return nil, streamRecord{}, missing(op, stream)
	}
	return tb, rec, nil
}

func noStream(op string, stream eventvault.StreamName) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s does not exist", stream)}
}

// streamShredded is the EERASED of a shredded stream; a stream of a
// shredded tenant is refused as the tenant's (ErrTenantShredded).
func streamShredded(tx *bbolt.Tx, op string, tenant eventvault.TenantID, stream eventvault.StreamName) error {
	if err := checkTenantLive(tx, op, tenant); err != nil {
		return err
	}
	return &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: fmt.Sprintf("stream %s was shredded: its key is destroyed and it takes no new events", stream)}
}

// stamp is t in UTC at microsecond precision (as the PostgreSQL store keeps
// times), or the store's clock for the zero time.
func (db *DB) stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = db.now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
