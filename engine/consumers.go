package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// Audit actions of durable consumers.
const (
	AuditConsumerRegistered = "consumer_registered"
	AuditConsumerRemoved    = "consumer_removed"
	auditResourceConsumer   = "consumer:%s"
)

// Consumers keeps the tenant's durable consumers of the feed: their
// filters and the checkpoints their acknowledgements advance. Each
// acknowledgement and each removal moves the erasures waiting on that
// consumer (ErasurePropagating) along.
//
// Consumer groups (members splitting a feed's streams) are not provided:
// one consumer is one checkpoint. Several processes may share a consumer
// name; its checkpoint only moves forward, so the slowest acknowledgement
// is simply stale.
type Consumers struct {
	store  eventvault.SubscriptionStore
	log    eventvault.FeedStore
	erase  *Erasure
	audit  eventvault.AuditRecorder
	now    func() time.Time
	logger *slog.Logger
}

// NewConsumers returns Consumers over store, with log telling where the
// feed ends (for lag and for "from the end"), and erase (may be nil)
// completing erasures once their consumers have acknowledged. rec, when
// not nil, records registrations and removals. logger may be nil.
func NewConsumers(store eventvault.SubscriptionStore, log eventvault.FeedStore, erase *Erasure, rec eventvault.AuditRecorder, logger *slog.Logger) *Consumers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Consumers{store: store, log: log, erase: erase, audit: rec, now: time.Now, logger: logger}
}

// ConsumerStatus is a consumer with where the feed stands: Head is the
// global position the tenant's next event takes, Lag the positions
// between the consumer's checkpoint and Head (events of other categories
// and types count too).
type ConsumerStatus struct {
	eventvault.Consumer
	Head int64
	Lag  int64
}

func (c *Consumers) status(ctx context.Context, cs ...eventvault.Consumer) ([]ConsumerStatus, error) {
	if len(cs) == 0 {
		return []ConsumerStatus{}, nil
	}
	head, err := c.log.NextGlobalPosition(ctx, cs[0].Tenant)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	out := make([]ConsumerStatus, len(cs))
	for i, k := range cs {
		out[i] = ConsumerStatus{Consumer: k, Head: head, Lag: max(0, head-k.Checkpoint)}
	}
	return out, nil
}

func (c *Consumers) clock() time.Time { return c.now().UTC().Truncate(time.Microsecond) }

// Put registers the consumer name with filter, its checkpoint at global
// position from (FromEnd: the end of the log), or, for a consumer that
// exists, replaces its filter and keeps its checkpoint. created is true
// for a new consumer.
// Errors: EFORBIDDEN without subscribe; EINVALID for a bad name, filter or
// from.
func (c *Consumers) Put(ctx context.Context, p eventvault.Principal, name string, filter eventvault.FeedFilter, from int64) (st ConsumerStatus, created bool, err error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Subscribe}); err != nil {
		return st, false, err
	}
	if err := eventvault.ValidateConsumerName(name); err != nil {
		return st, false, err
	}
	if err := filter.ValidateAt("/filter"); err != nil { // PUT /v1/subscriptions/{name}'s body
		return st, false, err
	}
	if from < FromEnd {
		return st, false, eventvault.FieldErrorf("/from", "from must be a global position >= 0, or \"end\"")
	}
	head, err := c.log.NextGlobalPosition(ctx, p.Tenant)
	if err != nil {
		return st, false, fmt.Errorf("register consumer %s: %w", name, err)
	}
	if from == FromEnd {
		from = head
	}
	if from > head {
		return st, false, eventvault.AtPointer(pastTheEnd("from", from, head, true), "/from")
	}
	actx, err := eventvault.WithAuditEvents(ctx, c.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditConsumerRegistered,
		Resource: fmt.Sprintf(auditResourceConsumer, name), Outcome: AuditOutcomeOK, Detail: map[string]any{"categories": len(filter.Categories), "types": len(filter.Types)}})
	if err != nil {
		return st, false, err
	}
	k, created, err := c.store.PutConsumer(actx, eventvault.Consumer{Tenant: p.Tenant, Name: name, Filter: filter, Checkpoint: from, CreatedAt: c.clock(), CreatedBy: p.Actor()})
	if err != nil {
		return st, false, err
	}
	sts, err := c.status(ctx, k)
	if err != nil {
		return st, false, err
	}
	return sts[0], created, nil
}

