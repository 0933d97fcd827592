package crypto

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
)

// newTestCipher returns the cipher of a fixed key for a stream, so that two
// ciphers of different places can share a key: then only the associated
// data tells them apart.
func newTestCipher(t testing.TB, tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, key []byte) *StreamCipher {
	t.Helper()
	c, err := newStreamCipher(tenant, stream, keyID, streamKeyVersion, key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	testRef = EventRef{
		Tenant:   "acme",
		Stream:   "order-42",
		ID:       uuid.MustParse("0195a3c4-7b1e-7c3a-9f2d-4e5b6a7c8d9e"),
		Position: 7,
		Type:     "OrderPlaced",
	}
	testData     = []byte(`{"sku":"A-1","qty":2,"email":"ada@example.com"}`)
	testMetadata = []byte(`{"correlation_id":"c-1"}`)
)

func TestSealEventOpensToTheSameDataAndMetadata(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	for _, tc := range []struct {
		name           string
		data, metadata []byte
	}{
		{"dataAndMetadata", testData, testMetadata},
		{"nilMetadata", testData, nil},
		{"emptyMetadata", testData, []byte{}},
		{"emptyData", []byte{}, testMetadata},
		{"nilDataNilMetadata", nil, nil},
		{"largeData", bytes.Repeat([]byte("x"), 1<<20), testMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload, err := c.SealEvent(testRef, tc.data, tc.metadata)
			if err != nil {
				t.Fatal(err)
			}
			if want := sealedMin + plaintextLen(tc.data, tc.metadata, nil); len(payload) != want {
				t.Errorf("payload is %d bytes; want %d", len(payload), want)
			}
			data, metadata, err := c.OpenEvent(testRef, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tc.data) || !bytes.Equal(metadata, tc.metadata) {
				t.Fatalf("opened %q, %q; want %q, %q", data, metadata, tc.data, tc.metadata)
			}
			if (metadata == nil) != (tc.metadata == nil) {
				t.Fatalf("metadata nil = %v; want %v", metadata == nil, tc.metadata == nil)
			}
		})
	}
}

func TestSealEventWritesTheHeaderOfTheStreamKey(t *testing.T) {
	keyID := uuid.New()
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, keyID, randomBytes(t, keySize))
	payload, err := c.SealEvent(testRef, testData, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeader(payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := (header{kind: kindEvent, keyID: keyID, keyVersion: streamKeyVersion}); h != want {
		t.Fatalf("header %+v; want %+v", h, want)
	}
}

func TestSealEventTwiceGivesDifferentPayloads(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	a, _ := c.SealEvent(testRef, testData, testMetadata)
	b, _ := c.SealEvent(testRef, testData, testMetadata)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one event are equal")
	}
}

