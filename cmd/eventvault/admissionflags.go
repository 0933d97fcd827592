package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/eventvault/eventvault/api"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// Defaults of admission control (api.DefaultAdmission, chosen from
// `make bench`'s overload workload: docs/performance.md, "Overload") and
// of the pool's queue.
var (
	defaultMaxAppends          = api.DefaultAdmission.Appends.Node
	defaultMaxAppendsPerTenant = api.DefaultAdmission.Appends.Tenant
	defaultMaxReads            = api.DefaultAdmission.Reads.Node
	defaultMaxReadsPerTenant   = api.DefaultAdmission.Reads.Tenant
	defaultAdmissionQueue      = api.DefaultAdmission.Appends.Queue
	defaultAdmissionQueueWait  = api.DefaultAdmission.QueueWait
	defaultAppendTimeout       = api.DefaultAdmission.Appends.Timeout
	defaultReadTimeout         = api.DefaultAdmission.Reads.Timeout
	defaultRetryAfter          = api.DefaultAdmission.RetryAfter
)

// defaultDBAcquireTimeout bounds a wait for a pooled connection: longer
// than any queue wait of admission, far shorter than a request's deadline.
const defaultDBAcquireTimeout = time.Second

// AdmissionSettings are the -max-*, -admission-*, timeout, pool and
// root-concurrency flags.
type AdmissionSettings struct {
	Admission        api.AdmissionConfig
	DBMaxConns       int
	DBAcquireTimeout time.Duration
	RootConcurrency  int
	// Queue is -admission-queue, the Queue of both classes once validate
	// has run.
	Queue int
}

func admissionFlags(fs *flag.FlagSet, s *AdmissionSettings) {
	a := &s.Admission
	fs.IntVar(&a.Appends.Node, "max-appends", envInt("EVENTVAULT_MAX_APPENDS", defaultMaxAppends), "appends this node serves at once; past it a request waits up to -admission-queue-wait, then gets 503 with Retry-After; 0 bounds nothing (EVENTVAULT_MAX_APPENDS)")
	fs.IntVar(&a.Appends.Tenant, "max-appends-per-tenant", envInt("EVENTVAULT_MAX_APPENDS_PER_TENANT", defaultMaxAppendsPerTenant), "appends of one tenant in flight or waiting at once on this node; past it 429 with Retry-After (EVENTVAULT_MAX_APPENDS_PER_TENANT)")
	fs.IntVar(&a.Reads.Node, "max-reads", envInt("EVENTVAULT_MAX_READS", defaultMaxReads), "stream reads and reads of all events this node serves at once; 0 bounds nothing (EVENTVAULT_MAX_READS)")
	fs.IntVar(&a.Reads.Tenant, "max-reads-per-tenant", envInt("EVENTVAULT_MAX_READS_PER_TENANT", defaultMaxReadsPerTenant), "reads of one tenant in flight or waiting at once on this node; past it 429 (EVENTVAULT_MAX_READS_PER_TENANT)")
	fs.IntVar(&s.Queue, "admission-queue", envInt("EVENTVAULT_ADMISSION_QUEUE", defaultAdmissionQueue), "requests of each class (appends, reads) that may wait for a slot at once; more get 503 at once (EVENTVAULT_ADMISSION_QUEUE)")
	fs.DurationVar(&a.QueueWait, "admission-queue-wait", envDuration("EVENTVAULT_ADMISSION_QUEUE_WAIT", defaultAdmissionQueueWait), "longest a request waits for a slot before 503 (EVENTVAULT_ADMISSION_QUEUE_WAIT)")
	fs.DurationVar(&a.Appends.Timeout, "append-timeout", envDuration("EVENTVAULT_APPEND_TIMEOUT", defaultAppendTimeout), "deadline of an admitted append; one that passes it before it reaches the database is never started there (EVENTVAULT_APPEND_TIMEOUT)")
	fs.DurationVar(&a.Reads.Timeout, "read-timeout", envDuration("EVENTVAULT_READ_TIMEOUT", defaultReadTimeout), "deadline of an admitted read, its database query included (EVENTVAULT_READ_TIMEOUT)")
	fs.DurationVar(&a.RetryAfter, "retry-after", envDuration("EVENTVAULT_RETRY_AFTER", defaultRetryAfter), "what a 503 or 429 of admission control says in Retry-After, rounded up to whole seconds (EVENTVAULT_RETRY_AFTER)")
	fs.IntVar(&s.DBMaxConns, "db-max-conns", envInt("EVENTVAULT_DB_MAX_CONNS", 0), "PostgreSQL connections in the pool; 0 is max(4, CPUs) (EVENTVAULT_DB_MAX_CONNS)")
	fs.DurationVar(&s.DBAcquireTimeout, "db-acquire-timeout", envDuration("EVENTVAULT_DB_ACQUIRE_TIMEOUT", defaultDBAcquireTimeout), "longest a request waits for a pooled PostgreSQL connection before 503 (EVENTVAULT_DB_ACQUIRE_TIMEOUT)")
	fs.IntVar(&s.RootConcurrency, "root-key-concurrency", envInt("EVENTVAULT_ROOT_KEY_CONCURRENCY", evcrypto.DefaultRootConcurrency), "calls to the root key provider (Vault) in flight at once; key loads past it wait their turn within their request's deadline (EVENTVAULT_ROOT_KEY_CONCURRENCY)")
}

// validate checks the settings' ranges and sets both classes' Queue.
func (s *AdmissionSettings) validate() error {
	s.Admission.Appends.Queue, s.Admission.Reads.Queue = s.Queue, s.Queue
	a := s.Admission
	for _, n := range []struct {
		name string
		v    int
	}{{"-max-appends", a.Appends.Node}, {"-max-appends-per-tenant", a.Appends.Tenant}, {"-max-reads", a.Reads.Node}, {"-max-reads-per-tenant", a.Reads.Tenant},
		{"-admission-queue", a.Appends.Queue}, {"-db-max-conns", s.DBMaxConns}, {"-root-key-concurrency", s.RootConcurrency}} {
		if n.v < 0 {
			return fmt.Errorf("%s must be 0 or positive, not %d", n.name, n.v)
		}
	}
	if a.QueueWait < 0 || a.QueueWait > time.Minute {
		return fmt.Errorf("-admission-queue-wait must be between 0 and 1m, not %s: a request that waits longer is better refused", a.QueueWait)
	}
	if a.Appends.Timeout < 0 || a.Reads.Timeout < 0 || s.DBAcquireTimeout < 0 || a.RetryAfter < 0 {
		return fmt.Errorf("-append-timeout, -read-timeout, -db-acquire-timeout and -retry-after must not be negative")
	}
	if s.DBMaxConns > 10000 {
		return fmt.Errorf("-db-max-conns %d is more than PostgreSQL serves; keep it below max_connections", s.DBMaxConns)
	}
	return nil
}
