package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// lockStreamSQL locks the stream's row for the rest of the append: appends
// to one stream queue here, and each sees the version the previous one left
// (and a shred that committed meanwhile).
const lockStreamSQL = `SELECT version, key_id, subject FROM streams
	WHERE tenant_id = $1 AND name = $2
	FOR UPDATE`

// readStreamSQL reads the stream's row without locking it, for an append
// that carries the stream's first key and so holds the tenant's row
// already: it writes only to a row it inserted itself, which no other
// transaction can lock, and a row that was there already only ends it
// (ErrStreamKeyExists, or EERASED if shredded). Waiting for that row's
// lock under the tenant's would deadlock with a group commit, which locks
// stream rows first and the tenant's row after them.
const readStreamSQL = `SELECT version, key_id, subject FROM streams
	WHERE tenant_id = $1 AND name = $2`

// lockSubjectKeysSQL takes the live keys of the subjects whose personal
// values an append writes FOR SHARE, in subject order, right after the
// stream's row and before the tenant's: an erasure, rectification or
// re-wrap holding a subject's key then holds up the appends to that
// stream only, never the tenant's row and so never the tenant's other
// appends. The insert's trigger (migration 0009) takes them again and
// checks that each value is sealed under its subject's live key.
//
// $1 tenant, $2 the subjects, distinct.
const lockSubjectKeysSQL = `SELECT 1 FROM subject_keys
	WHERE tenant_id = $1 AND subject = ANY($2::text[]) AND erased_at IS NULL
	ORDER BY subject
	FOR SHARE`

// setOwnerSQL records the data subject who owns the stream, at the first
// append that names one; it rides in the batch that writes the events.
const setOwnerSQL = `UPDATE streams SET subject = $3
	WHERE tenant_id = $1 AND name = $2 AND subject IS NULL`

// findEventsSQL finds the events of the batch appended before, in any stream
// of the tenant. It runs after the stream lock is held, so it sees every
// event committed by an earlier append to the same stream. Each id is
// looked up on its own, so that the statement reads the batch's index
// entries and never the tenant's (docs/performance.md, "A big tenant the
// statistics do not know").
const findEventsSQL = `SELECT ev.id, ev.stream, ev.position, ev.global_position, ev.content_mac
	FROM unnest($2::uuid[]) AS q(id)
	CROSS JOIN LATERAL (SELECT id, stream, position, global_position, content_mac FROM events
		WHERE tenant_id = $1 AND id = q.id LIMIT 1) ev`

// writeEventsSQL takes the batch's global positions from the tenant's row,
// inserts the events and moves the stream's version, in one statement. The
// tenant row's lock is taken here, in the last round trip, with COMMIT in
// the same batch (only the personal values and the audit record come
// after it): it serialises the tenant's appends for the shortest time and
// gives global positions in commit order.
//
// $1 tenant, $2 stream, $3 number of events, $4 first stream position,
// $5 ids, $6 types, $7 content MACs, $8 payloads.
const writeEventsSQL = `WITH g AS (
	INSERT INTO tenants AS t (tenant_id, last_global_position) VALUES ($1, $3::bigint - 1)
	ON CONFLICT (tenant_id) DO UPDATE SET last_global_position = t.last_global_position + $3::bigint
	RETURNING last_global_position - $3::bigint + 1 AS first_global
), ins AS (
	INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
	SELECT $1, g.first_global + e.ord - 1, $2, $4::bigint + e.ord - 1, e.id, e.type, statement_timestamp(), e.mac, e.payload
	FROM g, unnest($5::uuid[], $6::text[], $7::bytea[], $8::bytea[]) WITH ORDINALITY AS e(id, type, mac, payload, ord)
), upd AS (
	UPDATE streams SET version = $4::bigint + $3::bigint - 1
	WHERE tenant_id = $1 AND name = $2
)
SELECT first_global FROM g`

