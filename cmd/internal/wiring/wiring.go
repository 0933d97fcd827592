// Package wiring builds EventVault's HTTP server from its parts, once, for
// every command that serves it: `eventvault server` and the benchmark, so
// that what `make bench` measures is what is served. It also opens the
// store those commands and `eventvault rotate` use. Only commands import
// it; it is where the parts meet, and with storetest the one place that
// needs the whole eventvault.Store.
package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/metrics"
	"github.com/eventvault/eventvault/policies"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/store/postgres"
)

// Parts are what the server is built from. Logger may be nil.
type Parts struct {
	Store         eventvault.Store
	Root          evcrypto.RootKeyProvider
	Pseudonyms    *pseudonym.Key
	Signer        *dsse.SigningKey
	KeyCache      evcrypto.KeyringOptions
	TokenCacheTTL time.Duration
	// PolicyCacheTTL bounds how long a policy change made through another
	// node takes to reach this one (policies.DefaultCacheTTL when 0;
	// negative: no cache).
	PolicyCacheTTL time.Duration
	// NoAudit builds the server without its audit log, for the benchmark's
	// measure of what auditing costs; no server runs so.
	NoAudit bool
	// ReadAuditWindow is how long reads and refusals are gathered into
	// one audit record (engine.DefaultReadAuditWindow when 0).
	ReadAuditWindow time.Duration
	// AuditCheckpointDir, when set, receives every signed checkpoint as a
	// file, outside the database.
	AuditCheckpointDir string
	// AuditCheckpointInterval is how often checkpoints are published
	// (audit.DefaultCheckpointInterval when 0).
	AuditCheckpointInterval time.Duration
	Logger                  *slog.Logger
	TokenVerifier           auth.VerifierKey // the token-verifier deployment key; nil: a random key of the Tokens
	// RefuseRootTokens makes authentication refuse (401) and log dev root
	// tokens: a production server sets it.
	RefuseRootTokens bool
	// JWT authenticates bearer JWTs; nil answers them 401 (not
	// configured).
	JWT api.JWTVerifier
	// Metrics, if set, counts requests, events, key cache lookups and
	// root key calls; the store reports to it if OpenStoreObserved was
	// given it.
	Metrics *metrics.Registry
	// FeedPoll is how often a tenant's shared feed reader polls the store
	// for events committed through other nodes (engine.DefaultFeedPoll
	// when 0); appends on this node wake it at once.
	FeedPoll time.Duration
	// Admission bounds the appends and reads in flight (api.Admission);
	// the zero value bounds nothing.
	Admission api.AdmissionConfig
	// RootConcurrency bounds the keyring's calls to the root key provider
	// in flight at once (evcrypto.LimitRoot; 0: its default).
	RootConcurrency int
}

// Stack is the built server: its HTTP handler, and the keyring and tokens
// the command still needs (eviction, the dev root token).
type Stack struct {
	Keys     *evcrypto.Keyring
	Tokens   *auth.Tokens
	Policies *policies.Resolver
	Handler  http.Handler
	// Reads gathers reads and refusals into audit records: run
	// Reads.Run for as long as the server serves.
	Reads *engine.ReadLog
	// Checkpoints publishes signed checkpoints of the audit logs: run
	// Checkpoints.Run for as long as the server serves. nil without a
	// signing key.
	Checkpoints *audit.Publisher
	// Audit records the node's own actions (start, stop).
	Audit eventvault.AuditRecorder
	// Feed is the node's shared reader of the tenants' feeds.
	Feed *engine.Feed
}

