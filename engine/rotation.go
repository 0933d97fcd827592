package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// Rotation rotates keys on behalf of a principal: a tenant's KEK for the
// root token or an admin of that tenant, the root key for the root token
// only. Nothing is re-encrypted but wrapped keys: events stay as they are,
// and appends and reads go on meanwhile.
type Rotation struct {
	keys   KeyRotator
	logger *slog.Logger
	// audit and auditStore, when set, record each rotation: a record
	// before it starts (no record, no rotation) and one with its outcome.
	audit      eventvault.AuditRecorder
	auditStore eventvault.AuditStore
}

// WithAudit makes r record every rotation and retirement in the audit
// log: the tenant's for a KEK, the deployment's for the root key. It
// returns r.
func (r *Rotation) WithAudit(rec eventvault.AuditRecorder, store eventvault.AuditStore) *Rotation {
	r.audit, r.auditStore = rec, store
	return r
}

// recordRotation writes the record of a rotation step. Before the step
// (an action "..._started") an error stops it; after, the outcome is recorded
// and an error in recording is returned only if the step succeeded.
func (r *Rotation) recordRotation(ctx context.Context, log eventvault.TenantID, p eventvault.Principal, action, resource, outcome string, detail map[string]any) error {
	return eventvault.AppendAuditEvents(ctx, r.audit, r.auditStore, eventvault.AuditEvent{Tenant: log, Actor: p.Actor(), Action: action, Resource: resource, Outcome: outcome, Detail: detail})
}

// TenantKeyRotator adds versions of a tenant's KEK and moves the tenant's
// stream keys to the newest: crypto.KeyManager implements it.
type TenantKeyRotator interface {
	// RotateTenantKEK adds a KEK version and returns it. Errors: EINVALID,
	// ENOTFOUND without a KEK, ECONFLICT if another rotation won.
	RotateTenantKEK(ctx context.Context, tenant eventvault.TenantID) (uint32, error)
	// RewrapStreamKeys moves every stream key to the newest KEK version and
	// returns how many it moved; it is resumable.
	RewrapStreamKeys(ctx context.Context, tenant eventvault.TenantID, progress func(done int)) (int, error)
}

// RootKeyRotator adds and retires root key versions and moves tenant KEKs
// to the newest: crypto.KeyManager implements it.
type RootKeyRotator interface {
	// RotateRoot adds a root key version and returns it. Errors: EINVALID
	// for a provider that cannot rotate.
	RotateRoot(ctx context.Context) (int, error)
	// RewrapRootWrapped moves every KEK version to the newest root version
	// and returns how many it moved; it is resumable.
	RewrapRootWrapped(ctx context.Context, progress func(done int)) (int, error)
	// RetireRootVersionsBefore makes older root versions unusable.
	// Errors: EINVALID, ECONFLICT while a KEK still needs one.
	RetireRootVersionsBefore(ctx context.Context, version int) error
}

// KeyRotator is what a Rotation needs of the key manager.
type KeyRotator interface {
	TenantKeyRotator
	RootKeyRotator
}

// NewRotation returns a Rotation over the key manager. logger may be nil.
func NewRotation(keys KeyRotator, logger *slog.Logger) *Rotation {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Rotation{keys: keys, logger: logger}
}

// TenantRotation is the outcome of a tenant KEK rotation.
type TenantRotation struct {
	Tenant           eventvault.TenantID
	Version          uint32 // the new KEK version
	RewrappedStreams int    // stream keys moved to it by this call
}

// RootRotation is the outcome of a root key rotation.
type RootRotation struct {
	RootVersion   int // the new root key version
	RewrappedKEKs int // KEK versions re-wrapped under it
}

// RotateTenantKEK adds a version of the tenant's KEK and re-wraps every
// stream key of the tenant under it. If the re-wrap stops half-way, the new
// version stays and calling again (or `eventvault rotate tenant -resume`)
// finishes the job; every stream stays readable meanwhile.
// Errors: EINVALID for a malformed tenant; EFORBIDDEN unless p is root or an
// admin of the tenant; ENOTFOUND if the tenant has no key; ECONFLICT if a
// concurrent rotation added the version first; the keyring's codes.
func (r *Rotation) RotateTenantKEK(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) (TenantRotation, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return TenantRotation{}, err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.ManageKeys}); err != nil {
		return TenantRotation{}, err
	}
	out := TenantRotation{Tenant: tenant}
	if err := r.recordRotation(ctx, tenant, p, "kek_rotation_started", auditResourceTenant, AuditOutcomeOK, nil); err != nil {
		return out, err
	}
	v, err := r.keys.RotateTenantKEK(ctx, tenant)
	if err != nil {
		_ = r.recordRotation(ctx, tenant, p, AuditKEKRotated, auditResourceTenant, AuditOutcomeFailed, map[string]any{"error": string(eventvault.ErrorCode(err))})
		return out, fmt.Errorf("rotate the key of tenant %s: %w", tenant, err)
	}
	out.Version = v
	r.logger.InfoContext(ctx, "rotated a tenant key", slog.String("tenant", string(tenant)), slog.Uint64("version", uint64(v)), slog.String("by", p.Actor()))
	out.RewrappedStreams, err = r.keys.RewrapStreamKeys(ctx, tenant, nil)
	if err != nil {
		return out, partial(err, map[string]any{"tenant": string(tenant), "version": v, "rewrapped_streams": out.RewrappedStreams},
			"version %d of the key of tenant %s was added, but re-wrapping its stream keys stopped after %d; every stream stays readable. Run the rotation again, or eventvault rotate tenant -resume",
			v, tenant, out.RewrappedStreams)
	}
	r.logger.InfoContext(ctx, "re-wrapped stream keys", slog.String("tenant", string(tenant)), slog.Uint64("version", uint64(v)), slog.Int("streams", out.RewrappedStreams))
	if err := r.recordRotation(ctx, tenant, p, AuditKEKRotated, auditResourceTenant, AuditOutcomeOK, map[string]any{"version": uint64(v), "rewrapped_streams": out.RewrappedStreams}); err != nil {
		return out, err
	}
	return out, nil
}

