package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// allPageOpener is the eventvault.AllPageReceiver of ReadAll: it opens a
// page of the tenant's events while the store still receives it. Each
// chunk the store hands over is opened on a goroutine of its own, so that
// the decryption of the first events overlaps the transfer of the last,
// instead of following it.
//
// Keys are honoured as openAll honours them: a stream's cipher comes from
// the key row read with the page (the zero key, or none, leaves its events
// erased envelopes), in page order. While the store is receiving, only a
// cipher the key cache holds for that very row is used (CachedStreamCipher:
// no store or root key call while the read holds its connection); a chunk
// with a stream whose cipher is not cached waits, and is opened after the
// read (finish), with OpenStreamCipher.
//
// It takes the keys on request (eventvault.AllPageKeysOnRequest): a store
// may hand the head without the keys, at the page's key epoch. A stream
// whose cipher a read checked against its key row at that very epoch is
// opened with it (CachedStreamCipherAt); a chunk with any other stream
// waits, and the store reads the page's keys after its events (WantsKeys).
// The ciphers found with those keys are marked as checked at the epoch
// (MarkStreamKeyChecked) if the keys were read at the page's epoch, so that
// the next page at that epoch needs none.
type allPageOpener struct {
	ctx  context.Context
	e    *Events
	p    eventvault.Principal
	from int64
	keys map[eventvault.StreamName]eventvault.WrappedKey
	// piiGen is the page's PII generation (AllPage.PIIGeneration).
	piiGen int64
	// onRequest is set when the head came without keys (keys nil until
	// Keys), at key epoch epoch (AllPage.KeyEpoch).
	onRequest bool
	epoch     int64
	// keysEpoch is the key epoch the keys handed to Keys were read at.
	keysEpoch int64
	// ciphers holds the cipher of each stream met so far (nil for an
	// erased one); a stream absent was not met or is not cached yet.
	ciphers map[eventvault.StreamName]*evcrypto.StreamCipher
	limit   int
	// out, manifests and cs (each event's cipher) are allocated for the
	// whole page at once (Head), so that the goroutines opening earlier
	// chunks write into memory that never moves.
	out       []eventvault.Event
	manifests [][]byte
	cs        []*evcrypto.StreamCipher
	// waiting are the first indexes of chunks left for finish.
	waiting []chunkAt
	wg      sync.WaitGroup
	mu      sync.Mutex
	errAt   int // the index of the event err is about
	err     error
}

// chunkAt is a chunk of the page: its events and the index of the first.
type chunkAt struct {
	at     int
	events []eventvault.StoredEvent
}

func newAllPageOpener(ctx context.Context, e *Events, p eventvault.Principal, from int64, limit int) *allPageOpener {
	return &allPageOpener{ctx: ctx, e: e, p: p, from: from, limit: limit,
		ciphers: make(map[eventvault.StreamName]*evcrypto.StreamCipher)}
}

// Head keeps the page's keys and makes room for its events: no more than
// the limit, nor than the positions from From up to Next. A from beyond
// the page's Next would skip whatever commits below it, as the feed says:
// EINVALID with the head.
func (o *allPageOpener) Head(page eventvault.AllPage) error {
	if o.from > page.Next {
		return pastTheEnd("from", o.from, page.Next, false)
	}
	o.keys, o.piiGen = page.Keys, page.PIIGeneration
	o.onRequest, o.epoch = page.Keys == nil, page.KeyEpoch
	n := int(min(int64(o.limit), page.Next-o.from))
	o.out = make([]eventvault.Event, 0, n)
	o.manifests = make([][]byte, 0, n)
	o.cs = make([]*evcrypto.StreamCipher, 0, n)
	return nil
}

// Events finds the chunk's ciphers and starts its opening, now if every
// one is cached, else after the read.
func (o *allPageOpener) Events(chunk []eventvault.StoredEvent) error {
	at := len(o.out)
	if at+len(chunk) > cap(o.out) {
		return fmt.Errorf("the store handed over more than the %d events the page can hold (the limit, or the positions up to the page's next)", cap(o.out))
	}
	o.out = o.out[:at+len(chunk)]
	o.manifests = o.manifests[:at+len(chunk)]
	o.cs = o.cs[:at+len(chunk)]
	ready := true
	for i, se := range chunk {
		c, ok := o.ciphers[se.Stream]
		if !ok && o.onRequest {
			if c, ok = o.e.keys.CachedStreamCipherAt(o.p.Tenant, se.Stream, o.epoch); !ok {
				ready = false
				continue
			}
			o.ciphers[se.Stream] = c
		} else if !ok {
			k := o.keys[se.Stream]
			if k.ID != uuid.Nil {
				if c, ok = o.e.keys.CachedStreamCipher(o.p.Tenant, se.Stream, k); !ok {
					ready = false
					continue
				}
			}
			o.ciphers[se.Stream] = c
		}
		o.cs[at+i] = c
	}
	if !ready || len(o.waiting) > 0 {
		// Later chunks wait too, so that ciphers are still opened in page
		// order (a key that fails fails the read as it did event by event).
		o.waiting = append(o.waiting, chunkAt{at, chunk})
		return nil
	}
	o.startOpen(at, chunk)
	return nil
}

