package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

var _ eventvault.PIIStore = (*DB)(nil)

const subjectKeySQL = `SELECT key_id, key_version, kek_version, wrapped_key, created_at, erased_at IS NOT NULL
	FROM subject_keys WHERE tenant_id = $1 AND subject = $2`

const subjectKeyGenSQL = `SELECT key_id, key_version, kek_version, wrapped_key, created_at, erased_at IS NOT NULL, generation
	FROM subject_keys WHERE tenant_id = $1 AND subject = $2`

const createSubjectKeySQL = `INSERT INTO subject_keys (tenant_id, subject, key_id, key_version, kek_version, wrapped_key, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, statement_timestamp()))
	ON CONFLICT (tenant_id, subject) DO NOTHING`

// insertPIISQL writes an append's values; migration 0009's trigger checks
// each against its subject's live key, which it holds FOR SHARE.
// $1 tenant, $2 stream, then the columns of each value.
const insertPIISQL = `INSERT INTO pii_values (tenant_id, token, version, subject, stream, event_id, pointer, class, key_id, ciphertext, created_at)
	SELECT $1, u.token, 1, u.subject, $2, u.event_id, u.pointer, u.class, u.key_id, u.ct, statement_timestamp()
	FROM unnest($3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::uuid[], $9::bytea[])
		AS u(token, subject, event_id, pointer, class, key_id, ct)`

// piiValuesSQL returns the newest version of each token's value with its
// subject's key and restriction, in one statement. Each value's key and
// restriction are looked up on their own (LATERAL … LIMIT 1, as
// subjectStatesSQL), so that the statement reads those subjects' index
// entries and never all of the tenant's: as plain joins, a plan could
// hash or merge them over the tenant's restrictions
// (TestStatementsOfTenantsAlikeReadWhatTheyNeed saw 500 read for 4
// tokens).
const piiValuesSQL = `SELECT DISTINCT ON (v.token) v.token, v.version, v.subject, v.stream, v.event_id, v.pointer, v.class, v.key_id, v.ciphertext, v.created_at,
		k.key_id, k.key_version, k.kek_version, k.wrapped_key, k.created_at, r.subject IS NOT NULL
	FROM pii_values v
	LEFT JOIN LATERAL (SELECT key_id, key_version, kek_version, wrapped_key, created_at FROM subject_keys
		WHERE tenant_id = $1 AND subject = v.subject LIMIT 1) k ON true
	LEFT JOIN LATERAL (SELECT subject FROM pii_restrictions WHERE tenant_id = $1 AND subject = v.subject LIMIT 1) r ON true
	WHERE v.tenant_id = $1 AND v.token = ANY($2::text[])
	ORDER BY v.token, v.version DESC`

const subjectPIISQL = `SELECT token, version, subject, stream, event_id, pointer, class, key_id, ciphertext, created_at
	FROM pii_values WHERE tenant_id = $1 AND subject = $2 ORDER BY token, version`

// subjectStatesSQL returns the key, restriction and generation of each
// subject that has a key row, each subject looked up on its own, so that
// the statement reads the subjects' index entries and never the tenant's
// (docs/performance.md, "A big tenant the statistics do not know").
const subjectStatesSQL = `SELECT k.subject, k.key_id, k.key_version, k.kek_version, k.wrapped_key, k.created_at, k.generation, r.subject IS NOT NULL
	FROM (SELECT DISTINCT unnest($2::text[]) AS subject) AS q
	CROSS JOIN LATERAL (SELECT subject, key_id, key_version, kek_version, wrapped_key, created_at, generation FROM subject_keys
		WHERE tenant_id = $1 AND subject = q.subject LIMIT 1) k
	LEFT JOIN LATERAL (SELECT subject FROM pii_restrictions WHERE tenant_id = $1 AND subject = q.subject LIMIT 1) r ON true`

// bumpGenerationSQL moves the subject $1's generation on, in the
// transaction's tenant, if its key is still $2, and returns the rows moved
// (0 or 1): to a value no history of the database reuses, so that after a
// failover that lost a rectification, the next one does not reach the
// number a node cached the lost value at. Only this SECURITY DEFINER
// function may move it (migration 0013).
const bumpGenerationSQL = `SELECT eventvault_next_subject_generation($1, $2)`

const restrictedSQL = `SELECT EXISTS (SELECT 1 FROM pii_restrictions WHERE tenant_id = $1 AND subject = $2)`

const latestPIISQL = `SELECT version, subject, stream, event_id, pointer, class FROM pii_values
	WHERE tenant_id = $1 AND token = $2 ORDER BY version DESC LIMIT 1`

const rectifyPIISQL = `INSERT INTO pii_values (tenant_id, token, version, subject, stream, event_id, pointer, class, key_id, ciphertext, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, statement_timestamp()))`

const putRestrictionSQL = `INSERT INTO pii_restrictions (tenant_id, subject, reason, placed_at, placed_by) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (tenant_id, subject) DO UPDATE SET reason = EXCLUDED.reason, placed_at = EXCLUDED.placed_at, placed_by = EXCLUDED.placed_by`

