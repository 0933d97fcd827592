package crypto

import (
	"context"
	"fmt"

	"github.com/eventvault/eventvault"
)

// RewrapSubjectKeys re-wraps every live subject key of the tenant that is
// wrapped under a KEK version older than target with target, by
// compare-and-swap, as RewrapStreamKeys does for stream keys (and is
// called by it): subject key ids and bytes never change, so no personal
// value is re-encrypted. It does nothing when the store keeps no subject
// keys (it is not an eventvault.PIIStore). It returns how many it
// re-wrapped.
// Errors: EINTERNAL wrapping ErrAuthentication for a key row that does not
// open; ECONFLICT when a row keeps changing; the store's codes.
func (m *KeyManager) rewrapSubjectKeys(ctx context.Context, tenant eventvault.TenantID, target *tenantKEK) (int, error) {
	const op = "crypto.KeyManager.RewrapSubjectKeys"
	store, ok := m.keys.(eventvault.PIIStore)
	if !ok {
		return 0, nil
	}
	done := 0
	for after := eventvault.Pseudonym(""); ; {
		rows, err := store.SubjectKeysBefore(ctx, tenant, target.version, after, rewrapPageSize)
		if err != nil {
			return done, fmt.Errorf("list subject keys of tenant %s under KEK versions before %d: %w", tenant, target.version, err)
		}
		for _, row := range rows {
			next, err := m.rewrappedSubjectKey(ctx, tenant, target, row)
			if err != nil {
				return done, err
			}
			switch err := store.RewrapSubjectKey(ctx, tenant, row.Subject, row.Key, next); eventvault.ErrorCode(err) {
			case "":
				done++
			case eventvault.ENOTFOUND, eventvault.EERASED:
				// Erased meanwhile: nothing to move.
			case eventvault.ECONFLICT:
				return done, &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Err: err,
					Message: fmt.Sprintf("a subject key of tenant %s changed while it was re-wrapped; run the re-wrap again", tenant)}
			default:
				return done, fmt.Errorf("store a re-wrapped subject key: %w", err)
			}
		}
		if len(rows) < rewrapPageSize {
			return done, nil
		}
		after = rows[len(rows)-1].Subject
	}
}

// rewrappedSubjectKey returns row's key re-wrapped under target.
func (m *KeyManager) rewrappedSubjectKey(ctx context.Context, tenant eventvault.TenantID, target *tenantKEK, row eventvault.SubjectKeyRow) (eventvault.WrappedKey, error) {
	const op = "crypto.KeyManager.RewrapSubjectKeys"
	wk := row.Key
	h, err := parseHeader(wk.Ciphertext)
	if err != nil || h.kind != kindSubjectKey || h.keyVersion != wk.KEKVersion {
		return eventvault.WrappedKey{}, authError(op, "a subject key row of tenant %s failed authentication", tenant)
	}
	old, err := m.ring.kekVersion(ctx, tenant, h.keyVersion)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	if old.id != h.keyID {
		return eventvault.WrappedKey{}, authError(op, "a subject key is wrapped by tenant key %s, but tenant %s has key %s", h.keyID, tenant, old.id)
	}
	key, err := old.unwrapSubjectKey(row.Subject, wk)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	defer clear(key)
	ct, err := target.wrapSubjectKey(row.Subject, wk.ID, key, m.rand)
	if err != nil {
		return eventvault.WrappedKey{}, internalError(op, err, "could not read a random nonce for a subject key")
	}
	next := wk
	next.KEKVersion, next.Ciphertext = target.version, ct
	return next, nil
}
