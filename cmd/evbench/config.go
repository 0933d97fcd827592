package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
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

	Workloads  []string // keys to run; empty for all
	JSON       string   // file for the JSON report; "-" for stdout
	CPUProfile string   // file for a CPU profile of the measured rounds
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
	}
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := defaultConfig()
	var workloads string
	var maxConns int
	fs := flag.NewFlagSet("evbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: evbench [flags]\n\nRuns EventVault (over HTTP) and a plain-pgx baseline side by side against the PostgreSQL\nserver named by -server-url (default $%s), alternating the two.\n\nflags:\n", envURL)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.ServerURL, "server-url", c.ServerURL, "PostgreSQL superuser URL; a fresh database is created in it and dropped at the end (default $"+envURL+")")
	fs.StringVar(&c.MessageDB, "message-db", c.MessageDB, "message-db's database/ folder, with its install.sh (default $"+envMessageDB+"; `bash scripts/message-db.sh` fetches it and prints it)")
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
	fs.IntVar(&maxConns, "max-conns", 0, "connection pool size of both sides (0: pgxpool's default, max(4, CPUs), as the server uses)")
	fs.BoolVar(&c.NoGroupCommit, "no-group-commit", false, "open EventVault's store without group commit, each append committing on its own (for comparisons)")
	fs.StringVar(&c.ReadEncoding, "read-encoding", c.ReadEncoding, "EventVault's read encoding: frames (Accept: application/vnd.eventvault.frames, parsed frame by frame), ndjson (decoded line by line) or json (the page decoded whole)")
	fs.StringVar(&workloads, "workloads", "", "comma-separated workloads to run (append, append_batch, read_stream, read_all, read_pii); default all")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to this file; - writes JSON to stdout and the table to stderr")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured rounds (both sides; use pprof -focus to split them)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.MaxConns = int32(maxConns)
	if workloads != "" {
		c.Workloads = strings.Split(workloads, ",")
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
	for _, w := range c.Workloads {
		if _, ok := workloadByKey(w); !ok {
			return fmt.Errorf("-workloads: unknown workload %q; choose among append, append_batch, read_stream, read_all", w)
		}
	}
	return nil
}
