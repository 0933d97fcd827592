// Package audit is EventVault's tamper-evident audit log: the record format,
// each tenant's Merkle tree, signed checkpoints, the export bundle and its
// offline verifier. It needs no store and no server: stores keep the record
// lines and the tree's stored hashes; the server signs checkpoints and
// writes bundles with this package; an auditor verifies them with
// `eventvault audit verify`.
//
// It builds on golang.org/x/mod/sumdb/tlog (RFC 6962 hashing, stored
// hashes, inclusion and consistency proofs) and golang.org/x/mod/sumdb/note
// (C2SP signed notes, Ed25519), and has no Merkle or signature code of its
// own.
//
// # Records
//
// A Record is one security-relevant action. [Record.MarshalLine] encodes it
// as one line of canonical JSON with a fixed key order; those exact bytes
// are the record's leaf, and its leaf hash is tlog.RecordHash(line) =
// SHA-256(0x00 || line) (RFC 6962 §2.1). [ParseLine] accepts only that
// canonical form. A record names a data subject only by pseudonym
// ("subject:<hex>") and never holds event data, a key, a token or a
// personal value, so the log never stands in the way of an erasure.
//
// # Trees
//
// Each tenant's records, in index order 0, 1, 2, …, are the leaves of one
// RFC 6962 (RFC 9162 §2.1) Merkle tree. A store keeps, per record, the
// hashes [Tree.StoredHashes] returns (about two 32-byte hashes) and serves
// them back through a tlog.HashReader; [Tree] then gives roots, inclusion
// proofs and consistency proofs reading O(log n) hashes. [MemoryTree] holds
// a tree in memory.
//
// # Checkpoints
//
// A [Checkpoint] is a tree head in the C2SP tlog-checkpoint format
// (https://c2sp.org/tlog-checkpoint): the origin, the tree size in decimal,
// the base64 root hash, one per line. The origin of a tenant's log is
// "<log name>/<tenant>", "eventvault/audit/acme" under [DefaultLogName]. A
// [Signer] signs it as a C2SP signed note (https://c2sp.org/signed-note)
// with the deployment's Ed25519 signing key, under a key name equal to the
// origin, as tlog-checkpoint recommends:
//
//	eventvault/audit/acme
//	3
//	SslvP8zAR2vKT0OM05nrvH/VS+xRhZb6NsiqYztdpSQ=
//
//	— eventvault/audit/acme c0vW43YG/LlT+kyRy6svVO3Wxl9sfSxHC4wG4ADtVny02HL5hoa27vVmOeMhVhVUFn3/QGzTC1N63EK4AR8TUypOeQ0=
//
// An auditor pins either the tenant log's verifier key ([VerifierKey],
// "<origin>+<8 hex digits of key id>+<base64 of 0x01 || public key>", for
// example eventvault/audit/acme+734bd6e3+AXqnBlQRIrM5cc+oU6/78UhQc/AjC5xCsiTTI2xZz2wL,
// which also pins the tenant) or the deployment's public key
// ([PublicKeyVerifiers]).
//
// # Export bundle
//
// testdata/complete.jsonl and testdata/filtered.jsonl are examples, pinned
// by a test. A bundle is one file of JSON Lines (each line compact JSON ending in
// "\n"), in this order:
//
//  1. The header ([BundleHeader]):
//     {"type":"header","format":"eventvault-audit-bundle","version":1,
//     "tenant":"acme","origin":"eventvault/audit/acme","first":0,"count":1000,
//     "tree_size":1000,"filtered":false,"filter":""}
//     first and count give the records; tree_size is the size the
//     checkpoint signs; filtered and filter say the records are a selection
//     and by what (the server's words, for example
//     "resource=subject:9f2c…"), not a contiguous range.
//  2. One line per record, ascending by index, carrying the record's exact
//     line bytes as a raw JSON value (never re-encoded, so the leaf bytes
//     survive): {"type":"record","record":<record line>}. Unless the bundle
//     is complete (not filtered, first 0, count = tree_size), each record
//     line also carries its inclusion proof (RFC 6962 §2.1.1 audit path,
//     base64 hashes, leaf to root): {"type":"record","record":<record
//     line>,"proof":["…","…"]}.
//  3. The signed checkpoint of size tree_size, as the note's text:
//     {"type":"checkpoint","note":"eventvault/audit/acme\n1000\n…=\n\n— eventvault/audit/acme …\n"}
//  4. Optionally, when the auditor gave the size of a checkpoint they hold
//     (old_size < tree_size), the consistency proof (RFC 6962 §2.1.2) from
//     it: {"type":"consistency","old_size":500,"old_root":"…","proof":["…"]}
//
// The header and the checkpoint and consistency lines are in encoding/json's
// compact form of their Go structs (keys in the order shown); the verifier
// refuses any other bytes, an unknown key or a line out of place.
//
// # Verification
//
// [VerifyBundle] checks a bundle against pinned keys and, optionally, a
// trusted checkpoint, and returns a [*VerifyError] whose [Failure] says what
// failed (Tampered, Truncated, Reordered, BadSignature, Fork, Rollback,
// Unusable) and which bundle line and record. Its limits: a root tells that
// some record of a complete export was edited, not which one (it names the
// record when an index, an encoding or an inclusion proof gives it away);
// a filtered export proves each record it holds, never that it holds every
// matching record; and without a trusted checkpoint an old, genuine bundle
// verifies (pass the last checkpoint you verified to catch a rollback or a
// fork).
package audit
