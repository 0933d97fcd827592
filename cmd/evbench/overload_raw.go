package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// rawPrefix names the raw baseline's overload streams in raw_events.
const rawPrefix = "ovraw"

// rawAppendServer is the raw baseline over HTTP: POST
// /v1/streams/{stream}/events with EventVault's append body, written as
// one plain INSERT per event (rawbench.Table.Append), behind the same
// admission control as EventVault (api.Admission.Handler), so that the
// two sides are held by the same bounds. Positions come from a counter per
// stream in this process, as a single writer's would.
type rawAppendServer struct {
	table *rawbench.Table
	next  *sync.Map // stream -> *atomic.Int64, shared by the servers of a table
	ln    net.Listener
	srv   *http.Server
}

func startRawAppendServer(table *rawbench.Table, next *sync.Map, adm api.AdmissionConfig) (*rawAppendServer, error) {
	s := &rawAppendServer{table: table, next: next}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the raw append server: %w", err)
	}
	s.ln = ln
	h := api.NewAdmission(adm, nil).Handler(api.ClassAppend, "/v1/streams/:stream/events",
		func(*http.Request) string { return "bench" }, http.HandlerFunc(s.serveAppend))
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *rawAppendServer) baseURL() string { return "http://" + s.ln.Addr().String() }

func (s *rawAppendServer) close(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *rawAppendServer) serveAppend(w http.ResponseWriter, r *http.Request) {
	stream, ok := strings.CutPrefix(r.URL.Path, "/v1/streams/")
	stream, ok2 := strings.CutSuffix(stream, "/events")
	if !ok || !ok2 || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var in struct {
		Events []struct {
			ID   uuid.UUID       `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)).Decode(&in); err != nil || len(in.Events) == 0 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	events := make([]rawbench.Event, len(in.Events))
	for i, e := range in.Events {
		events[i] = rawbench.Event{ID: e.ID, Type: e.Type, Data: e.Data}
	}
	c, _ := s.next.LoadOrStore(stream, new(atomic.Int64))
	first := c.(*atomic.Int64).Add(int64(len(events))) - int64(len(events))
	globals, err := s.table.Append(r.Context(), rawPrefix+"-"+stream, first, events)
	if err != nil {
		// Not 503: a refusal means nothing was written, and an INSERT
		// cut off by its context may have committed. Its outcome is
		// unknown, as a lost connection's.
		http.Error(w, "append failed", http.StatusInternalServerError)
		return
	}
	out := struct {
		Events []evPositions `json:"events"`
	}{Events: make([]evPositions, len(globals))}
	for i, g := range globals {
		out.Events[i] = evPositions{Position: first + int64(i), GlobalPosition: g}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out)
}