const deleteRestrictionSQL = `DELETE FROM pii_restrictions WHERE tenant_id = $1 AND subject = $2`

const restrictionSQL = `SELECT reason, placed_at, placed_by FROM pii_restrictions WHERE tenant_id = $1 AND subject = $2`

// eraseSubjectKeySQL destroys the key (or fences a subject that never had
// one) and returns the id destroyed; it returns no row for a subject erased
// before.
// eraseSubjectKeySQL destroys the subject's live key and returns its id;
// it returns no row for a subject without one (erased before, or never
// given a key), and then writes nothing: a subject that never had a key
// is not fenced (fenceSubjectSQL fences one for ReapplyErasures).
const eraseSubjectKeySQL = `WITH old AS (
	SELECT key_id FROM subject_keys WHERE tenant_id = $1 AND subject = $2 AND erased_at IS NULL FOR UPDATE
)
UPDATE subject_keys k SET key_id = NULL, key_version = NULL, kek_version = NULL, wrapped_key = NULL, created_at = NULL,
	erased_at = $3, erased_key_id = old.key_id
FROM old WHERE k.tenant_id = $1 AND k.subject = $2
RETURNING old.key_id`

const deleteSubjectPIISQL = `DELETE FROM pii_values WHERE tenant_id = $1 AND subject = $2`

// SubjectKey implements eventvault.PIIStore.
func (db *DB) SubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.WrappedKey, error) {
	const op = "postgres.SubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k storedKey
	var found, erased bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(subjectKeySQL, tenant, string(subject)).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt, &erased)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return eventvault.WrappedKey{}, fmt.Errorf("subject key: %w", err)
	case !found:
		return eventvault.WrappedKey{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the data subject has no key yet"}
	case erased:
		return eventvault.WrappedKey{}, eventvault.SubjectErasedError(op)
	}
	wk, _ := k.wrappedKey()
	return wk, nil
}

// CreateSubjectKey implements eventvault.PIIStore in one round trip.
func (db *DB) CreateSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "postgres.CreateSubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.WrappedKey{}, err
	}
	if k.ID == uuid.Nil || len(k.Ciphertext) == 0 {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.EINVALID, "a subject key needs an id and a ciphertext")
	}
	var stored storedKey
	var erased bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, retryUnique: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(createSubjectKeySQL, tenant, string(subject), k.ID, int64(k.Version), int64(k.KEKVersion), k.Ciphertext, nullTime(k.CreatedAt))
		b.Queue(subjectKeySQL, tenant, string(subject)).QueryRow(func(r pgx.Row) error {
			return r.Scan(&stored.id, &stored.version, &stored.kekVersion, &stored.wrapped, &stored.createdAt, &erased)
		})
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return eventvault.WrappedKey{}, fmt.Errorf("create subject key: %w", mapError(op, err))
	case erased:
		return eventvault.WrappedKey{}, eventvault.SubjectErasedError(op)
	}
	wk, _ := stored.wrappedKey()
	return wk, nil
}

// queueAppendPII queues the insert of an append's values into b.
func queueAppendPII(b *pgx.Batch, tenant eventvault.TenantID, stream eventvault.StreamName, values []eventvault.PIIValue) {
	if len(values) == 0 {
		return
	}
	n := len(values)
	tokens, subjects, pointers, classes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	events, keys := make([]uuid.UUID, n), make([]uuid.UUID, n)
	cts := make([][]byte, n)
	for i, v := range values {
		tokens[i], subjects[i], pointers[i], classes[i] = v.Token, string(v.Subject), v.Pointer, string(v.Class)
		events[i], keys[i], cts[i] = v.EventID, v.KeyID, v.Ciphertext
	}
	b.Queue(insertPIISQL, tenant, stream, tokens, subjects, events, pointers, classes, keys, cts)
}

// piiSubjects returns the distinct subjects of values, for
// lockSubjectKeysSQL.
func piiSubjects(values []eventvault.PIIValue) []string {
	seen := make(map[eventvault.Pseudonym]bool, 1)
	var out []string
	for _, v := range values {
		if !seen[v.Subject] {
			seen[v.Subject] = true
			out = append(out, string(v.Subject))
		}
	}
	return out
}

// PIIValues implements eventvault.PIIStore: one statement in one round
// trip, however many subjects the tokens belong to.
func (db *DB) PIIValues(ctx context.Context, tenant eventvault.TenantID, tokens []string) (eventvault.PIIPage, error) {
	const op = "postgres.PIIValues"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.PIIPage{}, err
	}
	page := eventvault.PIIPage{Values: map[string]eventvault.PIIValue{}, Keys: map[eventvault.Pseudonym]eventvault.SubjectKeyState{}}
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		clear(page.Values)
		clear(page.Keys)
		b := &pgx.Batch{}
		b.Queue(piiValuesSQL, tenant, tokens).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var v eventvault.PIIValue
				var k storedKey
				var restricted bool
				if err := rows.Scan(&v.Token, &v.Version, &v.Subject, &v.Stream, &v.EventID, &v.Pointer, &v.Class, &v.KeyID, &v.Ciphertext, &v.CreatedAt,
					&k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt, &restricted); err != nil {
					return err
				}
				page.Values[v.Token] = v
				st := eventvault.SubjectKeyState{Restricted: restricted}
				st.Key, _ = k.wrappedKey()
				page.Keys[v.Subject] = st
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.PIIPage{}, fmt.Errorf("personal values: %w", err)
	}
	return page, nil
}

