package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// appendAuditSQL writes $2's lines at the next indexes of tenant $1's log,
// each with its index placeholder set (eventvault.AuditIndexPlaceholder),
// and returns the first: the head's row lock orders a log's writers, so
// indexes are gapless and in commit order.
const appendAuditSQL = `WITH h AS (
	INSERT INTO audit_heads AS h (tenant_id, size) VALUES ($1::text, cardinality($2::bytea[]))
	ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + cardinality($2::bytea[])
	RETURNING h.size - cardinality($2::bytea[]) AS first
), ins AS (
	INSERT INTO audit_records (tenant_id, idx, line)
	SELECT $1::text, h.first + l.ord - 1,
		convert_to(replace(convert_from(l.line, 'UTF8'), '"index":0,"time":', '"index":' || (h.first + l.ord - 1) || ',"time":'), 'UTF8')
	FROM h, unnest($2::bytea[]) WITH ORDINALITY AS l(line, ord)
)
SELECT first FROM h`

// auditLine is the append's audit record line at first, nil when it
// records none (req.Audit nil). An empty line is refused (EINTERNAL): the
// group statement would skip it and the other paths write it, and a
// request's record is never empty.
func auditLine(req eventvault.AppendRequest, first int64) ([]byte, error) {
	if req.Audit == nil {
		return nil, nil
	}
	line, err := req.Audit(first)
	if err != nil {
		return nil, fmt.Errorf("audit record of the append: %w", err)
	}
	if len(line) == 0 {
		return nil, eventvault.Errorf(eventvault.EINTERNAL, "the append's audit record is empty")
	}
	return line, nil
}

// auditScope is the scope that writes and reads tenant's log: the
// tenant's, or the admin scope for the deployment's own log.
func auditScope(tenant eventvault.TenantID) scope {
	if tenant == eventvault.DeploymentLog {
		return scope{admin: true}
	}
	return scope{tenant: tenant}
}

func validateAuditTenant(tenant eventvault.TenantID) error {
	if tenant == eventvault.DeploymentLog {
		return nil
	}
	return eventvault.ValidateTenant(tenant)
}

// queueAudit adds the insert of lines to b, which commits the
// transaction's action: the records are written with it or not at all.
// The transaction's scope must be the log's.
func (t *txn) queueAudit(b *pgx.Batch, lines [][]byte, first *int64) error {
	tenant := t.audit.Tenant
	if t.spec.scope.tenant != tenant || (tenant == eventvault.DeploymentLog && !t.spec.scope.admin) {
		return &eventvault.Error{Code: eventvault.EINTERNAL, Op: t.spec.op, Message: fmt.Sprintf("audit records of log %q in a transaction of tenant %q", tenant, t.spec.scope.tenant)}
	}
	b.Queue(appendAuditSQL, string(tenant), lines).QueryRow(func(r pgx.Row) error {
		if err := r.Scan(first); err != nil {
			return auditUnavailable(t.spec.op, err)
		}
		return nil
	})
	return nil
}

// auditUnavailable is the error of an audit write that failed: the action
// it records does not happen either (fail closed).
func auditUnavailable(op string, err error) error {
	return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: "the audit log cannot be written, so the action was not carried out: retry later; an operator should check the server's log", Err: err}
}

// AppendAudit writes lines at the next indexes of tenant's log in a
// transaction of its own. Errors: EUNAVAILABLE.
func (db *DB) AppendAudit(ctx context.Context, tenant eventvault.TenantID, lines [][]byte) (int64, error) {
	const op = "postgres.AppendAudit"
	if err := validateAuditTenant(tenant); err != nil {
		return 0, err
	}
	if len(lines) == 0 {
		return 0, eventvault.Errorf(eventvault.EINVALID, "no audit record to append")
	}
	var first int64
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant)}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(appendAuditSQL, string(tenant), lines).QueryRow(func(r pgx.Row) error { return r.Scan(&first) })
		return t.send(ctx, b, true)
	})
	if err != nil {
		var e *eventvault.Error
		if errors.As(err, &e) && e.Code != eventvault.EINTERNAL {
			return 0, fmt.Errorf("append to the audit log: %w", err)
		}
		return 0, auditUnavailable(op, err)
	}
	return first, nil
}

