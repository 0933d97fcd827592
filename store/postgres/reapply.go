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

// TenantErasures is what a database records of one tenant's erasures: the
// tenant's own shred, its shredded streams, and its erasure requests that
// reached an end (completed or rejected).
type TenantErasures struct {
	Tenant eventvault.TenantID
	// Exists is false for a tenant this database has never held.
	Exists bool
	// ShreddedAt is when the tenant was shredded; zero if it was not.
	ShreddedAt time.Time
	Streams    []ShreddedStream
	Requests   []eventvault.ErasureRequest
	// Subjects are the data subjects whose key was erased (migration 0009).
	Subjects []ErasedSubject
}

// ErasedSubject is the erasure record of one subject key.
type ErasedSubject struct {
	Subject  eventvault.Pseudonym
	ErasedAt time.Time
}

const erasedSubjectsSQL = `SELECT subject, erased_at FROM subject_keys
	WHERE tenant_id = $1 AND erased_at IS NOT NULL ORDER BY subject`

// ShreddedStream is the shred record of one stream.
type ShreddedStream struct {
	Name       eventvault.StreamName
	Subject    eventvault.Pseudonym // '' for a stream without an owner
	ShreddedAt time.Time
	Purged     bool
	KeyID      uuid.UUID // the destroyed stream key's id (uuid.Nil if none)
}

const tenantShredSQL = `SELECT shredded_at FROM tenants WHERE tenant_id = $1`

const shreddedStreamsSQL = `SELECT name, coalesce(subject, ''), shredded_at, purged_at IS NOT NULL, shredded_key_id
	FROM streams WHERE tenant_id = $1 AND shredded_at IS NOT NULL ORDER BY name`

const endedErasureRequestsSQL = `SELECT id, subject, state, reason, requested_by, received_at, completed_at, certificate
	FROM erasure_requests WHERE tenant_id = $1 AND state IN ('completed', 'rejected')
	ORDER BY received_at, id`

// fenceStreamSQL writes the erasure fence of a stream this database never
// held: its tenant's row if missing, and the stream's row as shredded (and
// purged if it was, at its shred time), with no key and no events. The app role may insert
// both (0001's grants); 0003's trigger refuses it for a shredded tenant.
const fenceStreamSQL = `INSERT INTO streams (tenant_id, name, subject, shredded_at, shredded_key_id, purged_at)
VALUES ($1, $2, nullif($3, ''), $4, $5, $6)
ON CONFLICT (tenant_id, name) DO NOTHING`

// fenceStream records s, shredded in another database, as shredded here
// though this database never held it, so that its name stays fenced.
func (db *DB) fenceStream(ctx context.Context, tenant eventvault.TenantID, s ShreddedStream) error {
	const op = "postgres.fenceStream"
	var keyID *uuid.UUID
	if s.KeyID != uuid.Nil {
		keyID = &s.KeyID
	}
	var purgedAt *time.Time
	if s.Purged {
		purgedAt = &s.ShreddedAt
	}
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(fenceStreamSQL, tenant, s.Name, string(s.Subject), s.ShreddedAt, keyID, purgedAt)
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("fence stream %s: %w", s.Name, err)
	}
	return nil
}

// fenceSubjectSQL writes the erasure fence of a subject this database
// holds no key for: an erased key row, with no key (0009's CHECKs allow
// it; its triggers refuse it for a shredded tenant).
const fenceSubjectSQL = `INSERT INTO subject_keys (tenant_id, subject, erased_at) VALUES ($1, $2, $3)
	ON CONFLICT (tenant_id, subject) DO NOTHING`

