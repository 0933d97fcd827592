package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
)

// The golden file fixes format version 1 byte for byte. Rewrite it only
// with a new format version (and a new file), never to make a test pass.
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden_v1.json from the inputs in golden_test.go")

const goldenPath = "testdata/golden_v1.json"

// golden holds the inputs of the key hierarchy and of one event (keys, ids
// and nonces that would come from crypto/rand) and the bytes they give.
type golden struct {
	Comment string `json:"comment"`

	Tenant   string `json:"tenant"`
	Stream   string `json:"stream"`
	EventID  string `json:"event_id"`
	Position int64  `json:"position"`
	Type     string `json:"type"`
	Data     string `json:"data"`
	Metadata string `json:"metadata"`

	RootKey        string `json:"root_key"`
	TenantKEK      string `json:"tenant_kek"`
	TenantKEKID    string `json:"tenant_kek_id"`
	TenantKEKNonce string `json:"tenant_kek_nonce"`
	StreamKey      string `json:"stream_key"`
	StreamKeyID    string `json:"stream_key_id"`
	StreamKeyNonce string `json:"stream_key_nonce"`
	EventNonce     string `json:"event_nonce"`

	WrappedTenantKEK string `json:"wrapped_tenant_kek"`
	WrappedStreamKey string `json:"wrapped_stream_key"`
	Payload          string `json:"payload"`
	ContentMAC       string `json:"content_mac"`
}

func goldenInputs() golden {
	seq := func(from byte, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = from + byte(i)
		}
		return hex.EncodeToString(b)
	}
	return golden{
		Comment:        "EventVault envelope format v1; see the package doc of crypto. Keys, ids and nonces are inputs; wrapped_*, payload and content_mac are what they give.",
		Tenant:         "acme",
		Stream:         "order-42",
		EventID:        "018f6b2a-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
		Position:       7,
		Type:           "OrderPlaced",
		Data:           `{"sku":"A-1","qty":2}`,
		Metadata:       `{"correlation_id":"c-1"}`,
		RootKey:        seq(0x00, 32),
		TenantKEK:      seq(0x20, 32),
		TenantKEKID:    "6ba7b810-9dad-41d1-80b4-00c04fd430c8",
		TenantKEKNonce: seq(0x80, 24),
		StreamKey:      seq(0x40, 32),
		StreamKeyID:    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff",
		StreamKeyNonce: seq(0xa0, 24),
		EventNonce:     seq(0xc0, 24),
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("golden hex %q: %v", s, err)
	}
	return b
}

