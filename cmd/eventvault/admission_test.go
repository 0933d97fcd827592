package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// lockStreamRow holds tenant's row of stream in a transaction of its own,
// as a slow writer would, until release or the test's end.
func lockStreamRow(t *testing.T, dbURL, tenant, stream string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM streams WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, tenant, stream); err != nil {
		t.Fatalf("lock %s of %s: %v", stream, tenant, err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// scrapeValue returns the value of the series of /metrics at addr whose
// line starts with series, or -1 if there is none.
func scrapeValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	var v float64
	fmt.Sscan(string(m[1]), &v)
	return v
}

func waitForSeries(t *testing.T, addr, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrapeValue(t, addr, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", series, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func oneEvent() string {
	return fmt.Sprintf(`{"events":[{"id":%q,"type":"Tested","data":{}}]}`, uuid.NewString())
}

// TestServerAdmissionOnPostgreSQL: a server started with tiny bounds
// (2 appends at once, 1 per tenant, a queue of 1 and a 30ms wait) on
// PostgreSQL, whose appends are held by real row locks: a tenant past its
// share gets 429, a third tenant with the node full 503 after the wait,
// both problems with Retry-After as -retry-after says; a client that
// disconnects frees its slot at once; /metrics counts in flight and
// refused by route template and reason.
func TestServerAdmissionOnPostgreSQL(t *testing.T) {
	dbURL := pgtest.URL(t)
	s := startServer(t, "-dev", "-database-url", dbURL, "-metrics-listen", "127.0.0.1:0",
		"-max-appends", "2", "-max-appends-per-tenant", "1", "-admission-queue", "1", "-admission-queue-wait", "30ms", "-retry-after", "2s")
	addr := s.m.MetricsAddr()
	const route = `method="POST",route="/v1/streams/:stream/events"`
	inFlight := `eventvault_admission_in_flight{` + route + `}`
	token := map[string]string{}
	for _, tenant := range []string{"acme", "globex", "initech"} {
		code, b := call(t, "POST", s.base+"/v1/tokens", s.m.RootToken, fmt.Sprintf(`{"tenant":%q,"name":"app"}`, tenant))
		var out struct{ Token string }
		if err := json.Unmarshal([]byte(b), &out); code != http.StatusCreated || err != nil {
			t.Fatalf("token for %s: %d %s", tenant, code, b)
		}
		token[tenant] = out.Token
	}
	for _, tenant := range []string{"acme", "globex"} {
		if code, b := call(t, "POST", s.base+"/v1/streams/order-1/events", token[tenant], oneEvent()); code != http.StatusCreated {
			t.Fatalf("first append of %s: %d %s", tenant, code, b)
		}
	}
	refused := func(reason string) string {
		return `eventvault_admission_refused_total{method="POST",reason="` + reason + `",route="/v1/streams/:stream/events"}`
	}
	if v := scrapeValue(t, addr, refused("tenant_full")); v != 0 {
		t.Fatalf("refusals before any: %v, want a series at 0", v)
	}

	releaseAcme := lockStreamRow(t, dbURL, "acme", "order-1")
	releaseGlobex := lockStreamRow(t, dbURL, "globex", "order-1")
	acmeCtx, disconnect := context.WithCancel(context.Background())
	acmeDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(acmeCtx, "POST", s.base+"/v1/streams/order-1/events", strings.NewReader(oneEvent()))
		req.Header.Set("Authorization", "Bearer "+token["acme"])
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		acmeDone <- err
	}()
	globexDone := make(chan int, 1)
	go func() {
		code, _ := call(t, "POST", s.base+"/v1/streams/order-1/events", token["globex"], oneEvent())
		globexDone <- code
	}()
	waitForSeries(t, addr, inFlight, 2)

	code, h, b := do(t, "POST", s.base+"/v1/streams/order-2/events", token["acme"], oneEvent())
	if code != http.StatusTooManyRequests || h.Get("Content-Type") != "application/problem+json" || h.Get("Retry-After") != "2" || !strings.Contains(b, `"code":"too_many_requests"`) {
		t.Fatalf("acme past its share: %d %v %s; want 429 problem with Retry-After 2", code, h, b)
	}
	start := time.Now()
	code, h, b = do(t, "POST", s.base+"/v1/streams/order-1/events", token["initech"], oneEvent())
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "2" || !strings.Contains(b, "this node is serving as many appends as it can (2)") {
		t.Fatalf("initech with the node full: %d %v %s; want 503 with Retry-After 2", code, h, b)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Errorf("the 503 came after %s; want the 30ms queue wait, not more than a moment", d)
	}
	// A read is not an append: its own bound.
	if code, b := call(t, "GET", s.base+"/v1/events", token["initech"], ""); code != http.StatusOK {
		t.Fatalf("a read with the appends full: %d %s", code, b)
	}

	// acme's client goes away while its append waits on the lock: its
	// slot is free at once, and acme's next append is served.
	disconnect()
	if err := <-acmeDone; err == nil {
		t.Fatal("the disconnected client got an answer")
	}
	waitForSeries(t, addr, inFlight, 1)
	if code, b := call(t, "POST", s.base+"/v1/streams/order-2/events", token["acme"], oneEvent()); code != http.StatusCreated {
		t.Fatalf("acme after its client left: %d %s", code, b)
	}
	releaseGlobex()
	releaseAcme()
	if code := <-globexDone; code != http.StatusCreated {
		t.Fatalf("globex's held append: %d", code)
	}
	for reason, want := range map[string]float64{"tenant_full": 1, "node_full": 1, "queue_full": 0} {
		if v := scrapeValue(t, addr, refused(reason)); v != want {
			t.Errorf("refused %s: %v, want %v", reason, v, want)
		}
	}
	waitForSeries(t, addr, inFlight, 0)
}

// TestAdmissionFlagsRefuseBadValues: each bad value is refused at start,
// naming its flag.
func TestAdmissionFlagsRefuseBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"-max-appends", "-1"}, "-max-appends"},
		{[]string{"-max-reads-per-tenant", "-2"}, "-max-reads-per-tenant"},
		{[]string{"-admission-queue", "-1"}, "-admission-queue"},
		{[]string{"-admission-queue-wait", "2m"}, "-admission-queue-wait"},
		{[]string{"-append-timeout", "-1s"}, "-append-timeout"},
		{[]string{"-db-max-conns", "20000"}, "-db-max-conns"},
		{[]string{"-root-key-concurrency", "-3"}, "-root-key-concurrency"},
	} {
		_, err := parseServerFlags(append([]string{"-dev"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.says)
		}
	}
	c, err := parseServerFlags([]string{"-dev", "-admission-queue", "7"}, io.Discard)
	if err != nil || c.Limits.Admission.Appends.Queue != 7 || c.Limits.Admission.Reads.Queue != 7 || c.Limits.Admission.Appends.Node != defaultMaxAppends {
		t.Fatalf("-admission-queue 7: %+v, %v", c.Limits, err)
	}
}