func TestOpenEventFailsForAPayloadMovedElsewhere(t *testing.T) {
	key, keyID := randomBytes(t, keySize), uuid.New()
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, keyID, key)
	payload, err := c.SealEvent(testRef, testData, testMetadata)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		move   func(*EventRef)
		cipher *StreamCipher // nil: a cipher of the same key for the moved place
	}{
		{name: "otherTenant", move: func(r *EventRef) { r.Tenant = "globex" }},
		{name: "otherStream", move: func(r *EventRef) { r.Stream = "order-43" }},
		{name: "otherEventID", move: func(r *EventRef) { r.ID = uuid.New() }},
		{name: "otherPosition", move: func(r *EventRef) { r.Position++ }},
		{name: "negativePosition", move: func(r *EventRef) { r.Position = -r.Position }},
		{name: "otherType", move: func(r *EventRef) { r.Type = "OrderCancelled" }},
		{name: "tenantStreamBoundaryShifted", move: func(r *EventRef) { r.Tenant, r.Stream = "acmeo", "rder-42" }},
		{
			name:   "anotherStreamsCipher",
			move:   func(r *EventRef) { r.Stream = "order-43" },
			cipher: newTestCipher(t, testRef.Tenant, "order-43", uuid.New(), randomBytes(t, keySize)),
		},
		{
			name:   "anotherKeyWithTheSameID",
			move:   func(*EventRef) {},
			cipher: newTestCipher(t, testRef.Tenant, testRef.Stream, keyID, randomBytes(t, keySize)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := testRef
			tc.move(&ref)
			opener := tc.cipher
			if opener == nil {
				opener = newTestCipher(t, ref.Tenant, ref.Stream, keyID, key)
			}
			_, _, err := opener.OpenEvent(ref, payload)
			checkAuthFailure(t, err)
			msg := eventvault.ErrorMessage(err)
			for _, want := range []string{ref.ID.String(), fmt.Sprintf("position %d", ref.Position), string(ref.Stream)} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}

func TestOpenEventFailsForAnAlteredPayload(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	payload, err := c.SealEvent(testRef, []byte(`{"a":1}`), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":        nil,
		"appendedByte": append(bytes.Clone(payload), 0),
	}
	for i := range payload {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(payload)
			b[i] ^= bit
			cases[fmt.Sprintf("byte%02dBit%02x", i, bit)] = b
		}
		cases[fmt.Sprintf("truncatedTo%02d", i)] = payload[:i]
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := c.OpenEvent(testRef, p)
			checkAuthFailure(t, err)
		})
	}
}

// TestOpenEventInPlace holds OpenEventPIIInPlace to OpenEventPII: the same
// data, metadata and manifest, now in the payload's own memory, and the
// same refusals, a refused payload left zeroed rather than half decrypted.
func TestOpenEventInPlace(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	payload, err := c.SealEventPII(testRef, []byte(`{"a":1}`), []byte(`{"m":2}`), []byte("manifest"))
	if err != nil {
		t.Fatal(err)
	}
	data, md, pii, err := c.OpenEventPII(testRef, payload)
	if err != nil {
		t.Fatal(err)
	}
	// A neighbour after the payload's capacity stays untouched.
	buf := append(bytes.Clone(payload), "neighbour"...)
	own := buf[:len(payload):len(payload)]
	gotData, gotMD, gotPII, err := c.OpenEventPIIInPlace(testRef, own)
	if err != nil {
		t.Fatalf("OpenEventPIIInPlace: %v", err)
	}
	if !bytes.Equal(gotData, data) || !bytes.Equal(gotMD, md) || !bytes.Equal(gotPII, pii) {
		t.Errorf("in place opened %q %q %q, want %q %q %q", gotData, gotMD, gotPII, data, md, pii)
	}
	if &gotData[0] != &own[headerSize+nonceSize+2] {
		t.Error("the data does not alias the payload: it was not opened in place")
	}
	if string(buf[len(payload):]) != "neighbour" {
		t.Errorf("opening in place wrote past the payload: %q", buf[len(payload):])
	}

	moved := testRef
	moved.Position++
	for name, tc := range map[string]struct {
		ref    EventRef
		mutate func([]byte)
	}{
		"altered": {testRef, func(b []byte) { b[len(b)-1] ^= 1 }},
		"moved":   {moved, func([]byte) {}},
	} {
		t.Run(name, func(t *testing.T) {
			p := bytes.Clone(payload)
			tc.mutate(p)
			_, _, _, err := c.OpenEventPIIInPlace(tc.ref, p)
			checkAuthFailure(t, err)
			if bytes.Contains(p, []byte(`{"a":1}`)) {
				t.Error("a refused payload holds its plaintext")
			}
		})
	}
}

func TestOpenEventNamesAnUnknownFormatVersion(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	payload, _ := c.SealEvent(testRef, testData, nil)
	payload[0] = 2
	_, _, err := c.OpenEvent(testRef, payload)
	checkAuthFailure(t, err)
	if msg := eventvault.ErrorMessage(err); !strings.Contains(msg, "format version 2") {
		t.Fatalf("message %q does not name the format version", msg)
	}
}

