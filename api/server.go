// Package api is EventVault's HTTP API, on gin. It authenticates the bearer
// token, decodes and checks requests, calls the engine, and turns every
// error into an application/problem+json body through one table
// (problem.go). Client mistakes are 4xx with a message a person can act on;
// a panic is recovered into a 500 problem and logged.
//
// Limits: a request body is at most MaxBodyBytes; a batch at most
// engine.MaxBatchEvents events; a read at most engine.MaxReadLimit events.
package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/engine"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 4 << 20

// Events appends and reads events on behalf of a principal and decides
// who may: engine.Events implements it.
type Events interface {
	AppendForSubject(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, subject string, expected eventvault.ExpectedVersion, events []eventvault.NewEvent) (eventvault.AppendResult, error)
	ReadStream(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, opts eventvault.ReadOptions) (engine.StreamSlice, error)
	ReadAll(ctx context.Context, p eventvault.Principal, from int64, limit int) ([]eventvault.Event, error)
	// ReadAllWait is ReadAll that waits up to wait for an event when
	// there is none yet (the long-poll feed).
	ReadAllWait(ctx context.Context, p eventvault.Principal, from int64, limit int, wait time.Duration) ([]eventvault.Event, error)
	// Subscribe starts a subscription to the feed (GET /v1/subscribe).
	Subscribe(ctx context.Context, p eventvault.Principal, from int64, filter eventvault.FeedFilter) (*engine.Subscription, error)
}

// Shredder destroys the keys of a stream or a whole tenant.
type Shredder interface {
	ShredStream(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, purge bool) (eventvault.Shred, error)
	ShredTenant(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) (eventvault.TenantShred, error)
}

// ErasureRequests carries out a subject's erasure requests and reports on
// them; SigningKey names the key that verifies their certificates.
type ErasureRequests interface {
	RequestErasure(ctx context.Context, p eventvault.Principal, subject string) (req eventvault.ErasureRequest, created bool, err error)
	ErasureRequest(ctx context.Context, p eventvault.Principal, id uuid.UUID) (eventvault.ErasureRequest, error)
	SigningKey() (keyID string, pub ed25519.PublicKey)
	// Propagation returns a request with where its tombstone stands: who
	// acknowledged, who was removed, who is pending and how far behind.
	Propagation(ctx context.Context, p eventvault.Principal, id uuid.UUID) (eventvault.ErasureRequest, *eventvault.Propagation, []engine.PendingConsumer, error)
}

// Holds places and lifts legal holds on subjects.
type Holds interface {
	PutHold(ctx context.Context, p eventvault.Principal, subject, reason string) (eventvault.Hold, error)
	DeleteHold(ctx context.Context, p eventvault.Principal, subject string) error
}

// Erasure serves the erasure endpoints and decides who may:
// engine.Erasure implements it.
type Erasure interface {
	Shredder
	ErasureRequests
	Holds
}

// Tokens authenticates bearer tokens and issues new ones: auth.Tokens
// implements it.
type Tokens interface {
	Authenticate(ctx context.Context, secret string) (eventvault.Principal, error)
	Issue(ctx context.Context, issuer eventvault.Principal, req auth.NewTokenRequest) (string, eventvault.Token, error)
	List(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) ([]eventvault.Token, error)
	Revoke(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, id string) error
}

// JWTVerifier authenticates bearer JWTs (OIDC access or ID tokens):
// jwtauth.Verifier implements it. Authenticate returns EUNAUTHORIZED for a
// token that does not verify, and EUNAVAILABLE when the keys to verify it
// cannot be fetched just now.
type JWTVerifier interface {
	Authenticate(ctx context.Context, raw string) (eventvault.Principal, error)
}

// Denials records refused requests: engine.ReadLog implements it.
type Denials interface {
	// Denied counts a refusal of actor (a token id, a JWT actor id, or ""
	// when no one authenticated) on resource, with its reason class.
	Denied(tenant eventvault.TenantID, actor, resource, reason string)
}

