package postgres

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestScanEventsDecodesAsPgxScans holds the decoding of binary rows
// (eventScanner, through scanEvents for rows with a content MAC and
// scanEventChunks for eventColumns, which leave it out) against pgx's own Scan of
// the same rows, including times before 1970 and before PostgreSQL's
// epoch, empty MACs and repeated names.
func TestScanEventsDecodesAsPgxScans(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, withMAC := range []bool{true, false} {
		t.Run(fmt.Sprintf("content_mac %v", withMAC), func(t *testing.T) {
			testScanEvents(t, conn, withMAC)
		})
	}
}

func testScanEvents(t *testing.T, conn *pgx.Conn, withMAC bool) {
	ctx := context.Background()
	macColumn := ""
	if withMAC {
		macColumn = "mac AS content_mac, "
	}
	rowsSQL := `SELECT md5(s || p)::uuid AS id, s AS stream, t AS type, p AS position, p * 7 AS global_position,
		at AS recorded_at, ` + macColumn + `payload
	FROM (VALUES
		('order-1', 'Placed', 0::bigint, '2026-11-30 07:00:00.123456+00'::timestamptz, '\x01'::bytea, '\xdeadbeef'::bytea),
		('order-1', 'Placed', 1, '1969-12-31 23:59:59.999999+00', '', '\x00'),
		('order-2', 'Paid', 1 << 40, '1999-12-31 23:59:59.5+00', '\x0203', ''),
		('order-1', 'Paid', 3, '2000-01-01 00:00:00+00', '\x04', '\x05')
	) AS v(s, t, p, at, mac, payload)`
	rows, err := conn.Query(ctx, rowsSQL)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if !binaryEventRows(rows.FieldDescriptions()) {
		rows.Close()
		t.Fatalf("the rows are not in the binary format scanEvents decodes: %+v", rows.FieldDescriptions())
	}
	var got []eventvault.StoredEvent
	if withMAC {
		got, err = scanEvents(rows, 4)
	} else {
		err = scanEventChunks(rows, 4, func(chunk []eventvault.StoredEvent) error {
			got = append(got, chunk...)
			return nil
		})
	}
	rows.Close()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	rows, err = conn.Query(ctx, rowsSQL)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	i := 0
	for rows.Next() {
		if i >= len(got) {
			t.Fatalf("scanEvents returned %d rows, pgx has more", len(got))
		}
		g := got[i]
		var want = g
		dest := []any{&want.ID, &want.Stream, &want.Type, &want.Position, &want.GlobalPosition, &want.RecordedAt, &want.ContentMAC, &want.Payload}
		if !withMAC {
			want.ContentMAC = nil
			dest = append(dest[:6], &want.Payload)
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if !want.RecordedAt.Equal(g.RecordedAt) || want.RecordedAt.Location() != g.RecordedAt.Location() {
			t.Errorf("row %d: recorded_at %v, pgx scans %v", i, g.RecordedAt, want.RecordedAt)
		}
		g.RecordedAt = want.RecordedAt
		if g.ID != want.ID || g.Stream != want.Stream || g.Type != want.Type || g.Position != want.Position || g.GlobalPosition != want.GlobalPosition ||
			(g.ContentMAC == nil) != (want.ContentMAC == nil) || !reflect.DeepEqual(append([]byte{}, g.ContentMAC...), append([]byte{}, want.ContentMAC...)) || !reflect.DeepEqual(append([]byte{}, g.Payload...), append([]byte{}, want.Payload...)) {
			t.Errorf("row %d: scanEvents %+v, pgx scans %+v", i, g, want)
		}
		// Rows share blocks: each slice must end where its bytes end, so
		// that a payload decrypted in place touches no other row.
		if cap(g.ContentMAC) != len(g.ContentMAC) || cap(g.Payload) != len(g.Payload) {
			t.Errorf("row %d: MAC of length %d capacity %d, payload of length %d capacity %d: a row's slices reach into the next",
				i, len(g.ContentMAC), cap(g.ContentMAC), len(g.Payload), cap(g.Payload))
		}
		i++
	}
	if err := rows.Err(); err != nil || i != len(got) {
		t.Fatalf("pgx scanned %d rows (%v), scanEvents %d", i, err, len(got))
	}
}
