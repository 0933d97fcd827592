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

// Restrictions of processing (GDPR Art. 18) and the erasure of a subject's
// key and values (Art. 17).

// PutRestriction implements eventvault.PIIStore.
func (db *DB) PutRestriction(ctx context.Context, tenant eventvault.TenantID, r eventvault.Restriction) error {
	const op = "postgres.PutRestriction"
	if err := eventvault.ValidateTenantSubject(tenant, r.Subject); err != nil {
		return err
	}
	if _, err := db.execInTenant(ctx, op, tenant, putRestrictionSQL, tenant, string(r.Subject), r.Reason, stampOrNow(r.PlacedAt), r.PlacedBy); err != nil {
		return fmt.Errorf("restrict: %w", err)
	}
	return nil
}

// DeleteRestriction implements eventvault.PIIStore.
func (db *DB) DeleteRestriction(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) error {
	const op = "postgres.DeleteRestriction"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	deleted, err := db.execInTenant(ctx, op, tenant, deleteRestrictionSQL, tenant, string(subject))
	if err != nil {
		return fmt.Errorf("lift restriction: %w", err)
	}
	if deleted == 0 {
		return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the subject's processing is not restricted"}
	}
	return nil
}

// Restriction implements eventvault.PIIStore.
func (db *DB) Restriction(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.Restriction, error) {
	const op = "postgres.Restriction"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.Restriction{}, err
	}
	m, found, err := db.subjectMark(ctx, op, tenant, restrictionSQL, subject)
	if err != nil {
		return eventvault.Restriction{}, fmt.Errorf("restriction: %w", err)
	}
	if !found {
		return eventvault.Restriction{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the subject's processing is not restricted"}
	}
	return eventvault.Restriction{Subject: subject, Reason: m.reason, PlacedAt: m.placedAt, PlacedBy: m.placedBy}, nil
}

// erasedSubjectKeySQL reads the key an erasure destroyed (this
// transaction's, or an earlier one's).
const erasedSubjectKeySQL = `SELECT erased_key_id FROM subject_keys
	WHERE tenant_id = $1 AND subject = $2 AND erased_at IS NOT NULL`

// EraseSubjectPII implements eventvault.PIIStore in one transaction of two
// round trips: the key row first (which waits for any append holding it
// FOR SHARE), then the values, which then include what such an append
// wrote; then, if a key was destroyed, the audit records ctx carries and
// COMMIT.
func (db *DB) EraseSubjectPII(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, at time.Time) (eventvault.SubjectErasure, error) {
	const op = "postgres.EraseSubjectPII"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.SubjectErasure{}, err
	}
	var out eventvault.SubjectErasure
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		out = eventvault.SubjectErasure{}
		var deleted int64
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(eraseSubjectKeySQL, tenant, string(subject), stampOrNow(at)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id *uuid.UUID
				if err := rows.Scan(&id); err != nil {
					return err
				}
				if id != nil {
					out.KeyID = *id
				}
			}
			return rows.Err()
		})
		b.Queue(deleteSubjectPIISQL, tenant, string(subject)).Exec(rowsAffected(&deleted))
		var erasedKey *uuid.UUID
		b.Queue(erasedSubjectKeySQL, tenant, string(subject)).QueryRow(func(r pgx.Row) error {
			if err := r.Scan(&erasedKey); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return nil
		})
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		out.Values = int(deleted)
		if out.KeyID == uuid.Nil && erasedKey != nil {
			out.KeyID, out.Before = *erasedKey, true
		}
		if out.KeyID == uuid.Nil || out.Before {
			// Nothing destroyed now (no key, or erased before): the
			// audit records ctx carries tell of an erasure, and are not
			// written.
			t.audit = nil
		}
		return nil
	})
	if err != nil {
		return eventvault.SubjectErasure{}, fmt.Errorf("erase subject: %w", err)
	}
	return out, nil
}
