package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// tombstoneNamespace derives the event ids of shred tombstones (UUIDv5).
var tombstoneNamespace = uuid.MustParse("5f0c7a1e-2d4b-4e8a-9c3f-6b1d2e7a8f90")

// WithPropagation makes every shred and every erasure put a tombstone into
// the feed through t, and holds an erasure request in ErasurePropagating
// until every consumer of subs whose filter covers the erased streams has
// acknowledged a position past its tombstone (GDPR Art. 17(2) and 19:
// recipients of the data are told, and the certificate says who
// acknowledged and when). Without it, erasures complete at once, as
// before.
func WithPropagation(t Tombstoner, subs eventvault.SubscriptionStore) ErasureOption {
	return func(e *Erasure) { e.tombstones, e.subs = t, subs }
}

// tombstoneShred writes the tombstone of a stream shred. Its event id is
// derived from the tenant, stream and destroyed key, and a shred asked
// again returns the first shred's record, so asking again replays the
// tombstone (or writes it, if the first attempt failed) and never writes
// a second one.
func (e *Erasure) tombstoneShred(ctx context.Context, tenant eventvault.TenantID, actor string, s eventvault.Shred) error {
	if e.tombstones == nil {
		return nil
	}
	ts := eventvault.Tombstone{Kind: eventvault.TombstoneKindShred, Streams: []eventvault.StreamName{s.Stream}, SubjectPseudonym: s.Subject,
		CertificateID: s.KeyID.String(), At: s.ShreddedAt}
	id := uuid.NewSHA1(tombstoneNamespace, []byte(string(tenant)+"\x00"+string(s.Stream)+"\x00"+s.KeyID.String()))
	if _, err := e.tombstones.AppendTombstone(ctx, tenant, actor, id, ts); err != nil {
		return fmt.Errorf("stream %s is shredded, but its tombstone did not reach the feed (shred it again to retry): %w", s.Stream, err)
	}
	return nil
}

// awaitConsumers writes the erasure's tombstone and records which
// consumers must acknowledge it. wait is true when some must: req is then
// stored as ErasurePropagating, and completed later by
// advancePropagations. A request resumed after a failure reuses the
// propagation it recorded. With no consumer to wait for, cert gets the
// tombstone's position and req completes now.
func (e *Erasure) awaitConsumers(ctx context.Context, req *eventvault.ErasureRequest, cert *eventvault.ErasureCertificate, shredded map[eventvault.StreamName]bool) (wait bool, err error) {
	if e.tombstones == nil || e.subs == nil {
		return false, nil
	}
	prop, err := e.subs.Propagation(ctx, req.Tenant, req.ID)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		prop, err = e.startPropagation(ctx, *req, *cert, slices.Sorted(maps.Keys(shredded)))
	}
	if err != nil {
		return false, fmt.Errorf("erasure %s: propagate: %w", req.ID, err)
	}
	if len(prop.Pending) == 0 {
		applyPropagation(cert, prop)
		return false, nil
	}
	req.State = eventvault.ErasurePropagating
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, e.stateEvent(*req, AuditErasureState))
	if err != nil {
		return false, err
	}
	if err := e.store.UpdateErasureRequest(actx, *req); err != nil {
		return false, fmt.Errorf("erasure %s: propagating: %w", req.ID, err)
	}
	e.logger.InfoContext(ctx, "erasure propagating", slog.String("tenant", string(req.Tenant)), slog.String("request_id", req.ID.String()),
		slog.Int64("tombstone", prop.TombstonePosition), slog.Int("consumers", len(prop.Pending)))
	return true, nil
}

func (e *Erasure) startPropagation(ctx context.Context, req eventvault.ErasureRequest, cert eventvault.ErasureCertificate, streams []eventvault.StreamName) (eventvault.Propagation, error) {
	ts := eventvault.Tombstone{Kind: eventvault.TombstoneKindErasure, Streams: streams, SubjectPseudonym: req.Subject, CertificateID: req.ID.String(), At: cert.ErasedAt}
	if ts.Streams == nil {
		ts.Streams = []eventvault.StreamName{}
	}
	for _, dk := range cert.DestroyedKeys {
		ts.PersonalValues = ts.PersonalValues || dk.Kind == "subject"
	}
	pos, err := e.tombstones.AppendTombstone(ctx, req.Tenant, req.RequestedBy, uuid.Nil, ts)
	if err != nil {
		return eventvault.Propagation{}, err
	}
	consumers, err := e.subs.Consumers(ctx, req.Tenant)
	if err != nil {
		return eventvault.Propagation{}, err
	}
	var pending []string
	for _, k := range consumers {
		if k.Checkpoint <= pos && k.Filter.CoversTombstone(ts) {
			pending = append(pending, k.Name)
		}
	}
	body, err := json.Marshal(cert)
	if err != nil {
		return eventvault.Propagation{}, err
	}
	return e.subs.CreatePropagation(ctx, eventvault.Propagation{Tenant: req.Tenant, RequestID: req.ID, TombstonePosition: pos, Streams: streams,
		Pending: pending, Certificate: body, Done: len(pending) == 0, CreatedAt: e.clock()})
}

