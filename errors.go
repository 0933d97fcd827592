package eventvault

import (
	"errors"
	"fmt"
	"strings"
)

// Code is the stable kind of an *Error: clients and the HTTP layer depend
// on it. Each interface method's doc names the codes it returns.
type Code string

// Error codes.
const (
	EINVALID      Code = "invalid"      // the caller sent something malformed
	EUNAUTHORIZED Code = "unauthorized" // no credentials, or credentials that do not verify
	EFORBIDDEN    Code = "forbidden"    // authenticated, but a policy denies the action
	ENOTFOUND     Code = "not_found"    // the stream, key or record does not exist
	ECONFLICT     Code = "conflict"     // expected version or idempotency mismatch
	ETOOLARGE     Code = "too_large"    // a body or batch over a documented limit
	EERASED       Code = "erased"       // the key that protected the data was shredded
	// EKEYRETIRED: the root key version that wrapped the data's key was
	// retired (a crypto-period ended after this copy of the database was
	// taken: a restored backup). Not an erasure anyone asked for; this
	// node cannot read the data.
	EKEYRETIRED  Code = "key_retired"
	EUNAVAILABLE Code = "unavailable" // a dependency (database, root key) is unreachable; retry later
	EINTERNAL    Code = "internal"    // a bug or an integrity failure; never a client's fault
)

// Error is the one error type of EventVault's domain. Message is safe to show
// to a client: it never holds a secret, a key or a personal value. Err is the
// cause for logs and errors.Is; it is never shown to clients.
//
// Op names the function that builds the error ("postgres.Append"), set
// where the error is built and never patched afterwards; it goes only to
// logs. Errors of pure checks (the Validate functions) have none.
type Error struct {
	Code    Code
	Message string
	// Fields are extra members a client can act on, such as the actual
	// version of a stream after a conflict. Only non-sensitive values.
	Fields map[string]any
	Op     string
	Err    error
}

// Errorf returns an *Error with the given code and a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements the error interface.
func (e *Error) Error() string {
	var s string
	if e.Op != "" {
		s = e.Op + ": "
	}
	if e.Message != "" {
		s += e.Message
	} else {
		s += string(e.Code)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or "Internal error." for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "Internal error."
}

// ErrorFields returns the client-safe extra members of the first *Error in
// err's chain.
func ErrorFields(err error) map[string]any {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// MaxPointerField bounds the JSON Pointer a problem names (Fields
// "pointer"), in bytes: a client's key may be long, and the problem stays
// short.
const MaxPointerField = 120

// FieldErrorf returns an EINVALID *Error about the request body's field at
// pointer, a JSON Pointer (RFC 6901) such as "/events/0/type", which the
// API gives in the problem's pointer member (Fields["pointer"], cut to
// MaxPointerField bytes).
func FieldErrorf(pointer, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Message: fmt.Sprintf(format, args...), Fields: map[string]any{"pointer": Truncate(pointer, MaxPointerField)}}
}

// AtPointer returns err naming the body field at pointer (as FieldErrorf)
// when err is EINVALID and names no field yet: for a check that knows the
// value but not where the request put it (ValidateSubject). Any other
// error, nil included, comes back as it is.
func AtPointer(err error, pointer string) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != EINVALID {
		return err
	}
	if _, ok := e.Fields["pointer"]; ok {
		return err
	}
	c := *e
	c.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	c.Fields["pointer"] = Truncate(pointer, MaxPointerField)
	return &c
}

// PointerToken escapes s as one reference token of a JSON Pointer (RFC
// 6901, section 3: '~' as ~0, '/' as ~1), as for a key of a map in a body.
func PointerToken(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