// Server serves the HTTP API.
type Server struct {
	// drain is cancelled by Drain, when the server shuts down: open feeds
	// and long polls end rather than hold the shutdown.
	drain       context.Context
	drainCancel context.CancelFunc
	events      Events
	erasure     Erasure
	keys        KeyRotation
	tokens      Tokens
	// policies attaches callers' documents and serves /v1/policies; nil
	// leaves callers to their tokens' inline rules.
	policies PolicyDocuments
	jwt      JWTVerifier
	denials  Denials
	audit    AuditLog
	subs     Subscriptions
	subjects SubjectRights
	checks   []ReadyCheck
	logger   *slog.Logger
	router   *gin.Engine
	// bodies lends the buffers read responses are rendered into.
	bodies bodyPool
	// metrics counts requests and events (metrics.go).
	metrics Metrics
	// admission bounds the appends and reads in flight (admission.go);
	// nil bounds nothing.
	admission *Admission
}

// Config holds what the server needs. Checks are what /readyz checks;
// without them, Ready alone, as the check named "store". Erasure and Keys may be nil in tests of other
// resources: their endpoints are then absent. Logger may be nil.
type Config struct {
	Events  Events
	Erasure Erasure
	// Keys serves the key rotation endpoints under /v1/admin; nil leaves
	// them out.
	Keys   KeyRotation
	Tokens Tokens
	// Policies attaches each caller's policy documents and serves
	// /v1/policies; nil leaves the endpoints out and callers to their
	// tokens' inline rules.
	Policies PolicyDocuments
	// JWT authenticates bearer values that look like JWTs; nil answers
	// them 401, saying JWTs are not configured.
	JWT JWTVerifier
	// Denials records every 401 and 403 in the audit log (gathered per
	// window: engine.ReadLog); nil records none.
	Denials Denials
	// Audit serves GET /v1/audit/export; nil leaves it out.
	Audit AuditLog
	// Subscriptions serves /v1/subscriptions (durable consumers); nil
	// leaves it out.
	Subscriptions Subscriptions
	// Subjects serves the subject rights endpoints (exports,
	// rectifications, restrictions); nil leaves them out.
	Subjects SubjectRights
	Ready    func(context.Context) error
	Checks   []ReadyCheck
	Logger   *slog.Logger
	// Metrics, if set, counts requests per route template and the events
	// appended and read (metrics.go); the server does not serve them.
	Metrics Metrics
	// Admission bounds the appends and reads in flight on this node, per
	// node and per tenant, and refuses the excess with 503 or 429
	// (admission.go); nil bounds nothing.
	Admission *Admission
}

// New returns a Server; it is an http.Handler.
// Drain ends the requests that would otherwise hold a shutdown: every open
// feed (GET /v1/subscribe) stops, and its client reconnects, with
// Last-Event-ID, to a node that serves; every long poll (GET
// /v1/events?wait=) answers at once with what it has. Register it with
// http.Server.RegisterOnShutdown. Idempotent.
func (s *Server) Drain() { s.drainCancel() }

