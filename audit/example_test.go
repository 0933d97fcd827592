package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/eventvault/eventvault/audit"
)

// The server appends records, signs a checkpoint and writes a bundle; the
// auditor verifies it against the verifier key they pinned.
func Example() {
	seed := sha256.Sum256([]byte("example only: real keys come from crypto/rand"))
	signer, _ := audit.NewSigner(audit.DefaultLogName, ed25519.NewKeyFromSeed(seed[:]))

	var tree audit.MemoryTree // a store keeps Tree.StoredHashes instead
	var lines [][]byte
	for i, action := range []string{audit.ActionTokenIssued, audit.ActionAppend, audit.ActionRead} {
		line, _ := audit.Record{Tenant: "acme", Index: int64(i), Time: time.Date(2026, 11, 30, 9, 0, i, 0, time.UTC),
			Actor: "tok_app", Action: action, Resource: "stream:order-1", Outcome: audit.OutcomeOK, RequestID: "r1",
			Detail: map[string]any{"count": 1}}.MarshalLine()
		lines = append(lines, line)
		tree.Append(line)
	}
	root, _ := tree.Tree().Root(tree.Size())
	signed, _ := signer.Sign(audit.Checkpoint{Origin: signer.Origin("acme"), Size: tree.Size(), Root: root})

	var bundle bytes.Buffer
	err := audit.WriteBundle(&bundle, audit.Export{Checkpoint: signed, Hashes: &tree, Count: 3,
		Records: func(yield func([]byte, error) bool) {
			for _, l := range lines {
				if !yield(l, nil) {
					return
				}
			}
		}})
	if err != nil {
		panic(err)
	}

	// The auditor's side: only the pinned verifier key is trusted.
	v, _ := note.NewVerifier(signer.VerifierKey("acme"))
	got, err := audit.VerifyBundle(bytes.NewReader(bundle.Bytes()), note.VerifierList(v), nil)
	fmt.Println(got.Checkpoint.Origin, got.Checkpoint.Size, err)

	// One byte changed in a record is caught.
	tampered := bytes.Replace(bundle.Bytes(), []byte(`"action":"read"`), []byte(`"action":"reaD"`), 1)
	_, err = audit.VerifyBundle(bytes.NewReader(tampered), note.VerifierList(v), nil)
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		fmt.Println(ve.Failure, "at line", ve.Line)
	}
	// Output:
	// eventvault/audit/acme 3 <nil>
	// tampered at line 4
}
