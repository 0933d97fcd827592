// Package rawbench is the baseline of `make bench` (cmd/evbench): the same
// events written to and read from one plain PostgreSQL table with plain pgx,
// with no encryption, no row-level security, no tenant and no HTTP, so that
// EventVault's figures can be held against what PostgreSQL alone costs on the
// same server in the same run.
//
// The table mirrors the events table of store/postgres where it matters for
// speed: a primary key on the global position, unique (stream, position) and
// unique id, the data as bytea. Each append is one statement in its own
// implicit transaction (one commit), returning the global positions; a batch
// is a single INSERT ... SELECT FROM unnest, as store/postgres writes one.
// Reads are one statement each, scanned into Go values.
//
// It also creates and drops the benchmark's database, since pgx enters the
// project only under store/.
package rawbench