func TestOpenEventErrorHoldsNoPlaintextOrKey(t *testing.T) {
	key := randomBytes(t, keySize)
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), key)
	payload, _ := c.SealEvent(testRef, testData, testMetadata)
	payload[len(payload)-1] ^= 1
	_, _, err := c.OpenEvent(testRef, payload)
	checkAuthFailure(t, err)
	text := err.Error() + eventvault.ErrorMessage(err)
	for _, secret := range []string{string(testData), "ada@example.com", string(key), hex.EncodeToString(key)} {
		if strings.Contains(text, secret) {
			t.Fatalf("error %q holds a secret", text)
		}
	}
}

func TestStreamCipherRefusesAnEventOfAnotherStream(t *testing.T) {
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(t, keySize))
	payload, _ := c.SealEvent(testRef, testData, nil)
	for _, ref := range []EventRef{
		{Tenant: "globex", Stream: testRef.Stream, ID: testRef.ID, Type: testRef.Type},
		{Tenant: testRef.Tenant, Stream: "order-43", ID: testRef.ID, Type: testRef.Type},
	} {
		if _, err := c.SealEvent(ref, testData, nil); err == nil {
			t.Errorf("SealEvent for %s/%s succeeded", ref.Tenant, ref.Stream)
		}
		if _, _, err := c.OpenEvent(ref, payload); err == nil {
			t.Errorf("OpenEvent for %s/%s succeeded", ref.Tenant, ref.Stream)
		}
	}
}

func TestStreamCipherPrintsNoKeyBytes(t *testing.T) {
	key := randomBytes(t, keySize)
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), key)
	checkPrintsNoSecret(t, c, key, c.macKey[:])
	checkPrintsNoSecret(t, *c, key, c.macKey[:])
}

// checkPrintsNoSecret formats v with every common verb and fails if any
// output holds one of the secrets, raw or in hex.
func checkPrintsNoSecret(t *testing.T, v any, secrets ...[]byte) {
	t.Helper()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		out := fmt.Sprintf(verb, v)
		for _, s := range secrets {
			if strings.Contains(out, string(s)) ||
				strings.Contains(strings.ToLower(out), hex.EncodeToString(s[:8])) ||
				strings.Contains(out, strings.Trim(fmt.Sprintf("%d", s[:8]), "[]")) {
				t.Fatalf("%s of %T prints key bytes: %s", verb, v, out)
			}
		}
	}
}

func TestContentMAC(t *testing.T) {
	key := randomBytes(t, keySize)
	c := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), key)
	base := c.ContentMAC("OrderPlaced", []byte(`{"a":1}`), []byte(`{"m":1}`))
	if len(base) != 32 {
		t.Fatalf("MAC is %d bytes; want 32", len(base))
	}
	if again := c.ContentMAC("OrderPlaced", []byte(`{"a":1}`), []byte(`{"m":1}`)); !bytes.Equal(base, again) {
		t.Fatal("equal content gives different MACs")
	}
	sameKeyOtherID := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), key)
	if !bytes.Equal(base, sameKeyOtherID.ContentMAC("OrderPlaced", []byte(`{"a":1}`), []byte(`{"m":1}`))) {
		t.Fatal("the MAC depends on something besides the key and the content")
	}
	for _, tc := range []struct {
		name   string
		a, b   func(*StreamCipher) []byte
		cipher *StreamCipher
	}{
		{name: "otherType", a: mac("OrderPlaced", `{"a":1}`, `{"m":1}`), b: mac("OrderPaid", `{"a":1}`, `{"m":1}`)},
		{name: "otherData", a: mac("OrderPlaced", `{"a":1}`, `{"m":1}`), b: mac("OrderPlaced", `{"a":2}`, `{"m":1}`)},
		{name: "otherMetadata", a: mac("OrderPlaced", `{"a":1}`, `{"m":1}`), b: mac("OrderPlaced", `{"a":1}`, `{"m":2}`)},
		{name: "typeDataBoundary", a: mac("ab", "c", ""), b: mac("a", "bc", "")},
		{name: "dataMetadataBoundary", a: mac("t", "ab", "c"), b: mac("t", "a", "bc")},
		{
			name: "nilVersusEmptyMetadata",
			a:    func(c *StreamCipher) []byte { return c.ContentMAC("t", []byte("d"), nil) },
			b:    func(c *StreamCipher) []byte { return c.ContentMAC("t", []byte("d"), []byte{}) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.a(c), tc.b(c)) {
				t.Fatal("different content gives equal MACs")
			}
		})
	}
	t.Run("otherStream", func(t *testing.T) {
		other := newTestCipher(t, testRef.Tenant, "order-43", uuid.New(), randomBytes(t, keySize))
		if bytes.Equal(base, other.ContentMAC("OrderPlaced", []byte(`{"a":1}`), []byte(`{"m":1}`))) {
			t.Fatal("two streams give equal MACs for equal content")
		}
	})
}

