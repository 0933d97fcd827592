// Command consumer is the example projection of the README's consumer
// walk-through: a durable consumer of EventVault's feed that keeps each
// customer's e-mail address, and drops it when a tombstone says the
// customer's stream was erased.
//
//	EVENTVAULT_URL=http://127.0.0.1:8080 EVENTVAULT_TOKEN=evt_... go run ./cmd/examples/consumer
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
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
}

// Projection maps a customer stream to the e-mail address it registered.
type Projection struct {
	mu     sync.Mutex
	emails map[string]string
}

// Email returns the address projected for a stream.
func (p *Projection) Email(stream string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.emails[stream]
	return e, ok
}

// apply projects one event. A tombstone names erased streams: their rows
// go (GDPR Art. 17: a copy of erased data must not outlive it).
func (p *Projection) apply(ev event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case ev.Stream == "eventvault-tombstones" && ev.Type == "eventvault.Tombstone":
		var ts struct {
			Streams []string `json:"streams"`
		}
		if err := json.Unmarshal(ev.Data, &ts); err == nil {
			for _, s := range ts.Streams {
				delete(p.emails, s)
			}
		}
	case ev.Erased: // shredded before we saw it: nothing to project
	case ev.Type == "CustomerRegistered":
		var c struct {
			Email string `json:"email"`
		}
		if json.Unmarshal(ev.Data, &c) == nil {
			p.emails[ev.Stream] = c.Email
		}
	}
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
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
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
		p.apply(ev)
		// Acknowledge once projected: a restart resumes after it.
		if err := call(http.MethodPost, "/v1/subscriptions/"+name+"/ack", map[string]int64{"position": ev.GlobalPosition}, &sub); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("feed ended: %v", sc.Err())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p := &Projection{emails: map[string]string{}}
	if err := Run(ctx, os.Getenv("EVENTVAULT_URL"), os.Getenv("EVENTVAULT_TOKEN"), "customer-emails", p); err != nil {
		log.Fatal(err)
	}
	fmt.Println("customers projected:", strconv.Itoa(len(p.emails)))
}
