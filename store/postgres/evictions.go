package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// Back-off of the eviction listener between connection attempts.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 10 * time.Second
)

// ListenEvictions listens for the evictions ShredStream and ShredTenant
// notify (on any node sharing the database) and calls onStream or onTenant
// for each, in the order they arrive, one at a time. It uses a connection of
// its own, outside the pool, and reconnects with jittered exponential
// back-off whenever that connection fails, until ctx ends; then it returns
// ctx's error.
//
// Notifications sent while the listener is not connected are lost.
// Correctness does not rest on them: reads fail closed (a stream's key row
// is read with its events, so a shredded key is honoured at once whatever a
// cache holds) and the store refuses appends under a shredded key. The
// notifications drop cached key material on every node promptly instead of
// at the cache's TTL.
//
// Payloads that do not name a valid tenant (and stream) are ignored.
func (db *DB) ListenEvictions(ctx context.Context, onStream func(eventvault.TenantID, eventvault.StreamName), onTenant func(eventvault.TenantID)) error {
	cfg := db.pool.Config().ConnConfig.Copy()
	for failures := 0; ; {
		listened, err := db.listenOnce(ctx, cfg, onStream, onTenant)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listened {
			failures = 0
		}
		failures++
		wait := listenBackoff(failures)
		db.log.WarnContext(ctx, "eviction listener lost its database connection; reconnecting",
			slog.Duration("retry_in", wait), slog.String("error", err.Error()))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// listenOnce connects, listens and dispatches notifications until the
// connection fails or ctx ends. listened reports whether LISTEN took effect.
func (db *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, onStream func(eventvault.TenantID, eventvault.StreamName), onTenant func(eventvault.TenantID)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+evictChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	db.log.DebugContext(ctx, "eviction listener connected")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		dispatchEviction(n.Payload, onStream, onTenant)
	}
}

// dispatchEviction calls onStream for "<tenant>/<stream>" and onTenant for
// "<tenant>". Neither tenant ids nor stream names can hold a '/'.
func dispatchEviction(payload string, onStream func(eventvault.TenantID, eventvault.StreamName), onTenant func(eventvault.TenantID)) {
	tenant, stream, isStream := strings.Cut(payload, "/")
	if eventvault.ValidateTenant(eventvault.TenantID(tenant)) != nil {
		return
	}
	switch {
	case !isStream:
		if onTenant != nil {
			onTenant(eventvault.TenantID(tenant))
		}
	case eventvault.ValidateStream(eventvault.StreamName(stream)) == nil:
		if onStream != nil {
			onStream(eventvault.TenantID(tenant), eventvault.StreamName(stream))
		}
	}
}

// listenBackoff is the pause after the nth failure in a row: doubling from
// listenMinBackoff up to listenMaxBackoff, with jitter so that nodes that
// lost the database together do not reconnect together.
func listenBackoff(n int) time.Duration {
	d := listenMaxBackoff
	if n < 16 {
		d = min(listenMinBackoff<<(n-1), listenMaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