// SubjectStates implements eventvault.PIIStore in one round trip, on one
// snapshot (the generation and the states).
func (db *DB) SubjectStates(ctx context.Context, tenant eventvault.TenantID, subjects []eventvault.Pseudonym) (map[eventvault.Pseudonym]eventvault.SubjectKeyState, int64, error) {
	const op = "postgres.SubjectStates"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, 0, err
	}
	var gen int64
	names := make([]string, len(subjects))
	for i, s := range subjects {
		names[i] = string(s)
	}
	out := make(map[eventvault.Pseudonym]eventvault.SubjectKeyState, len(subjects))
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		clear(out)
		b := &pgx.Batch{}
		b.Queue(piiGenerationSQL, tenant).QueryRow(func(r pgx.Row) error { return r.Scan(&gen) })
		b.Queue(subjectStatesSQL, tenant, names).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var s eventvault.Pseudonym
				var k storedKey
				var st eventvault.SubjectKeyState
				if err := rows.Scan(&s, &k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt, &st.Generation, &st.Restricted); err != nil {
					return err
				}
				st.Key, _ = k.wrappedKey()
				out[s] = st
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("subject states: %w", err)
	}
	return out, gen, nil
}

// SubjectPII implements eventvault.PIIStore.
func (db *DB) SubjectPII(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) ([]eventvault.PIIValue, eventvault.SubjectKeyState, error) {
	const op = "postgres.SubjectPII"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return nil, eventvault.SubjectKeyState{}, err
	}
	var out []eventvault.PIIValue
	var k storedKey
	var found, erased, restricted bool
	var gen int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out, found = nil, false
		b := &pgx.Batch{}
		b.Queue(subjectKeyGenSQL, tenant, string(subject)).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt, &erased, &gen)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		b.Queue(restrictedSQL, tenant, string(subject)).QueryRow(func(r pgx.Row) error { return r.Scan(&restricted) })
		b.Queue(subjectPIISQL, tenant, string(subject)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var v eventvault.PIIValue
				if err := rows.Scan(&v.Token, &v.Version, &v.Subject, &v.Stream, &v.EventID, &v.Pointer, &v.Class, &v.KeyID, &v.Ciphertext, &v.CreatedAt); err != nil {
					return err
				}
				out = append(out, v)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return nil, eventvault.SubjectKeyState{}, fmt.Errorf("personal values of a subject: %w", err)
	case !found:
		return nil, eventvault.SubjectKeyState{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no personal value is held under this subject"}
	case erased:
		return nil, eventvault.SubjectKeyState{}, eventvault.SubjectErasedError(op)
	}
	wk, _ := k.wrappedKey()
	return out, eventvault.SubjectKeyState{Key: wk, Restricted: restricted, Generation: gen}, nil
}

// RectifyPII implements eventvault.PIIStore.
func (db *DB) RectifyPII(ctx context.Context, tenant eventvault.TenantID, v eventvault.PIIValue) error {
	const op = "postgres.RectifyPII"
	if err := eventvault.ValidatePIIValues(tenant, []eventvault.PIIValue{v}); err != nil {
		return err
	}
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		var cur eventvault.PIIValue
		found := false
		b := &pgx.Batch{}
		b.Queue(latestPIISQL, tenant, v.Token).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&cur.Version, &cur.Subject, &cur.Stream, &cur.EventID, &cur.Pointer, &cur.Class)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		switch {
		case !found || cur.Subject != v.Subject:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the tenant holds no value of this subject under this token"}
		case cur.Version+1 != v.Version:
			return eventvault.RowChangedError(op, "the value of token "+v.Token)
		}
		var bumped int64
		b = &pgx.Batch{}
		b.Queue(bumpGenerationSQL, string(v.Subject), [16]byte(v.KeyID)).QueryRow(func(r pgx.Row) error { return r.Scan(&bumped) })
		b.Queue(rectifyPIISQL, tenant, v.Token, v.Version, string(v.Subject), cur.Stream, cur.EventID, cur.Pointer, string(cur.Class), v.KeyID, v.Ciphertext, nullTime(v.CreatedAt))
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		if bumped == 0 {
			return eventvault.SubjectErasedError(op)
		}
		return t.send(ctx, &pgx.Batch{}, true)
	})
	if sqlState(err) == sqlUniqueViolation {
		return eventvault.RowChangedError(op, "the value of token "+v.Token)
	}
	if err != nil {
		return fmt.Errorf("rectify: %w", mapError(op, err))
	}
	return nil
}