// fenceSubject records s as erased here: EraseSubjectPII fences only a
// subject whose key it destroys, and a subject erased in the live
// database may have had its key only there (given after the backup).
func (db *DB) fenceSubject(ctx context.Context, tenant eventvault.TenantID, s ErasedSubject) error {
	err := db.run(ctx, txSpec{op: "postgres.fenceSubject", scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(fenceSubjectSQL, tenant, string(s.Subject), stampOrNow(s.ErasedAt))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("fence subject %s: %w", s.Subject, err)
	}
	return nil
}

// ensureTenant writes the tenant's row if it is missing.
func (db *DB) ensureTenant(ctx context.Context, tenant eventvault.TenantID) error {
	err := db.run(ctx, txSpec{op: "postgres.ensureTenant", scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("record tenant %s: %w", tenant, err)
	}
	return nil
}

// Erasures reads what the database records of the tenant's erasures, in
// the tenant's scope, on one snapshot.
// Errors: EINVALID for a malformed tenant.
func (db *DB) Erasures(ctx context.Context, tenant eventvault.TenantID) (TenantErasures, error) {
	const op = "postgres.Erasures"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return TenantErasures{}, err
	}
	var e TenantErasures
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		e = TenantErasures{Tenant: tenant}
		b := &pgx.Batch{}
		b.Queue(tenantShredSQL, tenant).QueryRow(func(r pgx.Row) error {
			var at *time.Time
			err := r.Scan(&at)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			e.Exists = true
			if at != nil {
				e.ShreddedAt = at.UTC()
			}
			return nil
		})
		b.Queue(shreddedStreamsSQL, tenant).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var s ShreddedStream
				var name, subject string
				var keyID *uuid.UUID
				if err := rows.Scan(&name, &subject, &s.ShreddedAt, &s.Purged, &keyID); err != nil {
					return err
				}
				if keyID != nil {
					s.KeyID = *keyID
				}
				s.Name, s.Subject, s.ShreddedAt = eventvault.StreamName(name), eventvault.Pseudonym(subject), s.ShreddedAt.UTC()
				e.Streams = append(e.Streams, s)
			}
			return rows.Err()
		})
		b.Queue(erasedSubjectsSQL, tenant).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var es ErasedSubject
				if err := rows.Scan(&es.Subject, &es.ErasedAt); err != nil {
					return err
				}
				es.ErasedAt = es.ErasedAt.UTC()
				e.Subjects = append(e.Subjects, es)
			}
			return rows.Err()
		})
		b.Queue(endedErasureRequestsSQL, tenant).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r := eventvault.ErasureRequest{Tenant: tenant}
				var subject, state string
				var completedAt *time.Time
				if err := rows.Scan(&r.ID, &subject, &state, &r.Reason, &r.RequestedBy, &r.ReceivedAt, &completedAt, &r.Certificate); err != nil {
					return err
				}
				r.Subject, r.State, r.ReceivedAt = eventvault.Pseudonym(subject), eventvault.ErasureState(state), r.ReceivedAt.UTC()
				if completedAt != nil {
					r.CompletedAt = completedAt.UTC()
				}
				e.Requests = append(e.Requests, r)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return TenantErasures{}, fmt.Errorf("read the erasures of tenant %s: %w", tenant, err)
	}
	return e, nil
}

// Reapplied counts what ReapplyErasures did.
type Reapplied struct {
	TenantsShredded int // tenants shredded here as they are in the source
	StreamsShredded int // streams shredded (or purged) here as they are in the source
	// StreamsAbsent are shredded streams of the source this database never
	// held (created after the backup): nothing of them is here to erase,
	// and ReapplyErasures records them as shredded (a row with no key and
	// no events), so that their names stay fenced.
	StreamsAbsent int
	// TenantsAbsent are tenants with erasures in the source that this
	// database never held; they get a row, to carry their fences.
	TenantsAbsent   int
	RequestsWritten int // erasure requests recorded or brought to their end state
	// SubjectsErased are subjects whose key and personal values were
	// erased here as they are in the source (or fenced, if this database
	// never held them).
	SubjectsErased int
}

