package crypto

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
)

// SubjectKeys creates, unwraps and caches data subjects' keys (level 2,
// one per subject per tenant, wrapped by the tenant KEK like stream keys),
// on a Keyring's KEKs and in its one cache. Unwrapped keys never leave it.
// It is safe for concurrent use.
//
// Reads fail closed as stream reads do: OpenSubjectCipher trusts the cache
// only for the very key row the caller read with the values it opens, so a
// destroyed subject key is honoured at once even where the cache holds it.
type SubjectKeys struct {
	k     *Keyring
	store eventvault.PIIStore
	loads flight[*SubjectCipher]
}

// NewSubjectKeys returns the subject keys of k's tenants, stored in store,
// which must enforce the erasure fence of subjects (CreateSubjectKey
// refuses an erased subject with EERASED).
func NewSubjectKeys(k *Keyring, store eventvault.PIIStore) *SubjectKeys {
	return &SubjectKeys{k: k, store: store}
}

// SubjectCipher returns the cipher of the subject's key, creating the key
// (and the tenant's KEK) when missing: what an append that marks the
// subject's values needs. Whatever the store returns wins, so concurrent
// creators agree on one key.
// Errors: EERASED for an erased subject or tenant; the store's and root
// provider's codes; EINTERNAL wrapping ErrAuthentication for a key row that
// does not authenticate.
func (s *SubjectKeys) SubjectCipher(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (*SubjectCipher, error) {
	ck := cacheKey{kind: cacheSubject, tenant: tenant, subject: subject}
	if e, ok := s.k.cacheGet(ck); ok {
		return e.subjectCipher, nil
	}
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return nil, err
	}
	return s.loads.do(ctx, string(tenant)+"\x00"+string(subject), func() (*SubjectCipher, error) {
		if e, ok := s.k.cacheGet(ck); ok {
			return e.subjectCipher, nil
		}
		gen := s.k.generation()
		wk, err := s.store.SubjectKey(ctx, tenant, subject)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			wk, err = s.createSubjectKey(ctx, tenant, subject)
		}
		if err != nil {
			return nil, fmt.Errorf("key of subject %s: %w", subject, err)
		}
		c, err := s.openSubjectKey(ctx, tenant, subject, wk)
		if err != nil {
			return nil, err
		}
		s.k.fill(gen, ck, cacheEntry{subjectCipher: c, fingerprint: rowFingerprint(wk)})
		return c, nil
	})
}

func (s *SubjectKeys) createSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.WrappedKey, error) {
	const op = "crypto.SubjectKeys.SubjectCipher"
	kek, err := s.k.tenantKEK(ctx, tenant, true)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	key := make([]byte, keySize)
	defer clear(key)
	if _, err := io.ReadFull(s.k.rand, key); err != nil {
		return eventvault.WrappedKey{}, internalError(op, err, "could not read random bytes for a subject key")
	}
	id, err := uuid.NewRandomFromReader(s.k.rand)
	if err != nil {
		return eventvault.WrappedKey{}, internalError(op, err, "could not read random bytes for a subject key id")
	}
	ct, err := kek.wrapSubjectKey(subject, id, key, s.k.rand)
	if err != nil {
		return eventvault.WrappedKey{}, internalError(op, err, "could not read a random nonce for a subject key")
	}
	wk := eventvault.WrappedKey{ID: id, Version: subjectKeyVersion, KEKVersion: kek.version, Ciphertext: ct, CreatedAt: time.Now().UTC()}
	stored, err := s.store.CreateSubjectKey(ctx, tenant, subject, wk)
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("store a subject key: %w", err)
	}
	return stored, nil
}

// OpenSubjectCipher returns the cipher of wk, the subject's key row read
// together with the values it is about to open; the cache serves only the
// very row it was filled from.
// Errors: EERASED for a zero WrappedKey (the subject's key was destroyed)
// or a tenant whose KEK is gone; EINTERNAL wrapping ErrAuthentication for a
// row that does not authenticate for this tenant and subject.
func (s *SubjectKeys) OpenSubjectCipher(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, wk eventvault.WrappedKey) (*SubjectCipher, error) {
	const op = "crypto.SubjectKeys.OpenSubjectCipher"
	ck := cacheKey{kind: cacheSubject, tenant: tenant, subject: subject}
	if len(wk.Ciphertext) == 0 {
		// Evict only what is there: every read of an erased subject's
		// places comes here, and an eviction also voids the loads in
		// flight of every other key.
		if s.Cached(tenant, subject) {
			s.EvictSubject(tenant, subject)
		}
		return nil, &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: "the data subject's key was destroyed: their personal values can no longer be read"}
	}
	fp := rowFingerprint(wk)
	if e, ok := s.k.cacheGet(ck); ok && e.filledFrom(fp) {
		return e.subjectCipher, nil
	}
	gen := s.k.generation()
	c, err := s.openSubjectKey(ctx, tenant, subject, wk)
	if err != nil {
		return nil, err
	}
	s.k.fill(gen, ck, cacheEntry{subjectCipher: c, fingerprint: fp})
	return c, nil
}

func (s *SubjectKeys) openSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, wk eventvault.WrappedKey) (*SubjectCipher, error) {
	const op = "crypto.SubjectKeys.open"
	h, err := parseHeader(wk.Ciphertext)
	switch {
	case err != nil:
		return nil, authError(op, "a subject key row failed authentication: %s", describeHeaderError(err))
	case h.kind != kindSubjectKey:
		return nil, authError(op, "a subject key row holds a %s, not a subject key", h.kind)
	case h.keyVersion != wk.KEKVersion:
		return nil, authError(op, "a subject key row says KEK version %d but its envelope says %d", wk.KEKVersion, h.keyVersion)
	}
	kek, err := s.k.kekVersion(ctx, tenant, h.keyVersion)
	if err != nil {
		return nil, err
	}
	if kek.id != h.keyID {
		return nil, authError(op, "a subject key is wrapped by tenant key %s, but tenant %s has key %s", h.keyID, tenant, kek.id)
	}
	key, err := kek.unwrapSubjectKey(subject, wk)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	c, err := newSubjectCipher(tenant, subject, wk.ID, key, s.k.rand)
	if err != nil {
		return nil, internalError(op, err, "could not use a subject key")
	}
	return c, nil
}

// EvictSubject drops the cached key of one subject. Call it when the
// subject's key is destroyed, here or on another node.
func (s *SubjectKeys) EvictSubject(tenant eventvault.TenantID, subject eventvault.Pseudonym) {
	k := s.k
	k.evictMu.Lock()
	defer k.evictMu.Unlock()
	k.gen++
	k.cache.Remove(cacheKey{kind: cacheSubject, tenant: tenant, subject: subject})
}

// Cached reports whether the cache holds the subject's key: for tests
// that check an erased subject's key is gone from it.
func (s *SubjectKeys) Cached(tenant eventvault.TenantID, subject eventvault.Pseudonym) bool {
	_, ok := s.k.cache.Peek(cacheKey{kind: cacheSubject, tenant: tenant, subject: subject})
	return ok
}
