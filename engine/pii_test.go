package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/policies"
)

// piiRig is an engine with personal data kept apart over one real store.
type piiRig struct {
	store    eventvault.Store
	reads    *engine.ReadLog
	rights   *engine.Subjects
	logs     *bytes.Buffer
	root     *countingRoot
	keys     *evcrypto.Keyring
	subjects *evcrypto.SubjectKeys
	pseud    *pseudonym.Key
	events   *engine.Events
	erasure  *engine.Erasure
}

func newPIIRig(t testing.TB, b backend, store eventvault.Store) *piiRig {
	t.Helper()
	r := &piiRig{store: store, root: newRoot(t), logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pseud, signer := erasureKeys(t, t.TempDir())
	r.pseud = pseud
	rec := &audit.Recorder{}
	r.reads = engine.NewReadLog(rec, store, 0, logger)
	r.keys = evcrypto.NewKeyring(r.root, store, evcrypto.KeyringOptions{})
	r.subjects = evcrypto.NewSubjectKeys(r.keys, store)
	r.events = engine.NewEvents(store, r.keys, logger, engine.WithPseudonymizer(pseud), engine.WithPII(r.subjects, store), engine.WithAudit(rec, r.reads))
	r.erasure = engine.NewErasure(store, r.keys, pseud, signer, logger, engine.WithPIIErasure(store, r.subjects), engine.WithErasureAudit(rec))
	r.rights = engine.NewSubjects(r.events, store, pseud, rec)
	return r
}

// withPolicy is a principal of tenant acme holding one policy document.
func withPolicy(t testing.TB, body string) eventvault.Principal {
	t.Helper()
	d, err := policies.Parse("doc", body)
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return eventvault.Principal{Tenant: "acme", TokenID: "tok_" + uuid.NewString()[:8], Grants: policies.NewSet(d)}
}

const (
	readAll = `permit (principal, action in [Action::"append", Action::"read"], resource is Stream);
permit (principal, action == Action::"read_all", resource is Tenant);
`
	decryptAll = readAll + `permit (principal, action == Action::"read_pii", resource);`
	maskAll    = readAll + `permit (principal, action == Action::"read_pii_masked", resource);`
	phoneOnly  = readAll + `permit (principal, action == Action::"read_pii", resource) when { context.class == "phone" };
permit (principal, action == Action::"read_pii_masked", resource) when { context.pointer like "/friend/*" };`
)

const customer = `{"amount":42,"email":"jane.doe@example.com","friend":{"email":"bob@example.com"},"phone":"+44 20 7946 0958"}`

func customerEvent() eventvault.NewEvent {
	return eventvault.NewEvent{ID: uuid.New(), Type: "CustomerRegistered", Data: []byte(customer), PII: []eventvault.PIIMark{
		{Pointer: "/email", Subject: "alice@example.com", Class: eventvault.PIIEmail},
		{Pointer: "/phone", Subject: "alice@example.com", Class: eventvault.PIIPhone},
		{Pointer: "/friend/email", Subject: "bob@example.com", Class: eventvault.PIIEmail},
	}}
}

func field(t *testing.T, data []byte, path ...string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("data %s: %v", data, err)
	}
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	return v
}

