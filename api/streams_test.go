package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func TestAppendThenReadRoundTrip(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	body := map[string]any{
		"expected_version": "no_stream",
		"events": []any{
			event("OrderPlaced", map[string]any{"total": 42}),
			map[string]any{"id": uuid.NewString(), "type": "OrderPaid", "data": map[string]any{"by": "card"}, "metadata": map[string]any{"trace": "t-1"}},
		},
	}
	var res appendOut
	a.doJSON(http.MethodPost, "/v1/streams/order-42/events", tok, body, http.StatusCreated, &res)
	if res.Version != 1 || len(res.Events) != 2 || res.Events[0].Position != 0 || res.Events[1].Position != 1 {
		t.Fatalf("append result %+v, want positions 0 and 1, version 1", res)
	}

	var got streamOut
	a.doJSON(http.MethodGet, "/v1/streams/order-42/events", tok, nil, http.StatusOK, &got)
	if len(got.Events) != 2 || string(got.Events[0].Data) != `{"total":42}` || string(got.Events[1].Metadata) != `{"trace":"t-1"}` {
		t.Fatalf("read %+v, want the two events decrypted", got)
	}
	if got.Events[0].Type != "OrderPlaced" || got.Events[1].GlobalPosition != res.Events[1].GlobalPosition {
		t.Fatalf("read envelope %+v does not match the append %+v", got.Events, res.Events)
	}

	a.doJSON(http.MethodGet, "/v1/streams/order-42/events?direction=backward&limit=1", tok, nil, http.StatusOK, &got)
	if len(got.Events) != 1 || got.Events[0].Position != 1 || got.Next == nil || *got.Next != 0 {
		t.Fatalf("backward read %+v, want the last event and next=0", got)
	}
}

func TestExpectedVersionConflictReportsActualVersion(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("A", 1), event("B", 2)}}, http.StatusCreated, nil)
	for _, ev := range []any{"no_stream", 0, 5} {
		b, _ := json.Marshal(map[string]any{"expected_version": ev, "events": []any{event("C", 3)}})
		p := wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", tok, b), http.StatusConflict, "conflict", "version 1")
		if string(p.ActualVersion) != "1" {
			t.Fatalf("expected_version %v: actual_version %v, want 1", ev, p.ActualVersion)
		}
		// The expected version is echoed as the body gave it: a number
		// as a number, a word as a string.
		if want, _ := json.Marshal(ev); string(p.ExpectedVersion) != string(want) {
			t.Fatalf("expected_version %v echoed as %s, want %s", ev, p.ExpectedVersion, want)
		}
	}
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"expected_version": 1, "events": []any{event("C", 3)}}, http.StatusCreated, nil)
}

