package engine

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/policies"
)

// MaxHoldReasonLength bounds a legal hold's reason, in bytes.
const MaxHoldReasonLength = 500

// Erasure carries out crypto-shredding and erasure requests, and signs the
// certificates that prove them. Subject ids arrive in clear from the API
// and leave this type only as pseudonyms.
type Erasure struct {
	store  eventvault.ErasureStore
	keys   KeyEvictor
	pseud  Pseudonymizer
	signer Signer
	now    func() time.Time
	logger *slog.Logger
	// subjects serialises this node's erasure requests per subject (by a
	// stripe of its pseudonym), so that concurrent requests for one
	// subject share one request and one certificate instead of racing to
	// create several, or to sign the same request twice.
	subjects [64]sync.Mutex
	// revokeTokens, when set, revokes a shredded tenant's tokens.
	revokeTokens TokenRevoker
	// audit, when set, records every shred, hold and erasure request in
	// the transaction that carries it out.
	audit eventvault.AuditRecorder
	// tombstones and subs, when set, put a tombstone into the feed for
	// every shred and erasure, and hold an erasure in propagating until
	// its consumers acknowledge it (erasure_propagation.go).
	tombstones Tombstoner
	subs       eventvault.SubscriptionStore
	// pii and piiKeys, when set, erase the subject's personal values and
	// key with their streams (erasure_pii.go).
	pii     eventvault.PIIStore
	piiKeys SubjectKeyEvictor
}

// KeyEvictor forgets cached keys once the store has destroyed them, so
// that this node honours a shred at once: crypto.Keyring implements it.
type KeyEvictor interface {
	EvictStream(tenant eventvault.TenantID, stream eventvault.StreamName)
	EvictTenant(tenant eventvault.TenantID)
}

// Signer signs erasure certificates and names the key that verifies them:
// dsse.SigningKey implements it. The private key stays behind it.
type Signer interface {
	Sign(payloadType string, payload []byte) dsse.Envelope
	KeyID() string
	PublicKey() ed25519.PublicKey
}

// TokenRevoker revokes every token of a tenant and makes the revocation
// take effect at once on this node (deleting them from the store and
// purging any cache of authenticated tokens).
type TokenRevoker func(ctx context.Context, tenant eventvault.TenantID) error

// ErasureOption configures an Erasure.
type ErasureOption func(*Erasure)

// WithTokenRevoker makes ShredTenant revoke the shredded tenant's tokens
// with revoke, after the shred. Without it a tenant shred leaves the
// tenant's tokens in place.
func WithTokenRevoker(revoke TokenRevoker) ErasureOption {
	return func(e *Erasure) { e.revokeTokens = revoke }
}

// WithErasureAudit records every shred, hold and erasure request (and
// each change of its state) in the tenant's audit log, in the same
// transaction as the action.
func WithErasureAudit(rec eventvault.AuditRecorder) ErasureOption {
	return func(e *Erasure) { e.audit = rec }
}

