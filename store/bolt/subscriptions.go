package bolt

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// Layout of the subscriptions bucket (created in files of any layout, as
// it is new):
//
//	subscriptions/<tenant>/
//	    consumers                  consumer name → consumer record (JSON)
//	    propagations               erasure request id (16 bytes) → propagation (JSON)
var (
	bucketSubscriptions = []byte("subscriptions")
	bucketConsumers     = []byte("consumers")
	bucketPropagations  = []byte("propagations")
)

type consumerRecord struct {
	Filter     eventvault.FeedFilter `json:"filter"`
	Checkpoint int64                 `json:"checkpoint"`
	CreatedAt  time.Time             `json:"created_at"`
	CreatedBy  string                `json:"created_by"`
	AckedAt    time.Time             `json:"acked_at"`
}

func (r consumerRecord) consumer(tenant eventvault.TenantID, name string) eventvault.Consumer {
	return eventvault.Consumer{Tenant: tenant, Name: name, Filter: r.Filter, Checkpoint: r.Checkpoint, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, AckedAt: r.AckedAt}
}

func noConsumer(op string) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no such consumer in this tenant: register it with PUT /v1/subscriptions/{name}"}
}

// writeSubscriptions returns the tenant's named bucket, creating the path.
func writeSubscriptions(tx *bbolt.Tx, tenant eventvault.TenantID, name []byte) (*bbolt.Bucket, error) {
	top, err := tx.CreateBucketIfNotExists(bucketSubscriptions)
	if err != nil {
		return nil, err
	}
	tb, err := top.CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return nil, err
	}
	return tb.CreateBucketIfNotExists(name)
}

func readSubscriptions(tx *bbolt.Tx, tenant eventvault.TenantID, name []byte) *bbolt.Bucket {
	return nested(tx.Bucket(bucketSubscriptions), []byte(tenant), name)
}

// getRecord decodes the JSON record at key of bucket b (nil: a bucket not
// made yet); ok is false when there is none.
func getRecord[R any](b *bbolt.Bucket, key []byte) (rec R, ok bool, err error) {
	if b == nil {
		return rec, false, nil
	}
	v := b.Get(key)
	if v == nil {
		return rec, false, nil
	}
	return rec, true, json.Unmarshal(v, &rec)
}

// eachRecord decodes every JSON record of bucket b (nil: none), in key
// order, and hands each to fn.
func eachRecord[R any](b *bbolt.Bucket, fn func(key []byte, rec R)) error {
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var rec R
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		fn(k, rec)
		return nil
	})
}

// PutConsumer stores c, or replaces the filter of the consumer of that
// name. Errors: EINVALID for a malformed tenant or name.
func (db *DB) PutConsumer(ctx context.Context, c eventvault.Consumer) (eventvault.Consumer, bool, error) {
	const op = "bolt.PutConsumer"
	if err := eventvault.ValidateTenant(c.Tenant); err != nil {
		return c, false, err
	}
	if err := eventvault.ValidateConsumerName(c.Name); err != nil {
		return c, false, err
	}
	var out eventvault.Consumer
	var created bool
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		b, err := writeSubscriptions(tx, c.Tenant, bucketConsumers)
		if err != nil {
			return err
		}
		rec := consumerRecord{Filter: c.Filter, Checkpoint: c.Checkpoint, CreatedAt: db.stamp(c.CreatedAt), CreatedBy: c.CreatedBy}
		created = true
		if v := b.Get([]byte(c.Name)); v != nil {
			created = false
			// Decoded into a record of its own: decoding into rec would
			// write the stored filter into c.Filter's arrays, which
			// encoding/json reuses, and keep the old filter (or a blend).
			var stored consumerRecord
			if err := json.Unmarshal(v, &stored); err != nil {
				return err
			}
			stored.Filter = c.Filter
			rec = stored
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		out = rec.consumer(c.Tenant, c.Name)
		return b.Put([]byte(c.Name), v)
	})
	if err != nil {
		return eventvault.Consumer{}, false, fmt.Errorf("store consumer %s: %w", c.Name, err)
	}
	return out, created, nil
}

// Consumer returns one consumer. Errors: ENOTFOUND.
func (db *DB) Consumer(ctx context.Context, tenant eventvault.TenantID, name string) (eventvault.Consumer, error) {
	const op = "bolt.Consumer"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Consumer{}, err
	}
	var out eventvault.Consumer
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		rec, ok, err := getRecord[consumerRecord](readSubscriptions(tx, tenant, bucketConsumers), []byte(name))
		if err != nil || !ok {
			return cmp.Or(err, noConsumer(op))
		}
		out = rec.consumer(tenant, name)
		return nil
	})
	return out, err
}

// Consumers returns the tenant's consumers by name.
func (db *DB) Consumers(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Consumer, error) {
	const op = "bolt.Consumers"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.Consumer
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		return eachRecord(readSubscriptions(tx, tenant, bucketConsumers), func(k []byte, rec consumerRecord) {
			out = append(out, rec.consumer(tenant, string(k)))
		})
	})
	return out, err
}

// AckConsumer moves the checkpoint forward to checkpoint. Errors:
// ENOTFOUND.
func (db *DB) AckConsumer(ctx context.Context, tenant eventvault.TenantID, name string, checkpoint int64, at time.Time) (eventvault.Consumer, error) {
	const op = "bolt.AckConsumer"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Consumer{}, err
	}
	var out eventvault.Consumer
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := readSubscriptions(tx, tenant, bucketConsumers)
		var v []byte
		if b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return noConsumer(op)
		}
		var rec consumerRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		out = rec.consumer(tenant, name)
		if checkpoint <= rec.Checkpoint {
			return nil
		}
		rec.Checkpoint, rec.AckedAt = checkpoint, db.stamp(at)
		out = rec.consumer(tenant, name)
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), nv)
	})
	return out, err
}

