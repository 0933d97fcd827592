package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

const consumerColumns = `name, filter, checkpoint, created_at, created_by, acked_at`

// putConsumerSQL inserts a consumer, or replaces only the filter of the
// one of that name; xmax = 0 tells an insert from an update.
const putConsumerSQL = `INSERT INTO subscription_consumers AS c (tenant_id, name, filter, checkpoint, created_at, created_by)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (tenant_id, name) DO UPDATE SET filter = EXCLUDED.filter
	RETURNING ` + consumerColumns + `, (xmax = 0)`

const consumerSQL = `SELECT ` + consumerColumns + ` FROM subscription_consumers WHERE tenant_id = $1 AND name = $2`

const consumersSQL = `SELECT ` + consumerColumns + ` FROM subscription_consumers WHERE tenant_id = $1 ORDER BY name`

// ackConsumerSQL moves the checkpoint forward only; a stale ack matches no
// row and consumerSQL then reads the consumer as it is.
const ackConsumerSQL = `UPDATE subscription_consumers SET checkpoint = $3, acked_at = $4
	WHERE tenant_id = $1 AND name = $2 AND checkpoint < $3
	RETURNING ` + consumerColumns

const deleteConsumerSQL = `DELETE FROM subscription_consumers WHERE tenant_id = $1 AND name = $2`

func scanConsumer(r pgx.Row, tenant eventvault.TenantID, extra ...any) (eventvault.Consumer, error) {
	c := eventvault.Consumer{Tenant: tenant}
	var filter []byte
	var acked *time.Time
	dest := append([]any{&c.Name, &filter, &c.Checkpoint, &c.CreatedAt, &c.CreatedBy, &acked}, extra...)
	if err := r.Scan(dest...); err != nil {
		return c, err
	}
	if acked != nil {
		c.AckedAt = *acked
	}
	if err := json.Unmarshal(filter, &c.Filter); err != nil {
		return c, fmt.Errorf("consumer %s: filter: %w", c.Name, err)
	}
	return c, nil
}

func noConsumer(op string) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no such consumer in this tenant: register it with PUT /v1/subscriptions/{name}"}
}

// PutConsumer stores c, or replaces the filter of the consumer of that
// name. Errors: EINVALID for a malformed tenant or name.
func (db *DB) PutConsumer(ctx context.Context, c eventvault.Consumer) (eventvault.Consumer, bool, error) {
	const op = "postgres.PutConsumer"
	if err := eventvault.ValidateTenant(c.Tenant); err != nil {
		return c, false, err
	}
	if err := eventvault.ValidateConsumerName(c.Name); err != nil {
		return c, false, err
	}
	filter, err := json.Marshal(c.Filter)
	if err != nil {
		return c, false, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
	}
	var out eventvault.Consumer
	var created bool
	err = db.run(ctx, txSpec{op: op, scope: scope{tenant: c.Tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(putConsumerSQL, string(c.Tenant), c.Name, filter, c.Checkpoint, stampOrNow(c.CreatedAt), c.CreatedBy).QueryRow(func(r pgx.Row) error {
			var err error
			out, err = scanConsumer(r, c.Tenant, &created)
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.Consumer{}, false, fmt.Errorf("store consumer %s: %w", c.Name, err)
	}
	return out, created, nil
}

// Consumer returns one consumer. Errors: ENOTFOUND.
func (db *DB) Consumer(ctx context.Context, tenant eventvault.TenantID, name string) (eventvault.Consumer, error) {
	const op = "postgres.Consumer"
	cs, err := db.queryConsumers(ctx, op, tenant, consumerSQL, string(tenant), name)
	if err != nil {
		return eventvault.Consumer{}, err
	}
	if len(cs) == 0 {
		return eventvault.Consumer{}, noConsumer(op)
	}
	return cs[0], nil
}

// Consumers returns the tenant's consumers by name.
func (db *DB) Consumers(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Consumer, error) {
	return db.queryConsumers(ctx, "postgres.Consumers", tenant, consumersSQL, string(tenant))
}

func (db *DB) queryConsumers(ctx context.Context, op string, tenant eventvault.TenantID, sql string, args ...any) ([]eventvault.Consumer, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.Consumer
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = nil
		b := &pgx.Batch{}
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				c, err := scanConsumer(rows, tenant)
				if err != nil {
					return err
				}
				out = append(out, c)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("read consumers: %w", err)
	}
	return out, nil
}

// AckConsumer moves the checkpoint forward to checkpoint. Errors:
// ENOTFOUND.
func (db *DB) AckConsumer(ctx context.Context, tenant eventvault.TenantID, name string, checkpoint int64, at time.Time) (eventvault.Consumer, error) {
	const op = "postgres.AckConsumer"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.Consumer{}, err
	}
	var out eventvault.Consumer
	var moved bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		moved = false
		b := &pgx.Batch{}
		b.Queue(ackConsumerSQL, string(tenant), name, checkpoint, stampOrNow(at)).QueryRow(func(r pgx.Row) error {
			var err error
			out, err = scanConsumer(r, tenant)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			moved = err == nil
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.Consumer{}, fmt.Errorf("acknowledge consumer %s: %w", name, err)
	}
	if moved {
		return out, nil
	}
	return db.Consumer(ctx, tenant, name)
}

// DeleteConsumer removes a consumer. Errors: ENOTFOUND.
func (db *DB) DeleteConsumer(ctx context.Context, tenant eventvault.TenantID, name string) error {
	const op = "postgres.DeleteConsumer"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(deleteConsumerSQL, string(tenant), name).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() == 0 {
				return noConsumer(op)
			}
			return nil
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("remove consumer %s: %w", name, err)
	}
	return nil
}

const nextGlobalSQL = `SELECT ` + nextGlobalColumn

// nextGlobalColumn is the tenant's next global position ($1 the tenant).
const nextGlobalColumn = `coalesce((SELECT last_global_position + 1 FROM tenants WHERE tenant_id = $1), 0)`

// NextGlobalPosition returns the global position the tenant's next event
// will take: every event below it is committed, since appends take
// positions under the tenant row's lock, in commit order. 0 for a tenant
// without events.
func (db *DB) NextGlobalPosition(ctx context.Context, tenant eventvault.TenantID) (int64, error) {
	const op = "postgres.NextGlobalPosition"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	var next int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(nextGlobalSQL, string(tenant)).QueryRow(func(r pgx.Row) error { return r.Scan(&next) })
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, fmt.Errorf("next global position: %w", err)
	}
	return next, nil
}