// TestReadsDecideEachPersonalField appends an event marking three values
// of two subjects, then reads it as callers whose policies decrypt, mask,
// decide per class and pointer, or grant nothing on personal data: each
// field comes back decrypted, masked or redacted, on stream reads and on
// read-all alike, and the amount, which is not personal, always in clear.
func TestReadsDecideEachPersonalField(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			defer r.store.Close()
			writer := withPolicy(t, readAll)
			if _, err := r.events.Append(ctx, writer, "customer-1", eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()}); err != nil {
				t.Fatalf("append: %v", err)
			}
			cases := []struct {
				name                 string
				policy               string
				email, phone, friend string // "" means redacted
			}{
				{"decrypt", decryptAll, "jane.doe@example.com", "+44 20 7946 0958", "bob@example.com"},
				{"mask", maskAll, "j***@example.com", "***0958", "b***@example.com"},
				{"per field", phoneOnly, "", "+44 20 7946 0958", "b***@example.com"},
				{"none", readAll, "", "", ""},
			}
			for _, c := range cases {
				p := withPolicy(t, c.policy)
				sl, err := r.events.ReadStream(ctx, p, "customer-1", eventvault.ReadOptions{})
				if err != nil {
					t.Fatalf("%s: read: %v", c.name, err)
				}
				all, err := r.events.ReadAll(ctx, p, 0, 10)
				if err != nil {
					t.Fatalf("%s: read all: %v", c.name, err)
				}
				for _, data := range [][]byte{sl.Events[0].Data, all[0].Data} {
					if got := field(t, data, "amount"); got != 42.0 {
						t.Errorf("%s: amount = %v", c.name, got)
					}
					for _, f := range []struct {
						path []string
						want string
					}{{[]string{"email"}, c.email}, {[]string{"phone"}, c.phone}, {[]string{"friend", "email"}, c.friend}} {
						got := field(t, data, f.path...)
						if f.want == "" {
							m, ok := got.(map[string]any)
							if !ok || m["redacted"] != true || !strings.HasPrefix(fmt.Sprint(m["token"]), eventvault.PIITokenPrefix) {
								t.Errorf("%s: %v = %v; want the token with redacted: true", c.name, f.path, got)
							}
							continue
						}
						if got != f.want {
							t.Errorf("%s: %v = %v; want %q", c.name, f.path, got, f.want)
						}
					}
				}
			}
		})
	}
}

// TestMarkingRefusesBadInput tries each mistake an append can make in its
// pii map; each is EINVALID naming the pointer, and nothing is appended.
func TestMarkingRefusesBadInput(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	r := newPIIRig(t, b, b.open(t))
	defer r.store.Close()
	p := withPolicy(t, decryptAll)
	data := []byte(`{"a":{"b":"x"},"list":[1,2],"e":"v"}`)
	tooMany := make([]eventvault.PIIMark, eventvault.MaxPIIPerEvent+1)
	for i := range tooMany {
		tooMany[i] = eventvault.PIIMark{Pointer: "/e", Subject: "s"}
	}
	cases := []struct {
		name  string
		marks []eventvault.PIIMark
		want  string
	}{
		{"names nothing", []eventvault.PIIMark{{Pointer: "/missing", Subject: "s"}}, `pii["/missing"] names nothing`},
		{"index out of range", []eventvault.PIIMark{{Pointer: "/list/2", Subject: "s"}}, `pii["/list/2"] names nothing`},
		{"leading zero index", []eventvault.PIIMark{{Pointer: "/list/01", Subject: "s"}}, `pii["/list/01"] names nothing`},
		{"into a scalar", []eventvault.PIIMark{{Pointer: "/e/x", Subject: "s"}}, `pii["/e/x"] names nothing`},
		{"into a marked value", []eventvault.PIIMark{{Pointer: "/a", Subject: "s"}, {Pointer: "/a/b", Subject: "s"}}, `points into a value already marked`},
		{"empty subject", []eventvault.PIIMark{{Pointer: "/e"}}, `events[0].pii["/e"].subject is empty`},
		{"unknown class", []eventvault.PIIMark{{Pointer: "/e", Subject: "s", Class: "ssn"}}, `events[0].pii["/e"].class`},
		{"not a pointer", []eventvault.PIIMark{{Pointer: "e", Subject: "s"}}, `events[0].pii["e"] is not a JSON Pointer`},
		{"bad escape", []eventvault.PIIMark{{Pointer: "/a~2", Subject: "s"}}, `is not a JSON Pointer`},
		{"whole document", []eventvault.PIIMark{{Pointer: "", Subject: "s"}}, `is not a JSON Pointer`},
		{"over the limit", tooMany, fmt.Sprintf("the limit is %d per event", eventvault.MaxPIIPerEvent)},
	}
	for _, c := range cases {
		ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: data, PII: c.marks}
		_, err := r.events.Append(ctx, p, "note-1", eventvault.ExpectAny, []eventvault.NewEvent{ev})
		if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(eventvault.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v; want EINVALID saying %s", c.name, err, c.want)
		}
	}
	if _, err := r.events.ReadStream(ctx, p, "note-1", eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("a refused append left a stream: %v", err)
	}
	// An escaped pointer names a member with '/' and '~' in its name.
	ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(`{"a/b~c":"x"}`), PII: []eventvault.PIIMark{{Pointer: "/a~1b~0c", Subject: "s"}}}
	if _, err := r.events.Append(ctx, p, "note-2", eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
		t.Fatalf("escaped pointer: %v", err)
	}
	sl, err := r.events.ReadStream(ctx, p, "note-2", eventvault.ReadOptions{})
	if err != nil {
		t.Fatalf("escaped pointer read back: %v", err)
	}
	if string(sl.Events[0].Data) != `{"a/b~c":"x"}` {
		t.Fatalf("escaped pointer read back: %s", sl.Events[0].Data)
	}
}

