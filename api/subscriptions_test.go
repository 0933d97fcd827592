package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

type subscriptionOut struct {
	Name       string `json:"name"`
	Checkpoint int64  `json:"checkpoint"`
	Head       int64  `json:"head"`
	Lag        int64  `json:"lag"`
	Filter     struct {
		Categories []string `json:"categories"`
		Types      []string `json:"types"`
	} `json:"filter"`
	AckedAt *time.Time `json:"acked_at"`
}

func TestConsumersRegisterAckListAndRemove(t *testing.T) {
	onBothStores(t, testConsumersRegisterAckListAndRemove)
}

func testConsumersRegisterAckListAndRemove(t *testing.T, a *testAPI) {
	tok := a.admin("acme")
	a.appendN(tok, "order-1", 4)
	var c subscriptionOut
	a.doJSON(http.MethodPut, "/v1/subscriptions/orders-view", tok, map[string]any{"filter": map[string]any{"categories": []string{"order"}}}, http.StatusCreated, &c)
	if c.Checkpoint != 0 || c.Head != 4 || c.Lag != 4 || c.AckedAt != nil {
		t.Fatalf("new consumer: %+v", c)
	}
	a.doJSON(http.MethodPost, "/v1/subscriptions/orders-view/ack", tok, map[string]any{"position": 2}, http.StatusOK, &c)
	if c.Checkpoint != 3 || c.Lag != 1 || c.AckedAt == nil {
		t.Fatalf("after ack 2: %+v", c)
	}
	// A stale ack changes nothing; an ack of an event not committed is
	// refused.
	a.doJSON(http.MethodPost, "/v1/subscriptions/orders-view/ack", tok, map[string]any{"position": 0}, http.StatusOK, &c)
	if c.Checkpoint != 3 {
		t.Fatalf("a stale ack moved the checkpoint back: %+v", c)
	}
	wantProblem(t, a.do(http.MethodPost, "/v1/subscriptions/orders-view/ack", tok, []byte(`{"position":4}`)), http.StatusBadRequest, eventvault.EINVALID, "not the global position of a committed event")
	// Registering again replaces the filter only.
	a.doJSON(http.MethodPut, "/v1/subscriptions/orders-view", tok, map[string]any{"filter": map[string]any{"types": []string{"OrderPlaced"}}, "from": 0}, http.StatusOK, &c)
	if c.Checkpoint != 3 || len(c.Filter.Categories) != 0 || len(c.Filter.Types) != 1 {
		t.Fatalf("re-registered: %+v", c)
	}
	a.doJSON(http.MethodPut, "/v1/subscriptions/tail", tok, map[string]any{"from": "end"}, http.StatusCreated, &c)
	if c.Checkpoint != 4 || c.Lag != 0 {
		t.Fatalf("from end: %+v", c)
	}
	var list struct {
		Subscriptions []subscriptionOut `json:"subscriptions"`
	}
	a.doJSON(http.MethodGet, "/v1/subscriptions", tok, nil, http.StatusOK, &list)
	if len(list.Subscriptions) != 2 || list.Subscriptions[0].Name != "orders-view" || list.Subscriptions[0].Lag != 1 {
		t.Fatalf("list: %+v", list)
	}
	// Another tenant sees none of it.
	other := a.admin("globex")
	a.doJSON(http.MethodGet, "/v1/subscriptions", other, nil, http.StatusOK, &list)
	if len(list.Subscriptions) != 0 {
		t.Fatalf("globex lists acme's consumers: %+v", list)
	}
	wantProblem(t, a.do(http.MethodPost, "/v1/subscriptions/orders-view/ack", other, []byte(`{"position":0}`)), http.StatusNotFound, eventvault.ENOTFOUND, "no such consumer")
	// Removal takes manage_subscriptions, and is audited.
	reader := a.tokenWithRules("acme", "read", "*")
	wantProblem(t, a.do(http.MethodDelete, "/v1/subscriptions/tail", reader, nil), http.StatusForbidden, eventvault.EFORBIDDEN, "manage_subscriptions")
	if rec := a.do(http.MethodDelete, "/v1/subscriptions/tail", tok, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/subscriptions/tail", tok, nil), http.StatusNotFound, eventvault.ENOTFOUND, "no such consumer")
	size, err := a.store.AuditSize(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := a.store.AuditRecords(t.Context(), "acme", 0, size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.Join(lines, []byte("\n")), []byte(`"consumer_removed"`)) {
		t.Fatalf("no consumer_removed audit record")
	}
}

func TestConsumersRefuseBadInput(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	for _, c := range []struct{ method, path, body, says string }{
		{http.MethodPut, "/v1/subscriptions/bad%20name", `{}`, "invalid consumer name"},
		{http.MethodPut, "/v1/subscriptions/" + strings.Repeat("a", 101), `{}`, "invalid consumer name"},
		{http.MethodPut, "/v1/subscriptions/v", `{"filter":{"categories":["order-1"]}}`, "categories[0]"},
		{http.MethodPut, "/v1/subscriptions/v", `{"filter":{"types":["1x"]}}`, "types[0]"},
		{http.MethodPut, "/v1/subscriptions/v", `{"filter":{"streams":["x"]}}`, "streams"},
		{http.MethodPut, "/v1/subscriptions/v", `{"from":-1}`, "from must be"},
		{http.MethodPut, "/v1/subscriptions/v", `{"from":"start"}`, "from must be"},
		{http.MethodPut, "/v1/subscriptions/v", `{"from":1.5}`, "from must be"},
		{http.MethodPut, "/v1/subscriptions/v", `{"from":99999}`, "past the end of the feed (the next global position is 0)"},
		{http.MethodPut, "/v1/subscriptions/v", `[]`, ""},
		{http.MethodPost, "/v1/subscriptions/v/ack", `{}`, "position is missing"},
		{http.MethodPost, "/v1/subscriptions/v/ack", `{"position":"1"}`, "position"},
	} {
		t.Run(c.method+" "+c.body, func(t *testing.T) {
			if c.method == http.MethodPost {
				a.do(http.MethodPut, "/v1/subscriptions/v", tok, []byte(`{}`))
			}
			rec := a.do(c.method, c.path, tok, []byte(c.body))
			wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, c.says)
		})
	}
	a.appendN(tok, "order-1", 1)
	a.doJSON(http.MethodPut, "/v1/subscriptions/v2", tok, map[string]any{}, http.StatusCreated, nil)
	wantProblem(t, a.do(http.MethodPost, "/v1/subscriptions/v2/ack", tok, []byte(`{"position":-1}`)), http.StatusBadRequest, eventvault.EINVALID, "position -1")
}

// TestErasureWaitsForItsConsumers: an erasure stays propagating until the
// consumers whose filter covers the erased streams acknowledge its
// tombstone; one that never does is shown with its lag, removed by an
// admin, and named in the certificate with the one that acknowledged.
func TestErasureWaitsForItsConsumers(t *testing.T) {
	onBothStores(t, testErasureWaitsForItsConsumers)
}

func testErasureWaitsForItsConsumers(t *testing.T, a *testAPI) {
	tok := a.admin("acme")
	a.doJSON(http.MethodPost, "/v1/streams/user-1/events", tok, map[string]any{"subject": "alice@example.com", "events": []any{event("Registered", map[string]any{"email": "alice@example.com"})}}, http.StatusCreated, nil)
	a.appendN(tok, "order-1", 2)
	for name, categories := range map[string][]string{"users-view": {"user"}, "orders-view": {"order"}, "stuck-view": nil} {
		a.doJSON(http.MethodPut, "/v1/subscriptions/"+name, tok, map[string]any{"filter": map[string]any{"categories": categories}}, http.StatusCreated, nil)
	}
	rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"alice@example.com"}`))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("erasure: %d %s, want 202 propagating", rec.Code, rec.Body)
	}
	var er erasureStatus
	json.Unmarshal(rec.Body.Bytes(), &er)
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &er)
	if er.State != "propagating" || er.Propagation == nil || er.Propagation.TombstonePosition != 3 || len(er.Propagation.Pending) != 2 || er.Certificate != nil {
		t.Fatalf("propagating request: %+v", er)
	}
	for _, p := range er.Propagation.Pending {
		if p.Consumer == "orders-view" || p.Consumer == "" || p.Lag != 4 {
			t.Fatalf("pending %+v: want users-view and stuck-view, 4 positions behind the tombstone", p)
		}
	}
	// The tombstone is in the feed: no personal data, the pseudonym.
	var page struct {
		Events []feedEvent `json:"events"`
	}
	a.doJSON(http.MethodGet, "/v1/events?from=3", tok, nil, http.StatusOK, &page)
	if len(page.Events) != 1 || page.Events[0].Stream != string(eventvault.TombstoneStream) || strings.Contains(string(page.Events[0].Data), "alice") ||
		!strings.Contains(string(page.Events[0].Data), er.SubjectPseudonym) || !strings.Contains(string(page.Events[0].Data), er.ID) {
		t.Fatalf("tombstone in read-all: %+v", page)
	}
	// An ack short of the tombstone changes nothing; past it counts.
	a.doJSON(http.MethodPost, "/v1/subscriptions/users-view/ack", tok, map[string]any{"position": 2}, http.StatusOK, nil)
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &er)
	if er.State != "propagating" || len(er.Propagation.Pending) != 2 {
		t.Fatalf("after an ack short of the tombstone: %+v", er)
	}
	a.doJSON(http.MethodPost, "/v1/subscriptions/users-view/ack", tok, map[string]any{"position": 3}, http.StatusOK, nil)
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &er)
	if er.State != "propagating" || len(er.Propagation.Pending) != 1 || er.Propagation.Pending[0].Consumer != "stuck-view" || len(er.Propagation.Acknowledged) != 1 {
		t.Fatalf("after users-view acknowledged: %+v", er)
	}
	// Asking again returns the same request, still propagating: 200 with
	// Content-Location, as for any repeat (a 202 would read as new).
	if rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"alice@example.com"}`)); rec.Code != http.StatusOK ||
		rec.Header().Get("Content-Location") != "/v1/erasure-requests/"+er.ID || rec.Header().Get("Location") != "" || !strings.Contains(rec.Body.String(), `"state":"propagating"`) {
		t.Fatalf("asking again: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// The admin removes the consumer that never acknowledges.
	if rec := a.do(http.MethodDelete, "/v1/subscriptions/stuck-view", tok, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("remove: %d %s", rec.Code, rec.Body)
	}
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &er)
	if er.State != "completed" || er.Certificate == nil {
		t.Fatalf("after the removal: %+v", er)
	}
	cert := certificatePayload(t, er.Certificate)
	if cert.TombstonePosition == nil || *cert.TombstonePosition != 3 || len(cert.ConsumersAcknowledged) != 1 || cert.ConsumersAcknowledged[0].Consumer != "users-view" ||
		cert.ConsumersAcknowledged[0].AcknowledgedAt.IsZero() || len(cert.ConsumersRemoved) != 1 || cert.ConsumersRemoved[0].Consumer != "stuck-view" ||
		cert.ConsumersRemoved[0].RemovedBy == "" || !strings.Contains(cert.Statement, "acknowledged by 1 registered consumer; 1 was removed") {
		t.Fatalf("certificate: %+v", cert)
	}
	// The request completed when its last consumer was removed, after the
	// keys were destroyed and the other consumer acknowledged: not at the
	// shred.
	if er.CompletedAt == nil || er.CompletedAt.Before(cert.ConsumersRemoved[0].RemovedAt) || !er.CompletedAt.After(cert.ErasedAt) ||
		er.CompletedAt.Before(cert.ConsumersAcknowledged[0].AcknowledgedAt) {
		t.Fatalf("completed_at %v; want at or after the removal %v and the ack %v, after erased_at %v", er.CompletedAt, cert.ConsumersRemoved[0].RemovedAt, cert.ConsumersAcknowledged[0].AcknowledgedAt, cert.ErasedAt)
	}
}

