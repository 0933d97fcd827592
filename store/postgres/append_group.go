package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// groupAppendSQL is the group commit's one statement: the fast appends of
// one tenant that arrived together, each checked on its own and written
// only if its check holds, with the tenant's global positions taken once
// for all of them. It is fastAppendSQL for many appends:
//
//   - s locks the group's stream rows in name order (LockRows runs above
//     the sort), so two groups never wait on each other in a cycle, and
//     the stream locks come before the tenant row's, as in every append;
//   - ok keeps the appends whose stream row still has the cached version
//     and key (and owner, when the append names one) and none of whose ids
//     exists in the tenant; the others write nothing and are not returned;
//   - g bumps tenants.last_global_position once, by the events of the
//     appends kept, the last lock but the audit head's (doc.go, "Lock
//     order");
//   - ins and upd write the kept appends' events and versions.
//
// The group never holds two appends to one stream, nor one id twice (the
// caller sees to that), so each kept append's positions are its own.
//
// $1 tenant; per append: $2 index k, $3 stream, $4 first stream position
// (the cached version + 1), $5 key id, $6 subject (empty for none), $7 number
// of events; per event: $8 its append's k, $9 its ordinal in the append
// (from 1), $10 ids, $11 types, $12 content MACs, $13 payloads; per
// append again: $14 its audit record line (empty for none), written at
// the tenant log's next indexes, in k order, for the appends kept only
// (al, ah, ar: the audit head's lock after the tenant row's).
//
// It returns k and the first global position of every append written, in k
// order.
const groupAppendSQL = `WITH a AS (
	SELECT * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::bigint[])
		AS a(k, stream, first, key_id, subject, n)
), e AS (
	SELECT * FROM unnest($8::int[], $9::bigint[], $10::uuid[], $11::text[], $12::bytea[], $13::bytea[])
		AS e(k, ord, id, type, mac, payload)
), s AS (
	SELECT st.name, st.version, st.key_id, st.subject
	FROM (SELECT DISTINCT stream FROM a ORDER BY stream) AS n
	CROSS JOIN LATERAL (SELECT name, version, key_id, subject FROM streams
		WHERE tenant_id = $1::text AND name = n.stream LIMIT 1 FOR UPDATE) st
), taken AS (
	SELECT DISTINCT e.k FROM e
	CROSS JOIN LATERAL (SELECT 1 FROM events WHERE tenant_id = $1::text AND id = e.id LIMIT 1) ev
), ok AS (
	SELECT a.k, a.stream, a.first, a.n, coalesce(sum(a.n) OVER (ORDER BY a.k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS off
	FROM a JOIN s ON s.name = a.stream
	WHERE s.version = a.first - 1 AND s.key_id = a.key_id
	AND (a.subject = '' OR s.subject = a.subject)
	AND a.k NOT IN (SELECT k FROM taken)
), total AS (
	SELECT sum(n)::bigint AS n FROM ok HAVING count(*) > 0
), g AS (
	INSERT INTO tenants AS t (tenant_id, last_global_position) SELECT $1::text, total.n - 1 FROM total
	ON CONFLICT (tenant_id) DO UPDATE SET last_global_position = t.last_global_position + EXCLUDED.last_global_position + 1
	RETURNING last_global_position - (SELECT n FROM total) + 1 AS first_global
), ins AS (
	INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
	SELECT $1::text, g.first_global + ok.off + e.ord - 1, ok.stream, ok.first + e.ord - 1, e.id, e.type, statement_timestamp(), e.mac, e.payload
	FROM g, ok JOIN e ON e.k = ok.k
), upd AS (
	UPDATE streams SET version = ok.first + ok.n - 1
	FROM ok, g WHERE streams.tenant_id = $1::text AND streams.name = ok.stream
), al AS (
	SELECT ok.k, l.line FROM g, ok JOIN unnest($2::int[], $14::bytea[]) AS l(k, line) ON l.k = ok.k
	WHERE length(l.line) > 0
), ah AS (
	INSERT INTO audit_heads AS h (tenant_id, size) SELECT $1::text, count(*) FROM al HAVING count(*) > 0
	ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + (SELECT count(*) FROM al)
	RETURNING h.size - (SELECT count(*) FROM al) AS first
), ar AS (
	INSERT INTO audit_records (tenant_id, idx, line)
	SELECT $1::text, x.idx, convert_to(replace(convert_from(x.line, 'UTF8'), '"index":0,"time":', '"index":' || x.idx || ',"time":'), 'UTF8')
	FROM (SELECT ah.first + row_number() OVER (ORDER BY al.k) - 1 AS idx, al.line FROM ah, al) x
)
SELECT ok.k, g.first_global + ok.off FROM ok, g ORDER BY ok.k`

