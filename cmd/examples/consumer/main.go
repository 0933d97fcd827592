// Command consumer is the example projection of the README's consumer
// walk-through: a durable consumer of EventVault's feed that keeps each
// customer's e-mail address, and drops it when a tombstone says the
// customer's stream was erased, or that the subject the address belongs
// to was (a value marked personal with "pii", docs/pii.md).
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
	"slices"
	"strconv"
	"strings"
	"sync"
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
	email string
	// owner is the pseudonym of the subject the address belongs to, when
	// the event marked it personal: a tombstone with personal_values
	// names it.
	owner string
}

// Projection maps a customer stream to the e-mail address it registered.
type Projection struct {
	mu   sync.Mutex
	rows map[string]row
}

// NewProjection returns an empty projection.
func NewProjection() *Projection { return &Projection{rows: map[string]row{}} }

// Email returns the address projected for a stream.
func (p *Projection) Email(stream string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rows[stream]
	return r.email, ok
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
	switch {
	case ev.Stream == "eventvault-tombstones" && ev.Type == "eventvault.Tombstone":
		var ts tombstone
		if err := json.Unmarshal(ev.Data, &ts); err != nil {
			return ""
		}
		var dropped []string
		for stream, r := range p.rows {
			if slices.Contains(ts.Streams, stream) || (ts.PersonalValues && ts.SubjectPseudonym != "" && r.owner == ts.SubjectPseudonym) {
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
		r := row{email: c.Email}
		for subject, pointers := range ev.PII {
			if slices.Contains(pointers, "/email") {
				r.owner = subject
			}
		}
		p.rows[ev.Stream] = r
		return "projected " + ev.Stream
	}
	return ""
}

// Run registers the consumer name (customers only), resumes the feed from
// its checkpoint, projects every event and acknowledges it, until ctx ends.
func Run(ctx context.Context, base, token, name string, p *Projection) error {
	call := func(method, path string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, problemDetail(resp.Body))
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var sub struct {
		Checkpoint int64 `json:"checkpoint"`
	}
	filter := map[string]any{"filter": map[string]any{"categories": []string{"customer"}}}
	if err := call(http.MethodPut, "/v1/subscriptions/"+name, filter, &sub); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/subscribe?from=%d&categories=customer", base, sub.Checkpoint), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/subscribe: %s: %s", resp.Status, problemDetail(resp.Body))
	}
	log.Printf("consumer %s: following the feed from global position %d", name, sub.Checkpoint)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // id:, comments (heartbeats), blank lines
		}
		var ev event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return err
		}
		if change := p.apply(ev); change != "" {
			log.Printf("consumer %s: %s (global position %d)", name, change, ev.GlobalPosition)
		}
		// Acknowledge once projected: a restart resumes after it.
		if err := call(http.MethodPost, "/v1/subscriptions/"+name+"/ack", map[string]int64{"position": ev.GlobalPosition}, &sub); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("feed ended: %w", err)
	}
	return errors.New("feed ended: the server closed it (a feed lasts at most 10 minutes; run again to resume from the checkpoint)")
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
	p := NewProjection()
	if err := Run(ctx, addr, token, "customer-emails", p); err != nil {
		log.Fatal(err)
	}
	fmt.Println("customers projected:", strconv.Itoa(p.Len()))
}
