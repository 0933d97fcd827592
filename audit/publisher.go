package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/eventvault/eventvault"
)

// DefaultCheckpointInterval is how often a node publishes checkpoints: the
// bound on how long a record stays outside a signed checkpoint.
const DefaultCheckpointInterval = 10 * time.Second

// Publisher integrates the records of each log into its Merkle tree (the
// stored hashes) and publishes a signed checkpoint of every log that grew:
// in the store, and, when Dir is set, as a file outside the database
// (Dir/<tenant>/<size>.checkpoint, and Dir/<tenant>/latest), so that
// whoever owns the database cannot rewrite history unnoticed. Nodes
// sharing a store may publish at once: a hash or a checkpoint stored by
// another is left as it is.
type Publisher struct {
	Store    eventvault.AuditStore
	Signer   *Signer
	Dir      string        // "" writes no files
	Interval time.Duration // DefaultCheckpointInterval when 0
	Logger   *slog.Logger  // nil: no logs
}

// storeHashes reads a log's stored hashes for tlog.
type storeHashes struct {
	ctx    context.Context
	store  eventvault.AuditStore
	tenant eventvault.TenantID
	// fresh are hashes computed in this run, not stored yet.
	fresh map[int64]tlog.Hash
}

func (s *storeHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	var at []int
	for i, idx := range indexes {
		if h, ok := s.fresh[idx]; ok {
			out[i] = h
			continue
		}
		missing = append(missing, idx)
		at = append(at, i)
	}
	if len(missing) == 0 {
		return out, nil
	}
	hs, err := s.store.AuditHashes(s.ctx, s.tenant, missing)
	if err != nil {
		return nil, err
	}
	for j, h := range hs {
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("stored audit hash %d is %d bytes", missing[j], len(h))
		}
		copy(out[at[j]][:], h)
	}
	return out, nil
}

// Hashes returns the tlog.HashReader of tenant's stored hashes.
func Hashes(ctx context.Context, store eventvault.AuditStore, tenant eventvault.TenantID) tlog.HashReader {
	return &storeHashes{ctx: ctx, store: store, tenant: tenant, fresh: map[int64]tlog.Hash{}}
}

// PublishOnce publishes a checkpoint of every log that grew since its
// last, and returns how many it published.
func (p *Publisher) PublishOnce(ctx context.Context) (int, error) {
	logs, err := p.Store.AuditTenants(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit logs: %w", err)
	}
	n := 0
	var errs []error
	for _, tenant := range logs {
		published, err := p.publish(ctx, tenant)
		if err != nil {
			errs = append(errs, fmt.Errorf("log %s: %w", LogTenant(tenant), err))
			continue
		}
		if published {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// publish integrates tenant's new records and signs a checkpoint.
func (p *Publisher) publish(ctx context.Context, tenant eventvault.TenantID) (bool, error) {
	size, err := p.Store.AuditSize(ctx, tenant)
	if err != nil {
		return false, err
	}
	done, _, err := p.Store.LatestAuditCheckpoint(ctx, tenant)
	if err != nil && eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		return false, err
	}
	if size <= done {
		return false, nil
	}
	lines, err := p.Store.AuditRecords(ctx, tenant, done, size)
	if err != nil {
		return false, err
	}
	hr := &storeHashes{ctx: ctx, store: p.Store, tenant: tenant, fresh: map[int64]tlog.Hash{}}
	for i, line := range lines {
		index := done + int64(i)
		hs, err := tlog.StoredHashes(index, line, hr)
		if err != nil {
			return false, fmt.Errorf("hashes of record %d: %w", index, err)
		}
		start := tlog.StoredHashIndex(0, index)
		raw := make([][]byte, len(hs))
		for j := range hs {
			hr.fresh[start+int64(j)] = hs[j]
			raw[j] = hs[j][:]
		}
		// Another node may have stored them (it computed the same).
		if err := p.Store.AddAuditHashes(ctx, tenant, start, raw); err != nil && eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			return false, fmt.Errorf("store hashes of record %d: %w", index, err)
		}
	}
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		return false, fmt.Errorf("tree hash: %w", err)
	}
	note, err := p.Signer.Sign(Checkpoint{Origin: p.Signer.Origin(LogTenant(tenant)), Size: size, Root: root})
	if err != nil {
		return false, err
	}
	if err := p.Store.AddAuditCheckpoint(ctx, tenant, size, note); err != nil {
		if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
			return false, nil // another node published this size
		}
		return false, fmt.Errorf("store checkpoint: %w", err)
	}
	if p.Dir != "" {
		if err := p.writeFile(tenant, size, note); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeFile writes the checkpoint outside the database, never over an
// existing one of that size.
func (p *Publisher) writeFile(tenant eventvault.TenantID, size int64, note []byte) error {
	dir := filepath.Join(p.Dir, LogTenant(tenant))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint folder: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%d.checkpoint", size))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("write checkpoint file: %w", err)
	}
	if err == nil {
		_, werr := f.Write(note)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("write checkpoint file: %w", werr)
		}
	}
	tmp := filepath.Join(dir, ".latest.tmp")
	if err := os.WriteFile(tmp, note, 0o644); err != nil {
		return fmt.Errorf("write checkpoint file: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "latest"))
}

// Run publishes every Interval until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.PublishOnce(ctx); err != nil && p.Logger != nil && ctx.Err() == nil {
				p.Logger.Warn("audit checkpoints not published; retried at the next interval", slog.Any("err", err))
			}
		}
	}
}
