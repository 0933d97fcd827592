package crypto

import (
	"errors"
	"fmt"

	"github.com/eventvault/eventvault"
)

// ErrAuthentication is the cause of every error for a ciphertext that does
// not open: altered, truncated, moved to another place, of an unknown format
// version, or opened with the wrong key. Such errors are *eventvault.Error
// with code EINTERNAL (an integrity failure is never the client's fault);
// test for them with errors.Is(err, ErrAuthentication).
var ErrAuthentication = errors.New("ciphertext failed authentication")

// authError is an integrity failure with a client-safe message: ids, names
// and positions only, never key bytes or plaintext.
func authError(op, format string, args ...any) *eventvault.Error {
	return &eventvault.Error{
		Code:    eventvault.EINTERNAL,
		Op:      op,
		Message: fmt.Sprintf(format, args...),
		Err:     ErrAuthentication,
	}
}

// internalError is a failure that is not about authenticity, such as a
// random source that fails.
func internalError(op string, err error, format string, args ...any) *eventvault.Error {
	return &eventvault.Error{
		Code:    eventvault.EINTERNAL,
		Op:      op,
		Message: fmt.Sprintf(format, args...),
		Err:     err,
	}
}

// streamErasedError reports a stream whose key row is gone.
func streamErasedError(op string, stream eventvault.StreamName) *eventvault.Error {
	return &eventvault.Error{
		Code:    eventvault.EERASED,
		Op:      op,
		Message: fmt.Sprintf("the key of stream %s was destroyed; its events can no longer be read", stream),
		Fields:  map[string]any{"stream": string(stream)},
	}
}

// tenantErasedError reports a tenant whose KEK is gone while keys it wrapped
// remain.
func tenantErasedError(op string, tenant eventvault.TenantID, cause error) *eventvault.Error {
	return &eventvault.Error{
		Code:    eventvault.EERASED,
		Op:      op,
		Message: fmt.Sprintf("the key of tenant %s was destroyed; its streams can no longer be read", tenant),
		Err:     cause,
	}
}
