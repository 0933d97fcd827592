package crypto_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/store/bolt"
)

// Seal one event with its stream's key and open it again. The keyring
// creates the tenant KEK (wrapped by the root key) and the stream key
// (wrapped by the KEK) on first use, and keeps them in the store wrapped.
// The associated data binds the ciphertext to its tenant, stream, event
// id, position and type: moved anywhere else, it does not open.
func ExampleStreamCipher() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eventvault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		log.Fatal(err)
	}
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})

	c, err := keys.StreamCipher(ctx, "acme", "order-42")
	if err != nil {
		log.Fatal(err)
	}
	ref := evcrypto.EventRef{Tenant: "acme", Stream: "order-42", ID: uuid.New(), Position: 0, Type: "OrderPlaced"}
	sealed, err := c.SealEvent(ref, []byte(`{"total":42}`), nil)
	if err != nil {
		log.Fatal(err)
	}
	data, _, err := c.OpenEvent(ref, sealed)
	fmt.Println(string(data), err)

	moved := ref
	moved.Position = 1
	_, _, err = c.OpenEvent(moved, sealed)
	fmt.Println("at another position:", err != nil)
	fmt.Println("prints no key bytes:", fmt.Sprintf("%v", c) == fmt.Sprintf("StreamCipher(acme/order-42 key %s v1)", c.KeyID()))
	// Output:
	// {"total":42} <nil>
	// at another position: true
	// prints no key bytes: true
}
