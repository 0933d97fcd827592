package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// keyColumns are a stream's wrapped key columns, scanned by scanKey.
const keyColumns = `key_id, key_version, kek_version, wrapped_key, key_created_at`

// piiGenerationColumn is the tenant's PII generation (0011, 0013), which
// page reads return on their snapshot, as a column of a statement they run
// anyway; -1, unknown, for a tenant whose row is missing (deleted by hand:
// 0013 writes one with the tenant), so that no node uses what it kept at
// a value the row had before.
const piiGenerationColumn = `coalesce((SELECT generation FROM pii_generations WHERE tenant_id = $1), -1)`

// piiGenerationSQL returns the tenant's PII generation alone.
const piiGenerationSQL = `SELECT ` + piiGenerationColumn

// streamRowSQL returns a stream's row and the tenant's PII generation
// (no row for a stream without one: its page is ENOTFOUND).
const streamRowSQL = `SELECT version, ` + keyColumns + `, shredded_at, ` + piiGenerationColumn + ` FROM streams
	WHERE tenant_id = $1 AND name = $2`

// allHeadSQL returns the tenant's next global position (nextGlobalSQL),
// its PII generation and its stream key epoch (keyEpochSQL): the head of a
// read-all page.
const allHeadSQL = `SELECT ` + nextGlobalColumn + `, ` + piiGenerationColumn +
	`, coalesce((SELECT epoch FROM stream_key_epochs WHERE tenant_id = $1), 0)`

// eventColumns are the columns of a page of events, stream or read-all.
// They leave the content MAC out: only an append's replay compares it, and
// it reads it with findEventsSQL. That is 36 bytes less a row to send,
// receive and copy (about 5% of a 500-byte event's row).
const eventColumns = `id, stream, type, position, global_position, recorded_at, payload`

// The page reads below end in their LIMIT, written into the SQL by
// limitSQL, and run on generic plans, as every statement (setScopeSQL). With the limit
// a parameter, PostgreSQL planned a page read again at every execution: a
// generic plan for LIMIT $n assumes a tenth of the table and looks
// costlier than the plan for the actual values. Planned once per
// connection and limit instead, a read-all page of 500 events over 50
// streams costs its two statements about 0.18 ms less (0.31 against 0.49
// ms, planning and execution in EXPLAIN ANALYZE). With the limit known,
// the generic plans are those the values get: an ordered range of a
// unique index and, for the keys, a hash join over a small streams table
// or index lookups into a large one. Each limit is a statement of its own
// in pgx's cache of prepared statements; clients read with a few.

const readForwardSQL = `SELECT ` + eventColumns + ` FROM events
	WHERE tenant_id = $1 AND stream = $2 AND position >= $3
	ORDER BY position
	LIMIT `

// readBackwardSQL reads down from $3 (ReadStream passes the largest
// position for -1, the end), so that the index range starts at $3.
const readBackwardSQL = `SELECT ` + eventColumns + ` FROM events
	WHERE tenant_id = $1 AND stream = $2 AND position <= $3
	ORDER BY position DESC
	LIMIT `

const readAllSQL = `SELECT ` + eventColumns + ` FROM events
	WHERE tenant_id = $1 AND global_position >= $2
	ORDER BY global_position
	LIMIT `

// pageKeysSQL returns the keys of the streams in the page readAllSQL reads
// (NULL for a shredded stream); both run on one snapshot. %d is the limit.
// (With the limit known, the planner picks a hash join over a small
// streams table and index lookups over a large one.)
const pageKeysSQL = `SELECT name, ` + keyColumns + ` FROM streams
	WHERE tenant_id = $1 AND name IN (
		SELECT stream FROM events
		WHERE tenant_id = $1 AND global_position >= $2
		ORDER BY global_position
		LIMIT %d)`

// limitSQL returns query, which ends in LIMIT, with limit (validated,
// positive) written after it.
func limitSQL(query string, limit int) string {
	return query + strconv.Itoa(limit)
}