// TestEqualValuesGetUnrelatedTokens appends one value twice, in one event
// and in two: every token differs, and none holds the value.
func TestEqualValuesGetUnrelatedTokens(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	r := newPIIRig(t, b, b.open(t))
	defer r.store.Close()
	writer := withPolicy(t, readAll)
	var evs []eventvault.NewEvent
	for i := 0; i < 2; i++ {
		evs = append(evs, eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(`{"a":"same@example.com","b":"same@example.com"}`),
			PII: []eventvault.PIIMark{{Pointer: "/a", Subject: "s1"}, {Pointer: "/b", Subject: "s1"}}})
	}
	if _, err := r.events.Append(ctx, writer, "note-1", eventvault.ExpectAny, evs); err != nil {
		t.Fatal(err)
	}
	sl, err := r.events.ReadStream(ctx, writer, "note-1", eventvault.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range sl.Events {
		for _, k := range []string{"a", "b"} {
			tok := fmt.Sprint(field(t, ev.Data, k).(map[string]any)["token"])
			if seen[tok] || strings.Contains(tok, "same") || len(tok) != len(eventvault.PIITokenPrefix)+26 {
				t.Fatalf("token %q repeats, holds the value or has the wrong length (seen %v)", tok, seen)
			}
			seen[tok] = true
		}
	}
	// A retried append (same ids, same values) is a replay, not a conflict,
	// though its tokens would be new.
	res, err := r.events.Append(ctx, writer, "note-1", eventvault.ExpectAny, evs)
	if err != nil || !res.Replayed {
		t.Fatalf("retry of an append marking values: %+v, %v; want a replay", res, err)
	}
}

// countingPII counts the PII store's calls a read makes.
type countingPII struct {
	eventvault.Store
	values, keys, states atomic.Int64
}

func (c *countingPII) SubjectStates(ctx context.Context, tenant eventvault.TenantID, subjects []eventvault.Pseudonym) (map[eventvault.Pseudonym]eventvault.SubjectKeyState, int64, error) {
	c.states.Add(1)
	return c.Store.SubjectStates(ctx, tenant, subjects)
}

func (c *countingPII) PIIValues(ctx context.Context, tenant eventvault.TenantID, tokens []string) (eventvault.PIIPage, error) {
	c.values.Add(1)
	return c.Store.PIIValues(ctx, tenant, tokens)
}

func (c *countingPII) SubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.WrappedKey, error) {
	c.keys.Add(1)
	return c.Store.SubjectKey(ctx, tenant, subject)
}

