package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/cmd/internal/wiring"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/metrics"
	"github.com/eventvault/eventvault/policies"
	"github.com/eventvault/eventvault/store/postgres"
)

// DevTenant is the tenant of the dev root token.
const DevTenant eventvault.TenantID = "default"

// Main wires the parts together. It holds no global state: Run opens
// everything, Close releases it.
type Main struct {
	Config Config
	Stdout io.Writer
	Logger *slog.Logger

	// store is the store wiring.OpenStore opened; Main only closes it
	// (and listens to its evictions when it is PostgreSQL).
	store io.Closer
	root  evcrypto.RootKeyProvider
	// stop ends what runs beside the server (the eviction listener).
	stop func()
	// jwt verifies bearer JWTs when -jwt-issuer is set; Close stops its
	// JWKS refresh.
	jwt *jwtauth.Verifier
	// stopAudit ends the read-log flusher and checkpoint publisher (a
	// last flush and a last checkpoint) and records the node's stop.
	stopAudit func()
	listener  net.Listener
	server    *http.Server
	// metrics is the registry when -metrics-listen is set, served by
	// metricsServer on metricsListener.
	metrics         *metrics.Registry
	metricsListener net.Listener
	metricsServer   *http.Server
	// RootToken is the dev root token, once Run has installed it.
	RootToken string
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServerFlags(args, stderr)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Stdout: stdout, Logger: newLogger(cfg.LogFormat, stderr)}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		return err
	}
	return m.Serve(ctx)
}

func newLogger(format string, w io.Writer) *slog.Logger {
	return newLeveledLogger(format, w, slog.LevelInfo)
}

// newCommandLogger is the logger of the operator commands (init, rotate,
// token, tenant, subject, audit): warnings and errors only. A command
// prints what it did on stdout; the libraries' information lines ("Vault
// Transit root key ready", an AppRole login, a deployment key created)
// are the server's log, not a command's output.
func newCommandLogger(format string, w io.Writer) *slog.Logger {
	return newLeveledLogger(format, w, slog.LevelWarn)
}

func newLeveledLogger(format string, w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Open opens the store and the root key, builds the API and listens.
func (m *Main) Open(ctx context.Context) error {
	c := m.Config
	// The root key first: a Vault that is not ready fails the start before
	// the database is touched.
	root, err := openRootProvider(ctx, c, m.Logger)
	if err != nil {
		return err
	}
	m.root = root
	// Production never migrates: the server's login role may not create
	// anything, and OpenStore refuses a schema that is behind, naming
	// `eventvault migrate`. Dev mode on PostgreSQL migrates itself, as the
	// quick path it is (its URL then names a role that may).
	if c.Dev && c.DatabaseURL != "" {
		if err := postgres.Migrate(ctx, c.DatabaseURL); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if c.MetricsListen != "" {
		m.metrics = metrics.New()
	}
	store, where, err := wiring.OpenStoreObserved(ctx, c.DatabaseURL, c.DataDir, m.metrics,
		wiring.Pool{MaxConns: int32(c.Limits.DBMaxConns), AcquireTimeout: c.Limits.DBAcquireTimeout}, m.Logger)
	if err != nil {
		return err
	}
	m.store = store
	// The deployment keys come from the store, wrapped by the root, so
	// that every node uses the same ones. Only dev mode creates them; a
	// production node without them refuses to start, naming
	// 'eventvault init'.
	if err := refuseUnimportedKeyFiles(ctx, store, c.DataDir); err != nil {
		return err
	}
	dk, err := wiring.DeploymentKeys(ctx, root, store, c.Dev, m.Logger)
	if err != nil {
		return err
	}
	var jwtVerifier api.JWTVerifier
	if c.JWTOn {
		// The refresh lives as long as Main, until Close.
		// A JWT caller is named in logs and records by a hash of its
		// subject under the token-verifier key, alike on every node.
		c.JWT.ActorKey = dk.TokenVerifier
		m.jwt, err = jwtauth.New(context.WithoutCancel(ctx), c.JWT, m.Logger)
		if err != nil {
			return err
		}
		jwtVerifier = m.jwt
		m.Logger.InfoContext(ctx, "JWT authentication on", slog.String("issuer", c.JWT.Issuer), slog.Any("audiences", c.JWT.Audiences),
			slog.String("jwks_url", c.JWT.JWKSURL), slog.String("keys_file", c.JWT.KeysFile))
	}
	stack := wiring.Build(wiring.Parts{
		Store:                   store,
		Root:                    root,
		Pseudonyms:              dk.Pseudonyms,
		Signer:                  dk.Signer,
		TokenVerifier:           dk.TokenVerifier,
		KeyCache:                evcrypto.KeyringOptions{CacheSize: c.KeyCacheSize, TTL: c.KeyCacheTTL},
		ReadAuditWindow:         c.ReadAuditWindow,
		AuditCheckpointDir:      c.AuditCheckpointDir,
		AuditCheckpointInterval: c.AuditCheckpointInterval,
		TokenCacheTTL:           c.TokenCacheTTL,
		PolicyCacheTTL:          c.PolicyCacheTTL,
		FeedPoll:                c.FeedPoll,
		// A production server never honours a root token (one left by a
		// dev start on this database gets 401 and a warning).
		RefuseRootTokens: !c.Dev,
		Logger:           m.Logger,
		JWT:              jwtVerifier,
		Metrics:          m.metrics,
		Admission:        c.Limits.Admission,
		RootConcurrency:  c.Limits.RootConcurrency,
	})
	if c.PolicyDir != "" {
		docs, err := policies.ReadDir(c.PolicyDir)
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			// Not an error: a deployment may start with an empty folder
			// and add documents later; but a wrong path reads the same.
			m.Logger.WarnContext(ctx, "the policy folder holds no document: documents are read from "+policies.Layout(c.PolicyDir)+", one folder per tenant", slog.String("dir", c.PolicyDir))
		}
		n, err := stack.Policies.Apply(ctx, auth.Operator, docs)
		if err != nil {
			return fmt.Errorf("apply -policy-dir: %w", err)
		}
		m.Logger.InfoContext(ctx, "policy folder applied", slog.String("dir", c.PolicyDir), slog.Int("documents", len(docs)), slog.Int("versions_written", n))
	}
	m.listenEvictions(stack.Feed.Evicting(stack.Keys))
	if err := m.startAudit(ctx, stack, store); err != nil {
		return err
	}
	if c.Dev {
		m.RootToken, err = stack.Tokens.InstallRoot(ctx, DevTenant, c.DevRootToken)
		if err != nil {
			return fmt.Errorf("install dev root token: %w", err)
		}
	}
	m.listener, err = net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	m.listener = api.ProblemListener(m.listener, m.Logger)
	if m.metrics != nil {
		if err := m.listenMetrics(); err != nil {
			return err
		}
	}
	m.server = wiring.HTTPServer(stack.Handler)
	// Feeds and long polls end at a shutdown, instead of holding it to its
	// deadline.
	if d, ok := stack.Handler.(interface{ Drain() }); ok {
		m.server.RegisterOnShutdown(d.Drain)
	}
	// The server's own errors (TLS handshakes, broken requests) go
	// through the logger, in its format, not as plain text on stderr.
	m.server.ErrorLog = slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn)
	m.printBanner(where, m.Addr())
	return nil
}

