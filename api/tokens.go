package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
)

type tokenRequest struct {
	// Tenant and Name are pointers so that one given empty (an unset
	// variable) is refused, not read as left out.
	Tenant *string           `json:"tenant"`
	Name   *string           `json:"name"`
	Rules  []eventvault.Rule `json:"rules"`
	// Policies name documents of the tenant (PUT /v1/policies/{name}).
	Policies []string `json:"policies"`
	// TTL is a Go duration ("720h") or a number of seconds.
	TTL *ttlValue `json:"ttl"`
}

type tokenResponse struct {
	Token     string            `json:"token"`
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Rules     []eventvault.Rule `json:"rules"`
	Policies  []string          `json:"policies"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
}

// ttlValue decodes a token's ttl: a Go duration string ("720h", "90m") or
// a whole number of seconds.
type ttlValue time.Duration

func (v *ttlValue) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		d, err := time.ParseDuration(strings.Trim(s, `"`))
		if err != nil {
			return eventvault.FieldErrorf("/ttl", "ttl must be a duration from 1m to 8784h (366 days), such as \"720h\", or a whole number of seconds")
		}
		*v = ttlValue(d)
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > int64(auth.MaxTokenTTL/time.Second) {
		return eventvault.FieldErrorf("/ttl", "ttl must be a duration such as \"720h\" or a whole number of seconds up to %d", int64(auth.MaxTokenTTL/time.Second))
	}
	*v = ttlValue(time.Duration(n) * time.Second)
	return nil
}

// createToken issues an API token. The root token may issue for any tenant;
// an admin only for its own. The secret is in this response and nowhere else.
func (s *Server) createToken(c *gin.Context) {
	var req tokenRequest
	if err := decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	p := principal(c)
	tenant := p.Tenant
	if req.Tenant != nil {
		if *req.Tenant == "" {
			s.writeError(c, eventvault.FieldErrorf("/tenant", "tenant is empty: name the tenant the token is for, or leave tenant out for your own"))
			return
		}
		tenant = eventvault.TenantID(*req.Tenant)
	}
	var name string // required: auth.Issue refuses it empty or left out
	if req.Name != nil {
		name = *req.Name
	}
	nr := auth.NewTokenRequest{Tenant: tenant, Name: name, Rules: req.Rules, Policies: req.Policies}
	if req.TTL != nil {
		nr.TTL = time.Duration(*req.TTL)
		if nr.TTL == 0 {
			s.writeError(c, eventvault.FieldErrorf("/ttl", "ttl must be at least 1m: leave it out for a token that does not expire"))
			return
		}
	}
	secret, t, err := s.tokens.Issue(c.Request.Context(), p, nr)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	out := tokenResponse{Token: secret, ID: t.ID, Tenant: string(t.Tenant), Name: t.Name, Rules: orEmpty(t.Rules), Policies: orEmpty(t.Policies), CreatedAt: t.CreatedAt}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		out.ExpiresAt = &e
	}
	c.JSON(http.StatusCreated, out)
}

// tokenInfo is a token as listed: never its secret nor its hash.
type tokenInfo struct {
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Rules     []eventvault.Rule `json:"rules"`
	Policies  []string          `json:"policies"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	Expired   bool              `json:"expired"`
}

type tokenList struct {
	Tenant string      `json:"tenant"`
	Tokens []tokenInfo `json:"tokens"`
}

// tenantQuery is the tenant a token endpoint acts on: ?tenant= (for the
// dev root token) or the caller's.
func tenantQuery(c *gin.Context) eventvault.TenantID {
	if t, ok := c.GetQuery("tenant"); ok {
		return eventvault.TenantID(t)
	}
	return principal(c).Tenant
}

// listTokens lists a tenant's tokens: GET /v1/tokens[?tenant=]. Admin of
// the tenant; root tokens are never listed.
func (s *Server) listTokens(c *gin.Context) {
	tenant := tenantQuery(c)
	ts, err := s.tokens.List(c.Request.Context(), principal(c), tenant)
	if err != nil {
		s.writeError(c, err)
		return
	}
	now := time.Now()
	out := tokenList{Tenant: string(tenant), Tokens: make([]tokenInfo, 0, len(ts))}
	for _, t := range ts {
		ti := tokenInfo{ID: t.ID, Tenant: string(t.Tenant), Name: t.Name, Rules: orEmpty(t.Rules), Policies: orEmpty(t.Policies), CreatedAt: t.CreatedAt}
		if !t.ExpiresAt.IsZero() {
			e := t.ExpiresAt
			ti.ExpiresAt, ti.Expired = &e, !now.Before(e)
		}
		out.Tokens = append(out.Tokens, ti)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// revokeToken revokes a token: DELETE /v1/tokens/{id}[?tenant=]. Admin of
// the tenant; 404 for a token of another tenant or a root token.
func (s *Server) revokeToken(c *gin.Context) {
	tenant := tenantQuery(c)
	id := c.Param("id")
	if err := s.tokens.Revoke(c.Request.Context(), principal(c), tenant, id); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// orEmpty is s, or an empty slice for nil: a list is [] in JSON, never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
