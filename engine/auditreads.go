package engine

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/eventvault/eventvault"
)

// DefaultReadAuditWindow is how long reads are gathered into one record.
const DefaultReadAuditWindow = 10 * time.Second

// ReadLog records reads and denials, gathered per tenant, actor, action
// and resource over a window: one record says that tok_1 read stream
// order-7 in 12 requests and 840 events between two instants. A record
// per read would cost a write per read, as much as the read itself; the
// price of gathering is that reads of the last window are lost if the
// node dies before it flushes, and that a read is recorded after it was
// answered. A read that its policy marks @audit("each") is instead
// recorded before its events are returned, and fails if it cannot be
// (Events.recordRead).
type ReadLog struct {
	rec    eventvault.AuditRecorder
	store  eventvault.AuditStore
	window time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu      sync.Mutex
	since   time.Time
	pending map[readKey]*readCount
}

type readKey struct {
	tenant                  eventvault.TenantID
	actor, action, resource string
	outcome, reason         string
}

type readCount struct{ requests, events int64 }

// NewReadLog returns a ReadLog that flushes every window (DefaultReadAuditWindow
// when 0). logger may be nil.
func NewReadLog(rec eventvault.AuditRecorder, store eventvault.AuditStore, window time.Duration, logger *slog.Logger) *ReadLog {
	if window <= 0 {
		window = DefaultReadAuditWindow
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ReadLog{rec: rec, store: store, window: window, now: time.Now, logger: logger, pending: map[readKey]*readCount{}}
}

// Read counts a read of events by actor.
func (l *ReadLog) Read(tenant eventvault.TenantID, actor, action, resource string, events int) {
	l.add(readKey{tenant, actor, action, resource, AuditOutcomeOK, ""}, events)
}

// Denied counts a refused request: 403 (tenant known) or 401 (recorded in
// the deployment's log), with the class of the reason ("forbidden",
// "unauthorized").
func (l *ReadLog) Denied(tenant eventvault.TenantID, actor, resource, reason string) {
	l.add(readKey{tenant, actor, AuditDenied, resource, AuditOutcomeDenied, reason}, 0)
}

func (l *ReadLog) add(k readKey, events int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		l.since = l.now()
	}
	c := l.pending[k]
	if c == nil {
		c = &readCount{}
		l.pending[k] = c
	}
	c.requests++
	c.events += int64(events)
}

// Flush writes what was gathered, one record per tenant, actor, action and
// resource, each tenant's in one transaction. What cannot be written is
// kept for the next flush.
func (l *ReadLog) Flush(ctx context.Context) error {
	l.mu.Lock()
	pending, since := l.pending, l.since
	l.pending = map[readKey]*readCount{}
	l.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	until := l.now()
	byTenant := map[eventvault.TenantID][]eventvault.AuditEvent{}
	keys := make([]readKey, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.tenant != b.tenant {
			return a.tenant < b.tenant
		}
		if a.actor != b.actor {
			return a.actor < b.actor
		}
		if a.action != b.action {
			return a.action < b.action
		}
		return a.resource < b.resource
	})
	for _, k := range keys {
		c := pending[k]
		const micro = "2006-01-02T15:04:05.000000Z"
		detail := map[string]any{"requests": c.requests, "from": since.UTC().Format(micro), "until": until.UTC().Format(micro)}
		if k.action != AuditDenied {
			detail["events"] = c.events
		}
		if k.reason != "" {
			detail["reason"] = k.reason
		}
		byTenant[k.tenant] = append(byTenant[k.tenant], eventvault.AuditEvent{Tenant: k.tenant, Actor: k.actor, Action: k.action, Resource: k.resource, Outcome: k.outcome, Detail: detail})
	}
	var firstErr error
	for tenant, evs := range byTenant {
		if err := eventvault.AppendAuditEvents(ctx, l.rec, l.store, evs...); err != nil {
			// Kept for the next flush: nothing is dropped while the log
			// cannot be written.
			l.mu.Lock()
			for _, k := range keys {
				if k.tenant == tenant {
					old := l.pending[k]
					if old == nil {
						old = &readCount{}
						l.pending[k] = old
					}
					old.requests += pending[k].requests
					old.events += pending[k].events
				}
			}
			if l.since.IsZero() || since.Before(l.since) {
				l.since = since
			}
			l.mu.Unlock()
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// Run flushes every window until ctx ends, then once more.
func (l *ReadLog) Run(ctx context.Context) {
	t := time.NewTicker(l.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := l.Flush(context.WithoutCancel(ctx)); err != nil {
				l.logger.Error("the last reads could not be written to the audit log", slog.Any("err", err))
			}
			return
		case <-t.C:
			if err := l.Flush(ctx); err != nil {
				l.logger.Warn("reads could not be written to the audit log; kept for the next flush", slog.Any("err", err))
			}
		}
	}
}
