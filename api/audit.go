package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/engine"
)

// AuditLog serves the audit export: engine.AuditLog implements it.
type AuditLog interface {
	Export(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, req audit.ExportRequest, w io.Writer) error
	Pseudonym(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, subject string) (eventvault.Pseudonym, error)
	Processing(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, from, to time.Time) (audit.Processing, error)
}

// auditProcessing answers GET /v1/audit/processing[?tenant=][&from=][&to=]
// with the records of processing (GDPR Art. 30) of the period, derived
// from the audit log: from and to are RFC 3339 times, to exclusive;
// without them, the last 30 days.
func (s *Server) auditProcessing(c *gin.Context) {
	from, to, err := audit.ParsePeriod("query parameter from", c.Query("from"), "query parameter to", c.Query("to"), time.Now())
	if err != nil {
		s.writeError(c, err)
		return
	}
	out, err := s.audit.Processing(c.Request.Context(), principal(c), tenantQuery(c), from, to)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

type pseudonymRequest struct {
	Subject string `json:"subject"`
}

type pseudonymResponse struct {
	Tenant    string `json:"tenant"`
	Pseudonym string `json:"pseudonym"`
	Resource  string `json:"resource"`
}

// auditPseudonym answers POST /v1/audit/pseudonym[?tenant=] {"subject":
// "..."} with the pseudonym the tenant's records name the subject by, and
// the resource to filter an export with. The id is only in the body.
func (s *Server) auditPseudonym(c *gin.Context) {
	var req pseudonymRequest
	if err := decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	tenant := tenantQuery(c)
	ps, err := s.audit.Pseudonym(c.Request.Context(), principal(c), tenant, req.Subject)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, pseudonymResponse{Tenant: string(tenant), Pseudonym: string(ps), Resource: "subject:" + string(ps)})
}

// BundleContentType is the media type of an audit export: JSON Lines
// (docs/audit.md).
const BundleContentType = "application/x-ndjson"

// exportAudit answers GET /v1/audit/export[?tenant=][&from=][&to=][&resource=][&old_size=]
// with the bundle of the tenant's log against its latest checkpoint. The
// engine builds the bundle whole and writes it in one Write, so that a
// failure is a problem answer, never a truncated bundle; the answer's
// headers are set at that Write.
func (s *Server) exportAudit(c *gin.Context) {
	var req audit.ExportRequest
	var err error
	for _, q := range []struct {
		name string
		into *int64
	}{{"from", &req.From}, {"to", &req.To}, {"old_size", &req.OldSize}} {
		if *q.into, err = engine.ParseIndex(q.name, c.Query(q.name)); err != nil {
			s.writeError(c, err)
			return
		}
	}
	if r, given := c.GetQuery("resource"); given {
		if err := audit.ValidateResource(r); err != nil {
			s.writeError(c, err)
			return
		}
		req.Resource = r
	}
	w := &bundleWriter{c: c}
	if err := s.audit.Export(c.Request.Context(), principal(c), tenantQuery(c), req, w); err != nil {
		if w.started {
			s.logger.ErrorContext(c.Request.Context(), "audit export failed while it was sent", slog.String("http_request_id", requestIDOf(c)), slog.Any("err", err))
			return
		}
		s.writeError(c, err)
	}
}

// bundleWriter sets the export's headers and status at its first Write.
type bundleWriter struct {
	c       *gin.Context
	started bool
}

func (w *bundleWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.started = true
		w.c.Header("Cache-Control", "no-store")
		w.c.Header("Content-Type", BundleContentType)
		w.c.Status(http.StatusOK)
	}
	return w.c.Writer.Write(b)
}