// DeleteConsumer removes a consumer. Errors: ENOTFOUND.
func (db *DB) DeleteConsumer(ctx context.Context, tenant eventvault.TenantID, name string) error {
	const op = "bolt.DeleteConsumer"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := readSubscriptions(tx, tenant, bucketConsumers)
		if b == nil || b.Get([]byte(name)) == nil {
			return noConsumer(op)
		}
		return b.Delete([]byte(name))
	})
}

type propagationRecord struct {
	TombstonePosition int64                        `json:"tombstone_position"`
	Streams           []eventvault.StreamName      `json:"streams"`
	Pending           []string                     `json:"pending"`
	Acks              []eventvault.ConsumerAck     `json:"acks"`
	Removed           []eventvault.ConsumerRemoval `json:"removed"`
	Certificate       []byte                       `json:"certificate,omitempty"`
	Done              bool                         `json:"done"`
	CreatedAt         time.Time                    `json:"created_at"`
}

func (r propagationRecord) propagation(tenant eventvault.TenantID, id uuid.UUID) eventvault.Propagation {
	return eventvault.Propagation{Tenant: tenant, RequestID: id, TombstonePosition: r.TombstonePosition, Streams: r.Streams,
		Pending: r.Pending, Acks: r.Acks, Removed: r.Removed, Certificate: r.Certificate, Done: r.Done, CreatedAt: r.CreatedAt}
}

func toPropagationRecord(p eventvault.Propagation) propagationRecord {
	return propagationRecord{TombstonePosition: p.TombstonePosition, Streams: p.Streams, Pending: p.Pending, Acks: p.Acks, Removed: p.Removed, Certificate: p.Certificate, Done: p.Done, CreatedAt: p.CreatedAt}
}

func noPropagation(op string, id uuid.UUID) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("erasure request %s has no propagation", id)}
}

// CreatePropagation stores p unless its request has one, and returns the
// one stored.
func (db *DB) CreatePropagation(ctx context.Context, p eventvault.Propagation) (eventvault.Propagation, error) {
	const op = "bolt.CreatePropagation"
	if err := eventvault.ValidateTenant(p.Tenant); err != nil {
		return p, err
	}
	var out eventvault.Propagation
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		b, err := writeSubscriptions(tx, p.Tenant, bucketPropagations)
		if err != nil {
			return err
		}
		if v := b.Get(p.RequestID[:]); v != nil {
			var rec propagationRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = rec.propagation(p.Tenant, p.RequestID)
			return nil
		}
		rec := toPropagationRecord(p)
		rec.CreatedAt = db.stamp(p.CreatedAt)
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		out = rec.propagation(p.Tenant, p.RequestID)
		return b.Put(p.RequestID[:], v)
	})
	return out, err
}

// Propagation returns a request's propagation. Errors: ENOTFOUND.
func (db *DB) Propagation(ctx context.Context, tenant eventvault.TenantID, request uuid.UUID) (eventvault.Propagation, error) {
	const op = "bolt.Propagation"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Propagation{}, err
	}
	var out eventvault.Propagation
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		rec, ok, err := getRecord[propagationRecord](readSubscriptions(tx, tenant, bucketPropagations), request[:])
		if err != nil || !ok {
			return cmp.Or(err, noPropagation(op, request))
		}
		out = rec.propagation(tenant, request)
		return nil
	})
	return out, err
}

// OpenPropagations returns the tenant's propagations not done, by
// tombstone position.
func (db *DB) OpenPropagations(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Propagation, error) {
	const op = "bolt.OpenPropagations"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.Propagation
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		return eachRecord(readSubscriptions(tx, tenant, bucketPropagations), func(k []byte, rec propagationRecord) {
			if !rec.Done {
				out = append(out, rec.propagation(tenant, uuid.UUID(k)))
			}
		})
	})
	slices.SortFunc(out, func(a, b eventvault.Propagation) int { return int(a.TombstonePosition - b.TombstonePosition) })
	return out, err
}

// UpdatePropagation applies change to the request's propagation in one
// write transaction. Errors: ENOTFOUND; change's error.
func (db *DB) UpdatePropagation(ctx context.Context, tenant eventvault.TenantID, request uuid.UUID, change func(*eventvault.Propagation) error) (eventvault.Propagation, error) {
	const op = "bolt.UpdatePropagation"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Propagation{}, err
	}
	var out eventvault.Propagation
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := readSubscriptions(tx, tenant, bucketPropagations)
		var v []byte
		if b != nil {
			v = b.Get(request[:])
		}
		if v == nil {
			return noPropagation(op, request)
		}
		var rec propagationRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		out = rec.propagation(tenant, request)
		if err := change(&out); err != nil {
			return err
		}
		nv, err := json.Marshal(toPropagationRecord(out))
		if err != nil {
			return err
		}
		return b.Put(request[:], nv)
	})
	return out, err
}

// NextGlobalPosition returns the global position the tenant's next event
// will take: every event below it is committed (appends are serialised,
// so positions follow commit order). 0 for a tenant without events.
func (db *DB) NextGlobalPosition(ctx context.Context, tenant eventvault.TenantID) (int64, error) {
	const op = "bolt.NextGlobalPosition"
	if err := validateTenant(tenant); err != nil {
		return 0, err
	}
	var next int64
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		if tb := readTenant(tx, tenant); tb != nil {
			next = int64(tb.log.Sequence())
		}
		return nil
	})
	return next, err
}