// applyPropagation states in cert where the tombstone lies and who
// acknowledged it or was removed.
func applyPropagation(cert *eventvault.ErasureCertificate, prop eventvault.Propagation) {
	pos := prop.TombstonePosition
	cert.TombstonePosition = &pos
	cert.ConsumersAcknowledged, cert.ConsumersRemoved = prop.Acks, prop.Removed
}

// advancePropagations moves every open propagation of the tenant on: a
// pending consumer whose checkpoint passed the tombstone is recorded as
// acknowledged (with the time of its acknowledgement), and a propagation
// with none pending completes its request.
func (e *Erasure) advancePropagations(ctx context.Context, tenant eventvault.TenantID) error {
	if e.subs == nil {
		return nil
	}
	open, err := e.subs.OpenPropagations(ctx, tenant)
	if err != nil || len(open) == 0 {
		return err
	}
	consumers, err := e.subs.Consumers(ctx, tenant)
	if err != nil {
		return err
	}
	byName := make(map[string]eventvault.Consumer, len(consumers))
	for _, k := range consumers {
		byName[k.Name] = k
	}
	for _, prop := range open {
		if err := e.advance(ctx, prop.Tenant, prop.RequestID, func(p *eventvault.Propagation) {
			p.Pending = slices.DeleteFunc(p.Pending, func(name string) bool {
				k, ok := byName[name]
				switch {
				case !ok:
					// Removed, and consumerRemoved did not get to record
					// it: the audit log's consumer_removed names who.
					p.Removed = append(p.Removed, eventvault.ConsumerRemoval{Consumer: name, RemovedAt: e.clock(), RemovedBy: "see the audit log (consumer_removed)"})
					return true
				case k.Checkpoint > p.TombstonePosition:
					p.Acks = append(p.Acks, eventvault.ConsumerAck{Consumer: name, Checkpoint: k.Checkpoint, AcknowledgedAt: k.AckedAt})
					return true
				}
				return false
			})
		}); err != nil {
			return err
		}
	}
	return nil
}