func (g golden) ref() EventRef {
	return EventRef{
		Tenant:   eventvault.TenantID(g.Tenant),
		Stream:   eventvault.StreamName(g.Stream),
		ID:       uuid.MustParse(g.EventID),
		Position: g.Position,
		Type:     g.Type,
	}
}

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (write it with go test ./crypto -run TestGoldenV1 -update-golden)", err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// seal runs the key hierarchy on the golden inputs, with their randomness
// injected, and returns the rows, payload and MAC it writes.
func (g golden) seal(t *testing.T) (out golden) {
	t.Helper()
	rootKey := unhex(t, g.RootKey)
	root, err := newLocalRootKey("golden", rootKey, bytes.NewReader(unhex(t, g.TenantKEKNonce)))
	if err != nil {
		t.Fatal(err)
	}
	var rand bytes.Buffer // what the keyring reads, in order
	kekID, streamKeyID := uuid.MustParse(g.TenantKEKID), uuid.MustParse(g.StreamKeyID)
	rand.Write(unhex(t, g.TenantKEK))
	rand.Write(kekID[:])
	rand.Write(unhex(t, g.StreamKey))
	rand.Write(streamKeyID[:])
	rand.Write(unhex(t, g.StreamKeyNonce))
	rand.Write(unhex(t, g.EventNonce))
	store := newMemKeyStore()
	ring := NewKeyring(root, store, KeyringOptions{Rand: &rand})
	ref := g.ref()
	c, err := ring.StreamCipher(t.Context(), ref.Tenant, ref.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID() != streamKeyID {
		t.Fatalf("stream key id %s; want %s", c.KeyID(), streamKeyID)
	}
	payload, err := c.SealEvent(ref, []byte(g.Data), []byte(g.Metadata))
	if err != nil {
		t.Fatal(err)
	}
	if rand.Len() != 0 {
		t.Fatalf("the keyring left %d bytes of injected randomness unread", rand.Len())
	}
	out = g
	out.WrappedTenantKEK = hex.EncodeToString(store.keks[ref.Tenant][1].Ciphertext)
	out.WrappedStreamKey = hex.EncodeToString(store.streamKey(t, ref.Tenant, ref.Stream).Ciphertext)
	out.Payload = hex.EncodeToString(payload)
	out.ContentMAC = hex.EncodeToString(c.ContentMAC(g.Type, []byte(g.Data), []byte(g.Metadata)))
	return out
}

func TestGoldenV1SealGivesTheGoldenBytes(t *testing.T) {
	if *updateGolden {
		b, err := json.MarshalIndent(goldenInputs().seal(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGolden(t)
	got := want.seal(t)
	for _, f := range []struct{ name, got, want string }{
		{"wrapped_tenant_kek", got.WrappedTenantKEK, want.WrappedTenantKEK},
		{"wrapped_stream_key", got.WrappedStreamKey, want.WrappedStreamKey},
		{"payload", got.Payload, want.Payload},
		{"content_mac", got.ContentMAC, want.ContentMAC},
	} {
		if f.got != f.want {
			t.Errorf("%s changed: the v1 format must stay as it is\n got %s\nwant %s", f.name, f.got, f.want)
		}
	}
}

func TestGoldenV1Opens(t *testing.T) {
	g := readGolden(t)
	root, err := newLocalRootKey("golden", unhex(t, g.RootKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := g.ref()
	store := newMemKeyStore()
	store.keks[ref.Tenant] = map[uint32]eventvault.WrappedKey{1: {ID: uuid.MustParse(g.TenantKEKID), Version: 1, Ciphertext: unhex(t, g.WrappedTenantKEK)}}
	streamRow := eventvault.WrappedKey{ID: uuid.MustParse(g.StreamKeyID), Version: 1, KEKVersion: 1, Ciphertext: unhex(t, g.WrappedStreamKey)}
	c, err := NewKeyring(root, store, KeyringOptions{}).OpenStreamCipher(t.Context(), ref.Tenant, ref.Stream, streamRow)
	if err != nil {
		t.Fatal(err)
	}
	data, metadata, err := c.OpenEvent(ref, unhex(t, g.Payload))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != g.Data || string(metadata) != g.Metadata {
		t.Fatalf("opened %q, %q; want %q, %q", data, metadata, g.Data, g.Metadata)
	}
	if mac := hex.EncodeToString(c.ContentMAC(g.Type, data, metadata)); mac != g.ContentMAC {
		t.Fatalf("content MAC %s; want %s", mac, g.ContentMAC)
	}
	// The layout the package doc gives: header, then nonce.
	kekID := uuid.MustParse(g.TenantKEKID)
	for _, tc := range []struct {
		name, nonce string
		envelope    []byte
		want        header
	}{
		{"payload", g.EventNonce, unhex(t, g.Payload), header{kindEvent, streamRow.ID, 1}},
		{"wrapped_stream_key", g.StreamKeyNonce, streamRow.Ciphertext, header{kindStreamKey, kekID, 1}},
		{"wrapped_tenant_kek", g.TenantKEKNonce, unhex(t, g.WrappedTenantKEK), header{kindTenantKEK, kekID, 1}},
	} {
		h, err := parseHeader(tc.envelope)
		if err != nil || h != tc.want {
			t.Errorf("%s header %+v, %v; want %+v", tc.name, h, err, tc.want)
		}
		if nonce := hex.EncodeToString(tc.envelope[headerSize : headerSize+nonceSize]); nonce != tc.nonce {
			t.Errorf("%s nonce %s; want %s", tc.name, nonce, tc.nonce)
		}
	}
}
