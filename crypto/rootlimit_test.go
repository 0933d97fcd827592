package crypto

import (
	"context"
	"testing"
)

// probedRoot is a root key provider that can be probed.
type probedRoot struct{ RootKeyProvider }

func (probedRoot) ProbeRoot(context.Context) (RootStatus, error) {
	return RootStatus{LatestVersion: 7}, nil
}

// unwrapping is a wrapper like the metrics' counter: an Unwrap and nothing
// else.
type unwrapping struct{ RootKeyProvider }

func (u unwrapping) Unwrap() RootKeyProvider { return u.RootKeyProvider }

// TestRootAsSeesThroughWrappers: a provider's capabilities (here probing)
// stay visible through LimitRoot and another wrapper with Unwrap, so that
// readiness and rotation keep working behind the bound; a provider
// without the capability has none through them either.
func TestRootAsSeesThroughWrappers(t *testing.T) {
	root := LimitRoot(unwrapping{probedRoot{}}, 2)
	p, ok := RootAs[RootProber](root)
	if !ok {
		t.Fatal("RootAs did not find the prober behind LimitRoot and a wrapper")
	}
	if s, err := p.ProbeRoot(context.Background()); err != nil || s.LatestVersion != 7 {
		t.Fatalf("ProbeRoot: %+v, %v", s, err)
	}
	if _, ok := RootAs[RootRotator](root); ok {
		t.Fatal("RootAs found a rotator where there is none")
	}
	if _, ok := RootAs[RootProber](LimitRoot(unwrapping{}, 1)); ok {
		t.Fatal("RootAs found a prober where there is none")
	}
}