// ReadStream returns up to opts.Limit events of one stream with the
// stream's version and key and the tenant's PII generation, read on one
// snapshot in one round trip. A read
// past the end is an empty page. A shredded stream's page has ShreddedAt, a
// zero key and the envelopes of the events not purged; it is a page even
// when none are left. A page holds fewer events than opts.Limit before the
// end when their payloads would pass eventvault.MaxPageBytes.
//
// Errors: ENOTFOUND if the stream has no events and was never shredded;
// EINVALID for a limit that is not positive or a From below 0 (below -1
// backward).
func (db *DB) ReadStream(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, opts eventvault.ReadOptions) (eventvault.StreamPage, error) {
	const op = "postgres.ReadStream"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.StreamPage{}, err
	}
	if err := opts.Validate(); err != nil {
		return eventvault.StreamPage{}, err
	}
	if err := eventvault.ValidateStream(stream); err != nil {
		return eventvault.StreamPage{}, err
	}
	query, from := limitSQL(readForwardSQL, opts.Limit), opts.From
	if opts.Backward {
		query = limitSQL(readBackwardSQL, opts.Limit)
		if from < 0 {
			from = math.MaxInt64
		}
	}

	var page eventvault.StreamPage
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true, pageRead: true}, func(ctx context.Context, t *txn) error {
		page = eventvault.StreamPage{Version: eventvault.NoStream}
		b := &pgx.Batch{}
		b.Queue(streamRowSQL, tenant, stream).QueryRow(func(r pgx.Row) error {
			var k storedKey
			var shreddedAt *time.Time
			err := r.Scan(&page.Version, &k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt, &shreddedAt, &page.PIIGeneration)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			page.Key, _ = k.wrappedKey()
			if shreddedAt != nil {
				page.ShreddedAt = *shreddedAt
			}
			return nil
		})
		b.Queue(query, tenant, stream, from).Query(func(rows pgx.Rows) error {
			var err error
			page.Events, err = scanEvents(rows, opts.Limit)
			return err
		})
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		return nil
	})
	if err != nil {
		return eventvault.StreamPage{}, err
	}
	if page.Version == eventvault.NoStream && page.ShreddedAt.IsZero() {
		return eventvault.StreamPage{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s has no events", stream)}
	}
	return page, nil
}

// ReadAll returns up to limit events of the tenant with global position >=
// from, in global order (fewer when their payloads would pass
// eventvault.MaxPageBytes), the keys of their streams (the zero key for a
// shredded stream) and the tenant's next global position, read on one
// snapshot in one round trip (ReadAllTo, gathered). Global positions are
// given in commit order (see Append), so a snapshot never holds a position
// without every position before it. The positions of purged events are
// gone: a page skips them.
//
// Errors: EINVALID for a negative from or a limit that is not positive.
func (db *DB) ReadAll(ctx context.Context, tenant eventvault.TenantID, from int64, limit int) (eventvault.AllPage, error) {
	var c eventvault.AllPageCollector
	if err := db.ReadAllTo(ctx, tenant, from, limit, &c); err != nil {
		return eventvault.AllPage{}, err
	}
	return c.Page, nil
}

// allChunk is how many events ReadAllTo hands over at a time: enough that
// a receiver's hand-off to another goroutine costs little beside the
// opening of the chunk, few enough that the first chunk comes early.
const allChunk = 64