// TestAPageOfAHundredSubjectsIsOneRoundTrip reads a page whose events
// mark values of 100 subjects: one store call fetches every value and key,
// and the root key is not called.
func TestAPageOfAHundredSubjectsIsOneRoundTrip(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			store := &countingPII{Store: b.open(t)}
			defer store.Close()
			r := newPIIRig(t, b, store)
			p := withPolicy(t, decryptAll)
			var evs []eventvault.NewEvent
			for i := 0; i < 100; i++ {
				evs = append(evs, eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"email":"person%d@example.com"}`, i),
					PII: []eventvault.PIIMark{{Pointer: "/email", Subject: fmt.Sprintf("subject-%d", i), Class: eventvault.PIIEmail}}})
			}
			if _, err := r.events.Append(ctx, p, "note-1", eventvault.ExpectAny, evs); err != nil {
				t.Fatal(err)
			}
			// A cold node: its keyring and its caches hold nothing. Its
			// first read takes the 100 subjects' states in one round trip,
			// and the values in one more; its second neither (the page
			// says the states did not change since); the read after a
			// restriction placed elsewhere (straight in the store, as
			// another node would), the states again.
			keys := evcrypto.NewKeyring(r.root, store, evcrypto.KeyringOptions{})
			cold := engine.NewEvents(store, keys, nil, engine.WithPII(evcrypto.NewSubjectKeys(keys, store), store))
			var sl engine.StreamSlice
			for round, want := range []struct{ states, values int64 }{{1, 1}, {0, 0}, {1, 0}} {
				if round == 2 {
					if err := store.PutRestriction(ctx, "acme", eventvault.Restriction{Subject: r.pseud.Pseudonym("acme", "subject-7"), Reason: "contested", PlacedAt: time.Now(), PlacedBy: "tok_dpo"}); err != nil {
						t.Fatal(err)
					}
				}
				store.values.Store(0)
				store.keys.Store(0)
				store.states.Store(0)
				unwraps := r.root.unwraps.Load()
				var err error
				if sl, err = cold.ReadStream(ctx, p, "note-1", eventvault.ReadOptions{Limit: 100}); err != nil {
					t.Fatal(err)
				}
				if s, v, k := store.states.Load(), store.values.Load(), store.keys.Load(); s != want.states || v != want.values || k != 0 {
					t.Fatalf("read %d of a page of 100 subjects made %d SubjectStates, %d PIIValues and %d SubjectKey calls; want %d, %d and 0", round+1, s, v, k, want.states, want.values)
				}
				if n := r.root.unwraps.Load() - unwraps; round == 1 && n != 0 {
					t.Fatalf("a warm read called the root key %d times", n)
				}
			}
			for i, ev := range sl.Events {
				want := fmt.Sprintf(`{"email":"person%d@example.com"}`, i)
				if i == 7 {
					want = `{"email":{"token":"`
				}
				if !strings.HasPrefix(string(ev.Data), want) {
					t.Fatalf("event %d reads %s; want %s", i, ev.Data, want)
				}
			}
		})
	}
}

// TestMovedPersonalCiphertextFailsToOpen writes, through the store as an
// attacker with the database would, one value's ciphertext in the place of
// another token of the same subject, of another subject, and of a subject
// of another tenant: every read of the moved value fails authentication,
// none shows the value, though both values were read (and so kept with
// their subject keys) before the move.
func TestMovedPersonalCiphertextFailsToOpen(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			defer r.store.Close()
			p := withPolicy(t, decryptAll)
			// values appends a customer event to stream in p's tenant and
			// returns its stored values by pointer.
			values := func(p eventvault.Principal, stream eventvault.StreamName) map[string]eventvault.PIIValue {
				t.Helper()
				if _, err := r.events.Append(ctx, p, stream, eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()}); err != nil {
					t.Fatal(err)
				}
				redacting := withPolicy(t, readAll)
				redacting.Tenant = p.Tenant
				sl, err := r.events.ReadStream(ctx, redacting, stream, eventvault.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				// Read once decrypting too, so that the values are kept with
				// their subject keys before anything is moved.
				if _, err := r.events.ReadStream(ctx, p, stream, eventvault.ReadOptions{}); err != nil {
					t.Fatal(err)
				}
				var tokens []string
				for _, path := range [][]string{{"email"}, {"phone"}, {"friend", "email"}} {
					tokens = append(tokens, fmt.Sprint(field(t, sl.Events[0].Data, path...).(map[string]any)["token"]))
				}
				page, err := r.store.PIIValues(ctx, p.Tenant, tokens)
				if err != nil || len(page.Values) != 3 {
					t.Fatalf("values of %s: %+v, %v", stream, page, err)
				}
				out := map[string]eventvault.PIIValue{}
				for _, v := range page.Values {
					out[v.Pointer] = v
				}
				return out
			}
			other := p
			other.Tenant = "globex"
			moves := []struct {
				name   string
				reader eventvault.Principal
				target func() eventvault.PIIValue
			}{
				{"another token of the subject", p, func() eventvault.PIIValue { return values(p, "customer-1")["/phone"] }},
				{"another subject", p, func() eventvault.PIIValue { return values(p, "customer-2")["/friend/email"] }},
				{"another tenant", other, func() eventvault.PIIValue { return values(other, "customer-3")["/email"] }},
			}
			for i, m := range moves {
				source := values(p, eventvault.StreamName(fmt.Sprintf("source-%d", i)))["/email"]
				target := m.target()
				moved := target
				moved.Version, moved.Ciphertext = target.Version+1, source.Ciphertext
				if err := r.store.RectifyPII(ctx, m.reader.Tenant, moved); err != nil {
					t.Fatalf("%s: write the moved row: %v", m.name, err)
				}
				_, err := r.events.ReadStream(ctx, m.reader, target.Stream, eventvault.ReadOptions{})
				if eventvault.ErrorCode(err) != eventvault.EINTERNAL || !strings.Contains(err.Error(), evcrypto.ErrAuthentication.Error()) {
					t.Fatalf("%s: read with a moved value: %v; want EINTERNAL wrapping ErrAuthentication", m.name, err)
				}
				if strings.Contains(err.Error(), "jane.doe") || strings.Contains(eventvault.ErrorMessage(err), "jane.doe") {
					t.Fatalf("%s: the error quotes the value: %v", m.name, err)
				}
			}
		})
	}
}