// AuditSize is the number of records in tenant's log.
func (db *DB) AuditSize(ctx context.Context, tenant eventvault.TenantID) (int64, error) {
	const op = "postgres.AuditSize"
	if err := validateAuditTenant(tenant); err != nil {
		return 0, err
	}
	var size int64
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant), readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT coalesce((SELECT size FROM audit_heads WHERE tenant_id = $1), 0)`, string(tenant)).QueryRow(func(r pgx.Row) error { return r.Scan(&size) })
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, fmt.Errorf("audit log size: %w", err)
	}
	return size, nil
}

// AuditRecords returns the records at [from, to).
func (db *DB) AuditRecords(ctx context.Context, tenant eventvault.TenantID, from, to int64) ([][]byte, error) {
	const op = "postgres.AuditRecords"
	if err := validateAuditTenant(tenant); err != nil {
		return nil, err
	}
	if from < 0 || to < from {
		return nil, eventvault.Errorf(eventvault.EINVALID, "audit range [%d, %d) is not a range of indexes", from, to)
	}
	out := make([][]byte, 0, to-from)
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant), readOnly: true}, func(ctx context.Context, t *txn) error {
		out = out[:0]
		b := &pgx.Batch{}
		b.Queue(`SELECT idx, line FROM audit_records WHERE tenant_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`, string(tenant), from, to).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var idx int64
				var line []byte
				if err := rows.Scan(&idx, &line); err != nil {
					return err
				}
				if idx != from+int64(len(out)) {
					return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("the audit log of %q lacks record %d", tenant, from+int64(len(out)))}
				}
				out = append(out, line)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	if int64(len(out)) != to-from {
		return nil, eventvault.Errorf(eventvault.EINVALID, "the audit log of %q holds records up to %d, not %d", tenant, from+int64(len(out)), to)
	}
	return out, nil
}

// AuditHashes returns the stored hashes at indexes.
func (db *DB) AuditHashes(ctx context.Context, tenant eventvault.TenantID, indexes []int64) ([][]byte, error) {
	const op = "postgres.AuditHashes"
	if err := validateAuditTenant(tenant); err != nil {
		return nil, err
	}
	found := map[int64][]byte{}
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant), readOnly: true}, func(ctx context.Context, t *txn) error {
		clear(found)
		b := &pgx.Batch{}
		b.Queue(`SELECT hash_idx, hash FROM audit_hashes WHERE tenant_id = $1 AND hash_idx = ANY($2)`, string(tenant), indexes).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var i int64
				var h []byte
				if err := rows.Scan(&i, &h); err != nil {
					return err
				}
				found[i] = h
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("read audit hashes: %w", err)
	}
	out := make([][]byte, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok {
			return nil, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("audit hash %d of %q is not stored", idx, tenant)}
		}
		out[i] = h
	}
	return out, nil
}

// AddAuditHashes stores hashes at from, from+1, ...
func (db *DB) AddAuditHashes(ctx context.Context, tenant eventvault.TenantID, from int64, hashes [][]byte) error {
	const op = "postgres.AddAuditHashes"
	if err := validateAuditTenant(tenant); err != nil {
		return err
	}
	if len(hashes) == 0 {
		return nil
	}
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant)}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO audit_hashes (tenant_id, hash_idx, hash)
			SELECT $1, $2 + h.ord - 1, h.hash FROM unnest($3::bytea[]) WITH ORDINALITY AS h(hash, ord)`, string(tenant), from, hashes)
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("store audit hashes: %w", err)
	}
	return nil
}

// AddAuditCheckpoint stores a signed checkpoint.
func (db *DB) AddAuditCheckpoint(ctx context.Context, tenant eventvault.TenantID, size int64, note []byte) error {
	const op = "postgres.AddAuditCheckpoint"
	if err := validateAuditTenant(tenant); err != nil {
		return err
	}
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant)}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES ($1, $2, $3)`, string(tenant), size, string(note))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("store an audit checkpoint: %w", err)
	}
	return nil
}

// latestCheckpointSQL reads a log's largest checkpoint, the first entry of
// its primary key's range read backwards. It runs as a page read
// (txSpec.pageRead: no bitmap scan, no sort): the audit tables' row-level
// policy is an OR (the tenant's rows, or the deployment log's in the admin
// scope), and over it the planner took a bitmap of both branches, all of
// the log's checkpoints, sorted for the largest: one checkpoint a publish
// interval, so a log's reads grew without bound
// (TestStatementsOfTenantsAlikeReadWhatTheyNeed read 2,000 for one).
const latestCheckpointSQL = `SELECT size, note FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1`

// LatestAuditCheckpoint returns the largest checkpoint.
func (db *DB) LatestAuditCheckpoint(ctx context.Context, tenant eventvault.TenantID) (int64, []byte, error) {
	const op = "postgres.LatestAuditCheckpoint"
	if err := validateAuditTenant(tenant); err != nil {
		return 0, nil, err
	}
	var size int64
	var note string
	found := false
	err := db.run(ctx, txSpec{op: op, scope: auditScope(tenant), readOnly: true, pageRead: true}, func(ctx context.Context, t *txn) error {
		found = false
		b := &pgx.Batch{}
		b.Queue(latestCheckpointSQL, string(tenant)).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&size, &note)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read the audit checkpoint: %w", err)
	}
	if !found {
		return 0, nil, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("the audit log of %q has no checkpoint yet", tenant)}
	}
	return size, []byte(note), nil
}

// AuditTenants lists the logs that hold records.
func (db *DB) AuditTenants(ctx context.Context) ([]eventvault.TenantID, error) {
	const op = "postgres.AuditTenants"
	var out []eventvault.TenantID
	err := db.run(ctx, txSpec{op: op, scope: scope{admin: true}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = nil
		b := &pgx.Batch{}
		b.Queue(`SELECT tenant_id FROM audit_heads WHERE size > 0 ORDER BY tenant_id`).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				out = append(out, eventvault.TenantID(id))
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list audit logs: %w", err)
	}
	return out, nil
}