// ReadAllTo reads what ReadAll reads, in one round trip and on one
// snapshot, and hands it to r as PostgreSQL sends it: the page's keys and
// the tenant's next global position first (their statements come before
// the events' in the batch), then the events, allChunk at a time, each
// chunk as soon as its rows are scanned. To a receiver that takes the keys
// on request (eventvault.AllPageKeysOnRequest), the head comes without
// them but with the tenant's stream key epoch, and the keys are read after
// the events, in a transaction of their own, if r wants them
// (readPageKeys). A transaction that would be run again (run retries 40001 and
// 40P01, which a read-only transaction does not meet) after r was handed
// something fails instead.
//
// Errors: EINVALID for a negative from or a limit that is not positive;
// r's error as r returned it.
func (db *DB) ReadAllTo(ctx context.Context, tenant eventvault.TenantID, from int64, limit int, r eventvault.AllPageReceiver) error {
	const op = "postgres.ReadAll"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	if err := eventvault.ValidateReadAll(from, limit); err != nil {
		return err
	}
	// A receiver that takes the keys on request gets the head and the
	// events, and the keys only if it asks for them, afterwards
	// (readPageKeys): a reader whose ciphers were checked at the page's
	// key epoch skips the keys' statement, which walks the page's index
	// range again, and the page stays one round trip.
	kr, onRequest := r.(eventvault.AllPageKeysOnRequest)
	handed := false
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true, pageRead: true}, func(ctx context.Context, t *txn) error {
		if handed {
			return errors.New("the page was handed over in part already and cannot be read again")
		}
		var head eventvault.AllPage
		b := &pgx.Batch{}
		if !onRequest {
			head.Keys = map[eventvault.StreamName]eventvault.WrappedKey{}
			queuePageKeys(b, tenant, from, limit, head.Keys)
		}
		b.Queue(allHeadSQL, string(tenant)).QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&head.Next, &head.PIIGeneration, &head.KeyEpoch); err != nil {
				return err
			}
			handed = true
			return receiverErr(r.Head(head))
		})
		b.Queue(limitSQL(readAllSQL, limit), tenant, from).Query(func(rows pgx.Rows) error {
			return scanEventChunks(rows, limit, func(chunk []eventvault.StoredEvent) error {
				return receiverErr(r.Events(chunk))
			})
		})
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("read all from %d: %w", from, err)
		}
		return nil
	})
	if err == nil && onRequest && kr.WantsKeys() {
		err = db.readPageKeys(ctx, tenant, from, limit, kr)
	}
	var re *receiverError
	if errors.As(err, &re) {
		return re.err
	}
	return err
}

// readPageKeys reads the keys of the page of limit events from global
// position from, with the tenant's stream key epoch, in a transaction of
// its own, and hands them to r. The page's transaction committed with its
// events, so that a page whose streams were all checked at its epoch costs
// one round trip; this snapshot is later. Its rows are the page's or what
// became of them (a key row is only ever re-wrapped or shredded), and its
// walk of the page's range finds every stream of the page that still has
// events: positions below the page's Next are never taken again, and only
// a shred's purge deletes events. A stream whose events were purged since
// has no row here, which is its zero key: shredded.
func (db *DB) readPageKeys(ctx context.Context, tenant eventvault.TenantID, from int64, limit int, r eventvault.AllPageKeysOnRequest) error {
	var keys map[eventvault.StreamName]eventvault.WrappedKey
	var epoch int64
	err := db.run(ctx, txSpec{op: "postgres.ReadAll", scope: scope{tenant: tenant}, readOnly: true, pageRead: true}, func(ctx context.Context, t *txn) error {
		keys = map[eventvault.StreamName]eventvault.WrappedKey{}
		b := &pgx.Batch{}
		queuePageKeys(b, tenant, from, limit, keys)
		b.Queue(keyEpochSQL, string(tenant)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&epoch)
		})
		if err := t.send(ctx, b, true); err != nil {
			return fmt.Errorf("read the keys of the page from %d: %w", from, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return receiverErr(r.Keys(keys, epoch))
}

// keyEpochSQL returns the tenant's stream key epoch (0012, 0013); 0,
// unknown, for a tenant whose row is missing (deleted by hand: 0013 writes
// one with the tenant), at which no cipher is marked or served.
const keyEpochSQL = `SELECT coalesce((SELECT epoch FROM stream_key_epochs WHERE tenant_id = $1), 0)`

// queuePageKeys queues pageKeysSQL for the page of limit events from
// global position from, its rows put into keys (a shredded stream's the
// zero key).
func queuePageKeys(b *pgx.Batch, tenant eventvault.TenantID, from int64, limit int, keys map[eventvault.StreamName]eventvault.WrappedKey) {
	b.Queue(fmt.Sprintf(pageKeysSQL, limit), tenant, from).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name eventvault.StreamName
			var k storedKey
			if err := rows.Scan(&name, &k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt); err != nil {
				return err
			}
			keys[name], _ = k.wrappedKey()
		}
		return rows.Err()
	})
}

// receiverError is an error of an AllPageReceiver, carried through the
// transaction untouched: it is the caller's, not the store's.
type receiverError struct{ err error }

func (e *receiverError) Error() string { return e.err.Error() }
func (e *receiverError) Unwrap() error { return e.err }

// receiverErr wraps a receiver's error, if any, in a receiverError.
func receiverErr(err error) error {
	if err == nil {
		return nil
	}
	return &receiverError{err}
}