// startOpen opens the chunk of events whose first is at index at, with the
// ciphers found for them, on a goroutine of its own. The goroutine writes
// only the chunk's own elements, through slices taken here: Events goes on
// growing the page's slices meanwhile.
func (o *allPageOpener) startOpen(at int, chunk []eventvault.StoredEvent) {
	n := len(chunk)
	out, manifests, cs := o.out[at:at+n], o.manifests[at:at+n], o.cs[at:at+n]
	o.wg.Go(func() {
		_ = openPage(n, func(i int) error {
			se := chunk[i]
			if cs[i] == nil {
				out[i] = eventvault.Event{ID: se.ID, Stream: se.Stream, Type: se.Type, Position: se.Position,
					GlobalPosition: se.GlobalPosition, RecordedAt: se.RecordedAt, Erased: true}
				return nil
			}
			var err error
			if out[i], manifests[i], err = open(cs[i], o.p.Tenant, se, true); err != nil {
				o.fail(at+i, err)
				return err
			}
			return nil
		})
	})
}

// WantsKeys reports whether a chunk waits for the page's keys: a stream
// whose cipher was not checked at the page's key epoch.
func (o *allPageOpener) WantsKeys() bool { return len(o.waiting) > 0 }

// Keys takes the page's keys, read after its events at key epoch epoch.
func (o *allPageOpener) Keys(keys map[eventvault.StreamName]eventvault.WrappedKey, epoch int64) error {
	o.keys, o.keysEpoch = keys, epoch
	return nil
}

// markChecked records that wk is the stream's key row at the page's key
// epoch, if the keys were read at that epoch: rows read at a later one may
// have changed since the page (re-wrapped, shredded), and are used for
// this page only.
func (o *allPageOpener) markChecked(stream eventvault.StreamName, wk eventvault.WrappedKey) {
	if o.onRequest && o.keysEpoch == o.epoch {
		o.e.keys.MarkStreamKeyChecked(o.p.Tenant, stream, wk, o.epoch)
	}
}

// fail records err, the failure of the event at index i, unless an earlier
// event failed: the read fails with the error of the first event that
// failed, as a loop over the page would.
func (o *allPageOpener) fail(i int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil || i < o.errAt {
		o.errAt, o.err = i, err
	}
}

// finish ends the read: readErr is what the store's ReadAllTo returned.
// It waits for the chunks being opened, opens those left waiting, and
// returns the events with their manifests (openEvents's first half), or
// the error of the first event that failed, or readErr.
func (o *allPageOpener) finish(readErr error) ([]eventvault.Event, [][]byte, error) {
	if readErr != nil {
		o.wg.Wait()
		return nil, nil, fmt.Errorf("read all: %w", readErr)
	}
	if len(o.waiting) > 0 && o.keys == nil {
		o.wg.Wait()
		return nil, nil, fmt.Errorf("read all from %d: the store handed over no keys for the streams whose ciphers were not checked at key epoch %d", o.from, o.epoch)
	}
	for _, w := range o.waiting {
		if i, err := o.openCiphers(w); err != nil {
			o.fail(i, err)
			break
		}
		o.startOpen(w.at, w.events)
	}
	o.wg.Wait()
	if o.err != nil {
		return nil, nil, o.err
	}
	return o.out, o.manifests, nil
}

// openCiphers finds the ciphers of a waiting chunk's events, opening with
// OpenStreamCipher those not cached, in page order. A failure comes with
// the index of the event whose key failed.
func (o *allPageOpener) openCiphers(w chunkAt) (int, error) {
	for i, se := range w.events {
		c, ok := o.ciphers[se.Stream]
		if !ok {
			if k := o.keys[se.Stream]; k.ID != uuid.Nil {
				var err error
				if c, err = o.e.keys.OpenStreamCipher(o.ctx, o.p.Tenant, se.Stream, k); err != nil {
					return w.at + i, fmt.Errorf("key of stream %s: %w", se.Stream, err)
				}
				o.markChecked(se.Stream, k)
			} else {
				// Shredded: its events are erased envelopes.
				o.markChecked(se.Stream, k)
			}
			o.ciphers[se.Stream] = c
		}
		o.cs[w.at+i] = c
	}
	return 0, nil
}
