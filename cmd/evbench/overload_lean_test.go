package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLeanConnReadsAnswers checks the lean client's reading of HTTP/1.1
// answers as net/http's server writes them: by length, chunked, and a
// connection the server closes, each on one connection in turn.
func TestLeanConnReadsAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/streams/s-0/events":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"events":[{"position":3,"global_position":7}]}`))
		case "/v1/streams/s-1/events":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"title":"full"}`))
			w.(http.Flusher).Flush() // chunked from here on
			_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
		default:
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	reqs := leanRequests(genSpec{Token: "tok", Prefix: "s", EventSize: 100}, u.Host, 3)
	lc := &leanConn{addr: u.Host}
	defer lc.close()
	want := []struct {
		status int
		body   string
	}{
		{201, `{"events":[{"position":3,"global_position":7}]}`},
		{429, `{"title":"full"}` + strings.Repeat("x", 5000)},
		{503, ""},
	}
	for i, w := range want {
		status, body, err := lc.roundTrip(reqs[i].bytes, time.Now().Add(5*time.Second))
		if err != nil || status != w.status || string(body) != w.body {
			t.Fatalf("request %d: %d %q, %v; want %d %q", i, status, body, err, w.status, w.body)
		}
	}
	if lc.c != nil {
		t.Errorf("the connection the server closed is still held")
	}
	// It redials.
	if status, _, err := lc.roundTrip(reqs[0].bytes, time.Now().Add(5*time.Second)); err != nil || status != 201 {
		t.Errorf("after a close: %d, %v; want 201", status, err)
	}
}