// listenEvictions drops a key from this node's cache as soon as another
// node shreds it (PostgreSQL NOTIFY), and has the feed read again the
// pages it read before. Reads fail closed without it; it keeps a shredded
// key from lingering in memory until its TTL.
func (m *Main) listenEvictions(keys engine.KeyEvictor) {
	db, ok := m.store.(*postgres.DB)
	if !ok {
		return // the embedded store serves one process
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		err := db.ListenEvictions(ctx, keys.EvictStream, keys.EvictTenant)
		if err != nil && ctx.Err() == nil {
			m.Logger.Error("eviction listener stopped", slog.Any("err", err))
		}
	}()
}

// Addr is the address the server listens on, once Open has run.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Serve serves until ctx ends, then shuts down gracefully.
func (m *Main) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if m.Config.TLSCert != "" {
			err = m.server.ServeTLS(m.listener, m.Config.TLSCert, m.Config.TLSKey)
		} else {
			err = m.server.Serve(m.listener)
		}
		errc <- err
	}()
	if m.metricsServer != nil {
		go func() {
			if err := m.metricsServer.Serve(m.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Logger.Error("metrics server stopped", slog.Any("err", err))
			}
		}()
	}
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m.metricsServer != nil {
		_ = m.metricsServer.Shutdown(shutdownCtx)
	}
	if err := m.server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// listenMetrics listens on -metrics-listen for the Prometheus scrape: a
// listener of its own, with /metrics only, no authentication and nothing
// else of the API, so that an operator binds it where only the scraper
// reaches (see "Metrics" in the README).
func (m *Main) listenMetrics() error {
	ln, err := net.Listen("tcp", m.Config.MetricsListen)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", m.Config.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metrics.Handler())
	m.metricsListener = ln
	m.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	m.metricsServer.ErrorLog = slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn)
	return nil
}

// MetricsAddr is where /metrics is served, once Open has run with
// -metrics-listen; "" without.
func (m *Main) MetricsAddr() string {
	if m.metricsListener == nil {
		return ""
	}
	return m.metricsListener.Addr().String()
}

// Close stops the eviction listener and the JWKS refresh, and releases
// the store.
func (m *Main) Close() error {
	if m.stopAudit != nil {
		m.stopAudit()
	}
	if m.stop != nil {
		m.stop()
	}
	if m.jwt != nil {
		m.jwt.Close()
	}
	if m.metricsListener != nil && m.metricsServer != nil {
		_ = m.metricsServer.Close()
	}
	if m.store != nil {
		return m.store.Close()
	}
	return nil
}