// NewErasure returns an Erasure. logger may be nil.
func NewErasure(store eventvault.ErasureStore, keys KeyEvictor, pseud Pseudonymizer, signer Signer, logger *slog.Logger, opts ...ErasureOption) *Erasure {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Erasure{store: store, keys: keys, pseud: pseud, signer: signer, now: time.Now, logger: logger}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Pseudonym returns the pseudonym of a subject id within the tenant.
// Errors: EINVALID for an empty or over-long id.
func (e *Erasure) Pseudonym(tenant eventvault.TenantID, subject string) (eventvault.Pseudonym, error) {
	if err := eventvault.ValidateSubject(subject); err != nil {
		return "", eventvault.AtPointer(err, "/subject") // every route takes it as the body's subject
	}
	return e.pseud.Pseudonym(tenant, subject), nil
}

// clock is the time stamped on what erasure stores and answers: UTC, cut
// to microseconds, the precision PostgreSQL keeps, so that the 201, a
// later GET, a replay and the signed certificate give the same instant on
// either store.
func (e *Erasure) clock() time.Time {
	return e.now().UTC().Truncate(time.Microsecond)
}

// RequestErasure records and carries out an erasure request: it shreds
// every stream the subject owns and issues a signed certificate. Asking
// again for a subject already erased (with nothing new since: no new
// stream, no value marked since a request that found no subject key)
// returns the completed request; a subject under legal hold gets a rejected request with
// the hold's reason. A request interrupted by a failure stays received and
// is resumed by asking again. created is true when this call recorded the
// request (false when it returned or resumed the subject's existing one).
// Errors: EFORBIDDEN without erase on every stream of the tenant.
func (e *Erasure) RequestErasure(ctx context.Context, p eventvault.Principal, subject string) (req eventvault.ErasureRequest, created bool, err error) {
	ps, err := e.authorizedSubject(p, policies.Erase, subject)
	if err != nil {
		return eventvault.ErasureRequest{}, false, err
	}
	lock := &e.subjects[stripe(ps)%uint32(len(e.subjects))]
	lock.Lock()
	defer lock.Unlock()
	streams, err := e.store.StreamsOfSubject(ctx, p.Tenant, ps)
	if err != nil {
		return eventvault.ErasureRequest{}, false, fmt.Errorf("streams of subject: %w", err)
	}
	latest, err := e.store.LatestErasureRequest(ctx, p.Tenant, ps)
	// Values marked since a request that destroyed no subject key (it
	// fenced nothing) give the subject a live key: a completed request
	// does not cover them.
	keyed, kerr := e.holdsSubjectKey(ctx, p.Tenant, ps)
	if kerr != nil {
		return eventvault.ErasureRequest{}, false, kerr
	}
	switch {
	case err == nil && latest.State == eventvault.ErasureReceived:
		req = latest // resume
	case err == nil && latest.State == eventvault.ErasurePropagating:
		req, err = e.advanceRequest(ctx, latest)
		return req, false, err
	case err == nil && latest.State == eventvault.ErasureCompleted && certificateCoversAll(latest, streams) && !keyed:
		return latest, false, nil
	case err != nil && eventvault.ErrorCode(err) != eventvault.ENOTFOUND:
		return eventvault.ErasureRequest{}, false, fmt.Errorf("earlier requests: %w", err)
	}
	if req.ID == uuid.Nil {
		created = true
		req = eventvault.ErasureRequest{ID: uuid.New(), Tenant: p.Tenant, Subject: ps, State: eventvault.ErasureReceived, RequestedBy: p.Actor(), ReceivedAt: e.clock()}
		actx, err := eventvault.WithAuditEvents(ctx, e.audit, e.stateEvent(req, AuditErasureRequested))
		if err != nil {
			return eventvault.ErasureRequest{}, false, err
		}
		if err := e.store.CreateErasureRequest(actx, req); err != nil {
			return eventvault.ErasureRequest{}, false, fmt.Errorf("record erasure request: %w", err)
		}
	}
	hold, err := e.store.Hold(ctx, p.Tenant, ps)
	if err == nil {
		req.State, req.Reason, req.CompletedAt = eventvault.ErasureRejected, "legal hold: "+hold.Reason, e.clock()
		actx, err := eventvault.WithAuditEvents(ctx, e.audit, e.stateEvent(req, AuditErasureState))
		if err != nil {
			return eventvault.ErasureRequest{}, false, err
		}
		if err := e.store.UpdateErasureRequest(actx, req); err != nil {
			return eventvault.ErasureRequest{}, false, fmt.Errorf("reject erasure request: %w", err)
		}
		return req, created, nil
	}
	if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		return eventvault.ErasureRequest{}, false, fmt.Errorf("look up hold: %w", err)
	}
	req, err = e.execute(ctx, req, streams)
	return req, created, err
}

// stripe hashes a pseudonym (already a keyed hash) to pick a lock.
func stripe(ps eventvault.Pseudonym) uint32 {
	h := fnv.New32a()
	h.Write([]byte(ps))
	return h.Sum32()
}