// Limits of one group: past them, the appends waiting form the next one.
const (
	maxGroupAppends = 64
	maxGroupEvents  = 2000
	// maxGroupsInFlight is how many groups of one tenant a node commits at
	// once. The tenant row's lock lets only one commit at a time anyway;
	// a second in flight is sent and does its work ahead of that lock
	// (the statement's parse, the unnest, the stream locks, the id checks)
	// while the first flushes, so that it is ready when the lock passes.
	maxGroupsInFlight = 2
	// secondGroupEvents is how many events must be waiting before a second
	// group starts beside one in flight. Fewer wait for the first to
	// commit and go as one group: a second group of one or two small
	// appends has little work ahead of the lock to overlap, and splits
	// what would be one transaction in two (two commits, two hand-offs of
	// the tenant row's lock). With 8 clients appending one event each,
	// starting the second group at once cost 350-390 µs of CPU per append
	// against 265-345 µs waiting, and 0.47-0.50 of raw's rate against
	// 0.54-0.63 (docs/performance-history.md, "One group in flight").
	secondGroupEvents = 64
	// secondGroupAfter is how long a group may be in flight before the
	// appends waiting behind it start a second however few they are: a
	// group that waits on a stream row locked elsewhere (a slow
	// transaction, an operator's session) must not hold up the tenant's
	// appends to other streams. A group commits in a few milliseconds on
	// a disk that flushes in one or two.
	secondGroupAfter = 20 * time.Millisecond
	// groupTimeout bounds one group's transaction. It does not come from a
	// member's context: one caller going away must not cancel the others.
	groupTimeout = 30 * time.Second
)

// GroupObserver learns of each group commit: how many appends and events
// it carried and how many of them it wrote. A metrics registry implements
// it; it must be safe for concurrent use and quick.
type GroupObserver interface {
	GroupCommitted(appends, events, written int)
}

// groupMember is one fast append waiting for, or carried by, a group.
type groupMember struct {
	// ctx is the append's caller's: a member whose caller went away, or
	// whose deadline passed, before a group takes it is never written.
	ctx      context.Context
	req      eventvault.AppendRequest
	w        *batchWrite
	first    int64
	payloads [][]byte
	// line is the append's audit record line, nil for none.
	line []byte
	done chan struct{}

	// Set by the group before done is closed: written and firstGlobal if
	// the group wrote the append, or err if its outcome is unknown (the
	// connection was lost or the commit's answer never came). Neither
	// means the append was not written and takes the locking path.
	written     bool
	firstGlobal int64
	err         error
}

// tenantGroups is one tenant's queue of fast appends.
type tenantGroups struct {
	pending []*groupMember
	// pendingEvents counts the events of pending.
	pendingEvents int
	inFlight      int
	// taken is when the last group was taken, and so, with one in flight,
	// how long it has been in flight.
	taken time.Time
	// timer starts a second group secondGroupAfter a group was taken, if
	// appends still wait then (armed only while they do).
	timer *time.Timer
	// busy counts the streams of the groups in flight: an append to one of
	// them waits for the next group rather than going in a second group,
	// where it would wait on the stream's row and, with a cached version
	// the first group moves on, fail its check anyway.
	busy map[eventvault.StreamName]int
}