// printBanner says where the server listens. With -log-format json it is
// a log record (and, in dev mode, the root token alone on stdout, never in
// the log); with text, the human-readable banner on stdout.
func (m *Main) printBanner(where, hostport string) {
	scheme := "http"
	if m.Config.TLSCert != "" {
		scheme = "https"
	}
	addr := scheme + "://" + hostport
	if m.Config.LogFormat == "json" {
		attrs := []any{slog.String("addr", addr), slog.String("store", where),
			slog.String("root_key", rootKeyDescription(m.Config)), slog.Bool("dev", m.Config.Dev)}
		if a := m.MetricsAddr(); a != "" {
			attrs = append(attrs, slog.String("metrics", "http://"+a+"/metrics"))
		}
		m.Logger.Info("EventVault listening", attrs...)
		if m.Config.Dev {
			m.Logger.Warn("dev mode: do not keep real personal data here; the root token is printed on stdout", slog.String("root_token_tenant", string(DevTenant)))
			fmt.Fprintf(m.Stdout, "Root Token: %s\n", m.RootToken)
		}
		return
	}
	w := m.Stdout
	fmt.Fprintf(w, "EventVault listening on %s\n", addr)
	fmt.Fprintf(w, "  store:    %s\n", where)
	fmt.Fprintf(w, "  root key: %s\n", rootKeyDescription(m.Config))
	if a := m.MetricsAddr(); a != "" {
		fmt.Fprintf(w, "  metrics:  http://%s/metrics\n", a)
	}
	if !m.Config.Dev {
		return
	}
	fmt.Fprintf(w, `
WARNING: dev mode; do not keep real personal data here.

Root Token: %s
(tenant %q; admin over every tenant; a new one is made at each start unless EVENTVAULT_DEV_ROOT_TOKEN is set)

Try it:
  export EVENTVAULT_ADDR=%s EVENTVAULT_TOKEN='%s'
  curl -sS -X POST "$EVENTVAULT_ADDR/v1/streams/order-42/events" \
    -H "Authorization: Bearer $EVENTVAULT_TOKEN" -H 'Content-Type: application/json' \
    -d '{"expected_version":"no_stream","events":[{"id":"'$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)'","type":"OrderPlaced","data":{"total":42}}]}'
  curl -sS "$EVENTVAULT_ADDR/v1/streams/order-42/events" -H "Authorization: Bearer $EVENTVAULT_TOKEN"
  curl -sS -X POST "$EVENTVAULT_ADDR/v1/tokens" -H "Authorization: Bearer $EVENTVAULT_TOKEN" \
    -H 'Content-Type: application/json' -d '{"tenant":"acme","name":"acme-app"}'

`, m.RootToken, DevTenant, addr, m.RootToken)
}

// startAudit records the node's start in the deployment's audit log (with
// a digest of its configuration: no value of it) and starts the read-log
// flusher and the checkpoint publisher. A node that cannot record its
// start does not start.
func (m *Main) startAudit(ctx context.Context, stack *wiring.Stack, store eventvault.AuditStore) error {
	node := "node:" + m.nodeID()
	event := func(action string) eventvault.AuditEvent {
		return eventvault.AuditEvent{Tenant: eventvault.DeploymentLog, Actor: node, Action: action, Resource: "node", Outcome: "ok",
			Detail: map[string]any{"config_sha256": m.Config.digest()}}
	}
	lines, err := stack.Audit.Lines(ctx, event("node_started"))
	if err != nil {
		return fmt.Errorf("audit record of the start: %w", err)
	}
	if _, err := store.AppendAudit(ctx, lines.Tenant, lines.Lines); err != nil {
		return fmt.Errorf("record the start in the audit log: %w", err)
	}
	actx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); stack.Reads.Run(actx) }()
	if stack.Checkpoints != nil {
		wg.Add(1)
		go func() { defer wg.Done(); stack.Checkpoints.Run(actx) }()
	}
	m.stopAudit = func() {
		cancel()
		wg.Wait()
		ctx := context.Background()
		if lines, err := stack.Audit.Lines(ctx, event("node_stopped")); err == nil {
			if _, err := store.AppendAudit(ctx, lines.Tenant, lines.Lines); err != nil {
				m.Logger.Error("the node's stop could not be recorded in the audit log", slog.Any("err", err))
			}
		}
		if stack.Checkpoints != nil {
			if _, err := stack.Checkpoints.PublishOnce(ctx); err != nil {
				m.Logger.Warn("the last audit checkpoints were not published", slog.Any("err", err))
			}
		}
	}
	return nil
}

// nodeID names this process in audit records: host name and process id.
func (m *Main) nodeID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
