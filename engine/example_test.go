package engine_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/bolt"
)

// An engine over the embedded store, as the dev server wires it: a local
// root key wraps the tenant KEK, which wraps the stream's data key, which
// seals the event. The store only ever sees ciphertext.
func ExampleEvents() {
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
	events := engine.NewEvents(store, keys, nil)

	app := eventvault.Principal{Tenant: "acme", TokenID: "tok_example", Rules: []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead}, Streams: "order-*"},
	}}
	res, err := events.Append(ctx, app, "order-42", eventvault.ExpectNoStream, []eventvault.NewEvent{
		{ID: uuid.New(), Type: "OrderPlaced", Data: []byte(`{"total": 42}`)},
		{ID: uuid.New(), Type: "OrderPaid", Data: []byte(`{"amount": 42}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended; stream version", res.Version)

	slice, err := events.ReadStream(ctx, app, "order-42", eventvault.ReadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range slice.Events {
		fmt.Println(ev.Position, ev.Type, string(ev.Data))
	}

	_, err = events.Append(ctx, app, "order-42", eventvault.ExpectNoStream, []eventvault.NewEvent{
		{ID: uuid.New(), Type: "OrderPlaced", Data: []byte(`{}`)},
	})
	fmt.Println("again with no_stream:", eventvault.ErrorCode(err))
	// Output:
	// appended; stream version 1
	// 0 OrderPlaced {"total":42}
	// 1 OrderPaid {"amount":42}
	// again with no_stream: conflict
}