// Append writes a batch atomically. In the common case it takes one round
// trip, the fast append: if this process knows the stream's row (from its
// own earlier appends, see versionCache) and the expected version holds
// there, Seal runs at that version and one pipeline locks the stream,
// checks that the row is still the cached one and that no id of the batch
// exists, writes and commits (appendFast). Otherwise, or if the cached row
// is stale, it takes the locking path, two round trips: the first locks
// the stream and looks the batch's ids up (with BEGIN and the tenant
// context), the second writes the events and commits; between the two, the
// store decides replay or conflict and Seal runs once the positions are
// fixed. An append that ends early (a conflict, a replay) costs a third,
// for ROLLBACK. Seal is called at most once per first position.
//
// An append carrying req.NewKey (a stream without a key row, never on the
// fast append) inserts the key row in the first round trip of the locking
// path, after locking the tenant's row: the row commits with the events or
// not at all. Such an append never waits for a stream row's lock (every
// other append takes its stream's before the tenant's): it reads the row,
// and one that was there already ends it with ErrStreamKeyExists (EERASED
// if it was shredded), even one with req.NewKey itself, from an earlier
// append that carried it.
//
// Errors: ECONFLICT for an expected version that does not hold, an event id
// reused with other content, in another stream, or partly, or a subject
// other than the stream's owner; ENOTFOUND if the stream has no key and
// req.NewKey is nil; ECONFLICT wrapping ErrStreamKeyExists or ErrKEKRetired
// for a req.NewKey the store cannot take; EERASED
// if the stream was shredded or its key is not req.KeyID (replaced
// meanwhile; retry); EINVALID for an empty batch, an id that appears twice
// in it, or an over-long subject; EUNAVAILABLE if the database is.
func (db *DB) Append(ctx context.Context, tenant eventvault.TenantID, req eventvault.AppendRequest) (eventvault.AppendResult, error) {
	const op = "postgres.Append"
	if err := req.Validate(tenant); err != nil {
		return eventvault.AppendResult{}, err
	}
	if err := validateOwner(req.Subject); err != nil {
		return eventvault.AppendResult{}, err
	}
	if len(req.PII) > 0 {
		if err := eventvault.ValidatePIIValues(tenant, req.PII); err != nil {
			return eventvault.AppendResult{}, err
		}
	}
	w := newBatchWrite(req)

	// An append that marks personal values takes the locking path, which
	// writes them in its transaction.
	if cached, ok := db.versions.get(tenant, req.Stream); ok && req.NewKey == nil && len(req.PII) == 0 && cached.keyID == req.KeyID &&
		req.Expected.Check(cached.version) && (req.Subject == "" || req.Subject == cached.owner) &&
		!db.recent.any(w.ids) {
		var (
			res  eventvault.AppendResult
			done bool
			err  error
		)
		if db.noGroupCommit {
			res, done, err = db.appendFast(ctx, tenant, req, w, cached)
		} else {
			res, done, err = db.appendInGroup(ctx, tenant, req, w, cached)
		}
		if err != nil {
			return eventvault.AppendResult{}, db.observe(op, mapError(op, err))
		}
		if done {
			db.versions.saw(tenant, req.Stream, streamRow{version: res.Version, keyID: req.KeyID, owner: req.Subject})
			db.recent.add(w.ids)
			return res, nil
		}
	}

	var res eventvault.AppendResult
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, retryUnique: true}, func(ctx context.Context, t *txn) error {
		var (
			found bool
			// inserted is whether this transaction inserted the stream's
			// row with req.NewKey.
			inserted bool
			version  int64
			keyID    *uuid.UUID
			owner    *string
			prior    = make(map[uuid.UUID]eventvault.PriorEvent)
		)
		b := &pgx.Batch{}
		streamSQL := lockStreamSQL
		if k := req.NewKey; k != nil {
			// The stream's first key, in this transaction: it commits
			// only with the events. The tenant's row is locked first, as
			// the append's last statement would lock it, so that two
			// first appends to one tenant queue there rather than
			// deadlock on the fence triggers' share locks; the stream's
			// row is then read, not locked (readStreamSQL).
			b.Queue(ensureTenantSQL, tenant)
			b.Queue(lockTenantSQL, tenant)
			b.Queue(insertStreamKeySQL, tenant, req.Stream, k.ID, int64(k.Version), int64(k.KEKVersion), k.Ciphertext, nullTime(k.CreatedAt)).Exec(func(ct pgconn.CommandTag) error {
				inserted = ct.RowsAffected() == 1
				return nil
			})
			streamSQL = readStreamSQL
		}
		b.Queue(streamSQL, tenant, req.Stream).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&version, &keyID, &owner)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if len(req.PII) > 0 {
			b.Queue(lockSubjectKeysSQL, tenant, piiSubjects(req.PII))
		}
		b.Queue(findEventsSQL, tenant, w.ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id uuid.UUID
				var e eventvault.PriorEvent
				if err := rows.Scan((*[16]byte)(&id), &e.Stream, &e.Position, &e.GlobalPosition, &e.ContentMAC); err != nil {
					return err
				}
				prior[id] = e
			}
			return rows.Err()
		})
		if err := t.send(ctx, b, false); err != nil {
			if req.NewKey != nil && sqlState(err) == sqlConflict {
				// The KEK fence refused the new key (migration 0004).
				e := mapError(op, err).(*eventvault.Error)
				e.Err = fmt.Errorf("%w: %w", eventvault.ErrKEKRetired, e.Err)
				return e
			}
			return fmt.Errorf("lock stream %s: %w", req.Stream, err)
		}
		if found && keyID != nil && req.NewKey == nil {
			seen := streamRow{version: version, keyID: *keyID}
			if owner != nil {
				seen.owner = eventvault.Pseudonym(*owner)
			}
			db.versions.saw(tenant, req.Stream, seen)
		} else {
			db.versions.forget(tenant, req.Stream)
		}

		switch {
		case !found:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s has no key: create the stream's key before appending", req.Stream)}
		case keyID == nil:
			return &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: fmt.Sprintf("stream %s was shredded", req.Stream)}
		case req.NewKey != nil && !inserted:
			// The row was there before this transaction, with another key
			// or with req.NewKey from an earlier append that carried it,
			// and it is not locked: a first key is for a stream without
			// one, as in every store.
			return eventvault.StreamKeyExistsError(op, req.Stream)
		case *keyID != req.KeyID:
			return &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: fmt.Sprintf("the key of stream %s changed while the append was prepared; retry", req.Stream)}
		case req.Subject != "" && owner != nil && *owner != string(req.Subject):
			return eventvault.OwnerConflictError(op, req.Stream)
		}
		if r, ok, err := eventvault.Replay(op, req, prior); err != nil || ok {
			res = r
			return err
		}
		if !req.Expected.Check(version) {
			return eventvault.ConflictError(op, req.Stream, req.Expected, version)
		}

		first := version + 1
		payloads, err := w.seal(first)
		if err != nil {
			return err
		}

		var firstGlobal int64
		b = &pgx.Batch{}
		if req.Subject != "" && owner == nil {
			b.Queue(setOwnerSQL, tenant, req.Stream, string(req.Subject))
		}
		b.Queue(writeEventsSQL, tenant, req.Stream, w.n, first, w.ids, w.types, byteaArray(w.macs), byteaArray(payloads)).QueryRow(func(r pgx.Row) error {
			return r.Scan(&firstGlobal)
		})
		// The personal values commit with their events, or neither does;
		// their subjects' keys are held since the first round trip, and
		// the audit head comes last (doc.go, "Lock order").
		queueAppendPII(b, tenant, req.Stream, req.PII)
		// The append's audit record commits with its events, or neither
		// does.
		line, err := auditLine(req, first)
		if err != nil {
			return err
		}
		if line != nil {
			b.Queue(appendAuditSQL, string(tenant), [][]byte{line}).QueryRow(func(r pgx.Row) error {
				var idx int64
				if err := r.Scan(&idx); err != nil {
					return auditUnavailable("postgres.Append", err)
				}
				return nil
			})
		}
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("write events of stream %s: %w", req.Stream, err)
		}
		res = w.result(req.Stream, first, firstGlobal)
		return nil
	})
	if err != nil {
		return eventvault.AppendResult{}, err
	}
	if !res.Replayed {
		seen := streamRow{version: res.Version, keyID: req.KeyID, owner: req.Subject}
		db.versions.saw(tenant, req.Stream, seen)
	}
	db.recent.add(w.ids)
	return res, nil
}

