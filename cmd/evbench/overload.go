package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// The overload workload (issue 16): single-event appends over
// overloadStreams streams at a constant offered rate, open loop (each
// request is sent at its time whether or not earlier ones were answered,
// as independent clients do), at 1×, 2× and 4× of the capacity the side
// showed in a closed-loop probe. Each step prints offered, answered
// (successful answers per second of the step), refused (429, 503) and the
// p50 and p99 of the admitted requests. Afterwards every acknowledged
// append is looked up: nothing lost, nothing duplicated, and nothing
// written for a refused one.

// overloadStreams is how many streams the overload appends go to.
const overloadStreams = 200

// shotTimeout is how long the generator waits for one answer: past it the
// request counts as failed, its outcome unknown.
const shotTimeout = 5 * time.Second

// maxOutstanding bounds the generator's requests awaiting an answer, so
// that a server that stops answering cannot exhaust the machine's ports;
// a request due past it is not sent, and counted as dropped.
const maxOutstanding = 4096

// shot is one request's outcome.
type shot struct {
	status int // 0 for a transport error or timeout
	sent   time.Time
	took   time.Duration
	// lag is how late the generator sent it: from when it was due to
	// when its bytes were written (the lean client) or its request
	// started (net/http's).
	lag time.Duration
	ack ack // on 2xx
	id  uuid.UUID
}

// ack is what an append's answer acknowledged.
type ack struct {
	stream         string
	id             uuid.UUID
	position       int64
	globalPosition int64
}

// overloadStep is one open-loop step of one side.
type overloadStep struct {
	Side          string  `json:"side"`
	Factor        float64 `json:"factor"`
	OfferedPerSec float64 `json:"offered_per_sec"`
	Sent          int     `json:"sent"`
	Dropped       int     `json:"dropped"`
	// AnsweredPerSec is the successful answers (2xx) received during the
	// step, per second: the goodput.
	AnsweredPerSec float64 `json:"answered_per_sec"`
	OK             int     `json:"ok"`
	Refused429     int     `json:"refused_429"`
	Refused503     int     `json:"refused_503"`
	// Failed are other answers, transport errors and timeouts (outcome
	// unknown).
	Failed int `json:"failed"`
	// P50Ms and P99Ms are of the admitted (2xx) requests; RefusalP99Ms of
	// the time to a refusal.
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	RefusalP99Ms float64 `json:"refusal_p99_ms"`
	// LagP99Ms is the p99 of how late the generator sent a request:
	// its own delay, in every latency above.
	LagP99Ms float64 `json:"send_lag_p99_ms"`
	// Server is the server's own view of the step (EventVault with
	// admission): from a request's headers read to its answer written.
	Server *serverTimes `json:"server,omitempty"`
	// GenCPUUs is the generator's CPU per request it sent (main and quiet
	// loops), in µs; 0 in process.
	GenCPUUs float64   `json:"generator_cpu_per_request_us"`
	Diag     *stepDiag `json:"diagnostics,omitempty"`
	// Quiet is another tenant's appends at a low rate during the step.
	Quiet *quietResult `json:"quiet_tenant,omitempty"`

	acks    []ack
	refused []uuid.UUID
	unknown []uuid.UUID
}

// fireFunc sends request i and returns its outcome.
type fireFunc func(ctx context.Context, i int) shot

