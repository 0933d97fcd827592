package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// The overload workload's load generator runs in a child process of its
// own (evbench overload-generator), at a lower CPU priority (nice 10), so
// that on a small machine the generator's goroutines do not share the
// server's Go scheduler and take the CPU its admitted requests need, as
// clients on other machines would not. The parent serves; the child sends
// and times, and reports every outcome (and every acknowledgement) as JSON
// on its stdout. Offered is what the child sent: a generator that falls
// behind its schedule shows as dropped or late requests, timed from when
// they were due.

// generatorCommand is the first argument that makes evbench the
// overload's load generator.
const generatorCommand = "overload-generator"

// generatorNice is the child's niceness (setpriority(2)).
const generatorNice = 10

// genSpec is one open loop for the child: single-event appends at Rate per
// second for Seconds to Base's API, as Token, on streams Prefix-N.
type genSpec struct {
	Base      string  `json:"base"`
	Token     string  `json:"token"`
	Prefix    string  `json:"prefix"`
	Rate      float64 `json:"rate"`
	Seconds   float64 `json:"seconds"`
	EventSize int     `json:"event_size"`
}

// genRequest is what the parent sends the child: the main loop and, run
// beside it, the quiet tenant's.
type genRequest struct {
	Main  genSpec  `json:"main"`
	Quiet *genSpec `json:"quiet,omitempty"`
	// Probe, if not 0, makes the child measure Main's capacity instead,
	// with Probe closed-loop clients (leanProbe), in genResult.Capacity.
	Probe int `json:"probe,omitempty"`
	// NetHTTP runs the open loops on net/http's client (openLoop), as
	// the generator did before its lean client, for comparison.
	NetHTTP bool `json:"net_http,omitempty"`
}

// genStep is one loop's outcome, with what the check needs.
type genStep struct {
	Step    overloadStep `json:"step"`
	Acks    []genAck     `json:"acks"`
	Refused []uuid.UUID  `json:"refused"`
	Unknown []uuid.UUID  `json:"unknown"`
}

type genAck struct {
	Stream         string    `json:"s"`
	ID             uuid.UUID `json:"i"`
	Position       int64     `json:"p"`
	GlobalPosition int64     `json:"g"`
}

type genResult struct {
	Capacity float64  `json:"capacity,omitempty"`
	Main     genStep  `json:"main"`
	Quiet    *genStep `json:"quiet,omitempty"`
}

func toGenStep(s overloadStep) genStep {
	g := genStep{Step: s, Refused: s.refused, Unknown: s.unknown}
	for _, a := range s.acks {
		g.Acks = append(g.Acks, genAck{a.stream, a.id, a.position, a.globalPosition})
	}
	return g
}

func (g genStep) step() overloadStep {
	s := g.Step
	s.refused, s.unknown = g.Refused, g.Unknown
	for _, a := range g.Acks {
		s.acks = append(s.acks, ack{a.Stream, a.ID, a.Position, a.GlobalPosition})
	}
	return s
}

// runGenerator is the child: it reads a genRequest on stdin, runs it and
// writes a genResult on stdout.
func runGenerator(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	var req genRequest
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		return fmt.Errorf("overload generator: read the request: %w", err)
	}
	if req.Probe > 0 {
		c, err := leanProbe(ctx, req.Main, req.Probe)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(genResult{Capacity: c})
	}
	type outcome struct {
		step overloadStep
		err  error
	}
	loop := leanLoop
	if req.NetHTTP {
		client := newHTTPClient(overloadConns)
		client.Transport.(*http.Transport).MaxConnsPerHost = overloadConns
		defer client.CloseIdleConnections()
		loop = func(ctx context.Context, s genSpec, _ int) (overloadStep, error) {
			sh := &appendShooter{http: client, base: s.Base, token: s.Token, prefix: s.Prefix, data: newData(s.EventSize, 16)}
			return openLoop(ctx, s.Rate, time.Duration(s.Seconds*float64(time.Second)), sh.fire), nil
		}
	}
	quiet := make(chan outcome, 1)
	if req.Quiet != nil {
		go func() {
			st, err := loop(ctx, *req.Quiet, quietConns)
			quiet <- outcome{st, err}
		}()
	}
	main, err := loop(ctx, req.Main, overloadConns)
	if err != nil {
		return err
	}
	res := genResult{Main: toGenStep(main)}
	if req.Quiet != nil {
		q := <-quiet
		if q.err != nil {
			return q.err
		}
		g := toGenStep(q.step)
		res.Quiet = &g
	}
	return json.NewEncoder(stdout).Encode(res)
}

// quietConns bounds the quiet tenant's connections in the generator.
const quietConns = 64

// generate runs the child for req and returns its outcome and the CPU the
// child spent (user and system).
func generate(ctx context.Context, req genRequest) (genResult, time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return genResult{}, 0, fmt.Errorf("overload generator: %w", err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return genResult{}, 0, err
	}
	cmd := exec.CommandContext(ctx, self, generatorCommand)
	cmd.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return genResult{}, 0, fmt.Errorf("overload generator: start: %w", err)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, generatorNice)
	if err := cmd.Wait(); err != nil {
		return genResult{}, 0, fmt.Errorf("overload generator: %w: %s", err, bytes.TrimSpace(errOut.Bytes()))
	}
	var res genResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return genResult{}, 0, fmt.Errorf("overload generator: its result: %w", err)
	}
	return res, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
