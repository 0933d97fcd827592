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

// SubjectRights serves a data subject's rights over personal data kept
// apart: engine.Subjects implements it. Subject ids arrive in bodies only.
type SubjectRights interface {
	Export(ctx context.Context, p eventvault.Principal, subject string) (engine.SubjectExport, error)
	Rectify(ctx context.Context, p eventvault.Principal, subject, token string, value []byte) (engine.Rectified, error)
	Restrict(ctx context.Context, p eventvault.Principal, subject, reason string) (eventvault.Restriction, error)
	Unrestrict(ctx context.Context, p eventvault.Principal, subject string) error
}

// subjectIn is the body of POST /v1/subject-exports and DELETE
// /v1/restrictions. A subject id goes in a body, never in a path or a
// query: it may hold any character, and paths and queries end up in the
// logs of every proxy on the way.
type subjectIn struct {
	Subject string `json:"subject"`
}

type rectifyIn struct {
	Subject string          `json:"subject"`
	Token   string          `json:"token"`
	Value   json.RawMessage `json:"value"`
}

type restrictIn struct {
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

type restrictionResponse struct {
	SubjectPseudonym string    `json:"subject_pseudonym"`
	Reason           string    `json:"reason"`
	PlacedAt         time.Time `json:"placed_at"`
}

// exportSubject answers an access or portability request (GDPR Art. 15,
// 20): POST /v1/subject-exports {"subject"} → 200 with the export
// (docs/pii.md). It is the one answer that holds the subject's values in
// clear, so it is never cached.
func (s *Server) exportSubject(c *gin.Context) {
	var in subjectIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	x, err := s.subjects.Export(c.Request.Context(), principal(c), in.Subject)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, x)
}

// rectify corrects a personal value (GDPR Art. 16): POST
// /v1/rectifications {"subject", "token", "value"} → 200 {"token",
// "version"}.
func (s *Server) rectify(c *gin.Context) {
	var in rectifyIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	if in.Token == "" {
		s.writeError(c, eventvault.FieldErrorf("/token", "token is missing: name the token that stands for the value, as an export or a redacted read shows it"))
		return
	}
	if bytes.Equal(bytes.TrimSpace(in.Value), []byte("null")) {
		s.writeError(c, eventvault.FieldErrorf("/value", "value is null: send the corrected value as JSON; a value is removed by the subject's erasure (POST /v1/erasure-requests), not by a rectification"))
		return
	}
	r, err := s.subjects.Rectify(c.Request.Context(), principal(c), in.Subject, in.Token, jsonValue(in.Value))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// putRestriction restricts processing (GDPR Art. 18): PUT /v1/restrictions
// {"subject", "reason"} → 200 with the restriction.
func (s *Server) putRestriction(c *gin.Context) {
	var in restrictIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	r, err := s.subjects.Restrict(c.Request.Context(), principal(c), in.Subject, in.Reason)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, restrictionResponse{SubjectPseudonym: string(r.Subject), Reason: r.Reason, PlacedAt: r.PlacedAt})
}

// deleteRestriction lifts it: DELETE /v1/restrictions {"subject"} → 204.
func (s *Server) deleteRestriction(c *gin.Context) {
	var in subjectIn
	if err := decodeBody(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.subjects.Unrestrict(c.Request.Context(), principal(c), in.Subject); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
