package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// SQLSTATEs the store acts on.
const (
	sqlUniqueViolation       = "23505"
	sqlSerializationFailure  = "40001"
	sqlDeadlockDetected      = "40P01"
	sqlUndefinedTable        = "42P01"
	sqlUndefinedObject       = "42704"
	sqlInsufficientPrivilege = "42501"
	// sqlErased is raised by migration 0003's erasure fence: a key for a
	// shredded tenant. Its message is written for clients.
	sqlErased = "EV410"
	// sqlConflict is raised by migration 0004: KEK versions still in use,
	// or a stream key under a destroyed one. Its message is written for
	// clients.
	sqlConflict = "EV409"
	// sqlSubjectErased is raised by migration 0009: a key or a value for
	// an erased data subject.
	sqlSubjectErased = "EV411"
)

// connLostError marks an error after which the connection is gone: the
// database is unreachable, or went away mid-transaction.
type connLostError struct{ err error }

func (e *connLostError) Error() string { return e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }

// dbError is what remains of a *pgconn.PgError once it leaves the store: its
// code, message and constraint for the logs, but not its detail, which can
// quote row values. Callers cannot reach the PgError through it.
type dbError struct {
	code, message, constraint string
}

func (e *dbError) Error() string {
	s := "postgres: " + e.message + " (SQLSTATE " + e.code
	if e.constraint != "" {
		s += ", constraint " + e.constraint
	}
	return s + ")"
}

func isPgError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// sqlState returns the SQLSTATE of the server error in err's chain, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// retryable reports whether running the whole transaction again may
// succeed: it was aborted for serialization or deadlock, it never reached
// the server, or (with unique) a concurrent writer took a unique key first.
func retryable(err error, unique bool) bool {
	var domain *eventvault.Error
	if errors.As(err, &domain) {
		return false
	}
	switch sqlState(err) {
	case sqlSerializationFailure, sqlDeadlockDetected:
		return true
	case sqlUniqueViolation:
		return unique
	}
	return pgconn.SafeToRetry(err)
}

// retryReason is why run runs a transaction again after err (see
// Observer.StoreRetry).
func retryReason(err error) string {
	switch sqlState(err) {
	case sqlDeadlockDetected:
		return RetryDeadlock
	case sqlSerializationFailure:
		return RetrySerialization
	case sqlUniqueViolation:
		return RetryUnique
	}
	if lostSession(err) {
		return RetryLostSession
	}
	return RetryUnsent
}

// lostSession reports whether err says the database session ended under
// the transaction: terminated by an administrator or a shutdown (57P01,
// 57P02, 57P03), or the connection failed (class 08, or it closed under
// the driver). A pooled connection can be dead when it is handed out (its
// backend was terminated while it was idle); a read-only transaction loses
// nothing by running again on another, where a writing one may have
// committed before the end reached the client.
func lostSession(err error) bool {
	switch code := sqlState(err); {
	case code == "57P01", code == "57P02", code == "57P03", strings.HasPrefix(code, "08"):
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// mapError turns what a transaction returned into an *eventvault.Error with
// op, so that no caller sees a SQLSTATE or a driver error. Errors that carry
// an *eventvault.Error already (from the store's own checks or from a
// SealFunc) pass unchanged: their Op names the function that built them.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var domain *eventvault.Error
	if errors.As(err, &domain) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: "the database did not answer before the request was cancelled or timed out", Err: err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return mapPgError(op, err, pgErr)
	}
	var lost *connLostError
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	if errors.As(err, &lost) || errors.As(err, &netErr) || errors.As(err, &connectErr) || pgconn.Timeout(err) {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: "the database is unreachable; retry later", Err: err}
	}
	return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
}

func mapPgError(op string, err error, pgErr *pgconn.PgError) error {
	var cause error = &dbError{code: pgErr.Code, message: pgErr.Message, constraint: pgErr.ConstraintName}
	// Keep the context the store wrapped around the server's error.
	if prefix := strings.TrimSuffix(err.Error(), pgErr.Error()); prefix != "" && prefix != err.Error() {
		cause = fmt.Errorf("%s%w", prefix, cause)
	}
	if pgErr.Code == sqlSubjectErased {
		e := eventvault.SubjectErasedError(op)
		e.Err = fmt.Errorf("%w: %w", eventvault.ErrSubjectErased, cause)
		return e
	}
	if pgErr.Code == sqlErased {
		// Raised only by the fence of shredded tenants (0003).
		return &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: pgErr.Message, Err: fmt.Errorf("%w: %w", eventvault.ErrTenantShredded, cause)}
	}
	if pgErr.Code == sqlConflict {
		return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: pgErr.Message, Err: cause}
	}
	return mapCode(op, pgErr.Code, cause)
}

func mapCode(op, code string, cause error) error {
	e := &eventvault.Error{Op: op, Err: cause}
	switch {
	case code == sqlUniqueViolation:
		e.Code, e.Message = eventvault.ECONFLICT, "a record with the same id exists already"
	case code == sqlSerializationFailure || code == sqlDeadlockDetected:
		e.Code, e.Message = eventvault.EUNAVAILABLE, "the database is busy; retry"
	case code == sqlUndefinedTable || code == sqlUndefinedObject:
		e.Code, e.Message = eventvault.EINTERNAL, "the database schema is missing or not up to date: apply the migrations"
	case strings.HasPrefix(code, "28"): // invalid authorization: no such role, a wrong password, pg_hba refusal
		e.Code, e.Message = eventvault.EINVALID, "PostgreSQL refused the login: check the user name and password in the database URL, and that pg_hba.conf lets that role in from here"
	case code == "3D000": // invalid catalog name
		e.Code, e.Message = eventvault.EINVALID, "the database named in the database URL does not exist: create it (createdb), or fix the URL's path"
	case code == sqlInsufficientPrivilege:
		// The server's case; Migrate says instead which role migrates
		// (mapMigrateError).
		e.Code, e.Message = eventvault.EINTERNAL, "the database refused the store a privilege: apply the migrations, and connect as a role that is a member of "+appRole
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"), // insufficient resources (too many connections, disk full)
		strings.HasPrefix(code, "57"), // operator intervention (shutdown, cannot connect now)
		strings.HasPrefix(code, "58"): // system error (I/O)
		e.Code, e.Message = eventvault.EUNAVAILABLE, "the database is unavailable; retry later"
	default:
		e.Code = eventvault.EINTERNAL
	}
	return e
}
