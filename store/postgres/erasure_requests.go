package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

const putHoldSQL = `INSERT INTO legal_holds (tenant_id, subject, reason, placed_at, placed_by)
	VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (tenant_id, subject) DO UPDATE
	SET reason = EXCLUDED.reason, placed_at = EXCLUDED.placed_at, placed_by = EXCLUDED.placed_by`

const deleteHoldSQL = `DELETE FROM legal_holds WHERE tenant_id = $1 AND subject = $2`

const holdSQL = `SELECT reason, placed_at, placed_by FROM legal_holds WHERE tenant_id = $1 AND subject = $2`

const insertErasureRequestSQL = `INSERT INTO erasure_requests
	(tenant_id, id, subject, state, reason, requested_by, received_at, completed_at, certificate)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
	ON CONFLICT (tenant_id, id) DO NOTHING`

const updateErasureRequestSQL = `UPDATE erasure_requests
	SET state = $3, reason = $4, completed_at = $5, certificate = $6
	WHERE tenant_id = $1 AND id = $2`

const erasureRequestColumns = `id, subject, state, reason, requested_by, received_at, completed_at, certificate`

const erasureRequestSQL = `SELECT ` + erasureRequestColumns + ` FROM erasure_requests
	WHERE tenant_id = $1 AND id = $2`

const latestErasureRequestSQL = `SELECT ` + erasureRequestColumns + ` FROM erasure_requests
	WHERE tenant_id = $1 AND subject = $2
	ORDER BY received_at DESC, id DESC
	LIMIT 1`

// execInTenant runs one statement in a transaction of its own with the
// tenant set (row-level security), in the transaction's audit context, and
// returns the rows it affected: what placing and lifting a hold or a
// restriction each do.
func (db *DB) execInTenant(ctx context.Context, op string, tenant eventvault.TenantID, sql string, args ...any) (int64, error) {
	var n int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(sql, args...).Exec(rowsAffected(&n))
		return t.send(ctx, b, true)
	})
	return n, err
}

// markRow is a hold or a restriction as stored: why, when (UTC) and
// by whom.
type markRow struct {
	reason, placedBy string
	placedAt         time.Time
}

// subjectMark reads the one row of a hold or a restriction (sql takes the
// tenant and the pseudonym and selects reason, placed_at, placed_by);
// found is false when there is none.
func (db *DB) subjectMark(ctx context.Context, op string, tenant eventvault.TenantID, sql string, subject eventvault.Pseudonym) (m markRow, found bool, err error) {
	err = db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(sql, tenant, string(subject)).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&m.reason, &m.placedAt, &m.placedBy)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		return t.send(ctx, b, true)
	})
	m.placedAt = m.placedAt.UTC()
	return m, found, err
}

// PutHold places or replaces the legal hold on h.Subject.
// Errors: EINVALID for a malformed tenant or an empty pseudonym.
func (db *DB) PutHold(ctx context.Context, tenant eventvault.TenantID, h eventvault.Hold) error {
	const op = "postgres.PutHold"
	if err := eventvault.ValidateTenantSubject(tenant, h.Subject); err != nil {
		return err
	}
	if _, err := db.execInTenant(ctx, op, tenant, putHoldSQL, tenant, string(h.Subject), h.Reason, stampOrNow(h.PlacedAt), h.PlacedBy); err != nil {
		return fmt.Errorf("place legal hold: %w", err)
	}
	return nil
}

// DeleteHold lifts the subject's legal hold.
// Errors: ENOTFOUND if there is none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) DeleteHold(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) error {
	const op = "postgres.DeleteHold"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	deleted, err := db.execInTenant(ctx, op, tenant, deleteHoldSQL, tenant, string(subject))
	if err != nil {
		return fmt.Errorf("lift legal hold: %w", err)
	}
	if deleted == 0 {
		return eventvault.NoHoldError(op)
	}
	return nil
}

// Hold returns the subject's legal hold.
// Errors: ENOTFOUND if there is none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) Hold(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.Hold, error) {
	const op = "postgres.Hold"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.Hold{}, err
	}
	m, found, err := db.subjectMark(ctx, op, tenant, holdSQL, subject)
	if err != nil {
		return eventvault.Hold{}, fmt.Errorf("read legal hold: %w", err)
	}
	if !found {
		return eventvault.Hold{}, eventvault.NoHoldError(op)
	}
	return eventvault.Hold{Subject: subject, Reason: m.reason, PlacedAt: m.placedAt, PlacedBy: m.placedBy}, nil
}

