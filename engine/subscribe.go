package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// FromEnd asks Subscribe to start at the end of the tenant's log: only
// events committed after the subscription starts.
const FromEnd int64 = -1

// MaxWait bounds the wait of a long-poll read-all (ReadAllWait), so that
// an answer always comes well within the server's write timeout.
const MaxWait = 30 * time.Second

// WithFeed makes appends wake f's shared readers when they commit, and
// lets Subscribe and ReadAllWait serve live events from f.
func WithFeed(f *Feed) EventsOption {
	return func(e *Events) { e.feed = f }
}

// Subscription is one subscriber's place in the feed: it catches up from
// its start by reading the store in pages, then takes pages from the
// tenant's shared reader. Positions only move forward and each event is
// handed out once, so the switch from catching up to live has no gap and
// no duplicate. Not safe for concurrent use.
type Subscription struct {
	e      *Events
	p      eventvault.Principal
	filter eventvault.FeedFilter
	tf     *tenantFeed
	sub    *feedSub
	// next is the global position of the next event to hand out.
	next    int64
	pending *feedPage
}

// Subscribe starts a subscription of p to the tenant's events in global
// order from global position from (FromEnd: the end), with filter. Its
// events are opened through the read-all path, with read-all's policy
// (read_all) and per-field decisions; shredded events come as erased
// envelopes. Close it when done.
// Errors: EFORBIDDEN without read_all; EINVALID for a bad from or filter;
// EUNAVAILABLE on a server built without a feed.
func (e *Events) Subscribe(ctx context.Context, p eventvault.Principal, from int64, filter eventvault.FeedFilter) (*Subscription, error) {
	if _, err := policies.Check(p, policies.Request{Tenant: p.Tenant, Action: policies.ReadAll}); err != nil {
		return nil, err
	}
	if e.feed == nil {
		return nil, eventvault.Errorf(eventvault.EUNAVAILABLE, "this server serves no feed")
	}
	if from < FromEnd {
		return nil, eventvault.Errorf(eventvault.EINVALID, "cannot subscribe from global position %d; use a position >= 0, or the end", from)
	}
	if err := filter.Validate(); err != nil {
		return nil, err
	}
	tf, err := e.feed.acquire(ctx, p.Tenant)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s := &Subscription{e: e, p: p, filter: filter, tf: tf, sub: tf.subscribe(), next: from}
	head, err := e.feed.store.NextGlobalPosition(ctx, p.Tenant)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if from == FromEnd {
		s.next = head
	}
	if from > head {
		s.Close()
		return nil, pastTheEnd("from (or Last-Event-ID + 1)", from, head, true)
	}
	return s, nil
}

// pastTheEnd is the EINVALID of a start beyond the tenant's next global
// position head: accepted, it would skip every event committed below it
// (a position from another database, or a typo). The feed, a consumer and
// read-all (GET /v1/events, with or without wait) refuse it alike; head
// itself is a valid start (the next page of a reader at the end). orEnd
// says the request may also start at the end (from=end).
func pastTheEnd(what string, from, head int64, orEnd bool) error {
	alt := ""
	if orEnd {
		alt = ", or at the end"
	}
	return &eventvault.Error{Code: eventvault.EINVALID, Fields: map[string]any{"head": head},
		Message: fmt.Sprintf("%s is %d, past the end of the feed (the next global position is %d): start at a position up to %d%s", what, from, head, head, alt)}
}

// Position returns the global position of the next event the
// subscription hands out: a client resumes from it.
func (s *Subscription) Position() int64 { return s.next }

// Close ends the subscription.
func (s *Subscription) Close() {
	if s.tf != nil {
		s.e.feed.release(s.tf, s.sub)
		s.tf = nil
	}
}

// Next returns the next events that pass the filter, in global order,
// waiting for them up to idle; nil with a nil error when idle passed with
// none (the caller sends a heartbeat). Errors: ctx's; EFORBIDDEN once p
// may no longer read all; the read-all errors.
func (s *Subscription) Next(ctx context.Context, idle time.Duration) ([]eventvault.Event, error) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.pending == nil {
			select {
			case fp := <-s.sub.pages:
				s.pending = &fp
			default:
			}
		}
		var page eventvault.AllPage
		var to int64
		var err error
		switch fp := s.pending; {
		case fp != nil && fp.to <= s.next:
			s.pending = nil
			continue
		case fp != nil && fp.from <= s.next && fp.epoch == s.tf.epoch.Load():
			s.pending = nil
			page, to = fp.page, fp.to
		case fp != nil && fp.from <= s.next:
			// A key of the tenant was destroyed since the shared reader
			// read this page: read its events again, with their key rows
			// as they are now.
			if page, to, err = s.catchUp(ctx, fp.to); to >= fp.to {
				s.pending = nil
			}
		case fp != nil:
			// The shared reader moved on before this subscriber reached
			// it: read what lies between from the store.
			page, to, err = s.catchUp(ctx, fp.from)
		case s.tf.head.Load() > s.next:
			page, to, err = s.catchUp(ctx, s.tf.head.Load())
		default:
			select {
			case fp := <-s.sub.pages:
				s.pending = &fp
			case <-timer.C:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out, err := s.deliver(ctx, page)
		s.next = max(s.next, to)
		if err != nil || len(out) > 0 {
			return out, err
		}
	}
}

