package eventvault

import (
	"fmt"

	"github.com/google/uuid"
)

// The checks and errors below are the ones every store makes alike. They
// live here, once, so that a store holds only what differs between
// databases and storetest holds every store to the same words.

// ValidateTenantSubject returns EINVALID unless tenant is valid and subject
// is a pseudonym that is set.
func ValidateTenantSubject(tenant TenantID, subject Pseudonym) error {
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	return ValidatePseudonym(subject)
}

// ValidateKEKVersion returns EINVALID unless tenant is valid and version
// names a tenant KEK version (they start at 1).
func ValidateKEKVersion(tenant TenantID, version uint32) error {
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	if version == 0 {
		return Errorf(EINVALID, "tenant key versions start at 1")
	}
	return nil
}

// OwnerConflictError returns the ECONFLICT error for an append that names a
// subject other than the stream's owner. It names neither pseudonym.
func OwnerConflictError(op string, stream StreamName) *Error {
	return &Error{
		Code: ECONFLICT, Op: op, Err: ErrOwnerConflict,
		Message: fmt.Sprintf("stream %s belongs to another data subject: a stream's owner is set by the first append that names one and never changes; append to a stream of this subject instead", stream),
		Fields:  map[string]any{"stream": string(stream)},
	}
}

// NoKEKVersionError returns the ENOTFOUND error for a tenant KEK version the
// store does not hold (never had, or destroyed).
func NoKEKVersionError(op string, tenant TenantID, version uint32) *Error {
	return &Error{Code: ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key version %d", tenant, version)}
}

// RowChangedError returns the ECONFLICT error of a compare-and-swap whose
// row (what, such as "the key of stream order-1") changed since the caller
// read it.
func RowChangedError(op, what string) *Error {
	return &Error{Code: ECONFLICT, Op: op, Message: what + " changed since it was read; read it again"}
}

// NoHoldError returns the ENOTFOUND error for a subject without a legal
// hold.
func NoHoldError(op string) *Error {
	return &Error{Code: ENOTFOUND, Op: op, Message: "the subject is not under a legal hold"}
}

// NoErasureRequestError returns the ENOTFOUND error for an erasure request
// id the tenant does not have.
func NoErasureRequestError(op string, id uuid.UUID) *Error {
	return &Error{Code: ENOTFOUND, Op: op, Message: fmt.Sprintf("erasure request %s does not exist", id)}
}
