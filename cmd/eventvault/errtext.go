package main

import (
	"errors"
	"strings"

	"github.com/eventvault/eventvault"
)

// describe is what a command prints for err. An *eventvault.Error about
// the request (invalid, not found, conflict, erased, refused, too large)
// prints as the context its callers wrapped around it, then its message:
// its op and the causes under it are for logs, and repeat it (a store
// error wraps the database's words for the same refusal, and a store
// wraps its own error again: "tenant initech was shredded" three times).
// Anything else (internal, unavailable: something an operator fixes)
// prints whole, causes included, since the detail is what helps there.
func describe(err error) string {
	var e *eventvault.Error
	if !errors.As(err, &e) || e.Message == "" {
		return err.Error()
	}
	switch e.Code {
	case eventvault.EINTERNAL, eventvault.EUNAVAILABLE, "":
		return err.Error()
	}
	prefix, ok := strings.CutSuffix(err.Error(), e.Error())
	if !ok {
		return err.Error()
	}
	return prefix + e.Message
}
