package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// Side names, as the table and the JSON report print them.
const (
	sideEventVault = "EventVault"
	sideRaw        = "raw"
	sideMessageDB  = "message-db"
	sideRawCopy    = "raw COPY"
	sideStore      = "EventVault store"
	// sideNoAudit is a second EventVault server on the same database,
	// built with auditing off: the cost of auditing, in the same run.
	sideNoAudit = "EventVault audit off"
)

// copyTarget is the plain table written with COPY: batches only.
type copyTarget struct {
	table *rawbench.Table
}

func (c copyTarget) append(ctx context.Context, stream string, first int64, events []benchEvent) ([]int64, error) {
	rows := make([]rawbench.Event, len(events))
	for i, e := range events {
		rows[i] = rawbench.Event{ID: e.ID, Type: e.Type, Data: e.Data}
	}
	n, err := c.table.CopyAppend(ctx, "copy-"+stream, first, rows)
	if err == nil && n != int64(len(events)) {
		err = fmt.Errorf("copy to %s: %d rows written of %d", stream, n, len(events))
	}
	return nil, err
}

func (copyTarget) readStream(context.Context, string, int64, int) (int, error) {
	return 0, fmt.Errorf("the COPY side only appends")
}

func (copyTarget) readAll(context.Context, int64, int) (int, int64, error) {
	return 0, 0, fmt.Errorf("the COPY side only appends")
}

// messageDBTarget is message-db's functions, called as its clients call
// them. Its appends return no global positions (write_message returns the
// stream position), so the log's bounds are read after it is written
// (logBounds).
type messageDBTarget struct {
	db *rawbench.MessageDB
}

func (m messageDBTarget) append(ctx context.Context, stream string, _ int64, events []benchEvent) ([]int64, error) {
	rows := make([]rawbench.Event, len(events))
	for i, e := range events {
		rows[i] = rawbench.Event{ID: e.ID, Type: e.Type, Data: e.Data}
	}
	if len(rows) == 1 {
		_, err := m.db.Write(ctx, stream, rows[0])
		return nil, err
	}
	_, err := m.db.WriteBatch(ctx, stream, rows)
	return nil, err
}

func (m messageDBTarget) readStream(ctx context.Context, stream string, from int64, limit int) (int, error) {
	rows, err := m.db.ReadStream(ctx, stream, from, limit)
	return len(rows), err
}

// readAll reads the log's category: message-db reads "all" per category.
func (m messageDBTarget) readAll(ctx context.Context, from int64, limit int) (int, int64, error) {
	rows, err := m.db.ReadCategory(ctx, logCategory, from, limit)
	if err != nil || len(rows) == 0 {
		return 0, from - 1, err
	}
	return len(rows), rows[len(rows)-1].GlobalPosition, nil
}

// logBounds returns the global positions of the first and last event of
// the log the read-all workload walks.
func (m messageDBTarget) logBounds(ctx context.Context) (int64, int64, error) {
	return m.db.CategoryBounds(ctx, logCategory)
}

// storeTarget is EventVault's PostgreSQL store alone, called in process:
// no HTTP, no JSON, no keyring. Each batch carries payloads of the size a
// sealed event has, made once, and a content MAC of a MAC's size; the
// store writes them as it writes sealed ones. Each stream gets a key row
// (a stand-in wrapped key) at its first append. It runs as a tenant of its
// own.
type storeTarget struct {
	db   *postgres.DB
	keys sync.Map // stream name -> uuid.UUID
}

// storeTenant is the tenant of the store-only side.
const storeTenant eventvault.TenantID = "bench-store"

// sealOverhead is what sealing adds to an event's data (header, nonce and
// tag, rounded up).
const sealOverhead = 64

func (s *storeTarget) append(ctx context.Context, stream string, _ int64, events []benchEvent) ([]int64, error) {
	name := eventvault.StreamName("store" + strings.TrimPrefix(stream, "batch"))
	var newKey *eventvault.WrappedKey
	keyID, ok := s.keys.Load(name)
	if !ok {
		wk := eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: make([]byte, 72)}
		newKey, keyID = &wk, wk.ID
	}
	proposed := make([]eventvault.ProposedEvent, len(events))
	payloads := make([][]byte, len(events))
	mac := make([]byte, 32)
	for i, e := range events {
		proposed[i] = eventvault.ProposedEvent{ID: e.ID, Type: e.Type, ContentMAC: mac}
		payloads[i] = make([]byte, len(e.Data)+sealOverhead)
		copy(payloads[i], e.Data)
	}
	res, err := s.db.Append(ctx, storeTenant, eventvault.AppendRequest{
		Stream: name, Expected: eventvault.ExpectAny, KeyID: keyID.(uuid.UUID), NewKey: newKey, Events: proposed,
		Seal: func(int64) ([][]byte, error) { return payloads, nil },
	})
	if err != nil {
		return nil, fmt.Errorf("store append to %s: %w", name, err)
	}
	if newKey != nil {
		s.keys.Store(name, newKey.ID)
	}
	globals := make([]int64, len(res.Events))
	for i, p := range res.Events {
		globals[i] = p.GlobalPosition
	}
	return globals, nil
}

func (*storeTarget) readStream(context.Context, string, int64, int) (int, error) {
	return 0, fmt.Errorf("the store side only appends")
}

func (*storeTarget) readAll(context.Context, int64, int) (int, int64, error) {
	return 0, 0, fmt.Errorf("the store side only appends")
}