// RotateRoot adds a root key version and re-wraps every tenant KEK under
// it. If the re-wrap stops half-way, calling again finishes it (under a
// newer version still), or `eventvault rotate root -resume` without one.
// Errors: EFORBIDDEN unless p is root; EINVALID if the root key provider
// cannot rotate (the local root key); the keyring's codes.
func (r *Rotation) RotateRoot(ctx context.Context, p eventvault.Principal) (RootRotation, error) {
	if err := requireRoot(p, "rotate the root key"); err != nil {
		return RootRotation{}, err
	}
	var out RootRotation
	if err := r.recordRotation(ctx, eventvault.DeploymentLog, p, "root_rotation_started", "root_key", AuditOutcomeOK, nil); err != nil {
		return out, err
	}
	v, err := r.keys.RotateRoot(ctx)
	if err != nil {
		_ = r.recordRotation(ctx, eventvault.DeploymentLog, p, AuditRootRotated, "root_key", AuditOutcomeFailed, map[string]any{"error": string(eventvault.ErrorCode(err))})
		return out, err
	}
	out.RootVersion = v
	r.logger.InfoContext(ctx, "rotated the root key", slog.Int("root_version", v), slog.String("by", p.Actor()))
	out.RewrappedKEKs, err = r.keys.RewrapRootWrapped(ctx, nil)
	if err != nil {
		return out, partial(err, map[string]any{"root_version": v, "rewrapped_keks": out.RewrappedKEKs},
			"root key version %d was added, but re-wrapping tenant keys stopped after %d; every key stays readable. Run the rotation again, or eventvault rotate root -resume",
			v, out.RewrappedKEKs)
	}
	r.logger.InfoContext(ctx, "re-wrapped tenant keys under the root key", slog.Int("root_version", v), slog.Int("keks", out.RewrappedKEKs))
	if err := r.recordRotation(ctx, eventvault.DeploymentLog, p, AuditRootRotated, "root_key", AuditOutcomeOK, map[string]any{"root_version": v, "rewrapped_keks": out.RewrappedKEKs}); err != nil {
		return out, err
	}
	return out, nil
}

// RetireRootVersions makes root key versions older than before unusable
// (Vault Transit's min_decryption_version), so that tenant KEK rows in
// old backups can no longer be unwrapped. It refuses while any KEK is
// still wrapped under such a version.
// Errors: EFORBIDDEN unless p is root; EINVALID for a version below 1 or
// above the newest, or a provider that cannot rotate; ECONFLICT while a KEK
// still needs an older version (Fields: remaining_keks,
// oldest_root_version); the keyring's codes.
func (r *Rotation) RetireRootVersions(ctx context.Context, p eventvault.Principal, before int) error {
	if err := requireRoot(p, "retire root key versions"); err != nil {
		return err
	}
	if err := r.recordRotation(ctx, eventvault.DeploymentLog, p, "root_retirement_started", "root_key", AuditOutcomeOK, map[string]any{"before_version": before}); err != nil {
		return err
	}
	if err := r.keys.RetireRootVersionsBefore(ctx, before); err != nil {
		_ = r.recordRotation(ctx, eventvault.DeploymentLog, p, AuditRootRetired, "root_key", AuditOutcomeFailed, map[string]any{"before_version": before, "error": string(eventvault.ErrorCode(err))})
		return err
	}
	if err := r.recordRotation(ctx, eventvault.DeploymentLog, p, AuditRootRetired, "root_key", AuditOutcomeOK, map[string]any{"before_version": before}); err != nil {
		return err
	}
	r.logger.WarnContext(ctx, "retired root key versions: what they wrapped can no longer be unwrapped", slog.Int("before_version", before), slog.String("by", p.Actor()))
	return nil
}

// partial is the error of a rotation that added a version but did not
// finish re-wrapping: the cause's code, a message saying what was done and
// how to finish, the cause's message, and fields with the counts.
func partial(cause error, fields map[string]any, format string, args ...any) error {
	return &eventvault.Error{
		Code:    eventvault.ErrorCode(cause),
		Message: fmt.Sprintf(format, args...) + ". Cause: " + eventvault.ErrorMessage(cause),
		Fields:  fields,
		Err:     cause,
	}
}

func requireRoot(p eventvault.Principal, what string) error {
	if !p.Root {
		return eventvault.Errorf(eventvault.EFORBIDDEN, "only the root token may %s; a tenant admin may rotate its tenant's key (POST /v1/admin/tenants/{tenant}/kek/rotate)", what)
	}
	return nil
}
