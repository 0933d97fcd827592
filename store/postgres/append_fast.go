package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// fastAppendSQL is the fast append's one statement, for a stream whose row
// the store has cached: it locks the stream's row, and only if the row
// still has the cached version and key (and owner, when the append names
// one) and none of the batch's ids exists in the tenant, takes the global
// positions, inserts the events and moves the version, as writeEventsSQL
// does. It returns NULL when the cached row is stale, having written
// nothing.
//
// The stream's lock comes first: g reads ok, which reads s. The tenant row's
// lock, in g, is the last but the audit head's, as in writeEventsSQL. A
// concurrent append to the same stream that committed while this one waited
// for the lock shows in the version (FOR UPDATE returns the latest row). An
// id inserted meanwhile by an append to another stream is not seen by the
// NOT EXISTS (it reads the statement's snapshot), but the insert then fails
// on the unique index, and the store falls back to the locking path.
//
// $1 tenant, $2 stream, $3 number of events, $4 first stream position (the
// cached version + 1), $5 ids, $6 types, $7 content MACs, $8 payloads,
// $9 the request's key id, $10 the request's subject (empty for none),
// $11 the append's audit record line (NULL for none), written at the
// tenant log's next index only if the append is (ah, ar: the audit head's
// lock comes after the tenant row's, as in every append).
const fastAppendSQL = `WITH s AS (
	SELECT version, key_id, subject FROM streams
	WHERE tenant_id = $1::text AND name = $2::text
	FOR UPDATE
), ok AS (
	SELECT 1 FROM s
	WHERE s.version = $4::bigint - 1 AND s.key_id = $9::uuid
	AND ($10::text = '' OR s.subject = $10::text)
	AND NOT EXISTS (SELECT 1 FROM unnest($5::uuid[]) AS q(id)
		CROSS JOIN LATERAL (SELECT 1 FROM events WHERE tenant_id = $1::text AND id = q.id LIMIT 1) ev)
), g AS (
	INSERT INTO tenants AS t (tenant_id, last_global_position) SELECT $1::text, $3::bigint - 1 FROM ok
	ON CONFLICT (tenant_id) DO UPDATE SET last_global_position = t.last_global_position + $3::bigint
	RETURNING last_global_position - $3::bigint + 1 AS first_global
), ins AS (
	INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
	SELECT $1::text, g.first_global + e.ord - 1, $2::text, $4::bigint + e.ord - 1, e.id, e.type, statement_timestamp(), e.mac, e.payload
	FROM g, unnest($5::uuid[], $6::text[], $7::bytea[], $8::bytea[]) WITH ORDINALITY AS e(id, type, mac, payload, ord)
), upd AS (
	UPDATE streams SET version = $4::bigint + $3::bigint - 1
	FROM g WHERE tenant_id = $1::text AND name = $2::text
), ah AS (
	INSERT INTO audit_heads AS h (tenant_id, size) SELECT $1::text, 1 FROM g WHERE $11::bytea IS NOT NULL
	ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + 1
	RETURNING h.size - 1 AS idx
), ar AS (
	INSERT INTO audit_records (tenant_id, idx, line)
	SELECT $1::text, ah.idx, convert_to(replace(convert_from($11::bytea, 'UTF8'), '"index":0,"time":', '"index":' || ah.idx || ',"time":'), 'UTF8') FROM ah
)
SELECT (SELECT first_global FROM g)`

// appendFast is the fast append: it tries an append in one round trip
// (BEGIN, the scope, fastAppendSQL and COMMIT in one pipeline), sealed at
// the cached row's version. It reports whether the append was written; when it was not, or
// when it failed in a way the locking path answers precisely (any
// error from the database, or one from before the batch was sent), the
// caller falls back to that path, with done false and err nil. Only an
// error after which the outcome is unknown (the connection was lost, the
// context ended) is returned.
func (db *DB) appendFast(ctx context.Context, tenant eventvault.TenantID, req eventvault.AppendRequest, w *batchWrite, cached streamRow) (res eventvault.AppendResult, done bool, err error) {
	first := cached.version + 1
	payloads, err := w.seal(first)
	if err != nil {
		// The locking path decides whether the append could be
		// sealed at all (a conflict comes first) and returns this error
		// without sealing again.
		return res, false, nil
	}
	line, err := auditLine(req, first)
	if err != nil {
		return res, false, nil
	}
	var firstGlobal *int64
	spec := txSpec{op: "postgres.appendFast", scope: scope{tenant: tenant}}
	err = db.attempt(ctx, spec, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(fastAppendSQL, string(tenant), string(req.Stream), w.n, first, w.ids, w.types, byteaArray(w.macs), byteaArray(payloads),
			[16]byte(req.KeyID), string(req.Subject), line).QueryRow(func(r pgx.Row) error {
			return r.Scan(&firstGlobal)
		})
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("fast append to stream %s at cached version %d: %w", req.Stream, cached.version, err)
		}
		return nil
	})
	switch {
	case err != nil && (isPgError(err) || pgconn.SafeToRetry(err)):
		db.log.DebugContext(ctx, "fast append failed; taking the locking path", "reason", sqlState(err))
		return res, false, nil
	case err != nil:
		return res, false, err
	case firstGlobal == nil:
		return res, false, nil
	}
	return w.result(req.Stream, first, *firstGlobal), true, nil
}