// groupCommitter coalesces a tenant's concurrent fast appends into one
// transaction (group commit): the tenant row's lock and the WAL flush of
// the commit are paid once per group rather than once per append. Its zero
// value is ready to use.
//
// An append joins its tenant's queue; while fewer than maxGroupsInFlight
// groups of the tenant are in flight (for a second, once secondGroupEvents
// events wait or the first has been in flight for secondGroupAfter:
// startsGroup), a new one starts, in a goroutine of its own, with every
// append waiting (up to the limits). A group is what arrived while the
// previous one committed, so a lone append waits for nothing; the only
// timer is the one that starts a second group behind a slow first.
type groupCommitter struct {
	mu      sync.Mutex
	tenants map[eventvault.TenantID]*tenantGroups
}

// appendGrouped carries a fast append in a group commit and waits for its
// outcome, or for its caller to go away: it reports whether the outcome
// is in m.
func (db *DB) appendGrouped(tenant eventvault.TenantID, m *groupMember) bool {
	g := &db.groups
	m.done = make(chan struct{})
	g.mu.Lock()
	if g.tenants == nil {
		g.tenants = make(map[eventvault.TenantID]*tenantGroups)
	}
	q := g.tenants[tenant]
	if q == nil {
		q = &tenantGroups{}
		g.tenants[tenant] = q
	}
	q.pending = append(q.pending, m)
	q.pendingEvents += m.w.n
	db.startGroup(tenant, q, time.Now())
	g.mu.Unlock()
	select {
	case <-m.done:
		return true
	case <-m.ctx.Done():
		// The caller went away: it stops waiting, so that its request
		// ends and frees what it holds. A group that already carries the
		// append may still write it (its outcome is unknown to the
		// caller, as for a connection lost during COMMIT); one that has
		// not taken it yet drops it (take).
		return false
	}
}

// startsGroup reports whether the appends waiting start a group of their
// own at now: one if none is in flight, a second only once
// secondGroupEvents events wait or the group in flight has been so for
// secondGroupAfter. Appends left waiting are taken by the group in flight
// when it has committed (commitGroups).
func (q *tenantGroups) startsGroup(now time.Time) bool {
	switch {
	case len(q.pending) == 0 || q.inFlight >= maxGroupsInFlight:
		return false
	case q.inFlight == 0:
		return true
	}
	return q.pendingEvents >= secondGroupEvents || now.Sub(q.taken) >= secondGroupAfter
}

// startGroup starts a group of the tenant's waiting appends if startsGroup
// says so; if it does not, and appends wait behind one group in flight, it
// arms the timer that checks again when that group has been in flight for
// secondGroupAfter. g.mu is held.
func (db *DB) startGroup(tenant eventvault.TenantID, q *tenantGroups, now time.Time) {
	if q.startsGroup(now) {
		q.inFlight++
		go db.commitGroups(tenant, q)
		return
	}
	if len(q.pending) == 0 || q.inFlight != 1 || q.timer != nil {
		return
	}
	q.timer = time.AfterFunc(secondGroupAfter-now.Sub(q.taken), func() {
		g := &db.groups
		g.mu.Lock()
		defer g.mu.Unlock()
		q.timer = nil
		db.startGroup(tenant, q, time.Now())
	})
}

// commitGroups commits groups of the tenant's waiting appends until none is
// left.
func (db *DB) commitGroups(tenant eventvault.TenantID, q *tenantGroups) {
	g := &db.groups
	var done []*groupMember
	for {
		g.mu.Lock()
		q.mark(done, -1)
		group := q.take()
		if len(group) == 0 {
			q.inFlight--
			if q.inFlight == 0 && len(q.pending) == 0 {
				delete(g.tenants, tenant)
			}
			g.mu.Unlock()
			return
		}
		q.taken = time.Now()
		q.mark(group, 1)
		g.mu.Unlock()
		db.commitGroup(tenant, group)
		for _, m := range group {
			close(m.done)
		}
		done = group
	}
}

