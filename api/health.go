package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// ReadyCheck is one thing /readyz checks: Check returns nil when the node
// can do it. The error's client-safe message (eventvault.ErrorMessage) is
// shown in the answer, so it must name what failed, never a secret. A check
// that calls a remote service (the root of trust) must cache its result
// itself, so that readyz cannot hammer it.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// readyTimeout bounds the checks of one /readyz.
const readyTimeout = 2 * time.Second

// checkResult is one check in the readyz body.
type checkResult struct {
	Status string `json:"status"`           // ok or failed
	Code   string `json:"code,omitempty"`   // the error code of a failed check
	Detail string `json:"detail,omitempty"` // what failed, for an operator
}

// healthz reports that the process serves HTTP.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz runs every check, within two seconds in all, and answers 200 with
// each check's status, or a 503 problem whose checks member says which
// failed. Its code is the first failed check's (unavailable, or
// key_retired when only the keys are too old for the root key).
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	checks := make(map[string]checkResult, len(s.checks))
	var failed []string
	var firstErr error
	for _, ch := range s.checks {
		err := ch.Check(ctx)
		if err == nil {
			checks[ch.Name] = checkResult{Status: "ok"}
			continue
		}
		code := eventvault.ErrorCode(err)
		if _, known := statusOf[code]; !known || code == eventvault.EINTERNAL {
			code = eventvault.EUNAVAILABLE
		}
		checks[ch.Name] = checkResult{Status: "failed", Code: string(code), Detail: eventvault.ErrorMessage(err)}
		failed = append(failed, ch.Name)
		if firstErr == nil {
			firstErr = &eventvault.Error{Code: code, Err: err}
		}
	}
	if firstErr == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
		return
	}
	parts := make([]string, 0, len(failed))
	for _, name := range failed {
		parts = append(parts, name+": "+checks[name].Detail)
	}
	s.writeError(c, &eventvault.Error{
		Code:    eventvault.ErrorCode(firstErr),
		Message: fmt.Sprintf("not ready: %s", strings.Join(parts, "; ")),
		Fields:  map[string]any{"checks": checks},
		Err:     firstErr,
	})
}
