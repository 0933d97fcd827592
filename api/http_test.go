package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// getResource is a GET endpoint, with what it answers the root token.
type getResource struct{ path, token string }

// TestUnknownQueryParametersAreRefused: on every endpoint, a parameter
// the endpoint does not take, one given twice, or a malformed query is
// 400 naming the parameter; nothing happens.
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON("POST", "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	var er erasureResponse
	a.doJSON("POST", "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusCreated, &er)
	endpoints := []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/v1/openapi.json", ""},
		{"GET", "/v1/keys/signing", ""},
		{"POST", "/v1/streams/order-1/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`},
		{"GET", "/v1/streams/order-1/events", ""},
		{"GET", "/v1/events", ""},
		{"POST", "/v1/tokens", `{"tenant":"acme","name":"x"}`},
		{"POST", "/v1/admin/tenants/acme/kek/rotate", ""},
		{"POST", "/v1/admin/root/rotate", ""},
		{"POST", "/v1/admin/root/retire", `{"before_version":1}`},
		{"DELETE", "/v1/streams/order-1", ""},
		{"POST", "/v1/erasure-requests", `{"subject":"customer-2"}`},
		{"GET", "/v1/erasure-requests/" + er.ID, ""},
		{"PUT", "/v1/holds", `{"subject":"customer-2","reason":"r"}`},
		{"DELETE", "/v1/holds", `{"subject":"customer-2"}`},
		{"POST", "/v1/admin/tenants/acme/shred", ""},
	}
	for _, e := range endpoints {
		for _, q := range []struct{ query, detail string }{
			{"subject=customer-881", `unknown query parameter "subject"`},
			{"Limit=5", `unknown query parameter "Limit"`},
			{"x", `unknown query parameter "x"`},
			{"customer-881", "an unknown query parameter"},
			{"customer-881=1", "an unknown query parameter"},
			{"a.customer-881@example.com", "an unknown query parameter"},
			{"%zz=1", "malformed"},
		} {
			t.Run(e.method+" "+e.path+"?"+q.query, func(t *testing.T) {
				var body []byte
				if e.body != "" {
					body = []byte(e.body)
				}
				rec := a.do(e.method, e.path+"?"+q.query, a.root, body)
				wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, q.detail)
				if strings.Contains(rec.Body.String(), "customer-881") {
					t.Fatalf("the problem echoes the value: %s", rec.Body)
				}
			})
		}
	}
	for _, r := range []struct{ path, detail string }{
		{"/v1/events?limit=1&limit=1000", `"limit" is given 2 times`},
		{"/v1/streams/order-1/events?direction=forward&direction=backward", `"direction" is given 2 times`},
		{"/v1/streams/order-1/events?from=0&subject=x", `"subject"`},
	} {
		t.Run(r.path, func(t *testing.T) {
			wantProblem(t, a.do("GET", r.path, a.root, nil), http.StatusBadRequest, eventvault.EINVALID, r.detail)
		})
	}
	// Nothing happened: the stream is not shredded, the tenant not either.
	a.doJSON("GET", "/v1/streams/order-1/events?from=0&limit=10&direction=forward", tok, nil, http.StatusOK, nil)
	a.doJSON("DELETE", "/v1/streams/order-1?purge=false", tok, nil, http.StatusOK, nil)
}