// CreateErasureRequest stores a new request of r.Tenant. Request ids are
// scoped to a tenant, like event ids: the same id in another tenant is
// another request and no conflict.
// Errors: ECONFLICT if the tenant has a request with this id; EINVALID for
// a malformed tenant, a nil id, an empty pseudonym or an unknown state.
func (db *DB) CreateErasureRequest(ctx context.Context, r eventvault.ErasureRequest) error {
	const op = "postgres.CreateErasureRequest"
	if err := r.Validate(); err != nil {
		return err
	}
	var inserted int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: r.Tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(insertErasureRequestSQL, r.Tenant, r.ID, string(r.Subject), string(r.State), r.Reason, r.RequestedBy,
			stampOrNow(r.ReceivedAt), nullStamp(r.CompletedAt), nullBytes(r.Certificate)).Exec(rowsAffected(&inserted))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("record erasure request %s: %w", r.ID, err)
	}
	if inserted == 0 {
		return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("erasure request %s exists already", r.ID)}
	}
	return nil
}

// UpdateErasureRequest replaces the state, reason, completion time and
// certificate of a stored request; its subject, requester and receipt time
// never change.
// Errors: ENOTFOUND if the tenant has no request with this id; EINVALID as
// for CreateErasureRequest.
func (db *DB) UpdateErasureRequest(ctx context.Context, r eventvault.ErasureRequest) error {
	const op = "postgres.UpdateErasureRequest"
	if err := r.Validate(); err != nil {
		return err
	}
	var updated int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: r.Tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(updateErasureRequestSQL, r.Tenant, r.ID, string(r.State), r.Reason, nullStamp(r.CompletedAt), nullBytes(r.Certificate)).
			Exec(rowsAffected(&updated))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("update erasure request %s: %w", r.ID, err)
	}
	if updated == 0 {
		return eventvault.NoErasureRequestError(op, r.ID)
	}
	return nil
}

// ErasureRequest returns the tenant's request with this id.
// Errors: ENOTFOUND; EINVALID for a malformed tenant.
func (db *DB) ErasureRequest(ctx context.Context, tenant eventvault.TenantID, id uuid.UUID) (eventvault.ErasureRequest, error) {
	const op = "postgres.ErasureRequest"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	r, found, err := db.readErasureRequest(ctx, op, tenant, erasureRequestSQL, id)
	if err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("read erasure request %s: %w", id, err)
	}
	if !found {
		return eventvault.ErasureRequest{}, eventvault.NoErasureRequestError(op, id)
	}
	return r, nil
}

// LatestErasureRequest returns the subject's request received last (of two
// received at the same time, the one with the greater id).
// Errors: ENOTFOUND if it has none; EINVALID for a malformed tenant or an
// empty pseudonym.
func (db *DB) LatestErasureRequest(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.ErasureRequest, error) {
	const op = "postgres.LatestErasureRequest"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	r, found, err := db.readErasureRequest(ctx, op, tenant, latestErasureRequestSQL, string(subject))
	if err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("read latest erasure request: %w", err)
	}
	if !found {
		return eventvault.ErasureRequest{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the subject has no erasure request"}
	}
	return r, nil
}

func (db *DB) readErasureRequest(ctx context.Context, op string, tenant eventvault.TenantID, query string, arg any) (eventvault.ErasureRequest, bool, error) {
	var r eventvault.ErasureRequest
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(query, tenant, arg).QueryRow(func(row pgx.Row) error {
			r = eventvault.ErasureRequest{Tenant: tenant}
			var subject, state string
			var completedAt *time.Time
			err := row.Scan(&r.ID, &subject, &state, &r.Reason, &r.RequestedBy, &r.ReceivedAt, &completedAt, &r.Certificate)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			r.Subject, r.State = eventvault.Pseudonym(subject), eventvault.ErasureState(state)
			r.ReceivedAt = r.ReceivedAt.UTC()
			if completedAt != nil {
				r.CompletedAt = completedAt.UTC()
			}
			return nil
		})
		return t.send(ctx, b, true)
	})
	return r, found, err
}

// nullStamp is nil for the zero time, otherwise t at the database's
// precision.
func nullStamp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

// nullBytes is nil (NULL) for an empty slice.
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
