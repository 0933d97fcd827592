package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventvault/eventvault/api"
)

// envURL names the PostgreSQL server to run against, as scripts/with-postgres.sh sets it.
const envURL = "EVENTVAULT_TEST_DATABASE_URL"

// envMessageDB names message-db's database scripts folder, as
// scripts/message-db.sh prints it (`make bench` and `make test` set it).
const envMessageDB = "EVENTVAULT_MESSAGE_DB_DIR"

// Config is what one run measures.
type Config struct {
	ServerURL string // PostgreSQL superuser URL; a database is created in it
	MessageDB string // message-db's database/ folder, holding its install.sh

	Rounds   int
	Duration time.Duration // per slice: one workload on one side in one round
	Warmup   time.Duration // per workload and side, before the rounds, not measured

	EventSize     int
	AppendClients int
	BatchClients  int
	BatchSize     int
	StreamReaders int
	StreamEvents  int
	AllReaders    int
	PageSize      int
	LogEvents     int
	MaxConns      int32 // both pools; 0 is pgxpool's default
	// NoGroupCommit opens EventVault's store without group commit
	// (postgres.Options.NoGroupCommit), for comparisons.
	NoGroupCommit bool
	// ReadEncoding is how EventVault's reads are asked for and decoded:
	// "frames" (Accept: application/vnd.eventvault.frames, parsed a frame
	// at a time), "ndjson" (decoded a line at a time) or "json" (the page
	// decoded whole).
	ReadEncoding string

	// FeedSamples and FeedSubscribers size the feed's measure (latency
	// samples, idle SSE subscribers); NoFeed skips it.
	FeedSamples     int
	FeedSubscribers int
	NoFeed          bool
	// Overload runs the open-loop overload workload (overload.go) after
	// the others: when Workloads is empty or names "overload".
	Overload bool
	// OverloadDuration is one step's length, OverloadFactors the offered
	// rates as multiples of the measured capacity, OverloadProbeClients
	// the closed-loop clients that measure it, and OverloadBounds the
	// admission bounds of EventVault and the raw baseline's server.
	OverloadDuration     time.Duration
	OverloadFactors      []float64
	OverloadProbeClients int
	OverloadBounds       api.AdmissionConfig
	// OverloadInProcess runs the overload's load generator in this
	// process rather than a child process at nice 10 (overload_child.go).
	OverloadInProcess bool
	// OverloadNetHTTP runs the child's open loops on net/http's client
	// instead of the lean one (overload_lean.go), for comparison.
	OverloadNetHTTP bool

	Workloads  []string // keys to run; empty for all
	JSON       string   // file for the JSON report; "-" for stdout
	CPUProfile string   // file for a CPU profile of the measured rounds
	MemProfile string   // file for an allocation profile of the measured rounds
}

