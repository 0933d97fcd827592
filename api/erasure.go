package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

type shredResponse struct {
	Stream     string    `json:"stream"`
	Erased     bool      `json:"erased"`
	KeyID      string    `json:"key_id"`
	ShreddedAt time.Time `json:"shredded_at"`
	Purged     bool      `json:"purged"`
}

// shredStream destroys a stream's key: DELETE /v1/streams/{stream}[?purge=true].
// Its events can never be decrypted again; with purge their rows go too.
func (s *Server) shredStream(c *gin.Context) {
	stream, err := streamParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	purge := false
	if v, ok := c.GetQuery("purge"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(c, eventvault.Errorf(eventvault.EINVALID, "query parameter purge must be true or false"))
			return
		}
		purge = b
	}
	sh, err := s.erasure.ShredStream(c.Request.Context(), principal(c), stream, purge)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, shredResponse{Stream: string(sh.Stream), Erased: true, KeyID: sh.KeyID.String(), ShreddedAt: sh.ShreddedAt, Purged: sh.Purged})
}

type tenantShredResponse struct {
	Tenant     string    `json:"tenant"`
	Erased     bool      `json:"erased"`
	KeyIDs     []string  `json:"key_ids"`
	ShreddedAt time.Time `json:"shredded_at"`
}

// shredTenant destroys a tenant's KEK: POST /v1/admin/tenants/{tenant}/shred.
// Root token only.
func (s *Server) shredTenant(c *gin.Context) {
	if err := noBody(c); err != nil {
		s.writeError(c, err)
		return
	}
	sh, err := s.erasure.ShredTenant(c.Request.Context(), principal(c), eventvault.TenantID(c.Param("tenant")))
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := tenantShredResponse{Tenant: string(sh.Tenant), Erased: true, KeyIDs: make([]string, len(sh.KeyIDs)), ShreddedAt: sh.ShreddedAt}
	for i, id := range sh.KeyIDs {
		out.KeyIDs[i] = id.String()
	}
	c.JSON(http.StatusOK, out)
}

type erasureRequestIn struct {
	Subject string `json:"subject"`
}

type erasureResponse struct {
	ID               string     `json:"id"`
	State            string     `json:"state"`
	SubjectPseudonym string     `json:"subject_pseudonym"`
	Reason           string     `json:"reason,omitempty"`
	ReceivedAt       time.Time  `json:"received_at"`
	CompletedAt      *time.Time `json:"completed_at,omitempty"`
	// Outcome and HeldNothing are set once completed: "nothing_held" (and
	// true) when no data was held under the subject.
	Outcome     string          `json:"outcome,omitempty"`
	HeldNothing *bool           `json:"held_nothing,omitempty"`
	Certificate json.RawMessage `json:"certificate,omitempty"`
	// Propagation is where the erasure's tombstone stands in the feed,
	// once it has one: on GET, and on a POST answer for a request that was
	// propagating when asked.
	Propagation *propagationResponse `json:"propagation,omitempty"`
}

type propagationResponse struct {
	TombstonePosition int64                        `json:"tombstone_position"`
	Acknowledged      []eventvault.ConsumerAck     `json:"acknowledged"`
	Removed           []eventvault.ConsumerRemoval `json:"removed"`
	// Pending are the consumers not yet past the tombstone, with how many
	// global positions they still have to acknowledge to pass it.
	Pending []pendingConsumer `json:"pending"`
}

// pendingConsumer names its consumer as acknowledged and removed do.
type pendingConsumer struct {
	Consumer   string `json:"consumer"`
	Checkpoint int64  `json:"checkpoint"`
	Lag        int64  `json:"lag"`
}

func toPropagationResponse(prop *eventvault.Propagation, pending []engine.PendingConsumer) *propagationResponse {
	if prop == nil {
		return nil
	}
	out := &propagationResponse{TombstonePosition: prop.TombstonePosition, Acknowledged: prop.Acks, Removed: prop.Removed, Pending: []pendingConsumer{}}
	if out.Acknowledged == nil {
		out.Acknowledged = []eventvault.ConsumerAck{}
	}
	if out.Removed == nil {
		out.Removed = []eventvault.ConsumerRemoval{}
	}
	for _, pc := range pending {
		out.Pending = append(out.Pending, pendingConsumer{Consumer: pc.Consumer, Checkpoint: pc.Checkpoint, Lag: pc.Lag})
	}
	return out
}

func toErasureResponse(r eventvault.ErasureRequest) erasureResponse {
	out := erasureResponse{
		ID:               r.ID.String(),
		State:            string(r.State),
		SubjectPseudonym: string(r.Subject),
		Reason:           r.Reason,
		ReceivedAt:       r.ReceivedAt,
		Certificate:      r.Certificate,
	}
	if !r.CompletedAt.IsZero() {
		t := r.CompletedAt
		out.CompletedAt = &t
	}
	if cert, ok := engine.CertificateOf(r); ok {
		out.Outcome = cert.Outcome()
		held := out.Outcome == eventvault.OutcomeNothingHeld
		out.HeldNothing = &held
	}
	return out
}