// Get returns one consumer with its lag.
// Errors: EFORBIDDEN without subscribe; ENOTFOUND.
func (c *Consumers) Get(ctx context.Context, p eventvault.Principal, name string) (ConsumerStatus, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Subscribe}); err != nil {
		return ConsumerStatus{}, err
	}
	k, err := c.store.Consumer(ctx, p.Tenant, name)
	if err != nil {
		return ConsumerStatus{}, err
	}
	sts, err := c.status(ctx, k)
	if err != nil {
		return ConsumerStatus{}, err
	}
	return sts[0], nil
}

// List returns the tenant's consumers by name, with their lag.
// Errors: EFORBIDDEN without subscribe.
func (c *Consumers) List(ctx context.Context, p eventvault.Principal) ([]ConsumerStatus, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Subscribe}); err != nil {
		return nil, err
	}
	ks, err := c.store.Consumers(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	return c.status(ctx, ks...)
}

// Ack acknowledges every event of the feed up to and including global
// position position: the checkpoint moves to position+1 if that is
// forward (a stale acknowledgement changes nothing). Erasures waiting on
// the consumer whose tombstone lies at or below position move on.
// Errors: EFORBIDDEN without subscribe; ENOTFOUND; EINVALID for a
// position below 0 or not yet committed.
func (c *Consumers) Ack(ctx context.Context, p eventvault.Principal, name string, position int64) (ConsumerStatus, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Subscribe}); err != nil {
		return ConsumerStatus{}, err
	}
	if _, err := c.store.Consumer(ctx, p.Tenant, name); err != nil {
		return ConsumerStatus{}, err
	}
	head, err := c.log.NextGlobalPosition(ctx, p.Tenant)
	if err != nil {
		return ConsumerStatus{}, fmt.Errorf("acknowledge: %w", err)
	}
	if position < 0 || position >= head {
		return ConsumerStatus{}, &eventvault.Error{Code: eventvault.EINVALID,
			Message: fmt.Sprintf("position %d is not the global position of a committed event (the feed ends before %d): acknowledge the id of the last event you processed", position, head),
			Fields:  map[string]any{"head": head, "pointer": "/position"}}
	}
	k, err := c.store.AckConsumer(ctx, p.Tenant, name, position+1, c.clock())
	if err != nil {
		return ConsumerStatus{}, err
	}
	if c.erase != nil {
		if err := c.erase.advancePropagations(ctx, p.Tenant); err != nil {
			// The acknowledgement stands; the next one, or a GET of the
			// request, moves the erasure on.
			c.logger.WarnContext(ctx, "acknowledged, but moving erasures on failed", slog.String("tenant", string(p.Tenant)), slog.String("consumer", name), slog.Any("error", err))
		}
	}
	sts, err := c.status(ctx, k)
	if err != nil {
		return ConsumerStatus{}, err
	}
	return sts[0], nil
}

// Delete removes a consumer, recorded in the audit log in the same
// transaction. An erasure still waiting on it no longer does: the
// certificate states the removal, by whom and when.
// Errors: EFORBIDDEN without manage_subscriptions; ENOTFOUND.
func (c *Consumers) Delete(ctx context.Context, p eventvault.Principal, name string) error {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.ManageSubscriptions}); err != nil {
		return err
	}
	k, err := c.store.Consumer(ctx, p.Tenant, name)
	if err != nil {
		return err
	}
	actx, err := eventvault.WithAuditEvents(ctx, c.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditConsumerRemoved,
		Resource: fmt.Sprintf(auditResourceConsumer, name), Outcome: AuditOutcomeOK, Detail: map[string]any{"checkpoint": k.Checkpoint}})
	if err != nil {
		return err
	}
	if err := c.store.DeleteConsumer(actx, p.Tenant, name); err != nil {
		return err
	}
	c.logger.InfoContext(ctx, "consumer removed", slog.String("tenant", string(p.Tenant)), slog.String("consumer", name), slog.String("by", p.Actor()))
	if c.erase != nil {
		if err := c.erase.consumerRemoved(ctx, p.Tenant, k, p.Actor(), c.clock()); err != nil {
			return fmt.Errorf("the consumer is removed, but the erasures waiting on it did not move on (read them to retry): %w", err)
		}
	}
	return nil
}
