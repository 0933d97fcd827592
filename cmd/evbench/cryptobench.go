package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	evcrypto "github.com/eventvault/eventvault/crypto"
)

// cryptoStream is the stream whose key the crypto benchmark uses.
const cryptoStream = "cryptobench-0"

// cryptoResult is the CPU time per event of the crypto path, from Go
// benchmarks of one stream's cipher with events of the configured size.
type cryptoResult struct {
	EventSize int `json:"event_size"`
	// ContentMACNs and SealNs are what an append spends per event: the
	// keyed MAC for idempotency, then the encryption.
	ContentMACNs float64 `json:"content_mac_ns_per_event"`
	SealNs       float64 `json:"seal_ns_per_event"`
	// OpenNs is what a read spends per event.
	OpenNs float64 `json:"open_ns_per_event"`
}

// benchCrypto measures the stream cipher the server itself uses (the
// keyring's, for a stream of the bench tenant; its key is made here, not by
// the root provider).
func benchCrypto(ctx context.Context, keys *evcrypto.Keyring, size int) (cryptoResult, error) {
	c, err := keys.StreamCipher(ctx, benchTenant, cryptoStream)
	if err != nil {
		return cryptoResult{}, fmt.Errorf("crypto benchmark: stream key: %w", err)
	}
	data := newData(size, 1)
	ref := evcrypto.EventRef{Tenant: benchTenant, Stream: cryptoStream, ID: uuid.New(), Position: 0, Type: eventType}
	sealed, err := c.SealEvent(ref, data, nil)
	if err != nil {
		return cryptoResult{}, fmt.Errorf("crypto benchmark: seal: %w", err)
	}
	if _, _, err := c.OpenEvent(ref, sealed); err != nil {
		return cryptoResult{}, fmt.Errorf("crypto benchmark: open: %w", err)
	}
	var failed error
	mac := testing.Benchmark(func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			c.ContentMAC(eventType, data, nil)
		}
	})
	seal := testing.Benchmark(func(b *testing.B) {
		b.SetBytes(int64(size))
		r := ref
		for b.Loop() {
			r.Position++
			if _, err := c.SealEvent(r, data, nil); err != nil {
				failed = err
				b.FailNow()
			}
		}
	})
	open := testing.Benchmark(func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			if _, _, err := c.OpenEvent(ref, sealed); err != nil {
				failed = err
				b.FailNow()
			}
		}
	})
	if failed != nil {
		return cryptoResult{}, fmt.Errorf("crypto benchmark: %w", failed)
	}
	return cryptoResult{
		EventSize:    size,
		ContentMACNs: nsPerOp(mac),
		SealNs:       nsPerOp(seal),
		OpenNs:       nsPerOp(open),
	}, nil
}

// nsPerOp is the exact mean, where BenchmarkResult.NsPerOp truncates.
func nsPerOp(r testing.BenchmarkResult) float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}
