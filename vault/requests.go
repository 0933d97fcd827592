package vault

import (
	"maps"
	"net/http"
	"strings"
	"sync"
)

// requestCounter is the HTTP transport to Vault: it counts every request
// sent, retries included, by path, so that tests (and operators, through
// Requests) can see how often EventVault calls Vault.
type requestCounter struct {
	base   http.RoundTripper
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	c.mu.Lock()
	c.counts[path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// Requests returns how many HTTP requests the provider has sent to Vault,
// by path without the /v1/ prefix (such as "transit/encrypt/eventvault-root"),
// each retry counted. The map is a copy.
func (t *Transit) Requests() map[string]int {
	t.requests.mu.Lock()
	defer t.requests.mu.Unlock()
	return maps.Clone(t.requests.counts)
}