// defaultConfig is the workloads with defaults that finish in well
// under three minutes on two cores.
func defaultConfig() Config {
	return Config{
		ServerURL:     os.Getenv(envURL),
		MessageDB:     os.Getenv(envMessageDB),
		Rounds:        3,
		Duration:      3 * time.Second,
		Warmup:        300 * time.Millisecond,
		EventSize:     500,
		AppendClients: 8,
		BatchClients:  4,
		BatchSize:     100,
		StreamReaders: 8,
		StreamEvents:  1000,
		AllReaders:    1,
		PageSize:      500,
		LogEvents:     10000,
		ReadEncoding:  "frames",

		OverloadDuration:     3 * time.Second,
		OverloadFactors:      []float64{0.5, 1, 2, 4},
		OverloadProbeClients: 32,
		OverloadBounds:       api.DefaultAdmission,
		FeedSamples:          300,
		FeedSubscribers:      1000,
	}
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := defaultConfig()
	var workloads string
	var maxConns int
	fs := flag.NewFlagSet("evbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: evbench [flags]\n\nRuns EventVault (over HTTP), plain-pgx baselines (INSERT and COPY), message-db and\nEventVault's store alone side by side against the PostgreSQL server named by -server-url\n(default $%s), alternating them.\n\nflags:\n", envURL)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.ServerURL, "server-url", c.ServerURL, "PostgreSQL superuser URL; a fresh database is created in it and dropped at the end (default $"+envURL+")")
	fs.StringVar(&c.MessageDB, "message-db", c.MessageDB, "message-db's database/ folder, with its install.sh (default $"+envMessageDB+"; bash scripts/message-db.sh fetches it and prints it)")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds; each runs every workload once on each side, the order alternating")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "length of one slice: one workload on one side in one round")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured warm-up per workload and side before the rounds")
	fs.IntVar(&c.EventSize, "event-size", c.EventSize, "bytes of event data (a JSON object of exactly this size)")
	fs.IntVar(&c.AppendClients, "append-clients", c.AppendClients, "concurrent clients of the single-event append")
	fs.IntVar(&c.BatchClients, "batch-clients", c.BatchClients, "concurrent clients of the batched append")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "events per batched append (at most 500)")
	fs.IntVar(&c.StreamReaders, "stream-readers", c.StreamReaders, "concurrent readers of the stream read")
	fs.IntVar(&c.StreamEvents, "stream-events", c.StreamEvents, "events in the stream read whole by each request (at most 1000)")
	fs.IntVar(&c.AllReaders, "all-readers", c.AllReaders, "concurrent readers walking the log by global position")
	fs.IntVar(&c.PageSize, "page-size", c.PageSize, "events per read-all page (at most 1000)")
	fs.IntVar(&c.LogEvents, "log-events", c.LogEvents, "events in the log that read-all walks, written before anything else")
	fs.IntVar(&maxConns, "max-conns", 0, "connection pool size of every side (0: pgxpool's default, max(4, CPUs), as the server uses)")
	fs.BoolVar(&c.NoGroupCommit, "no-group-commit", false, "open EventVault's store without group commit, each append committing on its own (for comparisons)")
	fs.StringVar(&c.ReadEncoding, "read-encoding", c.ReadEncoding, "EventVault's read encoding: frames (Accept: application/vnd.eventvault.frames, parsed frame by frame), ndjson (decoded line by line) or json (the page decoded whole)")
	fs.IntVar(&c.FeedSamples, "feed-samples", c.FeedSamples, "events timed from commit to an SSE client (a third of them across nodes)")
	fs.IntVar(&c.FeedSubscribers, "feed-subscribers", c.FeedSubscribers, "idle SSE subscribers held open on one node")
	fs.BoolVar(&c.NoFeed, "no-feed", false, "skip the feed's measure")
	fs.StringVar(&workloads, "workloads", "", "comma-separated workloads to run (append, append_batch, read_stream, read_all, read_pii, overload); default all")
	fs.DurationVar(&c.OverloadDuration, "overload-duration", c.OverloadDuration, "length of one step of the overload workload: one side at one offered rate")
	fs.IntVar(&c.OverloadProbeClients, "overload-probe-clients", c.OverloadProbeClients, "closed-loop clients of the probe that measures each side's capacity before the overload steps")
	fs.IntVar(&c.OverloadBounds.Appends.Node, "overload-max-appends", c.OverloadBounds.Appends.Node, "admission bound of the overload workload's servers: appends in flight per node (the server's -max-appends)")
	fs.IntVar(&c.OverloadBounds.Appends.Tenant, "overload-max-appends-per-tenant", c.OverloadBounds.Appends.Tenant, "admission bound of the overload workload's servers: appends in flight per tenant (-max-appends-per-tenant)")
	fs.DurationVar(&c.OverloadBounds.QueueWait, "overload-queue-wait", c.OverloadBounds.QueueWait, "admission queue wait of the overload workload's servers (-admission-queue-wait)")
	fs.BoolVar(&c.OverloadNetHTTP, "overload-nethttp", false, "run the overload generator's open loops on net/http's client, as before its lean client (the capacity probe stays on the lean client)")
	fs.BoolVar(&c.OverloadInProcess, "overload-in-process", false, "run the overload workload's load generator in this process, sharing the server's Go scheduler, instead of a child process at nice 10")
	factors := fs.String("overload-factors", "0.5,1,2,4", "offered rates of the overload workload, as multiples of each side's measured capacity")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to this file; - writes JSON to stdout and the table to stderr")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured rounds (every side; use pprof -focus to split them)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write an allocation profile of the measured rounds, and the same taken before them to this file + .start; read it with go tool pprof -sample_index=alloc_space -diff_base FILE.start")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.MaxConns = int32(maxConns)
	c.Overload = true
	if workloads != "" {
		c.Workloads = strings.Split(workloads, ",")
		if i := slices.Index(c.Workloads, "overload"); i >= 0 {
			c.Workloads = slices.Delete(c.Workloads, i, i+1)
			if len(c.Workloads) == 0 {
				c.Workloads = []string{"overload"} // none of the rounds' workloads
			}
		} else {
			c.Overload = false
		}
	}
	c.OverloadFactors = nil
	for _, f := range strings.Split(*factors, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v > 100 {
			return Config{}, fmt.Errorf("-overload-factors: %q is not a multiple between 0 and 100", f)
		}
		c.OverloadFactors = append(c.OverloadFactors, v)
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if c.ServerURL == "" {
		return fmt.Errorf("no PostgreSQL server: set %s or -server-url to a superuser URL, or run `make bench`, which starts a throwaway server", envURL)
	}
	if c.MessageDB == "" {
		return fmt.Errorf("no message-db: set %s or -message-db to the folder `bash scripts/message-db.sh` prints (it fetches @eventide/message-db with npm once), or run `make bench`", envMessageDB)
	}
	positive := []struct {
		name string
		v    int
	}{
		{"-rounds", c.Rounds}, {"-append-clients", c.AppendClients}, {"-batch-clients", c.BatchClients},
		{"-batch-size", c.BatchSize}, {"-stream-readers", c.StreamReaders}, {"-stream-events", c.StreamEvents},
		{"-all-readers", c.AllReaders}, {"-page-size", c.PageSize}, {"-log-events", c.LogEvents},
		{"-feed-samples", c.FeedSamples}, {"-feed-subscribers", c.FeedSubscribers},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s must be positive, not %d", p.name, p.v)
		}
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("-duration must be positive")
	case c.Warmup < 0:
		return fmt.Errorf("-warmup must not be negative")
	case c.EventSize < minEventSize:
		return fmt.Errorf("-event-size must be at least %d bytes (the smallest JSON object the generator writes)", minEventSize)
	case c.BatchSize > 500:
		return fmt.Errorf("-batch-size is at most 500, EventVault's limit per request")
	case c.StreamEvents > 1000 || c.PageSize > 1000:
		return fmt.Errorf("-stream-events and -page-size are at most 1000, EventVault's limit per read")
	case c.ReadEncoding != "frames" && c.ReadEncoding != "ndjson" && c.ReadEncoding != "json":
		return fmt.Errorf("-read-encoding must be frames, ndjson or json, not %q", c.ReadEncoding)
	case c.MaxConns < 0:
		return fmt.Errorf("-max-conns must not be negative")
	}
	if c.OverloadDuration <= 0 || c.OverloadProbeClients <= 0 {
		return fmt.Errorf("-overload-duration and -overload-probe-clients must be positive")
	}
	for _, w := range c.Workloads {
		if w == "overload" {
			continue
		}
		if _, ok := workloadByKey(w); !ok {
			return fmt.Errorf("-workloads: unknown workload %q; choose among append, append_batch, read_stream, read_all", w)
		}
	}
	return nil
}
