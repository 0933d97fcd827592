package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// fetchHealth remembers whether the last JWKS fetch failed, so that a token
// whose kid is unknown can be told apart: the key is not the provider's
// (401), or the provider cannot be asked just now (503).
type fetchHealth struct {
	failing atomic.Bool
}

// transport wraps base: every JWKS response marks the fetch healthy or
// failing (anything but 200, or no answer at all, is failing). A fetch
// whose caller went away (the request that named an unknown kid was
// cancelled) says nothing about the provider and changes nothing.
func (h *fetchHealth) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil && callerLeft(req.Context()) {
			return resp, err
		}
		h.failing.Store(err != nil || resp.StatusCode != http.StatusOK)
		return resp, err
	})
}

// callerLeft reports whether ctx was cancelled rather than timed out.
func callerLeft(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newKeyfunc returns the keyfunc over the keys of c: the JWK Set file read
// now, and the JWKS URL fetched now, every c.RefreshInterval, and on an
// unknown kid as the rate limiter allows. A failed first fetch is logged,
// not returned: the server starts, and API tokens work, while the provider
// is down. The refreshing ends with ctx.
func newKeyfunc(ctx context.Context, c Config, health *fetchHealth, logger *slog.Logger) (keyfunc.Keyfunc, error) {
	var given jwkset.Storage
	if c.KeysFile != "" {
		var err error
		if given, err = readKeysFile(c.KeysFile); err != nil {
			return nil, err
		}
	}
	var urls []string
	if c.JWKSURL != "" {
		urls = []string{c.JWKSURL}
	}
	client := c.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: c.FetchTimeout,
			// A redirect is a configuration to fix, not to follow
			// silently to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	tracked := *client
	base := tracked.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tracked.Transport = health.transport(base)
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, urls, keyfunc.Override{
		Client:                    &tracked,
		Given:                     given,
		HTTPTimeout:               c.FetchTimeout,
		NoErrorReturnFirstHTTPReq: boolPtr(true),
		// A request with an unknown kid waits at most this long for the
		// limiter and the fetch together (jwkset uses one deadline).
		RateLimitWaitMax: c.FetchTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				if callerLeft(ctx) {
					return
				}
				health.failing.Store(true)
				logger.WarnContext(ctx, "JWKS fetch failed: JWTs signed with keys not yet known get 503 until it succeeds", slog.String("jwks_url", u), slog.Any("err", err))
			}
		},
		RefreshInterval:   c.RefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(c.UnknownKIDInterval), c.UnknownKIDBurst),
	})
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS client for %s: %w", c.JWKSURL, err)
	}
	// Only keys for signatures: a JWK marked "use": "enc" verifies nothing
	// (RFC 7517 §4.2); one without "use" may sign.
	kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: kf.Storage(), UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("jwt: keyfunc: %w", err)
	}
	return kf, nil
}

func boolPtr(b bool) *bool { return &b }

// readKeysFile reads a JWK Set file (RFC 7517 §5) of public signing keys.
// It refuses private or symmetric key material: a file that holds it
// should not be on this server.
func readKeysFile(path string) (jwkset.Storage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt: read keys file: %w", err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwt: keys file %s is not a JWK Set ({\"keys\": [...]}, RFC 7517 §5): %w", path, err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("jwt: keys file %s holds no keys", path)
	}
	for i, k := range set.Keys {
		switch {
		case k.KTY == jwkset.KtyOct:
			return nil, fmt.Errorf("jwt: keys file %s: key %d is a symmetric (oct) key: only public keys are accepted (RFC 8725 §2.1)", path, i)
		case k.D != "" || k.P != "":
			return nil, fmt.Errorf("jwt: keys file %s: key %d holds private key material: give only the public halves", path, i)
		}
	}
	store, err := set.ToStorage()
	if err != nil {
		return nil, fmt.Errorf("jwt: keys file %s: %w", path, err)
	}
	return store, nil
}

// errKeyMismatch: the key the kid names is not a key for the token's alg.
var errKeyMismatch = errors.New("the key is not one for the token's algorithm")

// fitKey returns key if it suits alg (RFC 7518 §3.3–3.5, RFC 8037): RSA of
// at least 2048 bits for RS* and PS*, ECDSA on the curve alg names for ES*,
// Ed25519 for EdDSA. A key set (a token without kid) keeps only the keys
// that suit; none is errKeyMismatch.
func fitKey(key any, alg string) (any, error) {
	if set, ok := key.(jwt.VerificationKeySet); ok {
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if fits(k, alg) {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, errKeyMismatch
		}
		return fit, nil
	}
	if fits(key, alg) {
		return key, nil
	}
	return nil, errKeyMismatch
}

func fits(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg) && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		return want != nil && k.Curve == want
	case ed25519.PublicKey:
		return alg == "EdDSA"
	default:
		return false
	}
}
