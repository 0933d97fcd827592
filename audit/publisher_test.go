package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/store/bolt"
)

// TestPublisherWritesCheckpointsOutsideTheStore publishes checkpoints of a
// log that grows, into a store and a folder: each file is the stored
// checkpoint, signed by the key, and an unchanged log publishes nothing.
func TestPublisherWritesCheckpointsOutsideTheStore(t *testing.T) {
	ctx := context.Background()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, priv, _ := ed25519.GenerateKey(nil)
	signer, err := audit.NewSigner(audit.DefaultLogName, priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &audit.Publisher{Store: store, Signer: signer, Dir: dir}
	rec := &audit.Recorder{}
	for round, n := range []int{3, 0, 5} {
		for range n {
			lines, err := rec.Lines(ctx, eventvault.AuditEvent{Tenant: "acme", Actor: "tok_1", Action: "append", Resource: "stream:order-1", Outcome: "ok"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.AppendAudit(ctx, "acme", lines.Lines); err != nil {
				t.Fatal(err)
			}
		}
		published, err := p.PublishOnce(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if want := map[bool]int{true: 1, false: 0}[n > 0]; published != want {
			t.Fatalf("round %d: %d checkpoints published, want %d", round, published, want)
		}
	}
	size, note, err := store.LatestAuditCheckpoint(ctx, "acme")
	if err != nil || size != 8 {
		t.Fatalf("latest stored checkpoint: %d %v", size, err)
	}
	for _, name := range []string{"8.checkpoint", "latest"} {
		file, err := os.ReadFile(filepath.Join(dir, "acme", name))
		if err != nil || !bytes.Equal(file, note) {
			t.Fatalf("%s outside the store: %v; want the stored checkpoint", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "acme", "3.checkpoint")); err != nil {
		t.Fatalf("the first checkpoint's file: %v", err)
	}
	pinned, err := audit.PinVerifierKey(signer.VerifierKey("acme"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.OpenCheckpoint(note, pinned)
	if err != nil || cp.Size != 8 {
		t.Fatalf("the checkpoint does not open with the pinned key: %+v %v", cp, err)
	}
	// The tree the publisher stored gives the checkpoint's root.
	root, err := audit.Tree{Hashes: audit.Hashes(ctx, store, "acme")}.Root(8)
	if err != nil || root != cp.Root {
		t.Fatalf("stored hashes give %v (%v), the checkpoint %v", root, err, cp.Root)
	}
}
