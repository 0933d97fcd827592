package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// PolicyDocuments attaches each caller's policy documents after
// authentication and manages the documents: policies.Resolver implements
// it.
type PolicyDocuments interface {
	Resolve(ctx context.Context, p eventvault.Principal) (eventvault.Principal, error)
	Put(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name, body string) (v eventvault.PolicyVersion, written bool, err error)
	Delete(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name string) (eventvault.PolicyVersion, error)
	Get(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name string, version int64) (eventvault.PolicyVersion, error)
	List(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) ([]eventvault.PolicyVersion, error)
}

type policyRequest struct {
	// Policy is the document's Cedar text.
	Policy string `json:"policy"`
}

type policyResponse struct {
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Version   int64     `json:"version"`
	Policy    string    `json:"policy,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func policyOut(v eventvault.PolicyVersion) policyResponse {
	return policyResponse{Tenant: string(v.Tenant), Name: v.Name, Version: v.Version, Policy: v.Body, Deleted: v.Deleted, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt}
}

// putPolicy writes the next version of a document: PUT
// /v1/policies/{name}[?tenant=] with {"policy": "<Cedar>"}. 201 for a new
// name, 200 for a new version (or the same text again, which makes none).
func (s *Server) putPolicy(c *gin.Context) {
	var req policyRequest
	if err := decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Policy == "" {
		s.writeError(c, eventvault.FieldErrorf("/policy", "policy is missing: send {\"policy\": \"<Cedar policy text>\"}"))
		return
	}
	v, written, err := s.policies.Put(c.Request.Context(), principal(c), tenantQuery(c), c.Param("name"), req.Policy)
	if err != nil {
		s.writeError(c, err)
		return
	}
	status := http.StatusOK
	if written && v.Version == 1 {
		status = http.StatusCreated
	}
	c.JSON(status, policyOut(v))
}

// getPolicy returns the current version of a document, or ?version=N.
func (s *Server) getPolicy(c *gin.Context) {
	version, err := queryInt(c, "version", 0)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if _, given := c.GetQuery("version"); given && version < 1 {
		s.writeError(c, eventvault.Errorf(eventvault.EINVALID, "version must be a whole number from 1"))
		return
	}
	v, err := s.policies.Get(c.Request.Context(), principal(c), tenantQuery(c), c.Param("name"), version)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("ETag", strconv.Quote(strconv.FormatInt(v.Version, 10)))
	c.JSON(http.StatusOK, policyOut(v))
}

// deletePolicy records a document's deletion as its next version.
func (s *Server) deletePolicy(c *gin.Context) {
	if _, err := s.policies.Delete(c.Request.Context(), principal(c), tenantQuery(c), c.Param("name")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type policyList struct {
	Tenant   string           `json:"tenant"`
	Policies []policyResponse `json:"policies"`
}

// listPolicies lists the current version of each document of a tenant.
func (s *Server) listPolicies(c *gin.Context) {
	tenant := tenantQuery(c)
	vs, err := s.policies.List(c.Request.Context(), principal(c), tenant)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := policyList{Tenant: string(tenant), Policies: make([]policyResponse, 0, len(vs))}
	for _, v := range vs {
		out.Policies = append(out.Policies, policyOut(v))
	}
	c.JSON(http.StatusOK, out)
}

// policySchema serves the Cedar schema documents are validated against.
func policySchema(c *gin.Context) {
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(policies.Schema))
}
