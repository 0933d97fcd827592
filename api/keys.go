package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

// KeyRotation rotates keys on behalf of a principal and decides who may:
// engine.Rotation implements it.
type KeyRotation interface {
	RotateTenantKEK(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) (engine.TenantRotation, error)
	RotateRoot(ctx context.Context, p eventvault.Principal) (engine.RootRotation, error)
	RetireRootVersions(ctx context.Context, p eventvault.Principal, before int) error
}

type tenantRotationResponse struct {
	Tenant           string `json:"tenant"`
	Version          uint32 `json:"version"`
	RewrappedStreams int    `json:"rewrapped_streams"`
}

type rootRotationResponse struct {
	RootVersion   int `json:"root_version"`
	RewrappedKEKs int `json:"rewrapped_keks"`
}

type retireRequest struct {
	BeforeVersion *int `json:"before_version"`
}

type retireResponse struct {
	BeforeVersion int `json:"before_version"`
}

// rotateTenantKEK serves POST /v1/admin/tenants/{tenant}/kek/rotate: a new
// KEK version for the tenant, and every stream key re-wrapped under it.
// Root, or an admin of that tenant.
func (s *Server) rotateTenantKEK(c *gin.Context) {
	if err := noBody(c); err != nil {
		s.writeError(c, err)
		return
	}
	got, err := s.keys.RotateTenantKEK(c.Request.Context(), principal(c), eventvault.TenantID(c.Param("tenant")))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, tenantRotationResponse{Tenant: string(got.Tenant), Version: got.Version, RewrappedStreams: got.RewrappedStreams})
}

// rotateRoot serves POST /v1/admin/root/rotate: a new root key version, and
// every tenant KEK re-wrapped under it. Root only.
func (s *Server) rotateRoot(c *gin.Context) {
	if err := noBody(c); err != nil {
		s.writeError(c, err)
		return
	}
	got, err := s.keys.RotateRoot(c.Request.Context(), principal(c))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, rootRotationResponse{RootVersion: got.RootVersion, RewrappedKEKs: got.RewrappedKEKs})
}

// retireRoot serves POST /v1/admin/root/retire {"before_version": N}: root
// key versions before N stop unwrapping, once no KEK needs them. Root only.
func (s *Server) retireRoot(c *gin.Context) {
	var req retireRequest
	if err := decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.BeforeVersion == nil {
		s.writeError(c, eventvault.FieldErrorf("/before_version", "before_version is missing: send {\"before_version\": N}, the oldest root key version that stays usable"))
		return
	}
	if *req.BeforeVersion < 1 {
		s.writeError(c, eventvault.FieldErrorf("/before_version", "before_version must be a root key version, 1 or more"))
		return
	}
	if err := s.keys.RetireRootVersions(c.Request.Context(), principal(c), *req.BeforeVersion); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, retireResponse{BeforeVersion: *req.BeforeVersion})
}

// noBody refuses a request body other than nothing or {}: the rotate
// endpoints take no parameters, and a body that means something else must
// not be ignored.
func noBody(c *gin.Context) error {
	body, err := readBody(c)
	if err != nil || isEmpty(body) {
		return err
	}
	var empty struct{}
	return decodeStrict(body, &empty)
}