// ReapplyErasures makes db, a database restored from a backup, erase what
// from, the live database, has erased since: every tenant shredded in from
// is shredded here (its tokens revoked, as a tenant shred does), every
// stream shredded in from is shredded here at the same time (purged if it
// was purged), and every completed or rejected erasure request of from is
// recorded here as it is, certificate included, so that the certificates
// handed out stay on record. It works by tenant, stream name and subject
// pseudonym, through the store's own ShredTenant, ShredStream and erasure
// request writes (so every node listening on db drops the keys), every
// data subject erased in from has its key and personal values erased here
// (EraseSubjectPII), and
// compares before it writes: running it again does nothing. Requests are
// written after the shreds, so none reads as completed here before its
// streams are shredded. A stream or tenant created after the backup and
// erased since is recorded here as erased too (see Reapplied).
//
// It needs no root key: shredding destroys wrapped keys, it never unwraps
// one. The role of each URL may be the server's login role.
func (db *DB) ReapplyErasures(ctx context.Context, from *DB, log func(format string, args ...any)) (Reapplied, error) {
	var n Reapplied
	if log == nil {
		log = func(string, ...any) {}
	}
	tenants, err := from.Tenants(ctx)
	if err != nil {
		return n, fmt.Errorf("the source: %w", err)
	}
	for _, tenant := range tenants {
		src, err := from.Erasures(ctx, tenant)
		if err != nil {
			return n, fmt.Errorf("the source: %w", err)
		}
		if src.ShreddedAt.IsZero() && len(src.Streams) == 0 && len(src.Requests) == 0 && len(src.Subjects) == 0 {
			continue
		}
		here, err := db.Erasures(ctx, tenant)
		if err != nil {
			return n, err
		}
		if !here.Exists {
			if err := db.ensureTenant(ctx, tenant); err != nil {
				return n, err
			}
			n.TenantsAbsent++
			log("tenant %s: not in this database (created after the backup): nothing of it to erase; its erasures are recorded as fences", tenant)
		}
		// Streams first, then the tenant: a shredded tenant takes no new
		// stream row, not even a fence.
		done := map[eventvault.StreamName]ShreddedStream{}
		for _, s := range here.Streams {
			done[s.Name] = s
		}
		for _, s := range src.Streams {
			if d, ok := done[s.Name]; ok && (d.Purged || !s.Purged) {
				continue
			}
			_, err := db.ShredStream(ctx, tenant, s.Name, s.Purged, s.ShreddedAt)
			if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
				if err := db.fenceStream(ctx, tenant, s); err != nil {
					return n, err
				}
				n.StreamsAbsent++
				log("tenant %s stream %s: not in this database (created after the backup): nothing to erase; recorded as shredded, so that the name stays fenced", tenant, s.Name)
				continue
			}
			if err != nil {
				return n, err
			}
			n.StreamsShredded++
			log("tenant %s stream %s: shredded (as at %s)", tenant, s.Name, s.ShreddedAt.Format(time.RFC3339))
		}
		// Subject keys, before the tenant: a shredded tenant takes no new
		// subject key row, not even a fence.
		erased := map[eventvault.Pseudonym]bool{}
		for _, s := range here.Subjects {
			erased[s.Subject] = true
		}
		for _, s := range src.Subjects {
			if erased[s.Subject] || !here.ShreddedAt.IsZero() {
				continue
			}
			se, err := db.EraseSubjectPII(ctx, tenant, s.Subject, s.ErasedAt)
			if err != nil {
				return n, err
			}
			if se.KeyID == uuid.Nil {
				// No key here (given after the backup): fenced all the same.
				if err := db.fenceSubject(ctx, tenant, s); err != nil {
					return n, err
				}
			}
			n.SubjectsErased++
			log("tenant %s subject %s: key and personal values erased (as at %s)", tenant, s.Subject, s.ErasedAt.Format(time.RFC3339))
		}
		if !src.ShreddedAt.IsZero() && here.ShreddedAt.IsZero() {
			if _, err := db.ShredTenant(ctx, tenant, src.ShreddedAt); err != nil {
				return n, err
			}
			if _, err := db.DeleteTenantTokens(ctx, tenant); err != nil {
				return n, err
			}
			n.TenantsShredded++
			log("tenant %s: shredded (as at %s)", tenant, src.ShreddedAt.Format(time.RFC3339))
		}
		recorded := map[string]eventvault.ErasureRequest{}
		for _, r := range here.Requests {
			recorded[r.ID.String()] = r
		}
		for _, r := range src.Requests {
			if h, ok := recorded[r.ID.String()]; ok && h.State == r.State && string(h.Certificate) == string(r.Certificate) {
				continue
			}
			err := db.CreateErasureRequest(ctx, r)
			if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
				// Received before the backup, ended after it.
				err = db.UpdateErasureRequest(ctx, r)
			}
			if err != nil {
				return n, err
			}
			n.RequestsWritten++
			log("tenant %s erasure request %s: recorded as %s", tenant, r.ID, r.State)
		}
	}
	return n, nil
}