// consumerRemoved records, in every open propagation waiting on k, that
// an admin removed it, and moves them on.
func (e *Erasure) consumerRemoved(ctx context.Context, tenant eventvault.TenantID, k eventvault.Consumer, by string, at time.Time) error {
	if e.subs == nil {
		return nil
	}
	open, err := e.subs.OpenPropagations(ctx, tenant)
	if err != nil {
		return err
	}
	for _, prop := range open {
		if !slices.Contains(prop.Pending, k.Name) {
			continue
		}
		if err := e.advance(ctx, tenant, prop.RequestID, func(p *eventvault.Propagation) {
			if slices.Contains(p.Pending, k.Name) {
				p.Pending = slices.DeleteFunc(p.Pending, func(n string) bool { return n == k.Name })
				p.Removed = append(p.Removed, eventvault.ConsumerRemoval{Consumer: k.Name, Checkpoint: k.Checkpoint, RemovedAt: at, RemovedBy: by})
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

// advance applies change to a propagation and, once none is pending,
// completes its request with the signed certificate.
func (e *Erasure) advance(ctx context.Context, tenant eventvault.TenantID, id uuid.UUID, change func(*eventvault.Propagation)) error {
	finished := false
	prop, err := e.subs.UpdatePropagation(ctx, tenant, id, func(p *eventvault.Propagation) error {
		if p.Done {
			return nil
		}
		change(p)
		finished = len(p.Pending) == 0
		p.Done = finished
		return nil
	})
	if err != nil || !finished {
		return err
	}
	req, err := e.store.ErasureRequest(ctx, tenant, id)
	if err != nil {
		return err
	}
	_, err = e.completePropagated(ctx, req, prop)
	return err
}

// completePropagated signs and stores the certificate of a request whose
// consumers have all acknowledged (or been removed).
func (e *Erasure) completePropagated(ctx context.Context, req eventvault.ErasureRequest, prop eventvault.Propagation) (eventvault.ErasureRequest, error) {
	if req.State != eventvault.ErasurePropagating {
		return req, nil
	}
	var cert eventvault.ErasureCertificate
	if err := json.Unmarshal(prop.Certificate, &cert); err != nil {
		return req, fmt.Errorf("erasure %s: stored certificate: %w", req.ID, err)
	}
	applyPropagation(&cert, prop)
	cert.Statement += fmt.Sprintf(" Its tombstone (global position %d) was acknowledged by %s; %s removed by an administrator before acknowledging it.",
		prop.TombstonePosition, count(len(prop.Acks), "registered consumer", "registered consumers"), count(len(prop.Removed), "was", "were"))
	return e.finish(ctx, req, cert)
}

// advanceRequest moves a propagating request on (a consumer may have
// acknowledged through another node) and returns it as it stands.
func (e *Erasure) advanceRequest(ctx context.Context, req eventvault.ErasureRequest) (eventvault.ErasureRequest, error) {
	if e.subs == nil {
		return req, nil // a server built without propagation leaves it as it is
	}
	if err := e.advancePropagations(ctx, req.Tenant); err != nil {
		return req, err
	}
	prop, err := e.subs.Propagation(ctx, req.Tenant, req.ID)
	if err != nil {
		return req, err
	}
	if prop.Done {
		// Completed here, or by an update whose completion failed: finish
		// it (completing twice is harmless: a completed request stays).
		if req, err = e.store.ErasureRequest(ctx, req.Tenant, req.ID); err != nil {
			return req, err
		}
		return e.completePropagated(ctx, req, prop)
	}
	return req, nil
}

// PendingConsumer is a consumer an erasure still waits on, with its lag
// behind the tombstone (positions).
type PendingConsumer struct {
	Consumer   string
	Checkpoint int64
	Lag        int64
}

// maxPropagationLooks bounds how often Propagation moves a request on and
// looks again because its pending consumers acknowledged or went away
// while it looked.
const maxPropagationLooks = 3

// Propagation returns a request of the caller's tenant as it stands now
// (moved on first, if consumers acknowledged) with its propagation: the
// tombstone, who acknowledged, who was removed, and who is pending with
// its lag behind the tombstone. prop is nil for a request without one.
// The three agree: a propagating request has pending consumers, each
// still behind the tombstone, and any other has none (a consumer that
// acknowledged or was removed while this looked moves the request on,
// and it looks again).
// Errors: EFORBIDDEN without erase; ENOTFOUND.
func (e *Erasure) Propagation(ctx context.Context, p eventvault.Principal, id uuid.UUID) (req eventvault.ErasureRequest, prop *eventvault.Propagation, pending []PendingConsumer, err error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Erase}); err != nil {
		return req, nil, nil, err
	}
	if req, err = e.store.ErasureRequest(ctx, p.Tenant, id); err != nil {
		return req, nil, nil, fmt.Errorf("erasure request %s: %w", id, err)
	}
	if e.subs == nil {
		return req, nil, nil, nil
	}
	for look := 1; ; look++ {
		if req.State == eventvault.ErasurePropagating {
			if req, err = e.advanceRequest(ctx, req); err != nil {
				return req, nil, nil, err
			}
		}
		pr, err := e.subs.Propagation(ctx, p.Tenant, id)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			return req, nil, nil, nil
		}
		if err != nil {
			return req, nil, nil, err
		}
		pending = nil
		if req.State == eventvault.ErasurePropagating && !pr.Done {
			for _, name := range pr.Pending {
				k, err := e.subs.Consumer(ctx, p.Tenant, name)
				if err != nil || k.Checkpoint > pr.TombstonePosition {
					continue // removed, or acknowledged, meanwhile
				}
				pending = append(pending, PendingConsumer{Consumer: name, Checkpoint: k.Checkpoint, Lag: pr.TombstonePosition + 1 - k.Checkpoint})
			}
		}
		if req.State != eventvault.ErasurePropagating || len(pending) > 0 || look == maxPropagationLooks {
			return req, &pr, pending, nil
		}
		// Every consumer it waited on moved on while this looked (here
		// or on another node): move the request on, and look again.
		if req, err = e.store.ErasureRequest(ctx, p.Tenant, id); err != nil {
			return req, nil, nil, fmt.Errorf("erasure request %s: %w", id, err)
		}
	}
}