// catchUp reads the store from next, up to (not including) upto: the
// events below upto are committed. It returns the page and the position
// after it.
func (s *Subscription) catchUp(ctx context.Context, upto int64) (eventvault.AllPage, int64, error) {
	page, err := s.e.store.ReadAll(ctx, s.p.Tenant, s.next, DefaultReadLimit)
	if err != nil {
		return page, 0, fmt.Errorf("feed: catch up: %w", err)
	}
	for i, ev := range page.Events {
		if ev.GlobalPosition >= upto {
			page.Events = page.Events[:i]
			return page, upto, nil
		}
	}
	if len(page.Events) == 0 || page.Events[len(page.Events)-1].GlobalPosition+1 >= page.Next {
		// Nothing else below upto: positions between were purged. (A page
		// short of the limit does not say so: it may have stopped at
		// eventvault.MaxPageBytes.)
		return page, upto, nil
	}
	return page, page.Events[len(page.Events)-1].GlobalPosition + 1, nil
}

// deliver keeps the page's events at or after next that pass the filter
// on their envelope, opens them for p through the read-all path, and drops
// the tombstones whose streams the filter does not cover.
func (s *Subscription) deliver(ctx context.Context, page eventvault.AllPage) ([]eventvault.Event, error) {
	sel := eventvault.AllPage{Keys: page.Keys}
	for _, ev := range page.Events {
		if ev.GlobalPosition >= s.next && s.filter.MatchesEnvelope(ev.Stream, ev.Type) {
			sel.Events = append(sel.Events, ev)
		}
	}
	if len(sel.Events) == 0 {
		return nil, nil
	}
	out, err := s.e.openFeedPage(ctx, s.p, sel)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, ev := range out {
		if ev.Stream == eventvault.TombstoneStream && !ev.Erased {
			var ts eventvault.Tombstone
			if json.Unmarshal(ev.Data, &ts) == nil && !s.filter.CoversTombstone(ts) {
				continue
			}
		}
		kept = append(kept, ev)
	}
	return kept, nil
}

// openFeedPage opens a feed page for p as ReadAll opens a read-all page:
// the same policy (decided per page on p's grants as authenticated), the
// same opening (openAll) and the same audit of reads.
func (e *Events) openFeedPage(ctx context.Context, p eventvault.Principal, page eventvault.AllPage) ([]eventvault.Event, error) {
	d, err := policies.Check(p, policies.Request{Tenant: p.Tenant, Action: policies.ReadAll})
	if err != nil {
		return nil, err
	}
	out, err := e.openAll(ctx, p, page, false) // the page is the feed's, shared
	if err != nil {
		return nil, err
	}
	if d.AuditEach {
		if err := eventvault.AppendAuditEvents(ctx, e.audit, e.auditStore, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: "subscribe", Resource: auditResourceTenant, Outcome: AuditOutcomeOK,
			Detail: map[string]any{"events": len(out), "requests": 1, "by": d.By[0]}}); err != nil {
			return nil, err
		}
		return out, nil
	}
	e.reads.Read(p.Tenant, p.Actor(), "subscribe", auditResourceTenant, len(out))
	return out, nil
}

// ReadAllWait is ReadAll that, when nothing lies at or after from, waits
// up to wait (at most MaxWait) for an event to commit, then reads again:
// the long-poll variant of the feed. Errors: as ReadAll; EINVALID for a
// wait out of bounds.
func (e *Events) ReadAllWait(ctx context.Context, p eventvault.Principal, from int64, limit int, wait time.Duration) ([]eventvault.Event, error) {
	if wait < 0 || wait > MaxWait {
		return nil, eventvault.Errorf(eventvault.EINVALID, "wait must be between 0 and %d seconds", int(MaxWait/time.Second))
	}
	out, err := e.ReadAll(ctx, p, from, limit)
	if err != nil || len(out) > 0 || wait == 0 || e.feed == nil {
		return out, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := e.feed.waitBeyond(wctx, p.Tenant, from); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return out, nil // waited in vain: an empty page
	}
	return e.ReadAll(ctx, p, from, limit)
}
