package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// holdRecord is a legal hold as stored (JSON), keyed by pseudonym.
type holdRecord struct {
	Reason   string    `json:"reason"`
	PlacedAt time.Time `json:"placed_at"`
	PlacedBy string    `json:"placed_by"`
}

// requestRecord is an erasure request as stored (JSON), keyed by id.
type requestRecord struct {
	ID          uuid.UUID            `json:"id"`
	Subject     eventvault.Pseudonym `json:"subject"`
	State       string               `json:"state"`
	Reason      string               `json:"reason,omitempty"`
	RequestedBy string               `json:"requested_by"`
	ReceivedAt  time.Time            `json:"received_at"`
	CompletedAt time.Time            `json:"completed_at"`
	Certificate []byte               `json:"certificate,omitempty"`
}

func (r requestRecord) request(tenant eventvault.TenantID) eventvault.ErasureRequest {
	return eventvault.ErasureRequest{
		ID: r.ID, Tenant: tenant, Subject: r.Subject, State: eventvault.ErasureState(r.State), Reason: r.Reason,
		RequestedBy: r.RequestedBy, ReceivedAt: r.ReceivedAt, CompletedAt: r.CompletedAt, Certificate: r.Certificate,
	}
}

// PutHold places or replaces the legal hold on h.Subject.
// Errors: EINVALID for a malformed tenant or an empty pseudonym.
func (db *DB) PutHold(ctx context.Context, tenant eventvault.TenantID, h eventvault.Hold) error {
	const op = "bolt.PutHold"
	if err := eventvault.ValidateTenantSubject(tenant, h.Subject); err != nil {
		return err
	}
	v, err := json.Marshal(holdRecord{Reason: h.Reason, PlacedAt: db.stamp(h.PlacedAt), PlacedBy: h.PlacedBy})
	if err != nil {
		return internal(op, err)
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b, err := writeErasureBucket(tx, tenant, bucketHolds)
		if err != nil {
			return err
		}
		return b.Put([]byte(h.Subject), v)
	})
}

// DeleteHold lifts the subject's legal hold.
// Errors: ENOTFOUND if there is none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) DeleteHold(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) error {
	const op = "bolt.DeleteHold"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := nested(tx.Bucket(bucketErasure), []byte(tenant), bucketHolds)
		if b == nil || b.Get([]byte(subject)) == nil {
			return eventvault.NoHoldError(op)
		}
		return b.Delete([]byte(subject))
	})
}

// Hold returns the subject's legal hold.
// Errors: ENOTFOUND if there is none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) Hold(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.Hold, error) {
	const op = "bolt.Hold"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.Hold{}, err
	}
	var h eventvault.Hold
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		var v []byte
		if b := nested(tx.Bucket(bucketErasure), []byte(tenant), bucketHolds); b != nil {
			v = b.Get([]byte(subject))
		}
		if v == nil {
			return eventvault.NoHoldError(op)
		}
		var r holdRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("corrupt legal hold record: %w", err)
		}
		h = eventvault.Hold{Subject: subject, Reason: r.Reason, PlacedAt: r.PlacedAt, PlacedBy: r.PlacedBy}
		return nil
	})
	return h, err
}

// CreateErasureRequest stores a new request of r.Tenant. Request ids are
// scoped to a tenant, like event ids: the same id in another tenant is
// another request and no conflict.
// Errors: ECONFLICT if the tenant has a request with this id; EINVALID for
// a malformed tenant, a nil id, an empty pseudonym or an unknown state.
func (db *DB) CreateErasureRequest(ctx context.Context, r eventvault.ErasureRequest) error {
	const op = "bolt.CreateErasureRequest"
	if err := r.Validate(); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b, err := writeErasureBucket(tx, r.Tenant, bucketRequests)
		if err != nil {
			return err
		}
		if b.Get(r.ID[:]) != nil {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("erasure request %s exists already", r.ID)}
		}
		return putRequest(b, requestRecord{
			ID: r.ID, Subject: r.Subject, State: string(r.State), Reason: r.Reason, RequestedBy: r.RequestedBy,
			ReceivedAt: db.stamp(r.ReceivedAt), CompletedAt: stampOrZero(r.CompletedAt), Certificate: r.Certificate,
		})
	})
}