func New(cfg Config) *Server {
	s := &Server{events: cfg.Events, erasure: cfg.Erasure, keys: cfg.Keys, tokens: cfg.Tokens, policies: cfg.Policies, jwt: cfg.JWT, denials: cfg.Denials, audit: cfg.Audit, subs: cfg.Subscriptions, subjects: cfg.Subjects, checks: cfg.Checks, logger: cfg.Logger}
	if len(s.checks) == 0 && cfg.Ready != nil {
		s.checks = []ReadyCheck{{Name: "store", Check: cfg.Ready}}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.drain, s.drainCancel = context.WithCancel(context.Background())
	s.metrics, s.admission = cfg.Metrics, cfg.Admission
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// No redirects: gin would answer a trailing slash or a fixable path
	// with 301 text/html, before authentication.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	// Route on the path as sent, then unescape each parameter, so that an
	// encoded '/' in a stream or tenant name (order%2F42-1) is that name,
	// refused as invalid (400), not a path of more segments (404).
	r.UseRawPath = true
	r.UnescapePathValues = true
	r.Use(s.observe, s.accessLog, gin.CustomRecoveryWithWriter(nil, s.recovered), headerLimit, oneOfEach, headWithoutBody, negotiate)
	// Neither answer echoes the path: a near-miss route may hold a
	// subject id (/v1/subjects/alice@example.com/hold).
	r.NoRoute(func(c *gin.Context) {
		writeProblem(c, http.StatusNotFound, eventvault.ENOTFOUND, noRouteDetail(c.Request.URL.Path), nil)
	})
	r.NoMethod(func(c *gin.Context) {
		writeProblem(c, http.StatusMethodNotAllowed, eventvault.EINVALID, fmt.Sprintf("method %s is not allowed on this endpoint: the Allow header lists those that are", eventvault.Truncate(c.Request.Method, 20)), nil)
	})
	get(r.Group(""), "/healthz", nil, s.healthz)
	get(r.Group(""), "/readyz", nil, s.readyz)
	get(r.Group(""), "/v1/openapi.json", nil, serveOpenAPI)
	v1 := r.Group("/v1", s.authenticate)
	// Appends and reads go through admission control (admission.go);
	// nothing else does. A long poll (read-all with wait) and the feed
	// hold no read slot: they wait on the shared feed reader, not on the
	// store, and a slot held for up to 30 s would starve the reads.
	v1.POST("/streams/:stream/events", onlyQuery(), s.admit(ClassAppend, "/v1/streams/:stream/events", http.MethodPost), s.appendEvents)
	get(v1, "/streams/:stream/events", []string{"from", "limit", "direction"}, s.admit(ClassRead, "/v1/streams/:stream/events", http.MethodGet, http.MethodHead), s.readStream)
	admitRead := s.admit(ClassRead, "/v1/events", http.MethodGet, http.MethodHead)
	get(v1, "/events", []string{"from", "limit", "wait"}, func(c *gin.Context) {
		if w := c.Query("wait"); w != "" && w != "0" {
			return // a long poll: not admitted through the read gate
		}
		admitRead(c)
	}, s.readAll)
	// The feed streams: GET only (a HEAD would wait for events it never
	// sends).
	v1.GET("/subscribe", onlyQuery("from", "categories", "types", "heartbeat"), takesNoBody(""), s.subscribe)
	if s.subs != nil {
		get(v1, "/subscriptions", nil, s.listSubscriptions)
		v1.PUT("/subscriptions/:name", onlyQuery(), s.putSubscription)
		get(v1, "/subscriptions/:name", nil, s.getSubscription)
		v1.POST("/subscriptions/:name/ack", onlyQuery(), s.ackSubscription)
		v1.DELETE("/subscriptions/:name", onlyQuery(), takesNoBody(""), s.deleteSubscription)
	}
	v1.POST("/tokens", onlyQuery(), s.createToken)
	get(v1, "/tokens", []string{"tenant"}, s.listTokens)
	v1.DELETE("/tokens/:id", onlyQuery("tenant"), takesNoBody(""), s.revokeToken)
	if s.policies != nil {
		get(r.Group(""), "/v1/policy-schema", nil, policySchema)
		get(v1, "/policies", []string{"tenant"}, s.listPolicies)
		v1.PUT("/policies/:name", onlyQuery("tenant"), s.putPolicy)
		get(v1, "/policies/:name", []string{"tenant", "version"}, s.getPolicy)
		v1.DELETE("/policies/:name", onlyQuery("tenant"), takesNoBody(""), s.deletePolicy)
	}
	if s.audit != nil {
		get(v1, "/audit/export", []string{"tenant", "from", "to", "resource", "old_size"}, s.exportAudit)
		v1.POST("/audit/pseudonym", onlyQuery("tenant"), s.auditPseudonym)
		get(v1, "/audit/processing", []string{"tenant", "from", "to"}, s.auditProcessing)
	}
	if s.keys != nil {
		v1.POST("/admin/tenants/:tenant/kek/rotate", onlyQuery(), s.rotateTenantKEK)
		v1.POST("/admin/root/rotate", onlyQuery(), s.rotateRoot)
		v1.POST("/admin/root/retire", onlyQuery(), s.retireRoot)
	}
	if s.erasure != nil {
		get(r.Group(""), "/v1/keys/signing", nil, s.signingKey)
		v1.DELETE("/streams/:stream", onlyQuery("purge"), takesNoBody("purge is a query parameter: DELETE /v1/streams/{stream}?purge=true"), s.shredStream)
		v1.POST("/erasure-requests", onlyQuery(), s.requestErasure)
		get(v1, "/erasure-requests/:id", nil, s.erasureRequest)
		v1.PUT("/holds", onlyQuery(), s.putHold)
		v1.DELETE("/holds", onlyQuery(), s.deleteHold)
		v1.POST("/admin/tenants/:tenant/shred", onlyQuery(), s.shredTenant)
	}
	if s.subjects != nil {
		v1.POST("/subject-exports", onlyQuery(), s.exportSubject)
		v1.POST("/rectifications", onlyQuery(), s.rectify)
		v1.PUT("/restrictions", onlyQuery(), s.putRestriction)
		v1.DELETE("/restrictions", onlyQuery(), s.deleteRestriction)
	}
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

const principalKey = "eventvault.principal"

func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		s.writeError(c, eventvault.Errorf(eventvault.EUNAUTHORIZED, "missing Authorization header: send \"Authorization: Bearer <token>\""))
		return
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		s.writeError(c, eventvault.Errorf(eventvault.EUNAUTHORIZED, "the Authorization header must be \"Bearer <token>\""))
		return
	}
	p, err := s.principalOf(c.Request.Context(), strings.TrimSpace(token))
	if err != nil {
		s.writeError(c, err)
		return
	}
	if s.policies != nil {
		if p, err = s.policies.Resolve(c.Request.Context(), p); err != nil {
			s.writeError(c, err)
			return
		}
	}
	c.Set(principalKey, p)
	c.Next()
}