// TestHEADIsGETWithoutBody: every GET resource answers HEAD with the GET's
// status and headers and no body; a 405 lists HEAD in Allow.
func TestHEADIsGETWithoutBody(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON("POST", "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	var er erasureResponse
	a.doJSON("POST", "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusCreated, &er)
	for _, r := range []getResource{
		{"/healthz", ""}, {"/readyz", ""}, {"/v1/openapi.json", ""}, {"/v1/keys/signing", ""},
		{"/v1/streams/order-1/events", tok}, {"/v1/streams/order-1/events?limit=1&direction=backward", tok},
		{"/v1/events", tok}, {"/v1/events?from=1", tok},
		{"/v1/erasure-requests/" + er.ID, tok},
		// Errors too: HEAD answers what GET answers.
		{"/v1/streams/order-404/events", tok}, {"/v1/events", ""}, {"/v1/events?limit=0", tok},
		{"/v1/erasure-requests/" + uuid.NewString(), tok},
		{"/v1/tokens", tok}, {"/v1/tokens", a.root},
	} {
		t.Run(r.path, func(t *testing.T) {
			get, head := a.do("GET", r.path, r.token, nil), a.do("HEAD", r.path, r.token, nil)
			if head.Code != get.Code || head.Header().Get("Content-Type") != get.Header().Get("Content-Type") {
				t.Fatalf("HEAD %d %q, GET %d %q", head.Code, head.Header().Get("Content-Type"), get.Code, get.Header().Get("Content-Type"))
			}
			if head.Body.Len() != 0 || get.Body.Len() == 0 {
				t.Fatalf("HEAD body %d bytes, GET body %d bytes", head.Body.Len(), get.Body.Len())
			}
			if cl := head.Header().Get("Content-Length"); cl != fmt.Sprint(get.Body.Len()) || get.Header().Get("Content-Length") != cl {
				t.Fatalf("HEAD Content-Length %q, GET Content-Length %q and body %d bytes", cl, get.Header().Get("Content-Length"), get.Body.Len())
			}
			for k := range get.Header() {
				// Date and the request id are per answer.
				if head.Header().Get(k) != get.Header().Get(k) && k != "Date" && k != "X-Request-Id" {
					t.Fatalf("header %s: HEAD %q, GET %q", k, head.Header().Get(k), get.Header().Get(k))
				}
			}
		})
	}
	for _, r := range []struct{ method, path, allow string }{
		{"DELETE", "/healthz", "GET, HEAD"},
		{"POST", "/readyz", "GET, HEAD"},
		{"PUT", "/v1/events", "GET, HEAD"},
		{"PATCH", "/v1/streams/order-1/events", "POST, GET, HEAD"},
		{"PUT", "/v1/tokens", "GET, HEAD, POST"},
		{"GET", "/v1/tokens/tok_1", "DELETE"},
		{"HEAD", "/v1/holds", "PUT, DELETE"},
		{"POST", "/v1/keys/signing", "GET, HEAD"},
		// The feed streams: the one GET without HEAD, as README says.
		{"HEAD", "/v1/subscribe", "GET"},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			rec := a.do(r.method, r.path, tok, nil)
			if r.method == "HEAD" {
				if rec.Code != http.StatusMethodNotAllowed || rec.Body.Len() != 0 {
					t.Fatalf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
				}
			} else {
				wantProblem(t, rec, http.StatusMethodNotAllowed, eventvault.EINVALID, r.method)
			}
			if got := rec.Header().Get("Allow"); !sameMethods(got, r.allow) {
				t.Fatalf("Allow %q, want %q", got, r.allow)
			}
		})
	}
}

func sameMethods(a, b string) bool {
	set := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, x := range strings.Split(s, ",") {
			m[strings.TrimSpace(x)] = true
		}
		return m
	}
	x, y := set(a), set(b)
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}

// TestAnswersBeforeTheRouterAreProblems: a trailing slash, a path gin
// would "fix", an unknown path or method: each is a problem, never a
// redirect, before authentication as after.
func TestAnswersBeforeTheRouterAreProblems(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	for _, r := range []struct{ method, path, token string }{
		{"GET", "/healthz/", ""},
		{"GET", "/v1/events/", ""},
		{"GET", "/v1/events/", tok},
		{"POST", "/v1/streams/order-1/events/", tok},
		{"GET", "/V1/EVENTS", tok},
		{"GET", "//v1/events", tok},
		{"GET", "/v1/../v1/events", ""},
		{"GET", "/v1/nothing", ""},
		{"GET", "/", ""},
		{"DELETE", "/v1/erasure-requests/", tok},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			rec := a.do(r.method, r.path, r.token, nil)
			wantProblem(t, rec, http.StatusNotFound, eventvault.ENOTFOUND, "no endpoint")
			if rec.Header().Get("Location") != "" {
				t.Fatalf("a redirect to %s", rec.Header().Get("Location"))
			}
		})
	}
}

