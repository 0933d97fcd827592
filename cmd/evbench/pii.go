package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/eventvault/eventvault"
)

// The issue 13 workload: reading a stream whose events each mark 5
// personal values (each resolved per field: a policy decision, the
// subject's key from the page's one PII round trip, a decryption), against
// the same events unmarked, on the same server, in the same run.

const (
	// sidePII reads events that mark 5 values each; sidePIIPlain reads
	// the same events unmarked. Both as one token that may decrypt.
	sidePII      = "EventVault 5 PII/event"
	sidePIIPlain = "EventVault unmarked"
	// piiStreamName is the stream the PII read reads; each side keeps it
	// under a prefix of its own.
	piiStreamName = "pii-0"
	// piiSubjects is how many data subjects the values belong to.
	piiSubjects = 50
)

// piiFields are the 5 marked values of each event, with their classes.
var piiFields = []struct{ name, class string }{
	{"email", "email"}, {"phone", "phone"}, {"street", "address"}, {"name", ""}, {"note", "free_text"},
}

// piiTarget is EventVault over HTTP writing and reading one stream, with
// its 5 values marked or not.
type piiTarget struct {
	*evClient
	marked bool
}

func (p piiTarget) stream() string {
	if p.marked {
		return "marked" + piiStreamName
	}
	return "plain" + piiStreamName
}

// piiData is event i's data: the 5 values, then padding to size bytes.
func piiData(i, size int) []byte {
	b := fmt.Appendf(nil, `{"email":"person%d@example.com","phone":"+44 20 7946 %04d","street":"%d Acacia Avenue","name":"Person Number %d","note":"called about order %d"`, i, i%10000, i, i, i)
	pad := max(0, size-len(b)-len(`,"pad":""}`))
	b = append(b, `,"pad":"`...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// prepare writes the stream the workload reads: n events, in batches.
func (p piiTarget) prepare(ctx context.Context, n, size int) error {
	for first := 0; first < n; first += streamBatch {
		b := []byte(`{"expected_version":"any","events":[`)
		for i := first; i < min(first+streamBatch, n); i++ {
			if i > first {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `{"id":"%s","type":%q,"data":%s`, newEvents(1, nil)[0].ID, eventType, piiData(i, size))
			if p.marked {
				b = append(b, `,"pii":{`...)
				for j, f := range piiFields {
					if j > 0 {
						b = append(b, ',')
					}
					b = fmt.Appendf(b, `"/%s":{"subject":"subject-%d","class":%q}`, f.name, i%piiSubjects, f.class)
				}
				b = append(b, '}')
			}
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		if err := p.do(ctx, http.MethodPost, "/v1/streams/"+p.stream()+"/events", b, http.StatusCreated, &struct{}{}); err != nil {
			return fmt.Errorf("write %s: %w", p.stream(), err)
		}
	}
	return p.check(ctx)
}

// check reads the stream's first event back as JSON and fails unless it
// shows its values in clear and, when marked, whose each is: so that the
// workload measures reads that resolve every value, not a regression that
// skips them.
func (p piiTarget) check(ctx context.Context) error {
	var out struct {
		Events []struct {
			Data struct {
				Email string `json:"email"`
			} `json:"data"`
			PII map[string][]string `json:"pii"`
		} `json:"events"`
	}
	if err := p.do(ctx, http.MethodGet, "/v1/streams/"+p.stream()+"/events?limit=1", nil, http.StatusOK, &out); err != nil {
		return fmt.Errorf("read %s back: %w", p.stream(), err)
	}
	if len(out.Events) != 1 || out.Events[0].Data.Email != "person0@example.com" {
		return fmt.Errorf("read %s back: the first event does not show its e-mail in clear: %+v", p.stream(), out.Events)
	}
	shown := 0
	for _, pointers := range out.Events[0].PII {
		shown += len(pointers)
	}
	if want := map[bool]int{true: len(piiFields), false: 0}[p.marked]; shown != want {
		return fmt.Errorf("read %s back: its pii member names %d values, want %d", p.stream(), shown, want)
	}
	return nil
}

func (p piiTarget) readStream(ctx context.Context, _ string, from int64, limit int) (int, error) {
	return p.evClient.readStream(ctx, p.stream(), from, limit)
}

// piiToken issues a token of tenant that may read and decrypt every
// stream, with the root token of tenantToken.
func (s *evServer) piiToken(ctx context.Context, client *http.Client, tenant eventvault.TenantID) (string, error) {
	root, err := s.tokens.InstallRoot(ctx, tenant, "")
	if err != nil {
		return "", fmt.Errorf("install a root token: %w", err)
	}
	c := &evClient{http: client, base: s.baseURL(), token: root}
	var out struct {
		Token string `json:"token"`
	}
	body := []byte(`{"tenant":` + strconv.Quote(string(tenant)) + `,"name":"evbench-pii","rules":[{"capabilities":["append","read","read_pii"],"streams":"*"}]}`)
	if err := c.do(ctx, http.MethodPost, "/v1/tokens", body, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("issue a token that reads personal data: %w", err)
	}
	return out.Token, nil
}

var piiWorkload = workload{
	key: "read_pii", title: "read a stream, 5 PII values/event (EV: marked; raw: unmarked)", goal: 0.8,
	goals: []goal{
		// Issue 13: events whose data marks 5 values each read at least
		// 0.8 of the same events unmarked.
		{of: sidePII, over: sidePIIPlain, goal: 0.8},
	},
	clients:    func(c Config) int { return c.StreamReaders },
	perRequest: func(c Config) int { return c.StreamEvents },
	workers: func(t target, c Config, _ *prepared) []op {
		return streamReaders(t, c, piiStreamName)
	},
}
