package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/eventvault/eventvault"
)

// contract is the embedded OpenAPI document, loaded and validated once.
var contract = sync.OnceValues(func() (*contractDoc, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDocument)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	openapi3filter.RegisterBodyDecoder(NDJSONContentType, decodeNDJSON)
	openapi3filter.RegisterBodyDecoder(FramesContentType, decodeFrames)
	openapi3filter.RegisterBodyDecoder(eventStreamContentType, decodeEventStream)
	return &contractDoc{doc: doc, router: router}, nil
})

// decodeFrames reads a frames body, failing unless it is whole frames
// that parse, and gives it to the schema (a binary string) as it is.
func decodeFrames(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	for rest := b; len(rest) > 0; {
		if len(rest) < 4 || uint64(len(rest)-4) < uint64(binary.BigEndian.Uint32(rest)) {
			return nil, fmt.Errorf("a frame is cut short at byte %d", len(b)-len(rest))
		}
		n := binary.BigEndian.Uint32(rest)
		if _, err := ParseFrame(rest[4 : 4+n]); err != nil {
			return nil, fmt.Errorf("frame at byte %d: %w", len(b)-len(rest), err)
		}
		rest = rest[4+n:]
	}
	return string(b), nil
}

// decodeNDJSON reads an NDJSON body as the array of its lines' values, as
// the document describes it, so that every line is checked against the
// array's items. A line that is not one JSON value fails.
func decodeNDJSON(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	lines := []any{}
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			return nil, fmt.Errorf("NDJSON line %d does not end with a newline", len(lines)+1)
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("NDJSON line %d: %w", len(lines)+1, err)
		}
		lines = append(lines, v)
	}
	return lines, nil
}

type contractDoc struct {
	doc    *openapi3.T
	router routers.Router
}

// checkContract checks one exchange of the API test suite against the
// OpenAPI document: the answer's status, headers and body always; the
// request too when the server accepted it (a refused request is often
// outside the contract on purpose). An exchange on a path or method the
// document does not list must be a problem: 404, 405 with Allow, or 400.
func checkContract(t testing.TB, req *http.Request, reqBody []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	c, err := contract()
	if err != nil {
		t.Fatalf("the OpenAPI document: %v", err)
	}
	ctx := context.Background()
	if strings.Contains(strings.ToLower(req.Header.Get("Content-Encoding")), "gzip") && rec.Code < 300 {
		zr, err := gzip.NewReader(bytes.NewReader(reqBody))
		if err == nil {
			reqBody, _ = io.ReadAll(zr)
		}
	}
	vreq := req.Clone(ctx)
	vreq.Header.Del("Content-Encoding")
	if len(reqBody) > 0 && vreq.Header.Get("Content-Type") == "" {
		vreq.Header.Set("Content-Type", "application/json") // the server takes an unlabelled body as JSON
	}
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusBadRequest {
			t.Errorf("contract: %s %s is not in the document, and answered %d", req.Method, req.URL.Path, rec.Code)
		}
		if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
			t.Errorf("contract: 405 without Allow for %s %s", req.Method, req.URL.Path)
		}
		if req.Method != http.MethodHead {
			checkProblemSchema(t, c, req, rec)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if rec.Code < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("contract: %s %s was accepted (%d) but the document refuses the request: %v", req.Method, req.URL, rec.Code, err)
		}
	}
	outOpts := *opts
	outOpts.ExcludeResponseBody = req.Method == http.MethodHead
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: &outOpts},
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                &outOpts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("contract: %s %s answered %d %s, which the document does not allow: %v", req.Method, req.URL.Path, rec.Code, eventvault.Truncate(rec.Body.String(), 300), err)
	}
}

func checkProblemSchema(t testing.TB, c *contractDoc, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != ProblemContentType {
		t.Errorf("contract: %s %s answered %d as %q", req.Method, req.URL.Path, rec.Code, ct)
		return
	}
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Errorf("contract: problem body %q: %v", rec.Body, err)
		return
	}
	if err := c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("contract: %s %s answered a problem the document does not allow: %v", req.Method, req.URL.Path, err)
	}
}

