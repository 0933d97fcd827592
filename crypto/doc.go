// Package crypto is EventVault's key hierarchy and envelope encryption.
// Import it as evcrypto "github.com/eventvault/eventvault/crypto".
//
// # Key hierarchy
//
//	root key (RootKeyProvider: Vault Transit, or LocalRootKey in dev)
//	  └─ tenant KEK, 32 random bytes, one per tenant      wrapped by the root key
//	       ├─ stream key, 32 random bytes, one per stream wrapped by the tenant KEK
//	       │    └─ event data and metadata               sealed with the stream key
//	       └─ subject key, 32 random bytes, one per data subject (by pseudonym)
//	            └─ personal values kept apart            sealed with the subject key
//
// A Keyring creates, unwraps and caches these keys and hands out
// StreamCiphers, which seal and open events; SubjectKeys does the same for
// subject keys on the same KEKs and cache, and hands out SubjectCiphers,
// which seal and open personal values. Unwrapped keys never leave this
// package: callers get operations (SealEvent, OpenEvent, ContentMAC), never
// key bytes, and no type here prints key bytes. Keys, key ids and nonces come
// from crypto/rand. The root provider is called to wrap a new tenant KEK and
// to unwrap a tenant KEK at most once per tenant per cache TTL; appends and
// reads of a cached stream make no root-provider call and no store call.
//
// The keys of a deployment that sit beside the hierarchy have packages of
// their own: crypto/dsse signs erasure certificates, crypto/pseudonym turns
// subject ids into pseudonyms. Their key files, like the local root key's,
// are read and created in one place (crypto/internal/keyfile).
//
// # Rotation
//
// A Keyring only uses keys; a KeyManager, built on it as Tink's
// keyset.Manager is on a keyset.Handle, rotates, re-wraps and destroys
// them. A tenant KEK has versions (1, 2, …) under one key id. RotateTenantKEK adds
// one; new stream keys are wrapped by the newest, and a stream key row names
// the KEK version that wraps it, which is fetched and cached on its own, so
// rows under older versions keep opening. RewrapStreamKeys moves the rows
// to the newest version by compare-and-swap; the stream key itself never
// changes, so no event is re-encrypted. With a provider that implements
// RootRotator and RootRewrapper (Vault Transit), RotateRoot adds a root
// version, RewrapRootWrapped re-wraps every KEK version under it inside the
// provider, and RetireRootVersionsBefore retires older root versions once no
// KEK row needs them. DestroyOldKEKs and EndCryptoPeriod take old versions
// away for good, so that backups from before them no longer decrypt.
//
// # Security contract
//
// Protected, against whoever holds the store (its database, files and
// backups) but not the root key:
//
//   - Confidentiality of event data and metadata, and of every key.
//   - Integrity and place: an event payload opens only for the tenant,
//     stream, event id, stream position and event type it was sealed for, so
//     a payload altered, truncated, swapped with another row, or moved to
//     another stream, position or tenant fails to open (ErrAuthentication).
//     A wrapped stream key opens only for its tenant, stream, key id and KEK
//     version; a wrapped tenant KEK only for its tenant, key id and version.
//   - Idempotency without disclosure: ContentMAC is keyed by the stream key,
//     so the store can compare contents but cannot confirm a guess of
//     low-entropy data.
//   - Personal values: a value opens only for its tenant, subject pseudonym,
//     token, pointer, class and version, with its subject's key; a wrapped
//     subject key only for its tenant, pseudonym, key id and KEK version.
//   - Erasure: once every copy of a stream's key row is gone (or its tenant's
//     KEK), its payloads cannot be opened; likewise a subject's values once
//     its subject key row is gone. Reads fail closed: OpenStreamCipher
//     trusts its cache only for the exact key row read with the events.
//
// Not protected:
//
//   - Tenant ids, stream names, event ids and types, stream and global
//     positions, recorded times, the number of events and streams, and sizes:
//     a payload is 63 bytes plus len(data) plus len(metadata) plus the 1 to
//     10 bytes of a varint, so its length reveals the plaintext's length.
//     Stream names and event types must never hold personal data.
//   - Equality of content within a stream: equal ContentMACs mean equal type,
//     data and metadata (that is what idempotency needs).
//   - Deletion and ordering of whole rows: the store can drop events or
//     truncate a stream, and global positions and recorded times are not
//     bound to payloads.
//   - Whoever holds the root key (or runs code in the server) reads
//     everything. Unwrapped keys live in process memory for up to the TTL;
//     temporary key slices are zeroed, but Go cannot promise that no copy
//     remains (AEAD state, garbage collector), and a cached tenant KEK keeps
//     working after the tenant is shredded until EvictTenant or the TTL.
//     Personal values a SubjectCipher opened are kept inside the subject
//     key's cache entry (subjectvalues.go): no exposure beyond the key and
//     the cached ciphertext that already give them, served only for the
//     very place and sealed bytes they were opened from, and gone with the
//     key's entry (eviction, erasure, LRU bound, TTL) or at a newer subject
//     generation (docs/pii.md).
//
// # Formats (version 1)
//
// Every ciphertext starts with a 22-byte header:
//
//	offset  size  field
//	0       1     format version, 1
//	1       1     kind: 1 tenant KEK wrapped by the root key,
//	              2 stream key wrapped by the tenant KEK, 3 event payload,
//	              4 subject key wrapped by the tenant KEK, 5 personal value
//	2       16    key id (UUID bytes)
//	18      4     key version, uint32 big-endian
//
// Associated data is the header followed by length-prefixed fields, the
// first of which is a purpose label: header || field(label) || field(f1) ||
// …, where field(b) = uint32 big-endian len(b) || b. Strings are their UTF-8
// bytes, UUIDs their 16 bytes, uint32 4 and int64 8 big-endian bytes.
//
// AEAD is XChaCha20-Poly1305 with a random 24-byte nonce; the sealed bytes
// end with its 16-byte tag.
//
// Event payload (kind 3; key id and version of the stream key, version 1):
//
//	header || nonce (24) || XChaCha20-Poly1305(stream key, nonce, plaintext, AD)
//	AD        = header || "eventvault/v1/event" || tenant || stream || event id || position (int64) || type
//	plaintext = flags (1) || uvarint(len(data)) || data || [uvarint(len(pii)) || pii] || metadata
//	flags     = 0x01 if metadata is present (even empty), 0x00 for nil metadata;
//	            0x02 if a manifest of personal values (pii, non-empty; its
//	            format is the engine's) follows data; other bits 0
//
// Subject key wrapped by the tenant KEK (kind 4; key id and version of the
// KEK; the row's ID is the subject key's id):
//
//	header || nonce (24) || XChaCha20-Poly1305(tenant KEK, nonce, subject key (32), AD)
//	AD = header || "eventvault/v1/subject-key" || tenant || subject pseudonym || subject key id || KEK version (uint32)
//
// Personal value (kind 5; key id of the subject key, version 1):
//
//	header || nonce (24) || XChaCha20-Poly1305(subject key, nonce, value (JSON), AD)
//	AD = header || "eventvault/v1/pii-value" || tenant || subject pseudonym || token || pointer || class || version (int64)
//
// Personal value digest (32 bytes; stands for the value in an event's
// content MAC): HMAC-SHA256(K, field(pointer) || field(class) || field(value)),
// K = HKDF-SHA256(subject key, info = "eventvault/v1/pii-digest", 32 bytes).
//
// Stream key wrapped by the tenant KEK (kind 2; key id and version of the
// KEK that wraps it; the row's ID is the stream key's id, its KEKVersion the
// KEK version):
//
//	header || nonce (24) || XChaCha20-Poly1305(tenant KEK, nonce, stream key (32), AD)
//	AD = header || "eventvault/v1/stream-key" || tenant || stream || stream key id || KEK version (uint32)
//
// Tenant KEK wrapped by the root key (kind 1; key id and version of the KEK
// itself, as the root provider versions its own ciphertext):
//
//	header || RootKeyProvider.WrapKey(KEK (32), aad)
//	aad = header || "eventvault/v1/tenant-kek" || tenant || KEK id || KEK version (uint32)
//
// LocalRootKey's part is nonce (24) || XChaCha20-Poly1305(root key, nonce,
// KEK, aad); a Vault provider passes aad as Transit's associated_data.
//
// Content MAC (32 bytes):
//
//	HMAC-SHA256(K, uint32(len(type)) || type || uint32(len(data)) || data || m)
//	m = 0x00 for nil metadata, or 0x01 || uint32(len(metadata)) || metadata
//	K = HKDF-SHA256(secret = stream key, salt = none, info = "eventvault/v1/content-mac", 32 bytes)
//
// testdata/golden_v1.json fixes these formats byte for byte.
//
// # Errors
//
// Every error is an *eventvault.Error or wraps one. A ciphertext that does
// not open is EINTERNAL with a client-safe message naming what failed (ids,
// names, positions; never key bytes or plaintext) and wraps
// ErrAuthentication. A stream whose key row is gone is EERASED. Errors of
// the KeyStore and of the RootKeyProvider keep their codes, wrapped with
// context.
package crypto