// TestOversizedHeadersAreProblemsOnARealListener sends header fields over
// the limits to a real listener: over MaxHeaderBytes the handler answers,
// over ServerMaxHeaderBytes net/http itself does, and ProblemListener
// turns its text/plain into a problem. So does a request net/http cannot
// parse.
func TestOversizedHeadersAreProblemsOnARealListener(t *testing.T) {
	a := newTestAPI(t)
	srv := httptest.NewUnstartedServer(a.srv)
	srv.Config.MaxHeaderBytes = ServerMaxHeaderBytes
	var logs syncBuffer
	srv.Listener = ProblemListener(srv.Listener, slog.New(slog.NewTextHandler(&logs, nil)))
	srv.Start()
	t.Cleanup(srv.Close)
	for _, r := range []struct {
		name   string
		req    string
		status int
		code   eventvault.Code
	}{
		{"over MaxHeaderBytes", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", 431, eventvault.ETOOLARGE},
		{"over the server's limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2*ServerMaxHeaderBytes) + "\r\n\r\n", 431, eventvault.ETOOLARGE},
		{"many headers", "GET /v1/events HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: "+strings.Repeat("b", 1000)+"\r\n", 300) + "\r\n", 431, eventvault.ETOOLARGE},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, eventvault.EINVALID},
		{"malformed header", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, eventvault.EINVALID},
		{"unknown transfer coding", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: rot13\r\n\r\n", 501, eventvault.EINVALID},
		{"HTTP/9.9", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 505, eventvault.EINVALID},
		{"Transfer-Encoding foo", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", 501, eventvault.EINVALID},
		{"a bare GARBAGE line", "GARBAGE\r\n\r\n", 400, eventvault.EINVALID},
		{"a request line of two words", "GET /healthz\r\n\r\n", 400, eventvault.EINVALID},
		{"two Content-Length that differ", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, eventvault.EINVALID},
		{"two Authorization", "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", 400, eventvault.EINVALID},
		{"two Content-Type", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", 400, eventvault.EINVALID},
		{"a chunked body on a GET", "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400, eventvault.EINVALID},
		{"a body on a DELETE of a stream", "DELETE /v1/streams/ct-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.root + "\r\nContent-Length: 14\r\n\r\n{\"purge\":true}", 400, eventvault.EINVALID},
		{"an encoded slash in a stream name", "GET /v1/streams/order%2F42-1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.root + "\r\n\r\n", 400, eventvault.EINVALID},
	} {
		t.Run(r.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(conn, r.req)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != r.status || res.Header.Get("Content-Type") != ProblemContentType {
				t.Fatalf("%d %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			var p struct {
				problem
				RequestID string `json:"http_request_id"`
			}
			if err := json.Unmarshal(body, &p); err != nil || p.Status != r.status || p.Code != string(r.code) || p.Detail == "" {
				t.Fatalf("problem %s (%v)", body, err)
			}
			// Every answer carries a request id, in the header and the
			// body, and the same one; net/http's own answers are logged
			// with it.
			if id := res.Header.Get(RequestIDHeader); id == "" || id != p.RequestID {
				t.Fatalf("X-Request-Id %q, http_request_id %q: want the same id in both", id, p.RequestID)
			}
			if res.Header.Get("Date") == "" && !strings.Contains(logs.String(), p.RequestID) { // net/http's own answer, rewritten
				t.Fatalf("the request id %s of net/http's own answer is not in the log: %s", p.RequestID, logs.String())
			}
		})
	}
	// A normal request on the same listener passes untouched.
	res, err := http.Get(srv.URL + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /healthz: %v %v", res, err)
	}
	res.Body.Close()
	// HEAD and GET carry the same Content-Length on the wire.
	for _, path := range []string{"/healthz", "/v1/keys/signing", "/v1/openapi.json"} {
		get, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		head, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if g, h := get.Header.Get("Content-Length"), head.Header.Get("Content-Length"); g == "" || g != h {
			t.Errorf("%s: GET Content-Length %q, HEAD %q", path, g, h)
		}
	}
}

// TestSubjectIDsNeverLeak: near-miss routes, malformed ids and refused
// bodies that carry a subject id answer without it, in the body and in
// the log, before authentication as after.
func TestSubjectIDsNeverLeak(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	const subject = "alice@example.com"
	const enc = "alice%40example.com"
	for _, r := range []struct{ method, path, token, body string }{
		{"GET", "/v1/subjects/" + subject + "/hold", "", ""},
		{"PUT", "/v1/subjects/" + subject + "/hold", "", `{"reason":"x"}`},
		{"PUT", "/v1/subjects/" + subject + "/holds", tok, `{"reason":"x"}`},
		{"DELETE", "/v1/subjects/" + enc + "/hold", tok, ""},
		{"GET", "/v1/holds/" + subject, tok, ""},
		{"GET", "/v1/holds", tok, ""},
		{"PUT", "/v1/holds/" + subject, "", ""},
		{"GET", "/v1/erasure-requests/" + subject, tok, ""},
		{"GET", "/v1/erasure-requests/" + subject, "", ""},
		{"HEAD", "/v1/erasure-requests/" + subject, tok, ""},
		{"POST", "/v1/erasure-requests/" + subject, tok, ""},
		{"GET", "/v1/streams/" + subject + "/events", tok, ""},
		{"POST", "/v1/streams/" + subject + "/events", tok, `{"events":[]}`},
		{"DELETE", "/v1/streams/" + subject, tok, ""},
		{"GET", "/" + subject, "", ""},
		{"GET", "/v1/events?subject=" + subject, tok, ""},
		{"POST", "/v1/erasure-requests", tok, `{"subject":"` + subject + `","subject":"` + subject + `"}`},
		{"POST", "/v1/erasure-requests", tok, `{"Subject":"` + subject + `"}`},
		{"PUT", "/v1/holds", tok, `{"subject":"` + subject + `","reason":""}`},
		{"DELETE", "/v1/holds", tok, `{"subject":"` + subject + `"}`},
		{"POST", "/v1/erasure-requests", a.tokenFor("acme"), `{"subject":"` + subject + `"}`},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			var body []byte
			if r.body != "" {
				body = []byte(r.body)
			}
			rec := a.do(r.method, r.path, r.token, body)
			if rec.Code < 400 {
				t.Fatalf("status %d", rec.Code)
			}
			for _, s := range []string{"alice", enc} {
				if strings.Contains(rec.Body.String(), s) || strings.Contains(fmt.Sprint(rec.Header()), s) {
					t.Fatalf("the answer holds %q: %v %s", s, rec.Header(), rec.Body)
				}
			}
		})
	}
	if logs := a.logs.String(); strings.Contains(logs, "alice") || logs == "" {
		t.Fatalf("the log holds the subject id (or nothing):\n%s", logs)
	}
}

// TestProblemsNameNoValues: a problem about a query parameter or a body
// field names the parameter or the field (by JSON pointer) and the type or
// range it takes, never the value sent, which may be personal data.
func TestProblemsNameNoValues(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON("POST", "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	const secret = "customer-secret"
	id := uuid.NewString()
	for _, r := range []struct{ name, method, path, body, detail string }{
		{"from not an integer", "GET", "/v1/events?from=customer-secret-5", "", "query parameter from must be an integer"},
		{"stream from not an integer", "GET", "/v1/streams/order-1/events?from=customer-secret-5", "", "query parameter from must be an integer"},
		{"limit not an integer", "GET", "/v1/events?limit=customer-secret-5", "", "query parameter limit must be an integer"},
		{"from with a plus sign", "GET", "/v1/events?from=%2B1", "", "query parameter from must be an integer written in decimal digits"},
		{"version with a plus sign", "GET", "/v1/policies/app?version=%2B1", "", "query parameter version must be an integer written in decimal digits"},
		{"from a bare minus", "GET", "/v1/streams/order-1/events?from=-", "", "query parameter from must be an integer written in decimal digits"},
		{"limit with a space", "GET", "/v1/events?limit=%205", "", "query parameter limit must be an integer written in decimal digits"},
		// Empty, as an unset variable sends it: refused like an empty
		// direction or tenant, never read as left out.
		{"from empty", "GET", "/v1/events?from=", "", "query parameter from is empty: give a value, such as 42, or leave it out"},
		{"stream from empty", "GET", "/v1/streams/order-1/events?from=", "", "query parameter from is empty"},
		{"limit empty", "GET", "/v1/streams/order-1/events?limit=", "", "query parameter limit is empty"},
		{"wait empty", "GET", "/v1/events?wait=", "", "query parameter wait is empty"},
		{"feed from empty", "GET", "/v1/subscribe?from=", "", "query parameter from is empty"},
		{"direction", "GET", "/v1/streams/order-1/events?direction=customer-secret-5", "", "query parameter direction must be forward or backward"},
		{"purge", "DELETE", "/v1/streams/order-1?purge=customer-secret-5", "", "query parameter purge must be true or false"},
		{"bare unknown key", "GET", "/v1/events?customer-secret-6", "", "an unknown query parameter"},
		{"from too large", "GET", "/v1/events?from=99999999999999999999", "", "query parameter from is too large"},
		{"limit too large", "GET", "/v1/events?limit=99999999999999999999", "", "query parameter limit is too large"},
		{"from too small", "GET", "/v1/streams/order-1/events?from=-99999999999999999999", "", "query parameter from is too small"},
		{"subject a huge number", "POST", "/v1/erasure-requests", `{"subject":881234e99999}`, `field "subject" (at /subject) must be a string`},
		{"subject a number", "POST", "/v1/erasure-requests", `{"subject":8812345}`, `field "subject" (at /subject) must be a string`},
		{"hold reason an object", "PUT", "/v1/holds", `{"subject":"x","reason":{"customer-secret":1}}`, `field "reason" (at /reason) must be a string`},
		{"event type a number", "POST", "/v1/streams/order-1/events", `{"events":[{"id":"` + id + `","type":881234,"data":1}]}`, `field "type" (at /events/0/type) must be a string`},
		{"events an object", "POST", "/v1/streams/order-1/events", `{"events":{"customer-secret":1}}`, `field "events" (at /events) must be an array`},
		{"an event a string", "POST", "/v1/streams/order-1/events", `{"events":["customer-secret"]}`, `the value at /events/0 must be an object`},
		{"expected_version 1e400", "POST", "/v1/streams/order-1/events", `{"expected_version":1e400,"events":[{"id":"` + id + `","type":"A","data":1}]}`, `field "expected_version" (at /expected_version) is a number beyond the range of a double`},
		{"expected_version past int64", "POST", "/v1/streams/order-1/events", `{"expected_version":9223372036854775808,"events":[{"id":"` + id + `","type":"A","data":1}]}`, "expected_version is too large"},
		{"event id not a UUID", "POST", "/v1/streams/order-1/events", `{"events":[{"id":"customer-secret","type":"A","data":1}]}`, "events[0].id (at /events/0/id) is not a UUID"},
		{"the body a number", "POST", "/v1/erasure-requests", `881234`, "the body must be an object"},
		{"before_version", "POST", "/v1/admin/root/retire", `{"before_version":"customer-secret"}`, `field "before_version" (at /before_version) must be an integer`},
		{"event type", "POST", "/v1/streams/order-1/events", `{"events":[{"id":"` + id + `","type":"customer-secret x","data":1}]}`, "events[0].type (at /events/0/type): invalid event type"},
		{"tenant in the path", "POST", "/v1/admin/tenants/customer-secret@x/kek/rotate", "", "invalid tenant"},
		{"tenant in a body", "POST", "/v1/tokens", `{"tenant":"customer-secret@x","name":"n"}`, "invalid tenant"},
		{"a byte order mark", "POST", "/v1/erasure-requests", "\ufeff{\"subject\":\"customer-secret\"}", "the body starts with a byte order mark (U+FEFF): send JSON without it"},
	} {
		t.Run(r.name, func(t *testing.T) {
			var body []byte
			if r.body != "" {
				body = []byte(r.body)
			}
			rec := a.do(r.method, r.path, a.root, body)
			wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, r.detail)
			for _, v := range []string{secret, "881234", "1e400", "9223372036854775808", "99999999999999999999"} {
				if strings.Contains(rec.Body.String(), v) {
					t.Fatalf("the problem echoes the value %q: %s", v, rec.Body)
				}
			}
		})
	}
}

// TestTooLargeBodySaysWhatToDo: only the append endpoint has a batch to
// split; the others say to send a smaller body.
func TestTooLargeBodySaysWhatToDo(t *testing.T) {
	a := newTestAPI(t)
	big := []byte(`{"subject":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)
	for _, r := range []struct{ method, path, detail string }{
		{"POST", "/v1/streams/order-1/events", "split the batch"},
		{"POST", "/v1/erasure-requests", "send a smaller body"},
		{"PUT", "/v1/holds", "send a smaller body"},
		{"POST", "/v1/tokens", "send a smaller body"},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			rec := a.do(r.method, r.path, a.root, big)
			p := wantProblem(t, rec, http.StatusRequestEntityTooLarge, eventvault.ETOOLARGE, r.detail)
			if r.detail != "split the batch" && strings.Contains(p.Detail, "batch") {
				t.Fatalf("detail %q speaks of a batch", p.Detail)
			}
		})
	}
}

// TestPathValuesAreNeverEchoed: every route with a path parameter answers
// a value that is not of its parameter's shape without echoing it, in the
// problem, the log and the audit log, on both stores: such a value may be
// personal data pasted in place of an id. It tries, on each route, an
// encoded e-mail address (alice%40example.com), a raw one (jane@x.io), a
// 3000-byte value and, for token ids, tok_ ids of the wrong length and one
// of upper-case hex.
func TestPathValuesAreNeverEchoed(t *testing.T) {
	onBothStores(t, testPathValuesAreNeverEchoed)
}

func testPathValuesAreNeverEchoed(t *testing.T, a *testAPI) {
	long := "long" + strings.Repeat("x", 3000)
	values := []struct{ sent, shows string }{
		{"alice%40example.com", "alice"},
		{"jane@x.io", "jane"},
		{long, "longxxxxxx"},
	}
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/streams/{}/events", `{"events":[]}`},
		{"GET", "/v1/streams/{}/events", ""},
		{"HEAD", "/v1/streams/{}/events", ""},
		{"DELETE", "/v1/streams/{}", ""},
		{"PUT", "/v1/subscriptions/{}", `{}`},
		{"GET", "/v1/subscriptions/{}", ""},
		{"POST", "/v1/subscriptions/{}/ack", `{"position":0}`},
		{"DELETE", "/v1/subscriptions/{}", ""},
		{"DELETE", "/v1/tokens/{}", ""},
		{"DELETE", "/v1/tokens/{}?tenant=acme", ""},
		{"PUT", "/v1/policies/{}", `{"policy":"permit (principal, action, resource);"}`},
		{"GET", "/v1/policies/{}", ""},
		{"DELETE", "/v1/policies/{}", ""},
		{"POST", "/v1/admin/tenants/{}/kek/rotate", ""},
		{"POST", "/v1/admin/tenants/{}/shred", ""},
		{"GET", "/v1/erasure-requests/{}", ""},
	}
	var adm tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "ops",
		"rules": []map[string]any{{"capabilities": []string{"admin"}, "streams": "*"}}}, http.StatusCreated, &adm)
	admin := adm.Token
	for _, v := range values {
		for _, r := range routes {
			path := strings.Replace(r.path, "{}", v.sent, 1)
			t.Run(r.method+" "+eventvault.Truncate(path, 60), func(t *testing.T) {
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				rec := a.do(r.method, path, a.root, body)
				if rec.Code < 400 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				if strings.Contains(rec.Body.String(), v.shows) || strings.Contains(fmt.Sprint(rec.Header()), v.shows) {
					t.Fatalf("the answer holds %q: %v %s", v.shows, rec.Header(), rec.Body)
				}
			})
		}
	}
	if logs := a.logs.String(); logs == "" || strings.Contains(logs, "alice") || strings.Contains(logs, "jane") || strings.Contains(logs, "longxxxxxx") {
		t.Fatalf("the log holds a path value (or nothing):\n%s", logs)
	}
	for _, tenant := range []string{"default", "acme"} {
		if rec := a.do(http.MethodGet, "/v1/audit/export?tenant="+tenant, a.root, nil); rec.Code == http.StatusNotFound {
			continue // nothing was recorded in it
		}
		recs, err := json.Marshal(a.exportAndVerify(t, tenant))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"alice", "jane", "longxxxxxx"} {
			if strings.Contains(string(recs), s) {
				t.Fatalf("tenant %s's audit log holds %q: %s", tenant, s, recs)
			}
		}
	}

	// A token id of the wrong shape is "no such token", saying what ids
	// look like, for any caller that may revoke.
	for _, id := range []string{"alice%40example.com", "jane@x.io", long, "tok_beef", "tok_BEEFBEEFBEEFBEEF", "tok_beefbeefbeefbeef0"} {
		for _, tok := range []string{a.root, admin} {
			p := wantProblem(t, a.do("DELETE", "/v1/tokens/"+id, tok, nil), http.StatusNotFound, eventvault.ENOTFOUND, "no such token", "tok_0123456789abcdef")
			if strings.Contains(strings.ToLower(p.Detail), "beef") || strings.Contains(p.Detail, "@") || strings.Contains(p.Detail, "xxx") {
				t.Fatalf("DELETE /v1/tokens/%.20s: the problem echoes it: %s", id, p.Detail)
			}
		}
	}
	// A well-shaped id names a token the tenant may not have: echoing it
	// is safe.
	wantProblem(t, a.do("DELETE", "/v1/tokens/tok_0123456789abcdef", admin, nil), http.StatusNotFound, eventvault.ENOTFOUND, "tok_0123456789abcdef")
}

// TestIntegerQueryProblemsGiveAnExample: an integer query parameter
// spelt otherwise is told with an example of what it takes (42), never
// as if a leading '-' were required; only a stream read's from, which
// takes -1 backward, mentions -1. It tries limit=abc, from=customer-
// secret-5 and wait=abc on read-all, version=abc on a policy, heartbeat=abc
// on the feed, and from=abc and from=+1 on a stream read.
func TestIntegerQueryProblemsGiveAnExample(t *testing.T) {
	a := newTestAPI(t)
	a.doJSON("POST", "/v1/streams/order-1/events", a.root, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	for _, c := range []struct{ path, says string }{
		{"/v1/events?limit=abc", "query parameter limit must be an integer written in decimal digits, such as 42 (no '+'"},
		{"/v1/events?from=customer-secret-5", "query parameter from must be an integer written in decimal digits, such as 42 (no '+'"},
		{"/v1/events?wait=abc", "query parameter wait must be an integer written in decimal digits, such as 42"},
		{"/v1/policies/app?version=abc", "query parameter version must be an integer written in decimal digits, such as 42"},
		{"/v1/subscribe?heartbeat=abc", "query parameter heartbeat must be an integer written in decimal digits, such as 42"},
		{"/v1/streams/order-1/events?from=abc", "such as 42, or -1 for the end when reading backward"},
		{"/v1/streams/order-1/events?from=%2B1", "such as 42, or -1 for the end when reading backward"},
	} {
		p := wantProblem(t, a.do("GET", c.path, a.root, nil), http.StatusBadRequest, eventvault.EINVALID, c.says)
		if strings.Contains(p.Detail, "leading -") || strings.Contains(p.Detail, "customer-secret") {
			t.Errorf("GET %s: %q", c.path, p.Detail)
		}
	}
}