// TestPersonalDataSurvivesAKEKRotation rotates the tenant KEK, re-wraps
// and destroys the old version, as a crypto-period does: the subject keys
// move with the stream keys, so a cold node still decrypts every value and
// appends go on for the same subjects.
func TestPersonalDataSurvivesAKEKRotation(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			defer r.store.Close()
			p := withPolicy(t, decryptAll)
			if _, err := r.events.Append(ctx, p, "customer-1", eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()}); err != nil {
				t.Fatal(err)
			}
			m := evcrypto.NewKeyManager(r.keys)
			if _, err := m.RotateTenantKEK(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.DestroyOldKEKs(ctx, "acme"); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
				t.Fatalf("destroying the old KEK before the re-wrap: %v, want ECONFLICT", err)
			}
			if _, err := m.RewrapStreamKeys(ctx, "acme", nil); err != nil {
				t.Fatal(err)
			}
			if n, err := m.DestroyOldKEKs(ctx, "acme"); err != nil || n != 1 {
				t.Fatalf("DestroyOldKEKs: %d, %v", n, err)
			}
			keys := evcrypto.NewKeyring(r.root, r.store, evcrypto.KeyringOptions{})
			cold := engine.NewEvents(r.store, keys, nil, engine.WithPseudonymizer(r.pseud), engine.WithPII(evcrypto.NewSubjectKeys(keys, r.store), r.store))
			if _, err := cold.Append(ctx, p, "customer-2", eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()}); err != nil {
				t.Fatalf("append after the crypto-period: %v", err)
			}
			for _, s := range []eventvault.StreamName{"customer-1", "customer-2"} {
				sl, err := cold.ReadStream(ctx, p, s, eventvault.ReadOptions{})
				if err != nil {
					t.Fatalf("read %s after the crypto-period: %v", s, err)
				}
				if field(t, sl.Events[0].Data, "email") != "jane.doe@example.com" || field(t, sl.Events[0].Data, "friend", "email") != "bob@example.com" {
					t.Fatalf("%s after the crypto-period: %s", s, sl.Events[0].Data)
				}
			}
		})
	}
}

// erasingStore erases the subject of an append's first marked value just
// before the append reaches the store, as an erasure on another node
// would between the append's key lookup and its commit.
type erasingStore struct {
	eventvault.Store
}

func (s erasingStore) Append(ctx context.Context, tenant eventvault.TenantID, req eventvault.AppendRequest) (eventvault.AppendResult, error) {
	if len(req.PII) > 0 {
		if _, err := s.Store.EraseSubjectPII(ctx, tenant, req.PII[0].Subject, time.Now()); err != nil {
			return eventvault.AppendResult{}, err
		}
	}
	return s.Store.Append(ctx, tenant, req)
}