type erasureStatus struct {
	ID               string          `json:"id"`
	State            string          `json:"state"`
	SubjectPseudonym string          `json:"subject_pseudonym"`
	Certificate      json.RawMessage `json:"certificate"`
	CompletedAt      *time.Time      `json:"completed_at"`
	Propagation      *struct {
		TombstonePosition int64 `json:"tombstone_position"`
		Acknowledged      []any `json:"acknowledged"`
		Pending           []struct {
			Consumer string `json:"consumer"`
			Lag      int64  `json:"lag"`
		} `json:"pending"`
	} `json:"propagation"`
}

func TestTombstoneStreamIsReserved(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/eventvault-mine/events", tok, []byte(`{"events":[{"id":"6f1c2f9e-4a3b-4c1d-9e8f-1a2b3c4d5e6f","type":"A","data":1}]}`)),
		http.StatusBadRequest, eventvault.EINVALID, "reserved")
	// A tombstone's type in any other stream, in any case, alone or after
	// a good event: a consumer that checks the type alone must not be
	// made to drop what was never erased.
	for _, typ := range []string{eventvault.TombstoneType, "EventVault.Tombstone", "eventvault.Anything"} {
		body := `{"events":[{"id":"` + uuid.NewString() + `","type":"OrderPlaced","data":1},{"id":"` + uuid.NewString() + `","type":"` + typ + `","data":{"kind":"erasure","streams":["customer-x"]}}]}`
		wantProblem(t, a.do(http.MethodPost, "/v1/streams/customer-x/events", tok, []byte(body)), http.StatusBadRequest, eventvault.EINVALID, "events[1].type", "reserved")
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/customer-x/events", tok, nil), http.StatusNotFound, eventvault.ENOTFOUND)
	a.appendN(tok, "order-1", 1)
	a.doJSON(http.MethodDelete, "/v1/streams/order-1", tok, nil, http.StatusOK, nil)
	wantProblem(t, a.do(http.MethodDelete, "/v1/streams/"+string(eventvault.TombstoneStream), tok, nil), http.StatusBadRequest, eventvault.EINVALID, "reserved")
}