// mark counts the streams of group as in flight (by 1) or no longer (by
// -1). g.mu is held.
func (q *tenantGroups) mark(group []*groupMember, by int) {
	if len(group) == 0 {
		return
	}
	if q.busy == nil {
		q.busy = make(map[eventvault.StreamName]int)
	}
	for _, m := range group {
		if q.busy[m.req.Stream] += by; q.busy[m.req.Stream] <= 0 {
			delete(q.busy, m.req.Stream)
		}
	}
}

// take removes and returns the next group: waiting appends in arrival
// order, at most one per stream and none to a stream of a group in flight,
// none sharing an id with another, within the limits. Those left wait for
// the next group. A waiting append whose context ended is dropped,
// answered with its context's error.
func (q *tenantGroups) take() []*groupMember {
	var (
		group   []*groupMember
		left    = q.pending[:0]
		streams = make(map[eventvault.StreamName]bool)
		ids     = make(map[[16]byte]bool)
		events  int
	)
	for _, m := range q.pending {
		if err := m.ctx.Err(); err != nil {
			// Never started: the append is not written, and says why.
			m.err = err
			close(m.done)
			continue
		}
		if !q.fits(m, group, streams, ids, events) {
			left = append(left, m)
			continue
		}
		group = append(group, m)
		streams[m.req.Stream] = true
		for _, id := range m.w.ids {
			ids[id] = true
		}
		events += m.w.n
	}
	clear(q.pending[len(left):])
	q.pending = left
	q.pendingEvents = 0
	for _, m := range left {
		q.pendingEvents += m.w.n
	}
	return group
}

func (q *tenantGroups) fits(m *groupMember, group []*groupMember, streams map[eventvault.StreamName]bool, ids map[[16]byte]bool, events int) bool {
	if len(group) > 0 && (len(group) >= maxGroupAppends || events+m.w.n > maxGroupEvents) {
		return false
	}
	if streams[m.req.Stream] || q.busy[m.req.Stream] > 0 {
		return false
	}
	for _, id := range m.w.ids {
		if ids[id] {
			return false
		}
	}
	return true
}

// commitGroup writes a group in one transaction, one round trip: BEGIN, the
// scope, groupAppendSQL and COMMIT. A group of one append (what a lone
// append makes) sends fastAppendSQL instead, which writes the same rows
// with the same checks: PostgreSQL executes it in about 90 µs against the
// group statement's 130 (make bench with one client, stop 18). Each member
// learns whether it was written. If the transaction fails with an answer
// from the database (a unique violation when an append to another stream
// took an id meanwhile, a deadlock), none was written and each takes the
// locking path on its own, where only its own outcome decides its answer:
// no member fails because another did. If the outcome is unknown (the
// connection was lost during the commit), every member gets the error, as
// a lone append would.
func (db *DB) commitGroup(tenant eventvault.TenantID, group []*groupMember) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	events := 0
	for _, m := range group {
		events += m.w.n
	}
	spec := txSpec{op: "postgres.groupAppend", scope: scope{tenant: tenant}}
	written := 0
	err := db.attempt(ctx, spec, func(ctx context.Context, t *txn) error {
		for _, m := range group {
			m.written = false
		}
		written = 0
		b := &pgx.Batch{}
		if len(group) == 1 {
			queueLoneAppend(b, tenant, group[0], &written)
		} else {
			queueGroupAppend(b, tenant, group, events, &written)
		}
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("group append of %d appends: %w", len(group), err)
		}
		return nil
	})
	switch {
	case err != nil && (isPgError(err) || pgconn.SafeToRetry(err)):
		db.log.Debug("group append failed; each append takes the locking path", "appends", len(group), "reason", sqlState(err))
		for _, m := range group {
			m.written = false
		}
		written = 0
	case err != nil:
		for _, m := range group {
			m.written, m.err = false, err
		}
		written = 0
	}
	if db.groupObserver != nil {
		db.groupObserver.GroupCommitted(len(group), events, written)
	}
}

