package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventvault/eventvault"
)

// Feed bounds and defaults.
const (
	// DefaultFeedPoll is how often a tenant's shared reader reads the
	// store while it has subscribers, for events committed through other
	// nodes (an append on this node wakes it at once).
	DefaultFeedPoll = 200 * time.Millisecond
	// feedPageLimit is the page the shared reader reads at a time.
	feedPageLimit = 500
	// feedBuffer is how many pages a subscriber may fall behind the shared
	// reader before it reads the store itself to catch up.
	feedBuffer = 16
)

// Feed is this node's shared reader of each tenant's events in global
// order: one goroutine per tenant that has subscribers or long-poll
// waiters reads each new page from the store once and fans it out to all
// of them, so that no subscriber queries the store per event once it is
// live. Sealed pages are fanned out; each subscriber opens its page
// through the read-all path (Events.openAll) under its own principal.
//
// What wakes a reader: Notify, which Events calls after an append on this
// node commits (a non-blocking send, so writers never wait for
// subscribers), and a poll every Poll (DefaultFeedPoll) for events
// committed through other nodes. No NOTIFY is sent per append: a live
// event written through another node reaches this node's subscribers
// within Poll.
type Feed struct {
	store  eventvault.FeedStore
	poll   time.Duration
	logger *slog.Logger

	mu      sync.RWMutex // read-locked on every append (Notify)
	tenants map[eventvault.TenantID]*tenantFeed
	// reads counts the store reads of the shared readers: a measure that
	// the work per event does not grow with the subscribers.
	reads atomic.Int64
}

