// Command consumer is the example projection of the README's consumer
// walk-through: a durable consumer of EventVault's feed that keeps each
// customer's e-mail address, and drops it when a tombstone says the
// customer's stream was erased, or that the subject the address belongs
// to was (a value marked personal with "pii", docs/pii.md).
//
// The projection is saved in EVENTVAULT_CONSUMER_STATE (default
// customer-emails.projection.json) before each acknowledgement, and a
// restart resumes from it; without the file it is rebuilt from the start
// of the log. A feed that ends (every 10 minutes at most) or fails is
// followed again with Last-Event-ID.
//
//	EVENTVAULT_ADDR=http://127.0.0.1:8080 EVENTVAULT_TOKEN=evt_... go run ./cmd/examples/consumer
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// event is what the feed sends in each message's data.
type event struct {
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	GlobalPosition int64           `json:"global_position"`
	Data           json.RawMessage `json:"data"`
	Erased         bool            `json:"erased"`
	// PII says whose each personal value shown in data is: subject
	// pseudonym → JSON Pointers of that subject's values.
	PII map[string][]string `json:"pii"`
}

// tombstone is the data of an eventvault.Tombstone event.
type tombstone struct {
	Streams          []string `json:"streams"`
	SubjectPseudonym string   `json:"subject_pseudonym"`
	PersonalValues   bool     `json:"personal_values"`
}

// row is what the projection keeps of one customer.
type row struct {
	Email string `json:"email"`
	// Owner is the pseudonym of the subject the address belongs to, when
	// the event marked it personal: a tombstone with personal_values
	// names it.
	Owner string `json:"owner,omitempty"`
}

// Projection maps a customer stream to the e-mail address it registered.
// It knows the global position after the last event it applied (Next):
// that, not the server's checkpoint, is where it resumes, so that a
// projection lost with its process is rebuilt from the start of the log
// instead of resuming empty after everything it had. With a file
// (OpenProjection) it is saved there before each acknowledgement.
type Projection struct {
	mu   sync.Mutex
	rows map[string]row
	next int64
	path string // "" keeps it in memory only
}

// projectionFile is the JSON a projection is saved as.
type projectionFile struct {
	// Next is the global position after the last event applied.
	Next int64          `json:"next"`
	Rows map[string]row `json:"rows"`
}

// NewProjection returns an empty projection kept in memory only: each
// Run of it starts from global position 0.
func NewProjection() *Projection { return &Projection{rows: map[string]row{}} }

// OpenProjection returns the projection saved at path, or an empty one if
// there is no file yet; Run saves it there (mode 0600: it holds e-mail
// addresses) before each acknowledgement. Errors: the file cannot be read
// or is not a saved projection.
func OpenProjection(path string) (*Projection, error) {
	p := NewProjection()
	p.path = path
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read projection: %w", err)
	}
	var f projectionFile
	if err := json.Unmarshal(b, &f); err != nil || f.Next < 0 {
		return nil, fmt.Errorf("projection file %s is not a saved projection (remove it to rebuild from the start of the log): %v", path, err)
	}
	p.next = f.Next
	if f.Rows != nil {
		p.rows = f.Rows
	}
	return p, nil
}

// save writes the projection to its file, if it has one, atomically (a
// temporary file renamed over it), so that a crash leaves the old or the
// new one whole. A row dropped for a tombstone is gone from the file
// before the tombstone is acknowledged.
func (p *Projection) save() error {
	p.mu.Lock()
	b, err := json.Marshal(projectionFile{Next: p.next, Rows: p.rows})
	p.mu.Unlock()
	if err != nil || p.path == "" {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), filepath.Base(p.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save projection: %w", err)
	}
	defer os.Remove(tmp.Name()) // once renamed, removes nothing
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save projection: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save projection: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save projection: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.path); err != nil {
		return fmt.Errorf("save projection: %w", err)
	}
	return nil
}

// Next returns the global position after the last event applied: where
// the projection resumes (0 for an empty one).
func (p *Projection) Next() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

// Email returns the address projected for a stream.
func (p *Projection) Email(stream string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rows[stream]
	return r.Email, ok
}

// Len returns how many customers the projection holds.
func (p *Projection) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rows)
}

// apply projects one event and says what it changed ("" for nothing). A
// tombstone names erased streams, and with personal_values the subject
// whose values were erased wherever they were copied: their rows go (GDPR
// Art. 17: a copy of erased data must not outlive it).
func (p *Projection) apply(ev event) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.GlobalPosition < p.next {
		return "" // delivered again (at least once): applied already
	}
	p.next = ev.GlobalPosition + 1
	switch {
	case ev.Stream == "eventvault-tombstones" && ev.Type == "eventvault.Tombstone":
		var ts tombstone
		if err := json.Unmarshal(ev.Data, &ts); err != nil {
			return ""
		}
		var dropped []string
		for stream, r := range p.rows {
			if slices.Contains(ts.Streams, stream) || (ts.PersonalValues && ts.SubjectPseudonym != "" && r.Owner == ts.SubjectPseudonym) {
				delete(p.rows, stream)
				dropped = append(dropped, stream)
			}
		}
		if len(dropped) == 0 {
			return ""
		}
		slices.Sort(dropped)
		return "dropped " + strings.Join(dropped, ", ")
	case ev.Erased: // shredded before we saw it: nothing to project
	case ev.Type == "CustomerRegistered":
		var c struct {
			Email string `json:"email"`
		}
		// A value this token may not see in clear comes as an object
		// ({"redacted": true} or {"erased": true}): nothing to keep.
		if json.Unmarshal(ev.Data, &c) != nil || c.Email == "" {
			return ""
		}
		r := row{Email: c.Email}
		for subject, pointers := range ev.PII {
			if slices.Contains(pointers, "/email") {
				r.Owner = subject
			}
		}
		p.rows[ev.Stream] = r
		return "projected " + ev.Stream
	}
	return ""
}