// batchWrite is a batch in the columns the write statements take, and its
// Seal, called at most once per first position.
type batchWrite struct {
	stream eventvault.StreamName
	n      int
	// ids are the events' ids as [16]byte, which pgx encodes as uuid
	// directly; a uuid.UUID would go through its driver.Valuer, a string
	// formatted and parsed back.
	ids   [][16]byte
	types []string
	macs  [][]byte

	sealFn   eventvault.SealFunc
	sealed   bool
	first    int64
	payloads [][]byte
	sealErr  error
}

func newBatchWrite(req eventvault.AppendRequest) *batchWrite {
	n := len(req.Events)
	w := &batchWrite{stream: req.Stream, n: n, ids: make([][16]byte, n), types: make([]string, n), macs: make([][]byte, n), sealFn: req.Seal}
	for i, e := range req.Events {
		w.ids[i], w.types[i], w.macs[i] = e.ID, e.Type, e.ContentMAC
	}
	return w
}

// seal returns the batch's payloads sealed at first, calling Seal only if
// the last call was at another position: an append that falls back from
// the fast append, or a transaction run again, reuses what was sealed (payloads
// that were never committed) or the error Seal gave.
func (w *batchWrite) seal(first int64) ([][]byte, error) {
	if w.sealed && w.first == first {
		return w.payloads, w.sealErr
	}
	w.sealed, w.first = true, first
	w.payloads, w.sealErr = w.sealFn(first)
	switch {
	case w.sealErr != nil:
		w.sealErr = fmt.Errorf("seal events of stream %s: %w", w.stream, w.sealErr)
	case len(w.payloads) != w.n:
		w.sealErr = fmt.Errorf("seal events of stream %s: %d payloads for %d events", w.stream, len(w.payloads), w.n)
	}
	return w.payloads, w.sealErr
}

// result is the answer to a batch written at first and firstGlobal.
func (w *batchWrite) result(stream eventvault.StreamName, first, firstGlobal int64) eventvault.AppendResult {
	res := eventvault.AppendResult{Stream: stream, Events: make([]eventvault.Positions, w.n), Version: first + int64(w.n) - 1}
	for i := range res.Events {
		res.Events[i] = eventvault.Positions{Position: first + int64(i), GlobalPosition: firstGlobal + int64(i)}
	}
	return res
}
