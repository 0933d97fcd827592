package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

func jsonError(err error) error {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
		invalid = func(format string, args ...any) error {
			return &eventvault.Error{Code: eventvault.EINVALID, Message: fmt.Sprintf(format, args...), Err: err}
		}
	)
	switch {
	case errors.As(err, &tooBig):
		return &eventvault.Error{Code: eventvault.ETOOLARGE, Message: fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes), Err: err}
	case errors.Is(err, io.EOF):
		return invalid("the body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return invalid("the body is not valid JSON (at byte %d): %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		// keyWalker checks every field's type first, by JSON pointer; this
		// is a backstop. Neither names the value: it may be personal data.
		field := typ.Field
		if field == "" {
			return invalid("the body does not have the shape this endpoint takes: check it against the API reference")
		}
		return invalid("field %q must be %s", field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one.
		return invalid("unknown field %s: check the spelling against the API reference", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	var own *eventvault.Error // from a field's own UnmarshalJSON (a token's ttl)
	if errors.As(err, &own) {
		return own
	}
	return invalid("the body could not be read as JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	default:
		return "a number"
	}
}

// parseExpectedVersion accepts "any", "no_stream", "exists" or a position
// >= 0; absent means "any".
func parseExpectedVersion(raw json.RawMessage) (eventvault.ExpectedVersion, error) {
	raw = bytes.TrimSpace(raw)
	bad := eventvault.Errorf(eventvault.EINVALID, "expected_version must be \"any\", \"no_stream\", \"exists\" or a stream position >= 0")
	if len(raw) == 0 {
		return eventvault.ExpectAny, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return eventvault.ExpectedVersion{}, bad
		}
		switch s {
		case "any":
			return eventvault.ExpectAny, nil
		case "no_stream":
			return eventvault.ExpectNoStream, nil
		case "exists":
			return eventvault.ExpectExists, nil
		}
		return eventvault.ExpectedVersion{}, bad
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if errors.Is(err, strconv.ErrRange) && raw[0] != '-' {
		return eventvault.ExpectedVersion{}, eventvault.Errorf(eventvault.EINVALID, "expected_version is too large: a stream position is at most %d", int64(math.MaxInt64))
	}
	if err != nil || n < 0 {
		return eventvault.ExpectedVersion{}, bad
	}
	return eventvault.ExpectPosition(n), nil
}

// queryLimit reads the optional limit parameter: 1 to engine.MaxReadLimit,
// engine.DefaultReadLimit when absent.
func queryLimit(c *gin.Context) (int, error) {
	limit, err := queryInt(c, "limit", engine.DefaultReadLimit)
	if err != nil {
		return 0, err
	}
	if limit < 1 || limit > engine.MaxReadLimit {
		return 0, eventvault.Errorf(eventvault.EINVALID, "limit must be between 1 and %d", engine.MaxReadLimit)
	}
	return int(limit), nil
}

// decimalInteger reports whether v is an optional "-" and decimal digits:
// the one spelling of an integer the query accepts. strconv.ParseInt also
// takes "+1", which would make two spellings of one position.
func decimalInteger(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// queryInt reads an optional integer query parameter: an optional "-" and
// decimal digits. Its problem for another spelling gives an example of a
// value the parameter takes (42), not a negative one: of the parameters
// read here only a stream read's from takes one (queryIntOrMinusOne).
func queryInt(c *gin.Context, name string, def int64) (int64, error) {
	return queryIntLike(c, name, def, "such as 42")
}

// queryIntOrMinusOne is queryInt for a parameter that also takes -1 (a
// stream read's from, backward from the end).
func queryIntOrMinusOne(c *gin.Context, name string, def int64) (int64, error) {
	return queryIntLike(c, name, def, "such as 42, or -1 for the end when reading backward")
}

func queryIntLike(c *gin.Context, name string, def int64, example string) (int64, error) {
	v, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	if v == "" {
		// An unset variable (?from=), as an empty direction or tenant is:
		// refused, never read as left out.
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s is empty: give a value, %s, or leave it out", name, example)
	}
	if !decimalInteger(v) {
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s must be an integer written in decimal digits, %s (no '+', spaces, point or exponent)", name, example)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		if strings.HasPrefix(v, "-") {
			return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s is too small", name)
		}
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s is too large", name)
	}
	if err != nil {
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s must be an integer", name)
	}
	return n, nil
}