// requestErasure records and carries out an erasure request:
// POST /v1/erasure-requests {"subject": "..."}. The status says what
// happened (RFC 9110, and README's "Status codes by outcome"):
//
//   - 201 Created, with Location: a new request, completed inline;
//   - 202 Accepted, with Location: a new request still running: its keys
//     are destroyed and it waits for consumers to acknowledge (propagating);
//   - 200 OK, with Content-Location: the subject's existing request, in
//     whatever state it stands (completed, resumed and completed, or still
//     propagating), so that a client tells a repeat from a new request;
//   - 409 Conflict, a problem with the request's id: rejected under a legal
//     hold (the rejected request is kept, and GET returns it).
//
// A propagating request is read once more, as GET reads it, and that one
// snapshot gives the state, the status and the propagation shown: a
// consumer that acknowledged meanwhile completes the request rather than
// leaving a "propagating" answer with nothing pending.
func (s *Server) requestErasure(c *gin.Context) {
	var in erasureRequestIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	r, created, err := s.erasure.RequestErasure(c.Request.Context(), principal(c), in.Subject)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var prop *propagationResponse
	if r.State == eventvault.ErasurePropagating {
		now, p, pending, err := s.erasure.Propagation(c.Request.Context(), principal(c), r.ID)
		if err != nil {
			// The request stands as RequestErasure returned it; GET
			// shows its propagation.
			s.logger.WarnContext(c.Request.Context(), "erasure request: read its propagation", "request_id", r.ID.String(), "error", err)
		} else {
			r, prop = now, toPropagationResponse(p, pending)
		}
	}
	location := "/v1/erasure-requests/" + r.ID.String()
	out := toErasureResponse(r)
	out.Propagation = prop
	switch {
	case r.State == eventvault.ErasureRejected:
		writeProblem(c, http.StatusConflict, eventvault.ECONFLICT,
			"the erasure request is rejected under a "+r.Reason+". Lift the hold (DELETE /v1/holds), then ask again",
			map[string]any{"request_id": r.ID.String(), "state": string(r.State), "reason": r.Reason, "request": location})
	case !created:
		c.Header("Content-Location", location)
		c.JSON(http.StatusOK, out)
	case r.State == eventvault.ErasureReceived, r.State == eventvault.ErasurePropagating:
		c.Header("Location", location)
		c.JSON(http.StatusAccepted, out)
	default:
		c.Header("Location", location)
		c.JSON(http.StatusCreated, out)
	}
}

// erasureRequest returns a request: GET /v1/erasure-requests/{id}.
func (s *Server) erasureRequest(c *gin.Context) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		// The id is not echoed: a near-miss path may hold a subject id.
		s.writeError(c, eventvault.Errorf(eventvault.ENOTFOUND, "no such erasure request: ids are UUIDs, as returned by POST /v1/erasure-requests"))
		return
	}
	r, prop, pending, err := s.erasure.Propagation(c.Request.Context(), principal(c), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := toErasureResponse(r)
	out.Propagation = toPropagationResponse(prop, pending)
	c.JSON(http.StatusOK, out)
}

// holdIn is the body of PUT /v1/holds; DELETE /v1/holds takes subject
// only. The subject goes in the body, never in the path: a subject id may
// hold any character (a '/' would route as a separator), and paths end up
// in the logs of every proxy on the way.
type holdIn struct {
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

type holdSubjectIn struct {
	Subject string `json:"subject"`
}

type holdResponse struct {
	SubjectPseudonym string    `json:"subject_pseudonym"`
	Reason           string    `json:"reason"`
	PlacedAt         time.Time `json:"placed_at"`
}

// putHold places (or replaces) a legal hold: PUT /v1/holds
// {"subject", "reason"} → 200 with the hold.
func (s *Server) putHold(c *gin.Context) {
	var in holdIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	h, err := s.erasure.PutHold(c.Request.Context(), principal(c), in.Subject, in.Reason)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, holdResponse{SubjectPseudonym: string(h.Subject), Reason: h.Reason, PlacedAt: h.PlacedAt})
}

// deleteHold lifts a legal hold: DELETE /v1/holds {"subject"} → 204.
func (s *Server) deleteHold(c *gin.Context) {
	var in holdSubjectIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.erasure.DeleteHold(c.Request.Context(), principal(c), in.Subject); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type signingKeyResponse struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"` // base64
}

// signingKey publishes the key that verifies erasure certificates:
// GET /v1/keys/signing. No token needed: it is public.
func (s *Server) signingKey(c *gin.Context) {
	id, pub := s.erasure.SigningKey()
	c.JSON(http.StatusOK, signingKeyResponse{KeyID: id, Algorithm: "Ed25519", PublicKey: base64.StdEncoding.EncodeToString(pub)})
}