// NewFeed returns a Feed over store; poll 0 means DefaultFeedPoll. logger
// may be nil.
func NewFeed(store eventvault.FeedStore, poll time.Duration, logger *slog.Logger) *Feed {
	if poll <= 0 {
		poll = DefaultFeedPoll
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{store: store, poll: poll, logger: logger, tenants: map[eventvault.TenantID]*tenantFeed{}}
}

// SharedReads returns how many store reads the shared readers made.
func (f *Feed) SharedReads() int64 { return f.reads.Load() }

// Notify wakes the tenant's shared reader, if it runs: an append on this
// node committed. It never blocks.
func (f *Feed) Notify(tenant eventvault.TenantID) {
	f.mu.RLock()
	tf := f.tenants[tenant]
	f.mu.RUnlock()
	if tf != nil {
		select {
		case tf.wake <- struct{}{}:
		default:
		}
	}
}

// Evicting returns a KeyEvictor that evicts from k and also makes the
// tenant's shared reader's pages read before the eviction stale, so that
// no subscriber opens an event with a key row a shred has destroyed. Give
// it to the Erasure and to the listener of other nodes' evictions.
func (f *Feed) Evicting(k KeyEvictor) KeyEvictor { return feedEvictor{f: f, k: k} }

type feedEvictor struct {
	f *Feed
	k KeyEvictor
}

func (e feedEvictor) EvictStream(tenant eventvault.TenantID, stream eventvault.StreamName) {
	e.k.EvictStream(tenant, stream)
	e.f.invalidate(tenant)
}

func (e feedEvictor) EvictTenant(tenant eventvault.TenantID) {
	e.k.EvictTenant(tenant)
	e.f.invalidate(tenant)
}

func (f *Feed) invalidate(tenant eventvault.TenantID) {
	f.mu.RLock()
	tf := f.tenants[tenant]
	f.mu.RUnlock()
	if tf != nil {
		tf.epoch.Add(1)
	}
}

// feedPage is a page the shared reader read: every committed event with
// from <= global position < to, with the key rows read with them, and the
// tenant's key epoch before they were read.
type feedPage struct {
	from, to int64
	page     eventvault.AllPage
	epoch    uint64
}

type feedSub struct {
	pages chan feedPage
}

// tenantFeed is one tenant's shared reader.
type tenantFeed struct {
	f      *Feed
	tenant eventvault.TenantID
	// head is the global position the reader reads next: every event
	// below it has been fanned out.
	head atomic.Int64
	// epoch counts the keys of the tenant destroyed (evicted) since the
	// reader started: a page read before a shred carries the key row the
	// shred destroyed, so a subscriber reads such a page again rather
	// than open it (reads fail closed, DESIGN "Key hierarchy").
	epoch atomic.Uint64
	wake  chan struct{}
	stop  context.CancelFunc

	mu   sync.Mutex
	refs int
	subs map[*feedSub]struct{}
	// changed is closed, and replaced, each time head moves.
	changed chan struct{}
}

// acquire returns the tenant's running reader, starting one at the end of
// the tenant's log if none runs, and counts a user; release ends the use.
// Errors: the store's, reading where the log ends.
func (f *Feed) acquire(ctx context.Context, tenant eventvault.TenantID) (*tenantFeed, error) {
	f.mu.Lock()
	tf := f.tenants[tenant]
	f.mu.Unlock()
	var from int64
	if tf == nil {
		var err error
		if from, err = f.store.NextGlobalPosition(ctx, tenant); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tf = f.tenants[tenant]
	if tf == nil {
		ctx, cancel := context.WithCancel(context.Background())
		tf = &tenantFeed{f: f, tenant: tenant, wake: make(chan struct{}, 1), stop: cancel, subs: map[*feedSub]struct{}{}, changed: make(chan struct{})}
		tf.head.Store(from)
		f.tenants[tenant] = tf
		go tf.run(ctx)
	}
	tf.mu.Lock()
	tf.refs++
	tf.mu.Unlock()
	return tf, nil
}

func (f *Feed) release(tf *tenantFeed, sub *feedSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tf.mu.Lock()
	defer tf.mu.Unlock()
	if sub != nil {
		delete(tf.subs, sub)
	}
	tf.refs--
	if tf.refs == 0 {
		tf.stop()
		delete(f.tenants, tf.tenant)
	}
}

// subscribe registers a subscriber for the pages read from now on.
func (tf *tenantFeed) subscribe() *feedSub {
	s := &feedSub{pages: make(chan feedPage, feedBuffer)}
	tf.mu.Lock()
	tf.subs[s] = struct{}{}
	tf.mu.Unlock()
	return s
}

// changedChan returns the channel closed when head next moves.
func (tf *tenantFeed) changedChan() <-chan struct{} {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	return tf.changed
}

func (tf *tenantFeed) run(ctx context.Context) {
	timer := time.NewTimer(tf.f.poll)
	defer timer.Stop()
	for {
		tf.readAvailable(ctx)
		timer.Reset(tf.f.poll)
		select {
		case <-ctx.Done():
			return
		case <-tf.wake:
		case <-timer.C:
		}
	}
}

// readAvailable reads and fans out every page committed beyond head.
func (tf *tenantFeed) readAvailable(ctx context.Context) {
	for ctx.Err() == nil {
		from, epoch := tf.head.Load(), tf.epoch.Load()
		page, err := tf.f.store.ReadAll(ctx, tf.tenant, from, feedPageLimit)
		tf.f.reads.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				tf.f.logger.WarnContext(ctx, "feed: read failed; retrying at the next poll", slog.String("tenant", string(tf.tenant)), slog.Any("error", err))
			}
			return
		}
		if len(page.Events) == 0 {
			return
		}
		fp := feedPage{from: from, to: page.Events[len(page.Events)-1].GlobalPosition + 1, page: page, epoch: epoch}
		tf.mu.Lock()
		for s := range tf.subs {
			select {
			case s.pages <- fp:
			default:
				// Too far behind: the subscriber sees head beyond its
				// position and reads the store itself (Subscription.Next).
			}
		}
		tf.head.Store(fp.to)
		close(tf.changed)
		tf.changed = make(chan struct{})
		tf.mu.Unlock()
		// Caught up with the snapshot's head. (A page short of the limit
		// does not say so: it may have stopped at eventvault.MaxPageBytes.)
		if fp.to >= page.Next {
			return
		}
	}
}

// waitBeyond returns once the tenant's shared reader has read past from
// (an event at or after from is committed), or ctx ends.
func (f *Feed) waitBeyond(ctx context.Context, tenant eventvault.TenantID, from int64) error {
	tf, err := f.acquire(ctx, tenant)
	if err != nil {
		return err
	}
	defer f.release(tf, nil)
	for {
		ch := tf.changedChan()
		if tf.head.Load() > from {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