// maxErasurePasses bounds how often an erasure lists the subject's streams
// again because appends keep giving it new ones.
const maxErasurePasses = 5

func allIn(streams []eventvault.StreamName, set map[eventvault.StreamName]bool) bool {
	for _, s := range streams {
		if !set[s] {
			return false
		}
	}
	return true
}

// certificateCoversAll reports whether the completed request's certificate
// counted as many streams as the subject owns now. A subject's streams are
// never removed (a purge keeps the stream row), so equal counts mean no
// stream was added since.
func certificateCoversAll(done eventvault.ErasureRequest, streams []eventvault.StreamName) bool {
	var cert eventvault.ErasureCertificate
	if env, err := dsse.Parse(done.Certificate); err == nil {
		_ = json.Unmarshal(env.Payload, &cert)
	}
	return cert.StreamCount == len(streams)
}

func (e *Erasure) execute(ctx context.Context, req eventvault.ErasureRequest, streams []eventvault.StreamName) (eventvault.ErasureRequest, error) {
	cert := eventvault.ErasureCertificate{
		Version:          1,
		RequestID:        req.ID.String(),
		Tenant:           req.Tenant,
		SubjectPseudonym: req.Subject,
		DestroyedKeys:    []eventvault.DestroyedKey{},
		ReceivedAt:       req.ReceivedAt,
		ErasedBy:         req.RequestedBy,
		Issuer:           e.signer.KeyID(),
	}
	// An append may give the subject a new stream while this runs: list
	// the streams again after each pass, and complete only once a pass
	// finds nothing new, so a completed certificate leaves no stream of
	// the subject (as listed after its last shred) readable.
	shredded := make(map[eventvault.StreamName]bool, len(streams))
	for pass := 0; ; pass++ {
		for _, stream := range streams {
			if shredded[stream] {
				continue
			}
			sctx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: req.Tenant, Actor: req.RequestedBy, Action: AuditShred, Resource: streamResource(stream),
				Outcome: AuditOutcomeOK, Detail: map[string]any{"erasure_request": req.ID.String()}})
			if err != nil {
				return eventvault.ErasureRequest{}, err
			}
			s, err := e.store.ShredStream(sctx, req.Tenant, stream, false, e.clock())
			if err != nil {
				return eventvault.ErasureRequest{}, fmt.Errorf("erasure %s: shred %s: %w", req.ID, stream, err)
			}
			e.keys.EvictStream(req.Tenant, stream)
			shredded[stream] = true
			if s.KeyID != uuid.Nil {
				cert.DestroyedKeys = append(cert.DestroyedKeys, eventvault.DestroyedKey{Kind: "stream", KeyID: s.KeyID})
			}
			cert.StreamCount++
		}
		again, err := e.store.StreamsOfSubject(ctx, req.Tenant, req.Subject)
		if err != nil {
			return eventvault.ErasureRequest{}, fmt.Errorf("erasure %s: streams of subject: %w", req.ID, err)
		}
		if allIn(again, shredded) {
			break
		}
		if pass+1 >= maxErasurePasses {
			return eventvault.ErasureRequest{}, eventvault.Errorf(eventvault.ECONFLICT,
				"erasure request %s: the subject keeps gaining new streams while it is erased; stop the appends that name it and ask again (the request stays received and resumes)", req.ID)
		}
		streams = again
	}
	if err := e.erasePII(ctx, req, &cert); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	cert.ErasedAt = e.clock()
	if cert.StreamCount == 0 && len(cert.DestroyedKeys) == 0 {
		cert.HeldNothing = true
		cert.Statement = fmt.Sprintf("No data was held under this subject pseudonym in tenant %s when this request was carried out: nothing was erased. "+
			"EventVault cannot tell a subject id the tenant never used from a misspelt one: check the id as it was sent.", req.Tenant)
	} else {
		cert.Statement = fmt.Sprintf("Every stream and personal value held under this subject pseudonym in tenant %s was crypto-shredded: %s, %s destroyed.",
			req.Tenant, count(cert.StreamCount, "stream", "streams"), count(len(cert.DestroyedKeys), "key", "keys"))
	}
	if wait, err := e.awaitConsumers(ctx, &req, &cert, shredded); err != nil || wait {
		return req, err
	}
	return e.finish(ctx, req, cert)
}