// queueLoneAppend queues fastAppendSQL for a group of one, which marks m
// written (and counts it in written) when the statement wrote it.
func queueLoneAppend(b *pgx.Batch, tenant eventvault.TenantID, m *groupMember, written *int) {
	b.Queue(fastAppendSQL, string(tenant), string(m.req.Stream), m.w.n, m.first, m.w.ids, m.w.types, byteaArray(m.w.macs), byteaArray(m.payloads),
		[16]byte(m.req.KeyID), string(m.req.Subject), m.line).QueryRow(func(r pgx.Row) error {
		var firstGlobal *int64
		if err := r.Scan(&firstGlobal); err != nil {
			return err
		}
		if firstGlobal != nil {
			m.written, m.firstGlobal = true, *firstGlobal
			*written++
		}
		return nil
	})
}

// queueGroupAppend queues groupAppendSQL for group (of events events),
// which marks the members it wrote (and counts them in written).
func queueGroupAppend(b *pgx.Batch, tenant eventvault.TenantID, group []*groupMember, events int, written *int) {
	var (
		ks      = make([]int32, len(group))
		streams = make([]string, len(group))
		firsts  = make([]int64, len(group))
		keyIDs  = make([][16]byte, len(group))
		owners  = make([]string, len(group))
		ns      = make([]int64, len(group))
		lines   = make([][]byte, len(group))
	)
	for i, m := range group {
		ks[i], streams[i], firsts[i], keyIDs[i], owners[i], ns[i] = int32(i), string(m.req.Stream), m.first, m.req.KeyID, string(m.req.Subject), int64(m.w.n)
		lines[i] = m.line
		if lines[i] == nil {
			lines[i] = []byte{}
		}
	}
	var (
		eks      = make([]int32, 0, events)
		ords     = make([]int64, 0, events)
		ids      = make([][16]byte, 0, events)
		types    = make([]string, 0, events)
		macs     = make([][]byte, 0, events)
		payloads = make([][]byte, 0, events)
	)
	for i, m := range group {
		for j := range m.w.n {
			eks = append(eks, int32(i))
			ords = append(ords, int64(j+1))
		}
		ids = append(ids, m.w.ids...)
		types = append(types, m.w.types...)
		macs = append(macs, m.w.macs...)
		payloads = append(payloads, m.payloads...)
	}
	// ids and key ids go as [16]byte, which pgx encodes as uuid directly;
	// a uuid.UUID would go through its driver.Valuer, a string parsed back.
	b.Queue(groupAppendSQL, string(tenant), ks, streams, firsts, keyIDs, owners, ns, eks, ords, ids, types, byteaArray(macs), byteaArray(payloads), byteaArray(lines)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k int32
			var firstGlobal int64
			if err := rows.Scan(&k, &firstGlobal); err != nil {
				return err
			}
			if k < 0 || int(k) >= len(group) {
				return fmt.Errorf("group append returned index %d of %d", k, len(group))
			}
			group[k].written, group[k].firstGlobal = true, firstGlobal
			*written++
		}
		return rows.Err()
	})
}

// appendInGroup is the fast append through a group commit: it seals at the
// cached row's version and waits for a group to carry the append. As
// appendFast, it reports whether the append was written, and returns an
// error only when the outcome is unknown; an append that was not written
// (its check failed in the group, the group failed with an answer from the
// database, or Seal failed) takes the locking path.
func (db *DB) appendInGroup(ctx context.Context, tenant eventvault.TenantID, req eventvault.AppendRequest, w *batchWrite, cached streamRow) (eventvault.AppendResult, bool, error) {
	first := cached.version + 1
	payloads, err := w.seal(first)
	if err != nil {
		return eventvault.AppendResult{}, false, nil
	}
	line, err := auditLine(req, first)
	if err != nil {
		return eventvault.AppendResult{}, false, nil
	}
	m := &groupMember{ctx: ctx, req: req, w: w, first: first, payloads: payloads, line: line}
	if !db.appendGrouped(tenant, m) {
		return eventvault.AppendResult{}, false, fmt.Errorf("wait for the group commit: %w", ctx.Err())
	}
	switch {
	case m.err != nil:
		return eventvault.AppendResult{}, false, m.err
	case !m.written:
		return eventvault.AppendResult{}, false, nil
	}
	return w.result(req.Stream, first, m.firstGlobal), true, nil
}