// principalOf authenticates a bearer value: a JWT (three base64url
// segments) through the JWT verifier, anything else as an API token, so
// that a JWKS that is down affects JWT callers only.
func (s *Server) principalOf(ctx context.Context, bearer string) (eventvault.Principal, error) {
	if !jwtauth.LooksLikeJWT(bearer) {
		return s.tokens.Authenticate(ctx, bearer)
	}
	if s.jwt == nil {
		return eventvault.Principal{}, eventvault.Errorf(eventvault.EUNAUTHORIZED, "this server does not accept JWTs: JWT authentication is not configured (-jwt-issuer); send an EventVault API token")
	}
	return s.jwt.Authenticate(ctx, bearer)
}

func principal(c *gin.Context) eventvault.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(eventvault.Principal)
	return pr
}

// accessLogPC is the program counter the access log's records name as
// their source (a line of this file).
var accessLogPC = func() uintptr {
	var pcs [1]uintptr
	runtime.Callers(1, pcs[:])
	return pcs[0]
}()

// accessLog writes one line per request once it is answered: method,
// route template, status, duration, request id and, when authenticated,
// tenant and actor.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	id := setRequestID(c)
	c.Next()
	ctx := c.Request.Context()
	if !s.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	route := c.FullPath() // the template: a raw path may hold a subject id
	if route == "" {
		route = "(no route)"
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
		slog.String("http_request_id", id),
	}
	// The actor is an API token's public id or a JWT caller's actor id
	// (a keyed hash of its iss#sub), never its subject and never
	// the bearer value.
	if p := principal(c); p.Actor() != "" {
		attrs = append(attrs, slog.String("tenant", string(p.Tenant)), slog.String("actor", p.Actor()))
	}
	// Every access line comes from here: the record takes the caller
	// found once (accessLogPC), not at every line as Logger.LogAttrs
	// does (runtime.Callers, a third of the line's cost, 3% of the
	// server's CPU per single-event append), so that a handler that adds
	// the source still has one.
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", accessLogPC)
	r.AddAttrs(attrs...)
	_ = s.logger.Handler().Handle(ctx, r)
}

func (s *Server) recovered(c *gin.Context, err any) {
	s.logger.ErrorContext(c.Request.Context(), "panic serving request",
		slog.String("method", c.Request.Method), slog.String("route", c.FullPath()), slog.String("http_request_id", requestIDOf(c)), slog.Any("panic", err))
	writeProblem(c, http.StatusInternalServerError, eventvault.EINTERNAL, "Internal error.", nil)
}