func TestIdempotentAppend(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	ev := event("OrderPlaced", map[string]any{"total": 42})
	var first, again appendOut
	a.doJSON(http.MethodPost, "/v1/streams/order-7/events", tok, map[string]any{"events": []any{ev}}, http.StatusCreated, &first)
	// The same event again, with other white space, even with an expected
	// version that no longer holds: the original positions come back.
	raw := fmt.Sprintf(`{"expected_version":"no_stream","events":[{"id":%q,"type":"OrderPlaced","data":{ "total" : 42 }}]}`, ev["id"])
	rec := a.do(http.MethodPost, "/v1/streams/order-7/events", tok, []byte(raw))
	if rec.Code != http.StatusOK {
		t.Fatalf("replay status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &again); err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Events[0] != first.Events[0] {
		t.Fatalf("replay %+v, want the original %+v", again, first)
	}
	// The same id with other content is a conflict.
	ev["data"] = map[string]any{"total": 43}
	b, _ := json.Marshal(map[string]any{"events": []any{ev}})
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-7/events", tok, b), http.StatusConflict, "conflict")
	var got streamOut
	a.doJSON(http.MethodGet, "/v1/streams/order-7/events", tok, nil, http.StatusOK, &got)
	if len(got.Events) != 1 {
		t.Fatalf("stream holds %d events after replays, want 1", len(got.Events))
	}
}

// TestBadInput tries each malformed request a client might send; each must
// be a 4xx problem that says what to fix, and none may write anything.
func TestBadInput(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	okEvent := func() string {
		return fmt.Sprintf(`{"id":%q,"type":"OrderPlaced","data":{"n":1}}`, uuid.NewString())
	}
	manyEvents := make([]string, 501)
	for i := range manyEvents {
		manyEvents[i] = okEvent()
	}
	huge := `{"events":[{"id":"` + uuid.NewString() + `","type":"Big","data":"` + strings.Repeat("x", MaxBodyBytes) + `"}]}`
	dup := uuid.NewString()
	const path = "/v1/streams/order-1/events"
	cases := []struct {
		name    string
		method  string
		path    string
		token   string
		body    string
		status  int
		code    eventvault.Code
		details []string
	}{
		{"malformed JSON", "POST", path, tok, `{"events": [`, 400, "invalid", []string{"JSON"}},
		{"syntax error", "POST", path, tok, `{"events": [}`, 400, "invalid", []string{"not valid JSON"}},
		{"empty body", "POST", path, tok, ``, 400, "invalid", []string{"empty"}},
		{"not an object", "POST", path, tok, `[1,2]`, 400, "invalid", []string{"object"}},
		{"two values", "POST", path, tok, `{"events":[` + okEvent() + `]} {}`, 400, "invalid", []string{"more than one"}},
		{"events wrong type", "POST", path, tok, `{"events":"many"}`, 400, "invalid", []string{`"events"`, "array"}},
		{"type wrong type", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","type":7,"data":{}}]}`, 400, "invalid", []string{"type", "string"}},
		{"unknown field", "POST", path, tok, `{"evnts":[]}`, 400, "invalid", []string{"unknown field", "evnts"}},
		{"unknown event field", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{},"colour":"red"}]}`, 400, "invalid", []string{"colour"}},
		{"missing events", "POST", path, tok, `{}`, 400, "invalid", []string{"events is missing"}},
		{"empty batch", "POST", path, tok, `{"events":[]}`, 400, "invalid", []string{"empty"}},
		{"oversized batch", "POST", path, tok, `{"events":[` + strings.Join(manyEvents, ",") + `]}`, 413, "too_large", []string{"500"}},
		{"oversized body", "POST", path, tok, huge, 413, "too_large", []string{"bytes"}},
		{"missing id", "POST", path, tok, `{"events":[{"type":"A","data":{}}]}`, 400, "invalid", []string{"events[0].id is missing"}},
		{"bad id", "POST", path, tok, `{"events":[{"id":"42","type":"A","data":{}}]}`, 400, "invalid", []string{"not a UUID"}},
		{"duplicate ids", "POST", path, tok, `{"events":[{"id":"` + dup + `","type":"A","data":{}},{"id":"` + dup + `","type":"A","data":{}}]}`, 400, "invalid", []string{"share the id"}},
		{"missing type", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","data":{}}]}`, 400, "invalid", []string{"type is empty"}},
		{"bad type", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","type":"a b","data":{}}]}`, 400, "invalid", []string{"invalid event type"}},
		{"missing data", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","type":"A"}]}`, 400, "invalid", []string{"data is missing"}},
		{"null data", "POST", path, tok, `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":null}]}`, 400, "invalid", []string{"data is missing or null"}},
		{"expected version word", "POST", path, tok, `{"expected_version":"sometimes","events":[` + okEvent() + `]}`, 400, "invalid", []string{"expected_version"}},
		{"expected version negative", "POST", path, tok, `{"expected_version":-2,"events":[` + okEvent() + `]}`, 400, "invalid", []string{"expected_version"}},
		{"expected version fraction", "POST", path, tok, `{"expected_version":1.5,"events":[` + okEvent() + `]}`, 400, "invalid", []string{"expected_version"}},
		{"expected version object", "POST", path, tok, `{"expected_version":{},"events":[` + okEvent() + `]}`, 400, "invalid", []string{"expected_version"}},
		{"stream without category", "POST", "/v1/streams/order/events", tok, `{"events":[` + okEvent() + `]}`, 400, "invalid", []string{"category-id"}},
		{"stream with space", "POST", "/v1/streams/order%201/events", tok, `{"events":[` + okEvent() + `]}`, 400, "invalid", []string{"invalid stream name"}},
		{"stream too long", "POST", "/v1/streams/order-" + strings.Repeat("9", 250) + "/events", tok, `{"events":[` + okEvent() + `]}`, 400, "invalid", []string{"limit"}},
		{"wrong content type", "POST", path, tok, "text", 415, "unsupported_media_type", []string{"application/json"}},
		{"no token", "POST", path, "", `{"events":[` + okEvent() + `]}`, 401, "unauthorized", []string{"Authorization"}},
		{"unknown token", "POST", path, "evt_forged", `{"events":[` + okEvent() + `]}`, 401, "unauthorized", []string{"not valid"}},
		{"read without token", "GET", path, "", ``, 401, "unauthorized", nil},
		{"read bad limit", "GET", path + "?limit=0", tok, ``, 400, "invalid", []string{"limit"}},
		{"read huge limit", "GET", path + "?limit=100000", tok, ``, 400, "invalid", []string{"limit"}},
		{"read limit not a number", "GET", path + "?limit=ten", tok, ``, 400, "invalid", []string{"integer"}},
		{"read bad direction", "GET", path + "?direction=sideways", tok, ``, 400, "invalid", []string{"direction"}},
		{"read negative from", "GET", path + "?from=-5", tok, ``, 400, "invalid", []string{"from"}},
		{"read unknown stream", "GET", "/v1/streams/order-404/events", tok, ``, 404, "not_found", []string{"order-404"}},
		{"read all bad from", "GET", "/v1/events?from=x", tok, ``, 400, "invalid", []string{"from"}},
		{"unknown endpoint", "GET", "/v1/nothing", tok, ``, 404, "not_found", []string{"no endpoint", "/v1/openapi.json"}},
		{"wrong method", "DELETE", "/healthz", tok, ``, 405, "invalid", []string{"DELETE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			req := a.do(c.method, c.path, c.token, body)
			if c.name == "wrong content type" {
				req = a.doContentType(c.path, c.token, "text/plain", body)
			}
			wantProblem(t, req, c.status, c.code, c.details...)
			if c.status == 401 && req.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	// Nothing was half-written: the tenant has no events at all.
	var all struct {
		Events []json.RawMessage `json:"events"`
	}
	a.doJSON(http.MethodGet, "/v1/events", tok, nil, http.StatusOK, &all)
	if len(all.Events) != 0 {
		t.Fatalf("bad requests wrote %d events", len(all.Events))
	}
}

func (a *testAPI) doContentType(path, token, ct string, body []byte) *httptest.ResponseRecorder {
	a.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	return a.serve(req)
}

func TestTenantsCannotReachEachOther(t *testing.T) {
	a := newTestAPI(t)
	acme, globex := a.tokenFor("acme"), a.tokenFor("globex")
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", acme, map[string]any{"events": []any{event("OrderPlaced", map[string]any{"secret": "acme-only"})}}, http.StatusCreated, nil)

	// globex reads the same stream name: its own tenant has no such stream.
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", globex, nil), http.StatusNotFound, "not_found")
	var all struct {
		Events []json.RawMessage `json:"events"`
	}
	a.doJSON(http.MethodGet, "/v1/events", globex, nil, http.StatusOK, &all)
	if len(all.Events) != 0 {
		t.Fatalf("globex sees %d of acme's events in read-all", len(all.Events))
	}
	// globex appends to the same name: a separate stream, starting at 0,
	// and acme's stream is untouched.
	var res appendOut
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", globex, map[string]any{"expected_version": "no_stream", "events": []any{event("OrderPlaced", 1)}}, http.StatusCreated, &res)
	if res.Events[0].Position != 0 || res.Events[0].GlobalPosition != 0 {
		t.Fatalf("globex's append landed at %+v, want its own stream at 0", res.Events[0])
	}
	var got streamOut
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", acme, nil, http.StatusOK, &got)
	if len(got.Events) != 1 || !strings.Contains(string(got.Events[0].Data), "acme-only") {
		t.Fatalf("acme's stream changed: %+v", got)
	}
	// A tenant's token cannot mint tokens for another tenant, nor for itself
	// without admin.
	b, _ := json.Marshal(map[string]any{"tenant": "acme"})
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", globex, b), http.StatusForbidden, "forbidden", "its own tenant")
}

func TestPolicyLimitsTokenToItsStreams(t *testing.T) {
	a := newTestAPI(t)
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": "acme", "name": "orders-reader",
		"rules": []any{map[string]any{"capabilities": []string{"read"}, "streams": "order-*"}},
	}, http.StatusCreated, &out)
	writer := a.tokenFor("acme")
	a.doJSON(http.MethodPost, "/v1/streams/invoice-1/events", writer, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", writer, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)

	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", out.Token, nil, http.StatusOK, nil)
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/invoice-1/events", out.Token, nil), http.StatusForbidden, "forbidden", "read")
	wantProblem(t, a.do(http.MethodGet, "/v1/events", out.Token, nil), http.StatusForbidden, "forbidden")
	b, _ := json.Marshal(map[string]any{"events": []any{event("A", 1)}})
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", out.Token, b), http.StatusForbidden, "forbidden", "append")
}

func TestReadAllInGlobalOrder(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	for i := 0; i < 5; i++ {
		stream := fmt.Sprintf("/v1/streams/order-%d/events", i%2)
		a.doJSON(http.MethodPost, stream, tok, map[string]any{"events": []any{event("A", i)}}, http.StatusCreated, nil)
	}
	var page struct {
		Events []struct {
			GlobalPosition int64           `json:"global_position"`
			Stream         string          `json:"stream"`
			Data           json.RawMessage `json:"data"`
		} `json:"events"`
		Next int64 `json:"next"`
	}
	a.doJSON(http.MethodGet, "/v1/events?from=1&limit=3", tok, nil, http.StatusOK, &page)
	if len(page.Events) != 3 || page.Next != 4 {
		t.Fatalf("page %+v, want global positions 1..3 and next 4", page)
	}
	for i, e := range page.Events {
		if e.GlobalPosition != int64(i+1) || string(e.Data) != fmt.Sprint(i+1) {
			t.Fatalf("event %d: %+v, want global position %d with data %d", i, e, i+1, i+1)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a := newTestAPI(t)
	a.doJSON(http.MethodGet, "/healthz", "", nil, http.StatusOK, nil)
	a.doJSON(http.MethodGet, "/readyz", "", nil, http.StatusOK, nil)
}