// TestErasureOfPersonalValuesWaitsForEveryConsumer: personal values kept
// apart may sit in events of any stream, so the erasure of a subject's
// values waits for every consumer, whatever its category filter, and its
// tombstone reaches them.
func TestErasureOfPersonalValuesWaitsForEveryConsumer(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	a.doJSON(http.MethodPut, "/v1/subscriptions/invoices", tok, map[string]any{"filter": map[string]any{"categories": []string{"invoice"}}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"events": []any{map[string]any{
		"id": "0b6f3c1e-5a2d-4c7b-9e1f-2d3c4b5a6f70", "type": "OrderPlaced", "data": map[string]any{"email": "carol@example.com", "courier": "dave@example.com"},
		"pii": map[string]any{"/email": map[string]any{"subject": "carol", "class": "email"}, "/courier": map[string]any{"subject": "dave", "class": "email"}}}}}, http.StatusCreated, nil)
	// A reader shown the values in clear is told whose each is (by
	// pseudonym), so that a copy can be found again when a tombstone names
	// its subject; a reader shown them redacted is told nothing more.
	var before struct {
		Events []struct {
			PII map[string][]string `json:"pii"`
		} `json:"events"`
	}
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", tok, nil, http.StatusOK, &before)
	whose := func(pii map[string][]string, pointer string) string {
		for s, pointers := range pii {
			if slices.Contains(pointers, pointer) {
				return s
			}
		}
		return ""
	}
	carol, dave := whose(before.Events[0].PII, "/email"), whose(before.Events[0].PII, "/courier")
	if len(before.Events[0].PII) != 2 || carol == "" || dave == "" || carol == dave || len(carol) != 64 {
		t.Fatalf("the pii member of an event read in clear: %+v", before.Events[0].PII)
	}
	if rec := a.do(http.MethodGet, "/v1/streams/order-1/events", a.tokenWithRules("acme", "read", "*"), nil); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"pii"`) || strings.Contains(rec.Body.String(), carol) {
		t.Fatalf("a reader without read_pii is told whose the values are: %d %s", rec.Code, rec.Body)
	}
	rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"carol"}`))
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"propagating"`) {
		t.Fatalf("erasure of personal values: %d %s, want 202 propagating (the invoices consumer may hold a copy)", rec.Code, rec.Body)
	}
	var er erasureStatus
	json.Unmarshal(rec.Body.Bytes(), &er)
	if er.Propagation == nil || len(er.Propagation.Pending) != 1 || er.Propagation.Pending[0].Consumer != "invoices" || er.Propagation.Pending[0].Lag < 1 {
		t.Fatalf("the 202 answer does not show the pending consumer with its lag: %s", rec.Body)
	}
	var page struct {
		Events []feedEvent `json:"events"`
	}
	a.doJSON(http.MethodGet, "/v1/events?from=1", tok, nil, http.StatusOK, &page)
	if len(page.Events) != 1 || !strings.Contains(string(page.Events[0].Data), `"personal_values":true`) || strings.Contains(string(page.Events[0].Data), "carol") {
		t.Fatalf("tombstone: %+v", page.Events)
	}
	// The tombstone names the pseudonym the read gave for carol's value,
	// and only hers: the consumer finds its copy by it.
	var ts struct {
		Subject string `json:"subject_pseudonym"`
	}
	if err := json.Unmarshal(page.Events[0].Data, &ts); err != nil || ts.Subject != carol {
		t.Fatalf("the tombstone names %q; the read named carol's value %q", ts.Subject, carol)
	}
	after := before
	after.Events = nil
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", tok, nil, http.StatusOK, &after)
	if len(after.Events[0].PII) != 1 || !slices.Equal(after.Events[0].PII[dave], []string{"/courier"}) {
		t.Fatalf("after carol's erasure the event names %+v; want dave's value only", after.Events[0].PII)
	}
	a.doJSON(http.MethodPost, "/v1/subscriptions/invoices/ack", tok, map[string]any{"position": page.Events[0].GlobalPosition}, http.StatusOK, nil)
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &er)
	if er.State != "completed" {
		t.Fatalf("after the ack: %+v", er)
	}
}
