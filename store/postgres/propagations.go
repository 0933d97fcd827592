package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// propagationBody is what erasure_propagations.body holds.
type propagationBody struct {
	Streams []eventvault.StreamName      `json:"streams"`
	Pending []string                     `json:"pending"`
	Acks    []eventvault.ConsumerAck     `json:"acks"`
	Removed []eventvault.ConsumerRemoval `json:"removed"`
	// Certificate is the unsigned certificate (it holds no personal data).
	Certificate json.RawMessage `json:"certificate,omitempty"`
}

const propagationColumns = `request_id, tombstone_position, body, done, created_at`

const insertPropagationSQL = `INSERT INTO erasure_propagations (tenant_id, request_id, tombstone_position, body, done, created_at)
	VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, request_id) DO NOTHING`

const propagationSQL = `SELECT ` + propagationColumns + ` FROM erasure_propagations WHERE tenant_id = $1 AND request_id = $2`

const propagationForUpdateSQL = propagationSQL + ` FOR UPDATE`

const openPropagationsSQL = `SELECT ` + propagationColumns + ` FROM erasure_propagations
	WHERE tenant_id = $1 AND NOT done ORDER BY tombstone_position`

const updatePropagationSQL = `UPDATE erasure_propagations SET body = $3, done = $4 WHERE tenant_id = $1 AND request_id = $2`

func scanPropagation(r pgx.Row, tenant eventvault.TenantID) (eventvault.Propagation, error) {
	p := eventvault.Propagation{Tenant: tenant}
	var body []byte
	if err := r.Scan(&p.RequestID, &p.TombstonePosition, &body, &p.Done, &p.CreatedAt); err != nil {
		return p, err
	}
	var pb propagationBody
	if err := json.Unmarshal(body, &pb); err != nil {
		return p, fmt.Errorf("propagation %s: %w", p.RequestID, err)
	}
	p.Streams, p.Pending, p.Acks, p.Removed, p.Certificate = pb.Streams, pb.Pending, pb.Acks, pb.Removed, pb.Certificate
	return p, nil
}

func marshalPropagation(p eventvault.Propagation) ([]byte, error) {
	return json.Marshal(propagationBody{Streams: p.Streams, Pending: p.Pending, Acks: p.Acks, Removed: p.Removed, Certificate: p.Certificate})
}

func noPropagation(op string, id uuid.UUID) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("erasure request %s has no propagation", id)}
}

// CreatePropagation stores p unless its request has one, and returns the
// one stored.
func (db *DB) CreatePropagation(ctx context.Context, p eventvault.Propagation) (eventvault.Propagation, error) {
	const op = "postgres.CreatePropagation"
	if err := eventvault.ValidateTenant(p.Tenant); err != nil {
		return p, err
	}
	body, err := marshalPropagation(p)
	if err != nil {
		return p, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
	}
	err = db.run(ctx, txSpec{op: op, scope: scope{tenant: p.Tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(insertPropagationSQL, string(p.Tenant), p.RequestID, p.TombstonePosition, body, p.Done, stampOrNow(p.CreatedAt))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return p, fmt.Errorf("record propagation of %s: %w", p.RequestID, err)
	}
	return db.Propagation(ctx, p.Tenant, p.RequestID)
}

// Propagation returns a request's propagation. Errors: ENOTFOUND.
func (db *DB) Propagation(ctx context.Context, tenant eventvault.TenantID, request uuid.UUID) (eventvault.Propagation, error) {
	const op = "postgres.Propagation"
	ps, err := db.queryPropagations(ctx, op, tenant, propagationSQL, string(tenant), request)
	if err != nil {
		return eventvault.Propagation{}, err
	}
	if len(ps) == 0 {
		return eventvault.Propagation{}, noPropagation(op, request)
	}
	return ps[0], nil
}

// OpenPropagations returns the tenant's propagations not done, by
// tombstone position.
func (db *DB) OpenPropagations(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Propagation, error) {
	return db.queryPropagations(ctx, "postgres.OpenPropagations", tenant, openPropagationsSQL, string(tenant))
}

func (db *DB) queryPropagations(ctx context.Context, op string, tenant eventvault.TenantID, sql string, args ...any) ([]eventvault.Propagation, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.Propagation
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = nil
		b := &pgx.Batch{}
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				p, err := scanPropagation(rows, tenant)
				if err != nil {
					return err
				}
				out = append(out, p)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("read propagations: %w", err)
	}
	return out, nil
}

// UpdatePropagation applies change to the request's propagation under a
// row lock and stores the result. Errors: ENOTFOUND; change's error.
func (db *DB) UpdatePropagation(ctx context.Context, tenant eventvault.TenantID, request uuid.UUID, change func(*eventvault.Propagation) error) (eventvault.Propagation, error) {
	const op = "postgres.UpdatePropagation"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Propagation{}, err
	}
	var out eventvault.Propagation
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		found := false
		b := &pgx.Batch{}
		b.Queue(propagationForUpdateSQL, string(tenant), request).QueryRow(func(r pgx.Row) error {
			var err error
			out, err = scanPropagation(r, tenant)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		if !found {
			return noPropagation(op, request)
		}
		if err := change(&out); err != nil {
			return err
		}
		body, err := marshalPropagation(out)
		if err != nil {
			return err
		}
		b = &pgx.Batch{}
		b.Queue(updatePropagationSQL, string(tenant), request, body, out.Done)
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.Propagation{}, fmt.Errorf("update propagation of %s: %w", request, err)
	}
	return out, nil
}