// openLoop sends requests at rate per second for d, each at its time,
// and waits for their answers.
func openLoop(ctx context.Context, rate float64, d time.Duration, fire fireFunc) overloadStep {
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		shots       []shot
		outstanding int
		step        = overloadStep{OfferedPerSec: rate}
	)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	end := start.Add(d)
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) || ctx.Err() != nil {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		mu.Lock()
		if outstanding >= maxOutstanding {
			step.Dropped++
			mu.Unlock()
			continue
		}
		outstanding++
		mu.Unlock()
		step.Sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := fire(ctx, i)
			// Timed from when it was due, not from when the pacer got
			// to it.
			s.took += s.sent.Sub(at)
			s.lag += s.sent.Sub(at)
			s.sent = at
			mu.Lock()
			outstanding--
			shots = append(shots, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	summarize(&step, shots, end, d)
	return step
}

// summarize counts shots into step, a step of length d that ended at
// end: answers by kind, goodput, and the quantiles of the admitted
// requests, of the refusals and of the generator's lag.
func summarize(step *overloadStep, shots []shot, end time.Time, d time.Duration) {
	var admitted, refusals, lags []time.Duration
	for _, s := range shots {
		lags = append(lags, s.lag)
		switch {
		case s.status >= 200 && s.status < 300:
			step.OK++
			admitted = append(admitted, s.took)
			if !s.sent.Add(s.took).After(end) {
				step.AnsweredPerSec++
			}
			step.acks = append(step.acks, s.ack)
		case s.status == http.StatusTooManyRequests:
			step.Refused429++
			refusals = append(refusals, s.took)
			step.refused = append(step.refused, s.id)
		case s.status == http.StatusServiceUnavailable:
			step.Refused503++
			refusals = append(refusals, s.took)
			step.refused = append(step.refused, s.id)
		default:
			step.Failed++
			step.unknown = append(step.unknown, s.id)
		}
	}
	step.AnsweredPerSec /= d.Seconds()
	slices.Sort(admitted)
	slices.Sort(refusals)
	slices.Sort(lags)
	step.P50Ms, step.P99Ms = ms(quantile(admitted, 0.50)), ms(quantile(admitted, 0.99))
	step.RefusalP99Ms = ms(quantile(refusals, 0.99))
	step.LagP99Ms = ms(quantile(lags, 0.99))
}

// quantile of sorted durations, 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// appendShooter fires single-event appends at an EventVault-shaped HTTP
// API (EventVault, or the raw baseline's server), to stream prefix-<i mod
// overloadStreams>.
type appendShooter struct {
	http   *http.Client
	base   string
	token  string
	prefix string
	data   []byte
}

func (a *appendShooter) fire(ctx context.Context, i int) shot {
	id := uuid.New()
	stream := fmt.Sprintf("%s-%d", a.prefix, i%overloadStreams)
	body := appendBody([]benchEvent{{ID: id, Type: "Overloaded", Data: a.data}})
	s := shot{id: id, sent: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, shotTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/streams/"+stream+"/events", bytes.NewReader(body))
	if err != nil {
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	s.lag = time.Since(s.sent)
	resp, err := a.http.Do(req)
	if err != nil {
		s.took = time.Since(s.sent)
		return s
	}
	defer resp.Body.Close()
	var out struct {
		Events []evPositions `json:"events"`
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Events) != 1 {
			s.took = time.Since(s.sent)
			return s // an answer without its acknowledgement: unknown
		}
		s.ack = ack{stream: stream, id: id, position: out.Events[0].Position, globalPosition: out.Events[0].GlobalPosition}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	s.status, s.took = resp.StatusCode, time.Since(s.sent)
	return s
}

// probeCapacity runs clients closed-loop clients for d and returns the
// successful answers per second: the side's capacity. With d 0 it runs
// until fire answers status -1, and returns 0.
func probeCapacity(ctx context.Context, clients int, d time.Duration, fire fireFunc) (float64, error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		ok     int
		failed error
	)
	end := time.Now().Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; d == 0 || time.Now().Before(end); i += clients {
				s := fire(ctx, i)
				if s.status == -1 {
					return
				}
				mu.Lock()
				if s.status == http.StatusCreated {
					ok++
				} else if failed == nil {
					failed = fmt.Errorf("probe request answered %d", s.status)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if d == 0 {
		return 0, failed
	}
	if ok == 0 {
		return 0, errors.Join(errors.New("the capacity probe got no answer"), failed)
	}
	return float64(ok) / d.Seconds(), nil
}
