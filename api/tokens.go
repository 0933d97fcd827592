package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
)

type tokenRequest struct {
	Tenant string            `json:"tenant"`
	Name   string            `json:"name"`
	Rules  []eventvault.Rule `json:"rules"`
}

type tokenResponse struct {
	Token     string            `json:"token"`
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Rules     []eventvault.Rule `json:"rules"`
	CreatedAt time.Time         `json:"created_at"`
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
	tenant := eventvault.TenantID(req.Tenant)
	if tenant == "" {
		tenant = p.Tenant
	}
	secret, t, err := s.tokens.Issue(c.Request.Context(), p, auth.NewTokenRequest{Tenant: tenant, Name: req.Name, Rules: req.Rules})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, tokenResponse{Token: secret, ID: t.ID, Tenant: string(t.Tenant), Name: t.Name, Rules: t.Rules, CreatedAt: t.CreatedAt})
}