// Build wires the keyring, engine, erasure, rotation, tokens and API.
func Build(p Parts) *Stack {
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	root, keyCache := p.Root, p.KeyCache
	var (
		apiMetrics       api.Metrics
		admissionMetrics api.AdmissionMetrics
	)
	if p.Metrics != nil { // no typed nil in the interfaces
		root = p.Metrics.Root(root)
		keyCache.OnCacheLookup = p.Metrics.KeyCacheLookup
		apiMetrics, admissionMetrics = p.Metrics, p.Metrics
	}
	// Counted inside the bound: the metric is the calls Vault received.
	root = evcrypto.LimitRoot(root, p.RootConcurrency)
	keys := evcrypto.NewKeyring(root, p.Store, keyCache)
	tokens := auth.NewTokens(p.Store, p.TokenCacheTTL)
	if p.TokenVerifier != nil { // no typed nil in the interface
		tokens.Key = p.TokenVerifier
	}
	tokens.RefuseRoot, tokens.Logger = p.RefuseRootTokens, logger
	ttl := p.PolicyCacheTTL
	if ttl == 0 {
		ttl = policies.DefaultCacheTTL
	}
	docs := policies.NewResolver(p.Store, ttl, logger)
	tokens.Policies = docs
	// Every security-relevant action is recorded in its tenant's audit
	// log, in the transaction that carries it out; reads and refusals
	// gathered per window.
	var recorder eventvault.AuditRecorder = &audit.Recorder{}
	if p.NoAudit {
		recorder = nil
	}
	reads := engine.NewReadLog(recorder, p.Store, p.ReadAuditWindow, logger)
	tokens.Audit, docs.Audit = recorder, recorder
	var checkpoints *audit.Publisher
	if p.Signer != nil {
		signer, err := audit.NewSigner(audit.DefaultLogName, p.Signer.CryptoSigner())
		if err != nil {
			panic(fmt.Sprintf("wiring: the deployment signing key signs no audit checkpoint: %v", err))
		}
		checkpoints = &audit.Publisher{Store: p.Store, Signer: signer, Dir: p.AuditCheckpointDir, Interval: p.AuditCheckpointInterval, Logger: logger}
	}
	opts := []engine.EventsOption{engine.WithAudit(recorder, reads)}
	// Personal data kept apart needs the pseudonym key: subject keys are
	// found by pseudonym.
	subjectKeys := evcrypto.NewSubjectKeys(keys, p.Store)
	erasureOpts := []engine.ErasureOption{engine.WithTokenRevoker(RevokeTenantTokens(p.Store, tokens, logger)), engine.WithErasureAudit(recorder)}
	if p.Pseudonyms != nil { // no typed nil in the interface
		opts = append(opts, engine.WithPseudonymizer(p.Pseudonyms), engine.WithPII(subjectKeys, p.Store))
		erasureOpts = append(erasureOpts, engine.WithPIIErasure(p.Store, subjectKeys))
	}
	manager := evcrypto.NewKeyManager(keys)
	feed := engine.NewFeed(p.Store, p.FeedPoll, logger)
	events := engine.NewEvents(p.Store, keys, logger, append(opts, engine.WithFeed(feed))...)
	var subjects api.SubjectRights
	if p.Pseudonyms != nil {
		subjects = engine.NewSubjects(events, p.Store, p.Pseudonyms, recorder)
	}
	erasure := engine.NewErasure(p.Store, feed.Evicting(keys), p.Pseudonyms, p.Signer, logger, append(erasureOpts, engine.WithPropagation(events, p.Store))...)
	handler := api.New(api.Config{
		Events:        events,
		Erasure:       erasure,
		Subscriptions: engine.NewConsumers(p.Store, p.Store, erasure, recorder, logger),
		Subjects:      subjects,
		Keys:          engine.NewRotation(manager, logger).WithAudit(recorder, p.Store),
		Tokens:        tokens,
		Policies:      docs,
		JWT:           p.JWT,
		Denials:       reads,
		Audit:         engine.NewAuditLog(p.Store, recorder, pseudonymizer(p.Pseudonyms)),
		Checks:        ReadyChecks(p.Store, manager),
		Logger:        logger,
		Metrics:       apiMetrics,
		Admission:     api.NewAdmission(p.Admission, admissionMetrics),
	})
	return &Stack{Keys: keys, Tokens: tokens, Policies: docs, Handler: handler, Reads: reads, Checkpoints: checkpoints, Audit: recorder, Feed: feed}
}

