package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

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
}

// ShreddedStream is the shred record of one stream.
type ShreddedStream struct {
	Name       eventvault.StreamName
	Subject    eventvault.Pseudonym // '' for a stream without an owner
	ShreddedAt time.Time
	Purged     bool
}

const tenantShredSQL = `SELECT shredded_at FROM tenants WHERE tenant_id = $1`

const shreddedStreamsSQL = `SELECT name, coalesce(subject, ''), shredded_at, purged_at IS NOT NULL
	FROM streams WHERE tenant_id = $1 AND shredded_at IS NOT NULL ORDER BY name`

const endedErasureRequestsSQL = `SELECT id, subject, state, reason, requested_by, received_at, completed_at, certificate
	FROM erasure_requests WHERE tenant_id = $1 AND state IN ('completed', 'rejected')
	ORDER BY received_at, id`

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
				if err := rows.Scan(&name, &subject, &s.ShreddedAt, &s.Purged); err != nil {
					return err
				}
				s.Name, s.Subject, s.ShreddedAt = eventvault.StreamName(name), eventvault.Pseudonym(subject), s.ShreddedAt.UTC()
				e.Streams = append(e.Streams, s)
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
	// held (created after the backup): nothing of them is here to erase.
	StreamsAbsent   int
	TenantsAbsent   int // likewise, shredded tenants this database never held
	RequestsWritten int // erasure requests recorded or brought to their end state
}

// ReapplyErasures makes db, a database restored from a backup, erase what
// from, the live database, has erased since: every tenant shredded in from
// is shredded here (its tokens revoked, as a tenant shred does), every
// stream shredded in from is shredded here at the same time (purged if it
// was purged), and every completed or rejected erasure request of from is
// recorded here as it is, certificate included, so that the certificates
// handed out stay on record. It works by tenant, stream name and subject
// pseudonym, through the store's own ShredTenant, ShredStream and erasure
// request writes (so every node listening on db drops the keys), and
// compares before it writes: running it again does nothing. Requests are
// written after the shreds, so none reads as completed here before its
// streams are shredded.
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
		if src.ShreddedAt.IsZero() && len(src.Streams) == 0 && len(src.Requests) == 0 {
			continue
		}
		here, err := db.Erasures(ctx, tenant)
		if err != nil {
			return n, err
		}
		if !here.Exists {
			// Nothing of the tenant is here; its requests' records go
			// with its row, which this database never had.
			n.TenantsAbsent++
			log("tenant %s: not in this database (created after the backup): nothing to erase", tenant)
			continue
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
			// The tenant shred shredded its streams here too.
			if here, err = db.Erasures(ctx, tenant); err != nil {
				return n, err
			}
		}
		done := map[eventvault.StreamName]ShreddedStream{}
		for _, s := range here.Streams {
			done[s.Name] = s
		}
		for _, s := range src.Streams {
			if d, ok := done[s.Name]; ok && (d.Purged || !s.Purged) {
				continue
			}
			if _, err := db.ShredStream(ctx, tenant, s.Name, s.Purged, s.ShreddedAt); err != nil {
				if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
					n.StreamsAbsent++
					log("tenant %s stream %s: not in this database (created after the backup): nothing to erase", tenant, s.Name)
					continue
				}
				return n, err
			}
			n.StreamsShredded++
			log("tenant %s stream %s: shredded (as at %s)", tenant, s.Name, s.ShreddedAt.Format(time.RFC3339))
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
