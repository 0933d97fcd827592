package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/eventvault/eventvault"
)

func testAudit(t *testing.T, open opener) {
	t.Run("records append in order, per log", func(t *testing.T) {
		h := setup(t, open)
		first, err := h.store.AppendAudit(h.ctx, tenantA, [][]byte{[]byte(`{"n":0}`), []byte(`{"n":1}`)})
		if err != nil || first != 0 {
			t.Fatalf("AppendAudit = %d, %v; want 0", first, err)
		}
		if first, err = h.store.AppendAudit(h.ctx, tenantA, [][]byte{[]byte(`{"n":2}`)}); err != nil || first != 2 {
			t.Fatalf("second AppendAudit = %d, %v; want 2", first, err)
		}
		if first, err = h.store.AppendAudit(h.ctx, tenantB, [][]byte{[]byte(`{"b":0}`)}); err != nil || first != 0 {
			t.Fatalf("tenant B's first record = %d, %v; want 0 (its own log)", first, err)
		}
		if first, err = h.store.AppendAudit(h.ctx, eventvault.DeploymentLog, [][]byte{[]byte(`{"node":"up"}`)}); err != nil || first != 0 {
			t.Fatalf("the deployment log's first record = %d, %v; want 0", first, err)
		}
		if size, err := h.store.AuditSize(h.ctx, tenantA); err != nil || size != 3 {
			t.Fatalf("AuditSize = %d, %v; want 3", size, err)
		}
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 1, 3)
		if err != nil || len(recs) != 2 || string(recs[0]) != `{"n":1}` || string(recs[1]) != `{"n":2}` {
			t.Fatalf("AuditRecords [1,3) = %q, %v", recs, err)
		}
		if _, err := h.store.AuditRecords(h.ctx, tenantA, 0, 4); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("AuditRecords past the end = %v, want EINVALID", err)
		}
		logs, err := h.store.AuditTenants(h.ctx)
		if err != nil || len(logs) != 3 {
			t.Errorf("AuditTenants = %v, %v; want the deployment log, A and B", logs, err)
		}
	})

	t.Run("a record's index placeholder is set to its index", func(t *testing.T) {
		h := setup(t, open)
		tmpl := []byte(`{"version":1,"tenant":"tenant-a","index":0,"time":"2026-11-30T00:00:00.000000Z","detail":{"note":"\"index\":0,\"time\":"}}`)
		if _, err := h.store.AppendAudit(h.ctx, tenantA, [][]byte{tmpl, tmpl}); err != nil {
			t.Fatal(err)
		}
		lines := &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{tmpl}}
		if err := h.store.CreateToken(eventvault.WithAudit(h.ctx, lines), newToken(tenantA, "x", false, nil)); err != nil {
			t.Fatal(err)
		}
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			want := bytes.Replace(tmpl, []byte(`"index":0,"time":`), fmt.Appendf(nil, `"index":%d,"time":`, i), 1)
			if !bytes.Equal(r, want) {
				t.Errorf("record %d = %s, want %s", i, r, want)
			}
		}
	})

	t.Run("concurrent writers get gapless indexes", func(t *testing.T) {
		h := setup(t, open)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					if _, err := h.store.AppendAudit(h.ctx, tenantA, [][]byte{fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)}); err != nil {
						t.Errorf("writer %d: %v", w, err)
					}
				}
			}()
		}
		wg.Wait()
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 0, 80)
		if err != nil || len(recs) != 80 {
			t.Fatalf("80 records from 8 writers: %d, %v", len(recs), err)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			if seen[string(r)] {
				t.Errorf("record %s written twice", r)
			}
			seen[string(r)] = true
		}
	})

	t.Run("records ride with the action's transaction", func(t *testing.T) {
		h := setup(t, open)
		lines := &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{[]byte(`{"action":"token_issued"}`)}}
		ctx := eventvault.WithAudit(h.ctx, lines)
		tok := newToken(tenantA, "audited", false, nil)
		if err := h.store.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		first, ok := lines.WrittenAt()
		if !ok || first != 0 {
			t.Fatalf("the record was not written with the action: %d %v", first, ok)
		}
		// A second write under the same context writes it no more.
		if err := h.store.CreateToken(ctx, newToken(tenantA, "second", false, nil)); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 0, 1)
		if size, _ := h.store.AuditSize(h.ctx, tenantA); err != nil || size != 1 || !bytes.Equal(recs[0], lines.Lines[0]) {
			t.Fatalf("log after two writes under one record: size %d, %q, %v; want the one record", size, recs, err)
		}
		// An action that fails writes no record.
		failed := &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{[]byte(`{"action":"token_issued","dup":true}`)}}
		if err := h.store.CreateToken(eventvault.WithAudit(h.ctx, failed), tok); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("CreateToken of an existing token = %v, want ECONFLICT", err)
		}
		if _, ok := failed.WrittenAt(); ok {
			t.Errorf("a failed action's record counts as written")
		}
		if size, _ := h.store.AuditSize(h.ctx, tenantA); size != 1 {
			t.Errorf("a failed action left a record: size %d", size)
		}
	})

	t.Run("an append writes its record with its events", func(t *testing.T) {
		h := setup(t, open)
		key := h.streamKey(tenantA, "order-1")
		evs := newEvents(3)
		audited := func(evs []eventvault.ProposedEvent, expected eventvault.ExpectedVersion) (eventvault.AppendResult, error) {
			var s sealer
			res, _, err := h.appendWith(tenantA, eventvault.AppendRequest{
				Stream: "order-1", Expected: expected, KeyID: key.ID, Events: evs, Seal: s.seal(evs),
				Audit: func(first int64) ([]byte, error) {
					return fmt.Appendf(nil, `{"index":0,"time":"x","action":"append","first":%d,"count":%d}`, first, len(evs)), nil
				},
			}, &s)
			return res, err
		}
		if _, err := audited(evs, eventvault.ExpectAny); err != nil {
			t.Fatal(err)
		}
		// A replay and a refused append write no record.
		if res, err := audited(evs, eventvault.ExpectAny); err != nil || !res.Replayed {
			t.Fatalf("replay: %+v %v", res, err)
		}
		if _, err := audited(newEvents(1), eventvault.ExpectPosition(7)); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("append at a wrong version = %v, want ECONFLICT", err)
		}
		if _, err := audited(newEvents(2), eventvault.ExpectPosition(2)); err != nil {
			t.Fatal(err)
		}
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 0, 2)
		if size, _ := h.store.AuditSize(h.ctx, tenantA); err != nil || size != 2 {
			t.Fatalf("audit log after two appends, a replay and a conflict: size %d, %v; want 2", size, err)
		}
		for i, want := range []string{`{"index":0,"time":"x","action":"append","first":0,"count":3}`, `{"index":1,"time":"x","action":"append","first":3,"count":2}`} {
			if string(recs[i]) != want {
				t.Errorf("record %d = %s, want %s", i, recs[i], want)
			}
		}
	})

	t.Run("concurrent appends each write one record", func(t *testing.T) {
		h := setup(t, open)
		var wg sync.WaitGroup
		for w := range 8 {
			stream := eventvault.StreamName(fmt.Sprintf("order-%d", w))
			key := h.streamKey(tenantA, stream)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					evs := newEvents(2)
					var s sealer
					_, _, err := h.appendWith(tenantA, eventvault.AppendRequest{
						Stream: stream, Expected: eventvault.ExpectAny, KeyID: key.ID, Events: evs, Seal: s.seal(evs),
						Audit: func(first int64) ([]byte, error) {
							return fmt.Appendf(nil, `{"index":0,"time":"x","stream":%q,"first":%d}`, stream, first), nil
						},
					}, &s)
					if err != nil {
						t.Errorf("append to %s: %v", stream, err)
					}
				}
			}()
		}
		wg.Wait()
		recs, err := h.store.AuditRecords(h.ctx, tenantA, 0, 80)
		if err != nil {
			t.Fatalf("80 appends, 80 records: %v", err)
		}
		if size, _ := h.store.AuditSize(h.ctx, tenantA); size != 80 {
			t.Fatalf("audit log size %d after 80 appends", size)
		}
		seen := map[string]bool{}
		for i, r := range recs {
			if !bytes.Contains(r, fmt.Appendf(nil, `"index":%d,`, i)) || seen[string(r[bytes.IndexByte(r, ','):])] {
				t.Errorf("record %d: %s (index missing or record twice)", i, r)
			}
			seen[string(r[bytes.IndexByte(r, ','):])] = true
		}
	})

	t.Run("hashes and checkpoints are written once", func(t *testing.T) {
		h := setup(t, open)
		hashes := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
		if err := h.store.AddAuditHashes(h.ctx, tenantA, 0, hashes); err != nil {
			t.Fatal(err)
		}
		if err := h.store.AddAuditHashes(h.ctx, tenantA, 1, hashes[:1]); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Errorf("a hash stored twice = %v, want ECONFLICT", err)
		}
		got, err := h.store.AuditHashes(h.ctx, tenantA, []int64{1, 0})
		if err != nil || !bytes.Equal(got[0], hashes[1]) || !bytes.Equal(got[1], hashes[0]) {
			t.Errorf("AuditHashes(1, 0) = %x, %v", got, err)
		}
		if _, err := h.store.AuditHashes(h.ctx, tenantA, []int64{5}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("a hash never stored = %v, want ENOTFOUND", err)
		}
		if _, _, err := h.store.LatestAuditCheckpoint(h.ctx, tenantA); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("LatestAuditCheckpoint of a log without one = %v, want ENOTFOUND", err)
		}
		for _, size := range []int64{1, 2} {
			if err := h.store.AddAuditCheckpoint(h.ctx, tenantA, size, fmt.Appendf(nil, "note %d", size)); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.store.AddAuditCheckpoint(h.ctx, tenantA, 2, []byte("another note 2")); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Errorf("a second checkpoint of one size = %v, want ECONFLICT", err)
		}
		size, note, err := h.store.LatestAuditCheckpoint(h.ctx, tenantA)
		if err != nil || size != 2 || string(note) != "note 2" {
			t.Errorf("LatestAuditCheckpoint = %d %q %v", size, note, err)
		}
		if _, _, err := h.store.LatestAuditCheckpoint(h.ctx, tenantB); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("tenant B sees A's checkpoint: %v", err)
		}
	})
}