// OpenStore opens the store a command serves from: PostgreSQL at
// databaseURL, or else the embedded store in dataDir (created if missing).
// It also returns a phrase saying which, for the start-up banner. It never
// migrates PostgreSQL: it refuses a schema that is not at this binary's
// version, naming `eventvault migrate` (only `eventvault server -dev`
// migrates before it opens).
func OpenStore(ctx context.Context, databaseURL, dataDir string) (eventvault.Store, string, error) {
	return OpenStoreObserved(ctx, databaseURL, dataDir, nil, Pool{}, nil)
}

// Pool sizes the PostgreSQL store's connection pool; zero values leave
// the store's defaults (postgres.Options).
type Pool struct {
	MaxConns       int32
	AcquireTimeout time.Duration
}

// OpenStoreObserved is OpenStore with m, if not nil, learning of
// PostgreSQL's group commits, store errors and retries (the embedded store
// reports nothing), PostgreSQL's pool sized by pool, and logger, if not
// nil, told of the transactions PostgreSQL's store runs again (a deadlock
// PostgreSQL broke as a warning).
func OpenStoreObserved(ctx context.Context, databaseURL, dataDir string, m *metrics.Registry, pool Pool, logger *slog.Logger) (eventvault.Store, string, error) {
	if databaseURL != "" {
		opts := postgres.Options{MaxConns: pool.MaxConns, AcquireTimeout: pool.AcquireTimeout, Logger: logger}
		if m != nil {
			opts.Observer = m
		}
		db, err := postgres.Open(ctx, databaseURL, opts)
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return db, "PostgreSQL", nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data folder: %w", err)
	}
	path := filepath.Join(dataDir, "eventvault.db")
	db, err := bolt.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("open embedded store: %w", err)
	}
	return db, "embedded (" + path + ")", nil
}

// DeploymentKeys loads the deployment keys from the store, unwrapped by
// root. With create (dev mode, or `eventvault init`), it first creates the
// missing ones and logs what it created; without, a missing key fails with
// ENOTFOUND naming `eventvault init`.
func DeploymentKeys(ctx context.Context, root evcrypto.RootKeyProvider, store eventvault.DeploymentKeyStore, create bool, logger *slog.Logger) (*deploykeys.Keys, error) {
	if create {
		results, err := deploykeys.Init(ctx, root, store, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("create deployment keys: %w", err)
		}
		for _, r := range results {
			if r.Outcome != deploykeys.Present && logger != nil {
				logger.InfoContext(ctx, "deployment key created", slog.String("key", r.Name), slog.Int("version", int(r.Version)))
			}
		}
	}
	keys, err := deploykeys.Load(ctx, root, store)
	if err != nil {
		return nil, fmt.Errorf("deployment keys: %w", err)
	}
	return keys, nil
}

// RevokeTenantTokens returns the revoker a tenant shred calls: it deletes
// the tenant's tokens from the store, then purges tokens' cache so that the
// revocation takes effect on this node at once (even when the delete
// failed, which may hide a delete that committed). Other processes on the
// same database notice within their token cache TTL.
func RevokeTenantTokens(store eventvault.TokenStore, tokens *auth.Tokens, logger *slog.Logger) engine.TokenRevoker {
	return func(ctx context.Context, tenant eventvault.TenantID) error {
		n, err := store.DeleteTenantTokens(ctx, tenant)
		tokens.Purge()
		if err != nil {
			return fmt.Errorf("revoke tokens of tenant %s: %w", tenant, err)
		}
		logger.InfoContext(ctx, "tenant tokens revoked", slog.String("tenant", string(tenant)), slog.Int("tokens", n))
		return nil
	}
}

// HTTPServer returns the http.Server EventVault serves h with: bounded
// header, read, write and idle times, and header size.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    api.ServerMaxHeaderBytes,
	}
}

// pseudonymizer is key as an engine.Pseudonymizer, nil (no typed nil in
// the interface) for none.
func pseudonymizer(key *pseudonym.Key) engine.Pseudonymizer {
	if key == nil {
		return nil
	}
	return key
}