// TestOpenAPIDocumentIsServedAndComplete: GET /v1/openapi.json serves the
// embedded document without a token; it is OpenAPI 3.1, lists every route
// the server has, and every error code of the API.
func TestOpenAPIDocumentIsServedAndComplete(t *testing.T) {
	a := newTestAPI(t)
	rec := a.do("GET", "/v1/openapi.json", "", nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), openAPIDocument) {
		t.Fatalf("GET /v1/openapi.json: %d", rec.Code)
	}
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if !c.doc.IsOpenAPI31OrLater() || c.doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi %q, want 3.1", c.doc.OpenAPI)
	}
	// Every route of the server is in the document, and the other way.
	var inServer, inDoc []string
	for _, r := range a.srv.router.Routes() {
		path := r.Path
		for _, p := range []string{"stream", "tenant", "id", "name"} {
			path = strings.ReplaceAll(path, ":"+p, "{"+p+"}")
		}
		inServer = append(inServer, r.Method+" "+path)
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc = append(inDoc, method+" "+path)
		}
	}
	sort.Strings(inServer)
	sort.Strings(inDoc)
	if !slices.Equal(inServer, inDoc) {
		t.Fatalf("routes\n server:   %v\n document: %v", inServer, inDoc)
	}
	codes := c.doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum
	for _, code := range []eventvault.Code{eventvault.EINVALID, eventvault.EUNAUTHORIZED, eventvault.EFORBIDDEN, eventvault.ENOTFOUND, eventvault.ECONFLICT,
		eventvault.ETOOLARGE, eventvault.EERASED, eventvault.EUNAVAILABLE, eventvault.EINTERNAL, codeUnsupportedMediaType} {
		if !slices.Contains(codes, any(string(code))) {
			t.Errorf("error code %s is not in the document", code)
		}
	}
	for code := range statusOf {
		if !slices.Contains(codes, any(string(code))) {
			t.Errorf("error code %s (problem.go) is not in the document", code)
		}
	}
}

// TestOpenAPIStatesTheServersLimits: where the document states a limit the
// server enforces, the two agree on every row: the schema's verdict is the
// server's validator's.
func TestOpenAPIStatesTheServersLimits(t *testing.T) {
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	schemas := c.doc.Components.Schemas
	check := func(name string, schema *openapi3.Schema, valid func(string) bool, rows []string) {
		for _, v := range rows {
			docOK := schema.VisitJSON(v) == nil
			if srvOK := valid(v); docOK != srvOK {
				t.Errorf("%s %q: document accepts %v, server accepts %v", name, v, docOK, srvOK)
			}
		}
	}
	check("event type", schemas["NewEvent"].Value.Properties["type"].Value,
		func(v string) bool { return eventvault.ValidateEventType(v) == nil },
		[]string{"", "A", "OrderPlaced", "order.placed:v2", "1Up", "Order Placed", "_x", "Ä", strings.Repeat("A", 200), strings.Repeat("A", 201)})
	tenantRows := []string{"", "a", "acme", "acme-2", "a_b", "-a", "_a", "Acme", "a/b", "a.b", strings.Repeat("a", 63), strings.Repeat("a", 64)}
	check("token tenant", schemas["TokenRequest"].Value.Properties["tenant"].Value,
		func(v string) bool { return eventvault.ValidateTenant(eventvault.TenantID(v)) == nil }, tenantRows)
	check("tenant path parameter", c.doc.Components.Parameters["Tenant"].Value.Schema.Value,
		func(v string) bool { return eventvault.ValidateTenant(eventvault.TenantID(v)) == nil }, tenantRows)
	for _, d := range []struct{ schema, field, says string }{
		{"HoldIn", "reason", "500 bytes"},
		{"TokenRequest", "name", "100 bytes"},
	} {
		if desc := schemas[d.schema].Value.Properties[d.field].Value.Description; !strings.Contains(desc, d.says) {
			t.Errorf("%s.%s description %q does not say %q", d.schema, d.field, desc, d.says)
		}
	}
}

// TestOpenAPIFramesListEveryField: the document describes the frames
// encoding (FramesContentType) field by field, each one the writer writes,
// in the order of api/eventframes.go's layout, pii last, wherever a read
// answers frames: a client written from the contract reads them all.
func TestOpenAPIFramesListEveryField(t *testing.T) {
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"16-byte id", "i64 position", "i64 global_position", "i64 recorded_at", "u8 flags", "u16 length and stream", "u16 length and type", "u32 length and data", "u32 length and metadata", "u32 length and pii"}
	n := 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, res := range op.Responses.Map() {
				mt := res.Value.Content.Get(FramesContentType)
				if mt == nil {
					continue
				}
				n++
				desc, at := mt.Schema.Value.Description, 0
				for _, f := range fields {
					i := strings.Index(desc[at:], f)
					if i < 0 {
						t.Errorf("%s %s %s: the frames description lacks %q (or has it out of order): %s", method, path, status, f, desc)
						break
					}
					at += i + len(f)
				}
			}
		}
	}
	if n < 2 {
		t.Fatalf("%d reads answer frames in the document, want both reads", n)
	}
}