func mac(typ, data, metadata string) func(*StreamCipher) []byte {
	return func(c *StreamCipher) []byte {
		var md []byte
		if metadata != "" {
			md = []byte(metadata)
		}
		return c.ContentMAC(typ, []byte(data), md)
	}
}

func FuzzOpenEvent(f *testing.F) {
	key := bytes.Repeat([]byte{0x42}, keySize)
	keyID := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	// A fixed nonce: every fuzz worker must seal the same valid payload.
	c, err := newStreamCipher(testRef.Tenant, testRef.Stream, keyID, streamKeyVersion, key, bytes.NewReader(make([]byte, nonceSize)))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := c.SealEvent(testRef, testData, testMetadata)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:headerSize])
	f.Add(valid[:sealedMin])
	f.Add([]byte{})
	f.Add([]byte{FormatVersion, byte(kindEvent)})
	f.Fuzz(func(t *testing.T, payload []byte) {
		data, metadata, err := c.OpenEvent(testRef, payload)
		if err == nil {
			if !bytes.Equal(payload, valid) {
				t.Fatalf("a payload that was never sealed opened to %q, %q", data, metadata)
			}
			return
		}
		checkAuthFailure(t, err)
	})
}

// FuzzEventPlaintext checks that the plaintext decoder accepts exactly the
// encodings appendPlaintext writes.
func FuzzEventPlaintext(f *testing.F) {
	f.Add(appendPlaintext(nil, testData, testMetadata, nil))
	f.Add(appendPlaintext(nil, testData, nil, nil))
	f.Add(appendPlaintext(nil, nil, []byte{}, nil))
	f.Add(appendPlaintext(nil, testData, testMetadata, []byte(`[["/e","evpii_x",""]]`)))
	f.Add([]byte{0x01, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, pt []byte) {
		data, metadata, pii, err := parsePlaintext(pt)
		if err != nil {
			return
		}
		if again := appendPlaintext(nil, data, metadata, pii); !bytes.Equal(again, pt) {
			t.Fatalf("parse then append gives %x; want %x", again, pt)
		}
	})
}

func benchmarkCipher(b *testing.B) (*StreamCipher, []byte) {
	b.Helper()
	c := newTestCipher(b, testRef.Tenant, testRef.Stream, uuid.New(), randomBytes(b, keySize))
	data := bytes.Repeat([]byte("a"), 500)
	return c, data
}

func BenchmarkSealEvent(b *testing.B) {
	c, data := benchmarkCipher(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SealEvent(testRef, data, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenEvent(b *testing.B) {
	c, data := benchmarkCipher(b)
	payload, err := c.SealEvent(testRef, data, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.OpenEvent(testRef, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContentMAC(b *testing.B) {
	c, data := benchmarkCipher(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c.ContentMAC(testRef.Type, data, nil)
	}
}