// scanArenaSize is the size of the blocks eventScanner copies rows' MACs and
// payloads into: the largest small-object size class, about fifty 500-byte
// events, so that a page costs the allocator a few dozen blocks instead of
// an allocation per row.
const scanArenaSize = 32 << 10

// scanEvents reads the rows of a query of eventColumns, up to capHint of
// them expected (see eventScanner), and stops before the first row that
// would take the page's payloads past eventvault.MaxPageBytes (never
// before the first; the rows left unread are dropped by rows.Close).
func scanEvents(rows pgx.Rows, capHint int) ([]eventvault.StoredEvent, error) {
	evs := make([]eventvault.StoredEvent, 0, min(capHint, 1024))
	sc := newEventScanner(rows)
	payloads := 0
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			return nil, err
		}
		if eventvault.PageFull(len(evs), payloads, len(e.Payload)) {
			break
		}
		payloads += len(e.Payload)
		evs = append(evs, e)
	}
	return evs, rows.Err()
}

// scanEventChunks reads the rows of a query of eventColumns, at most limit
// of them and, as scanEvents, no more than eventvault.MaxPageBytes of
// payloads, and hands them to each allChunk at a time as they are scanned
// (the last chunk shorter, none empty). Each chunk is a slice of its own
// capacity, never written again.
func scanEventChunks(rows pgx.Rows, limit int, each func([]eventvault.StoredEvent) error) error {
	evs := make([]eventvault.StoredEvent, 0, min(limit, 1024))
	sc := newEventScanner(rows)
	sent, scanned, payloads := 0, 0, 0
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			return err
		}
		if eventvault.PageFull(scanned, payloads, len(e.Payload)) {
			break
		}
		scanned, payloads = scanned+1, payloads+len(e.Payload)
		if len(evs) == cap(evs) {
			// A page larger than the first block: hand over what is left
			// and start another.
			if len(evs) > sent {
				if err := each(evs[sent:len(evs):len(evs)]); err != nil {
					return err
				}
			}
			evs, sent = make([]eventvault.StoredEvent, 0, allChunk), 0
		}
		evs = append(evs, e)
		if len(evs)-sent == allChunk {
			if err := each(evs[sent:len(evs):len(evs)]); err != nil {
				return err
			}
			sent = len(evs)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(evs) > sent {
		return each(evs[sent:len(evs):len(evs)])
	}
	return nil
}

// eventScanner scans rows of eventColumns (ContentMAC nil), or of
// those columns with content_mac before payload (eventColumnTypes). Rows in PostgreSQL's binary
// format (what pgx asks for these types but text) are decoded here from
// their raw values, the MAC and payload of a row copied into blocks shared
// by the rows it scans (scanArenaSize; a row past a quarter of it gets its
// own) and the stream name and type shared between rows that repeat them;
// anything else goes through rows.Scan. Each ContentMAC and Payload is a
// slice of its own length and capacity: appending to one, or writing
// within it, never touches another's bytes, so that the caller may decrypt
// a payload in place.
type eventScanner struct {
	raw         bool
	mac         bool // the rows hold content_mac
	stream, typ string
	arena       []byte
}

func newEventScanner(rows pgx.Rows) *eventScanner {
	fds := rows.FieldDescriptions()
	return &eventScanner{raw: binaryEventRows(fds), mac: len(fds) == len(eventColumnTypes)}
}