// TestAnErasureDuringAnAppendWritesNothing: the subject of a marked value
// is erased while the append is under way, with its key still cached on
// this node; the store refuses the append (409, the erasure fence), no
// event, stream or value is left, and the next append marking the subject
// is refused at once.
func TestAnErasureDuringAnAppendWritesNothing(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			inner := b.open(t)
			defer inner.Close()
			r := newPIIRig(t, b, erasingStore{inner})
			p := withPolicy(t, decryptAll)
			// Warm the subject keys of the customer event's subjects.
			for _, s := range []string{"alice@example.com", "bob@example.com"} {
				if _, err := r.subjects.SubjectCipher(ctx, "acme", r.pseud.Pseudonym("acme", s)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := r.events.Append(ctx, p, "customer-1", eventvault.ExpectAny, []eventvault.NewEvent{customerEvent()})
			if eventvault.ErrorCode(err) != eventvault.ECONFLICT || !errors.Is(err, eventvault.ErrSubjectErased) {
				t.Fatalf("append racing an erasure: %v; want ECONFLICT wrapping ErrSubjectErased", err)
			}
			if _, err := r.events.ReadStream(ctx, p, "customer-1", eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Fatalf("the refused append left a stream: %v", err)
			}
			alice := r.pseud.Pseudonym("acme", "alice@example.com")
			if r.subjects.Cached("acme", alice) {
				t.Fatal("the erased subject's key is still cached")
			}
			vs, _, err := inner.SubjectPII(ctx, "acme", r.pseud.Pseudonym("acme", "bob@example.com"))
			if err != nil || len(vs) != 0 {
				t.Fatalf("the refused append left bob's values: %d, %v", len(vs), err)
			}
		})
	}
}

// TestKeptDataShowsOnlyWhatEachReaderMaySee reads an event whose values
// are all one subject's, whose shown data the subject's key keeps after a
// read, as principals that may see more and less of it, one after the
// other and each twice: every read shows what its own policy decides,
// never what the kept data of an earlier reader shows; a restriction and
// an erasure placed straight in the store (as another node would) are
// honoured at the next read.
func TestKeptDataShowsOnlyWhatEachReaderMaySee(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			defer r.store.Close()
			ev := eventvault.NewEvent{ID: uuid.New(), Type: "CustomerRegistered", Data: []byte(`{"email":"jane.doe@example.com","phone":"+44 20 7946 0958"}`), PII: []eventvault.PIIMark{
				{Pointer: "/email", Subject: "jane", Class: eventvault.PIIEmail}, {Pointer: "/phone", Subject: "jane", Class: eventvault.PIIPhone}}}
			if _, err := r.events.Append(ctx, withPolicy(t, readAll), "customer-9", eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
				t.Fatal(err)
			}
			pJane := r.pseud.Pseudonym("acme", "jane")
			read := func(policy, want string) {
				t.Helper()
				for range 2 {
					sl, err := r.events.ReadStream(ctx, withPolicy(t, policy), "customer-9", eventvault.ReadOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if got := fmt.Sprint(field(t, sl.Events[0].Data, "email")); !strings.HasPrefix(got, want) {
						t.Fatalf("email shows %s; want %s…", got, want)
					}
				}
			}
			read(decryptAll, "jane.doe@example.com")
			if !r.subjects.KeepsValue("acme", pJane, []byte(`"email":"jane.doe@example.com"`)) {
				t.Fatal("a read kept no data with jane's key: the reads below would prove nothing")
			}
			read(maskAll, "j***@example.com")
			read(decryptAll, "jane.doe@example.com")
			read(phoneOnly, "map[redacted:true")
			read(readAll, "map[redacted:true")
			read(decryptAll, "jane.doe@example.com")
			if err := r.store.PutRestriction(ctx, "acme", eventvault.Restriction{Subject: pJane, Reason: "contested", PlacedAt: time.Now(), PlacedBy: "tok_dpo"}); err != nil {
				t.Fatal(err)
			}
			read(decryptAll, "map[redacted:true")
			if err := r.store.DeleteRestriction(ctx, "acme", pJane); err != nil {
				t.Fatal(err)
			}
			read(decryptAll, "jane.doe@example.com")
			if _, err := r.store.EraseSubjectPII(ctx, "acme", pJane, time.Now()); err != nil {
				t.Fatal(err)
			}
			read(decryptAll, "map[erased:true]")
			if r.subjects.KeepsValue("acme", pJane, []byte("jane.doe@example.com")) {
				t.Fatal("jane's data is still kept after her erasure")
			}
		})
	}
}
