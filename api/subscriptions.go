package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

// Subscriptions keeps durable consumers of the feed: engine.Consumers
// implements it.
type Subscriptions interface {
	Put(ctx context.Context, p eventvault.Principal, name string, filter eventvault.FeedFilter, from int64) (engine.ConsumerStatus, bool, error)
	Get(ctx context.Context, p eventvault.Principal, name string) (engine.ConsumerStatus, error)
	List(ctx context.Context, p eventvault.Principal) ([]engine.ConsumerStatus, error)
	Ack(ctx context.Context, p eventvault.Principal, name string, position int64) (engine.ConsumerStatus, error)
	Delete(ctx context.Context, p eventvault.Principal, name string) error
}

type filterJSON struct {
	Categories []string `json:"categories"`
	Types      []string `json:"types"`
}

// subscriptionIn is the body of PUT /v1/subscriptions/{name}. From is a
// global position or "end"; absent, 0 (the whole log).
type subscriptionIn struct {
	Filter filterJSON      `json:"filter"`
	From   json.RawMessage `json:"from"`
}

type subscriptionResponse struct {
	Name       string     `json:"name"`
	Filter     filterJSON `json:"filter"`
	Checkpoint int64      `json:"checkpoint"`
	Head       int64      `json:"head"`
	Lag        int64      `json:"lag"`
	CreatedAt  time.Time  `json:"created_at"`
	AckedAt    *time.Time `json:"acked_at,omitempty"`
}

func toSubscriptionResponse(st engine.ConsumerStatus) subscriptionResponse {
	out := subscriptionResponse{Name: st.Name, Filter: filterJSON{Categories: st.Filter.Categories, Types: st.Filter.Types}, Checkpoint: st.Checkpoint,
		Head: st.Head, Lag: st.Lag, CreatedAt: st.CreatedAt}
	if out.Filter.Categories == nil {
		out.Filter.Categories = []string{}
	}
	if out.Filter.Types == nil {
		out.Filter.Types = []string{}
	}
	if !st.AckedAt.IsZero() {
		t := st.AckedAt
		out.AckedAt = &t
	}
	return out
}

// parseFrom reads a from of a body: absent for 0, "end", or a global
// position >= 0.
func parseFrom(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, nil
	}
	if string(raw) == `"end"` {
		return engine.FromEnd, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, eventvault.FieldErrorf("/from", "from must be a global position (an integer >= 0) or \"end\"")
	}
	return n, nil
}

// putSubscription registers a durable consumer, or replaces its filter:
// PUT /v1/subscriptions/{name} {"filter": {"categories": [...], "types":
// [...]}, "from": N | "end"} → 201 new (with Location), 200 replaced. The
// checkpoint starts at from and is never moved by a PUT.
func (s *Server) putSubscription(c *gin.Context) {
	var in subscriptionIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	from, err := parseFrom(in.From)
	if err != nil {
		s.writeError(c, err)
		return
	}
	st, created, err := s.subs.Put(c.Request.Context(), principal(c), c.Param("name"), eventvault.FeedFilter{Categories: in.Filter.Categories, Types: in.Filter.Types}, from)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if created {
		c.Header("Location", "/v1/subscriptions/"+st.Name)
		c.JSON(http.StatusCreated, toSubscriptionResponse(st))
		return
	}
	c.JSON(http.StatusOK, toSubscriptionResponse(st))
}

// getSubscription returns a consumer with its lag:
// GET /v1/subscriptions/{name}.
func (s *Server) getSubscription(c *gin.Context) {
	st, err := s.subs.Get(c.Request.Context(), principal(c), c.Param("name"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toSubscriptionResponse(st))
}

// listSubscriptions lists the tenant's consumers with their lag:
// GET /v1/subscriptions → {"subscriptions": [...]}.
func (s *Server) listSubscriptions(c *gin.Context) {
	sts, err := s.subs.List(c.Request.Context(), principal(c))
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]subscriptionResponse, len(sts))
	for i, st := range sts {
		out[i] = toSubscriptionResponse(st)
	}
	c.JSON(http.StatusOK, gin.H{"subscriptions": out})
}

type ackIn struct {
	Position *int64 `json:"position"`
}

// ackSubscription acknowledges every event up to and including a global
// position: POST /v1/subscriptions/{name}/ack {"position": N} → 200 with
// the consumer. The checkpoint moves to N+1, forward only.
func (s *Server) ackSubscription(c *gin.Context) {
	var in ackIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	if in.Position == nil {
		s.writeError(c, eventvault.FieldErrorf("/position", "position is missing: send {\"position\": N}, the global position (SSE id) of the last event you processed"))
		return
	}
	st, err := s.subs.Ack(c.Request.Context(), principal(c), c.Param("name"), *in.Position)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toSubscriptionResponse(st))
}

// deleteSubscription removes a consumer (audited): DELETE
// /v1/subscriptions/{name} → 204. Erasures waiting on it state the
// removal in their certificate.
func (s *Server) deleteSubscription(c *gin.Context) {
	if err := s.subs.Delete(c.Request.Context(), principal(c), c.Param("name")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