// scan scans the current row.
func (sc *eventScanner) scan(rows pgx.Rows) (eventvault.StoredEvent, error) {
	if !sc.raw {
		return scanEvent(rows, sc.mac)
	}
	var e eventvault.StoredEvent
	v := rows.RawValues()
	var mac, payload []byte
	switch {
	case sc.mac && len(v) == 8:
		mac, payload = v[6], v[7]
		if mac == nil {
			return e, errors.New("an event row has no content MAC")
		}
	case !sc.mac && len(v) == 7:
		payload = v[6]
	default:
		return e, fmt.Errorf("an event row of %d values is not what the query selects", len(v))
	}
	if len(v[0]) != 16 || len(v[3]) != 8 || len(v[4]) != 8 || len(v[5]) != 8 || v[1] == nil || v[2] == nil || payload == nil {
		return e, errors.New("an event row does not hold what the query selects")
	}
	copy(e.ID[:], v[0])
	if string(v[1]) != sc.stream {
		sc.stream = string(v[1])
	}
	if string(v[2]) != sc.typ {
		sc.typ = string(v[2])
	}
	e.Stream, e.Type = eventvault.StreamName(sc.stream), sc.typ
	e.Position = int64(binary.BigEndian.Uint64(v[3]))
	e.GlobalPosition = int64(binary.BigEndian.Uint64(v[4]))
	e.RecordedAt = pgTime(int64(binary.BigEndian.Uint64(v[5])))
	size := len(mac) + len(payload)
	var b []byte
	switch {
	case size > scanArenaSize/4:
		b = make([]byte, size)
	case size > cap(sc.arena)-len(sc.arena):
		sc.arena = make([]byte, 0, scanArenaSize)
		fallthrough
	default:
		at := len(sc.arena)
		sc.arena = sc.arena[:at+size]
		b = sc.arena[at : at+size : at+size]
	}
	n := copy(b, mac)
	copy(b[n:], payload)
	if sc.mac {
		e.ContentMAC = b[:n:n]
	}
	e.Payload = b[n:]
	return e, nil
}

// scanEvent scans a row of eventColumns, with content_mac before
// payload if mac, with pgx's Scan.
func scanEvent(rows pgx.Rows, mac bool) (eventvault.StoredEvent, error) {
	var e eventvault.StoredEvent
	if !mac {
		err := rows.Scan(&e.ID, &e.Stream, &e.Type, &e.Position, &e.GlobalPosition, &e.RecordedAt, &e.Payload)
		return e, err
	}
	err := rows.Scan(&e.ID, &e.Stream, &e.Type, &e.Position, &e.GlobalPosition, &e.RecordedAt, &e.ContentMAC, &e.Payload)
	return e, err
}

// eventColumnTypes are the type OIDs of eventColumns with content_mac
// before payload: uuid, text, text, int8, int8, timestamptz, bytea, bytea. All but text come in the binary
// format.
var eventColumnTypes = [8]uint32{2950, 25, 25, 20, 20, 1184, 17, 17}

// binaryEventRows reports whether rows of eventColumns, with or without
// content_mac, come in the binary format with the expected types, so that eventScanner
// may decode them.
func binaryEventRows(fds []pgconn.FieldDescription) bool {
	want := eventColumnTypes[:]
	if len(fds) == len(want)-1 { // eventColumns: no content_mac
		want = append(want[:6:6], want[7])
	}
	if len(fds) != len(want) {
		return false
	}
	for i, fd := range fds {
		// text is the same bytes in either format; pgx asks for it as text.
		if fd.DataTypeOID != want[i] || (fd.Format != pgx.BinaryFormatCode && fd.DataTypeOID != 25) {
			return false
		}
	}
	return true
}

// pgEpoch is PostgreSQL's epoch, 2000-01-01 UTC, in Unix microseconds.
const pgEpoch = 946684800 * 1000000

// pgTime is a binary timestamptz, microseconds since PostgreSQL's epoch,
// as pgx's codec decodes it (in the local time zone).
func pgTime(us int64) time.Time {
	us += pgEpoch
	return time.Unix(us/1000000, (us%1000000)*1000)
}

// storedKey is a wrapped key as scanned from nullable columns: a stream
// whose key was shredded keeps its row with the key columns NULL.
type storedKey struct {
	id         *uuid.UUID
	version    *int64
	kekVersion *int64
	wrapped    []byte
	createdAt  *time.Time
}

// wrappedKey returns the key, or false if the row holds none.
func (k storedKey) wrappedKey() (eventvault.WrappedKey, bool) {
	if k.id == nil || k.wrapped == nil {
		return eventvault.WrappedKey{}, false
	}
	wk := eventvault.WrappedKey{ID: *k.id, Ciphertext: k.wrapped}
	if k.version != nil {
		wk.Version = uint32(*k.version)
	}
	if k.kekVersion != nil {
		wk.KEKVersion = uint32(*k.kekVersion)
	}
	if k.createdAt != nil {
		wk.CreatedAt = *k.createdAt
	}
	return wk, true
}