// count is n with the noun in its number: "1 stream", "2 streams".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// finish signs cert and completes req with it. The consumer lists are
// never null in what is signed: [] says that none acknowledged.
func (e *Erasure) finish(ctx context.Context, req eventvault.ErasureRequest, cert eventvault.ErasureCertificate) (eventvault.ErasureRequest, error) {
	if cert.ConsumersAcknowledged == nil {
		cert.ConsumersAcknowledged = []eventvault.ConsumerAck{}
	}
	if cert.ConsumersRemoved == nil {
		cert.ConsumersRemoved = []eventvault.ConsumerRemoval{}
	}
	payload, err := json.Marshal(cert)
	if err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("erasure %s: certificate: %w", req.ID, err)
	}
	signed, err := json.Marshal(e.signer.Sign(eventvault.ErasureCertificateType, payload))
	if err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("erasure %s: sign certificate: %w", req.ID, err)
	}
	// Done inline, a request completes when its keys are destroyed; one
	// that waited for its consumers completes now, after the last of them.
	completed := cert.ErasedAt
	if req.State == eventvault.ErasurePropagating {
		completed = e.clock()
	}
	req.State, req.CompletedAt, req.Certificate = eventvault.ErasureCompleted, completed, signed
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, e.stateEvent(req, AuditErasureState))
	if err != nil {
		return eventvault.ErasureRequest{}, err
	}
	if err := e.store.UpdateErasureRequest(actx, req); err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("erasure %s: complete: %w", req.ID, err)
	}
	e.logger.InfoContext(ctx, "erasure completed", slog.String("tenant", string(req.Tenant)), slog.String("request_id", req.ID.String()),
		slog.String("subject", string(req.Subject)), slog.Int("streams", cert.StreamCount))
	return req, nil
}

// CertificateOf returns the certificate of a completed request, read from
// its signed envelope without checking the signature (the server signed
// it; clients check it with the published key). ok is false when there is
// none.
func CertificateOf(r eventvault.ErasureRequest) (cert eventvault.ErasureCertificate, ok bool) {
	if r.State != eventvault.ErasureCompleted || len(r.Certificate) == 0 {
		return cert, false
	}
	env, err := dsse.Parse(r.Certificate)
	if err != nil || json.Unmarshal(env.Payload, &cert) != nil {
		return cert, false
	}
	return cert, true
}

// ErasureRequest returns a request of the caller's tenant.
// Errors: EFORBIDDEN without erase; ENOTFOUND.
func (e *Erasure) ErasureRequest(ctx context.Context, p eventvault.Principal, id uuid.UUID) (eventvault.ErasureRequest, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Erase}); err != nil {
		return eventvault.ErasureRequest{}, err
	}
	r, err := e.store.ErasureRequest(ctx, p.Tenant, id)
	if err != nil {
		return eventvault.ErasureRequest{}, fmt.Errorf("erasure request %s: %w", id, err)
	}
	return r, nil
}

// SigningKey returns the id and public key that verify certificates.
func (e *Erasure) SigningKey() (string, ed25519.PublicKey) {
	return e.signer.KeyID(), e.signer.PublicKey()
}

// stateEvent is the audit record of an erasure request reaching its
// state: the subject only by pseudonym.
func (e *Erasure) stateEvent(req eventvault.ErasureRequest, action string) eventvault.AuditEvent {
	detail := map[string]any{"request_id": req.ID.String(), "state": string(req.State)}
	if cert, ok := CertificateOf(req); ok {
		detail["streams"], detail["keys_destroyed"] = cert.StreamCount, len(cert.DestroyedKeys)
	}
	return eventvault.AuditEvent{Tenant: req.Tenant, Actor: req.RequestedBy, Action: action, Resource: subjectResource(req.Subject), Outcome: AuditOutcomeOK, Detail: detail}
}