// UpdateErasureRequest replaces the state, reason, completion time and
// certificate of a stored request; its subject, requester and receipt time
// never change.
// Errors: ENOTFOUND if the tenant has no request with this id; EINVALID as
// for CreateErasureRequest.
func (db *DB) UpdateErasureRequest(ctx context.Context, r eventvault.ErasureRequest) error {
	const op = "bolt.UpdateErasureRequest"
	if err := r.Validate(); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := nested(tx.Bucket(bucketErasure), []byte(r.Tenant), bucketRequests)
		var v []byte
		if b != nil {
			v = b.Get(r.ID[:])
		}
		if v == nil {
			return eventvault.NoErasureRequestError(op, r.ID)
		}
		stored, err := decodeRequest(v)
		if err != nil {
			return err
		}
		stored.State, stored.Reason = string(r.State), r.Reason
		stored.CompletedAt, stored.Certificate = stampOrZero(r.CompletedAt), r.Certificate
		return putRequest(b, stored)
	})
}

// ErasureRequest returns the tenant's request with this id.
// Errors: ENOTFOUND; EINVALID for a malformed tenant.
func (db *DB) ErasureRequest(ctx context.Context, tenant eventvault.TenantID, id uuid.UUID) (eventvault.ErasureRequest, error) {
	const op = "bolt.ErasureRequest"
	if err := validateTenant(tenant); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	var out eventvault.ErasureRequest
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		var v []byte
		if b := nested(tx.Bucket(bucketErasure), []byte(tenant), bucketRequests); b != nil {
			v = b.Get(id[:])
		}
		if v == nil {
			return eventvault.NoErasureRequestError(op, id)
		}
		r, err := decodeRequest(v)
		out = r.request(tenant)
		return err
	})
	return out, err
}

// LatestErasureRequest returns the subject's request received last (of two
// received at the same time, the one with the greater id). It reads every
// request of the tenant: the embedded store serves development, not volume.
// Errors: ENOTFOUND if it has none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) LatestErasureRequest(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.ErasureRequest, error) {
	const op = "bolt.LatestErasureRequest"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	var latest *requestRecord
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		b := nested(tx.Bucket(bucketErasure), []byte(tenant), bucketRequests)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			r, err := decodeRequest(v)
			if err != nil || r.Subject != subject {
				return err
			}
			if latest == nil || r.ReceivedAt.After(latest.ReceivedAt) ||
				(r.ReceivedAt.Equal(latest.ReceivedAt) && bytes.Compare(r.ID[:], latest.ID[:]) > 0) {
				latest = &r
			}
			return nil
		})
	})
	if err != nil {
		return eventvault.ErasureRequest{}, err
	}
	if latest == nil {
		return eventvault.ErasureRequest{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the subject has no erasure request"}
	}
	return latest.request(tenant), nil
}

func putRequest(b *bbolt.Bucket, r requestRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(r.ID[:], v)
}

func decodeRequest(v []byte) (requestRecord, error) {
	var r requestRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return requestRecord{}, fmt.Errorf("corrupt erasure request record: %w", err)
	}
	return r, nil
}

// writeErasureBucket returns the named bucket of the tenant's erasure
// bucket, creating both.
func writeErasureBucket(tx *bbolt.Tx, tenant eventvault.TenantID, name []byte) (*bbolt.Bucket, error) {
	eb, err := writeErasure(tx, tenant)
	if err != nil {
		return nil, err
	}
	b, err := eb.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, fmt.Errorf("create bucket %s of tenant %s: %w", name, tenant, err)
	}
	return b, nil
}

// stampOrZero is t in UTC at microsecond precision; the zero time stays
// zero.
func stampOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