// httpError is an answer of the server that is not a success.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// stopError is a failure of the consumer itself that retrying does not
// heal (a projection that cannot be saved).
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

func (e *stopError) Unwrap() error { return e.err }

// permanent reports an error that retrying does not heal: a stopError, or
// a 4xx other than 408 and 429 (a token that may not subscribe, a bad
// request).
func permanent(err error) bool {
	var se *stopError
	var he *httpError
	return errors.As(err, &se) || errors.As(err, &he) && he.status >= 400 && he.status < 500 && he.status != http.StatusRequestTimeout && he.status != http.StatusTooManyRequests
}

// client calls the server with a token.
type client struct {
	base, token string
}

func (c client) do(ctx context.Context, method, path string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return &httpError{resp.StatusCode, fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, problemDetail(resp.Body))}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// MaxRetryWait bounds the wait between two reconnects after a failure.
const MaxRetryWait = 30 * time.Second

// Run registers the consumer name (customers only) and follows the feed
// from the projection's own position (p.Next: 0 for an empty projection,
// which is rebuilt from the start of the log whatever the server's
// checkpoint), projecting every event, saving the projection and then
// acknowledging the event, until ctx ends. When the feed ends (the server
// closes it after at most 10 minutes) or the connection fails, it
// reconnects with Last-Event-ID, as an EventSource does: at once after a
// clean end, after a wait growing to MaxRetryWait after a failure. It
// returns nil when ctx ends, and an error that retrying does not heal: a
// 4xx answer (a token that may not subscribe), a projection that cannot
// be saved.
func Run(ctx context.Context, base, token, name string, p *Projection) error {
	c := client{base: base, token: token}
	var sub struct {
		Checkpoint int64 `json:"checkpoint"`
	}
	filter := map[string]any{"filter": map[string]any{"categories": []string{"customer"}}}
	if err := c.do(ctx, http.MethodPut, "/v1/subscriptions/"+name, filter, &sub); err != nil {
		return err
	}
	if p.Next() == 0 && sub.Checkpoint > 0 {
		log.Printf("consumer %s: the projection is empty: rebuilding it from global position 0 (the server's checkpoint is %d)", name, sub.Checkpoint)
	}
	wait := time.Duration(0)
	for first := true; ; first = false {
		if !first {
			log.Printf("consumer %s: reconnecting after global position %d", name, p.Next()-1)
		}
		err := follow(ctx, c, name, p, first)
		switch {
		case ctx.Err() != nil:
			return nil
		case permanent(err):
			return err
		case err == nil: // the server ended the feed: reconnect at once
			wait = 0
		default:
			wait = min(max(2*wait, time.Second), MaxRetryWait)
			log.Printf("consumer %s: %v; retrying in %s", name, err, wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// follow reads one feed connection from p.Next() to its end: nil when the
// server ends it. The first connection asks for from=; a reconnect sends
// Last-Event-ID, the global position of the last event applied.
func follow(ctx context.Context, c client, name string, p *Projection, first bool) error {
	next := p.Next()
	path := "/v1/subscribe?categories=customer"
	if first || next == 0 {
		path += "&from=" + strconv.FormatInt(next, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if !first && next > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(next-1, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpError{resp.StatusCode, fmt.Sprintf("GET /v1/subscribe: %s: %s", resp.Status, problemDetail(resp.Body))}
	}
	if first {
		log.Printf("consumer %s: following the feed from global position %d", name, next)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20) // an event's JSON, escaped, may pass 4 MiB
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // id:, comments (heartbeats), blank lines
		}
		var ev event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("feed message: %w", err)
		}
		if change := p.apply(ev); change != "" {
			log.Printf("consumer %s: %s (global position %d)", name, change, ev.GlobalPosition)
		}
		// Saved, then acknowledged: a restart resumes after it, and an
		// erased row is gone from the file before its tombstone is acked.
		if err := p.save(); err != nil {
			return &stopError{err}
		}
		var ack struct{}
		if err := c.do(ctx, http.MethodPost, "/v1/subscriptions/"+name+"/ack", map[string]int64{"position": ev.GlobalPosition}, &ack); err != nil {
			return err
		}
	}
	return sc.Err()
}

// problemDetail returns the detail of an application/problem+json body,
// or the start of the body.
func problemDetail(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 4096))
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	return strings.TrimSpace(string(b))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr, token := os.Getenv("EVENTVAULT_ADDR"), os.Getenv("EVENTVAULT_TOKEN")
	if addr == "" || token == "" {
		log.Fatal("set EVENTVAULT_ADDR (for example http://127.0.0.1:8080) and EVENTVAULT_TOKEN (a token that may subscribe, and read_pii to see addresses in clear)")
	}
	path := os.Getenv("EVENTVAULT_CONSUMER_STATE")
	if path == "" {
		path = "customer-emails.projection.json"
	}
	p, err := OpenProjection(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := Run(ctx, addr, token, "customer-emails", p); err != nil {
		log.Fatal(err)
	}
	fmt.Println("customers projected:", strconv.Itoa(p.Len()), "saved in", path)
}
