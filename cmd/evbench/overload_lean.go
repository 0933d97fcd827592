package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The generator child's client (overload_child.go): the same open loop as
// openLoop (a request sent when it is due, timed from when it was due, at
// most maxOutstanding awaiting an answer), on a client that costs the
// machine as little as a request can, so that the CPU it shares with the
// server and PostgreSQL goes to them. net/http's client spends about as
// much CPU per request as the server's refusal of it (a goroutine, a
// request and a response object, headers in maps, its connection pool's
// locks); here:
//
//   - every request is built before the step starts (its id, stream and
//     bytes), as a fleet of clients holds its requests ready;
//   - a fixed set of kept-alive connections, dialed before the step, as a
//     fleet of clients holds them, each served by one goroutine that
//     writes a request's bytes and reads its answer (status line, headers
//     by prefix, body by Content-Length or chunks): no goroutine, request
//     or header map per request;
//   - a request due while every connection is busy waits in a channel for
//     one, and that wait is in its latency, as with net/http's
//     MaxConnsPerHost.

// leanConn is one kept-alive HTTP/1.1 connection of the lean client.
type leanConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	body []byte
}

func (lc *leanConn) dial() error {
	c, err := net.DialTimeout("tcp", lc.addr, 5*time.Second)
	if err != nil {
		return err
	}
	lc.c, lc.r = c, bufio.NewReaderSize(c, 8<<10)
	return nil
}

func (lc *leanConn) close() {
	if lc.c != nil {
		_ = lc.c.Close()
		lc.c = nil
	}
}

// errLeanAnswer is an answer the lean client cannot read.
var errLeanAnswer = errors.New("malformed HTTP answer")

// roundTrip writes req and reads its answer: the status and the body
// (lc.body, valid until the next call). Past deadline it fails.
func (lc *leanConn) roundTrip(req []byte, deadline time.Time) (int, []byte, error) {
	if lc.c == nil {
		if err := lc.dial(); err != nil {
			return 0, nil, err
		}
	}
	if err := lc.c.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	if _, err := lc.c.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, errLeanAnswer
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, errLeanAnswer
	}
	length, chunked, closing := -1, false, false
	for {
		h, err := lc.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, nil, errLeanAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, nil, errLeanAnswer
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	lc.body = lc.body[:0]
	switch {
	case chunked:
		for {
			l, err := lc.r.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			size, _, _ := bytes.Cut(bytes.TrimSpace(l), []byte(";"))
			n, err := strconv.ParseInt(string(size), 16, 32)
			if err != nil {
				return 0, nil, errLeanAnswer
			}
			if n == 0 {
				if _, err := lc.r.ReadSlice('\n'); err != nil { // no trailers are sent
					return 0, nil, err
				}
				break
			}
			if lc.body, err = readN(lc.r, lc.body, int(n)); err != nil {
				return 0, nil, err
			}
			if _, err := lc.r.Discard(2); err != nil {
				return 0, nil, err
			}
		}
	case length >= 0:
		if lc.body, err = readN(lc.r, lc.body, length); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errLeanAnswer // EventVault's answers have a length
	}
	if closing {
		lc.close()
	}
	return status, lc.body, nil
}

// readN appends n bytes of r to b.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	at := len(b)
	b = append(b, make([]byte, n)...)
	_, err := io.ReadFull(r, b[at:])
	return b, err
}

// leanRequest is one prepared append.
type leanRequest struct {
	id     uuid.UUID
	stream string
	bytes  []byte
}

// leanRequests builds the n single-event appends of spec s, request i to
// stream prefix-<i mod overloadStreams>.
func leanRequests(s genSpec, host string, n int) []leanRequest {
	data := newData(s.EventSize, 16)
	reqs := make([]leanRequest, n)
	for i := range reqs {
		reqs[i] = leanAppend(s, host, i, data)
	}
	return reqs
}

// leanAppend is request i of spec s: one event of data.
func leanAppend(s genSpec, host string, i int, data []byte) leanRequest {
	id := uuid.New()
	stream := s.Prefix + "-" + strconv.Itoa(i%overloadStreams)
	body := appendBody([]benchEvent{{ID: id, Type: "Overloaded", Data: data}})
	b := make([]byte, 0, len(body)+256)
	b = append(b, "POST /v1/streams/"...)
	b = append(b, stream...)
	b = append(b, "/events HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Type: application/json\r\n"...)
	if s.Token != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, s.Token...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	return leanRequest{id: id, stream: stream, bytes: b}
}

// leanProbe runs clients closed-loop clients of spec s on the lean client
// for s.Seconds, each on a connection of its own, and returns the
// successful answers per second: the capacity that the open loop's 1× is,
// measured through the same client.
func leanProbe(ctx context.Context, s genSpec, clients int) (float64, error) {
	u, err := url.Parse(s.Base)
	if err != nil {
		return 0, fmt.Errorf("overload generator: %w", err)
	}
	data := newData(s.EventSize, 16)
	d := time.Duration(s.Seconds * float64(time.Second))
	var (
		wg     sync.WaitGroup
		ok     atomic.Int64
		mu     sync.Mutex
		failed error
	)
	pool := make([]*leanConn, clients)
	for c := range pool {
		pool[c] = &leanConn{addr: u.Host}
		if err := pool[c].dial(); err != nil {
			return 0, fmt.Errorf("overload generator: connect to %s: %w", u.Host, err)
		}
	}
	end := time.Now().Add(d)
	for c, lc := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lc.close()
			for i := c; time.Now().Before(end) && ctx.Err() == nil; i += clients {
				r := leanAppend(s, u.Host, i, data)
				status, _, err := lc.roundTrip(r.bytes, time.Now().Add(shotTimeout))
				if err == nil && status == 201 {
					ok.Add(1)
					continue
				}
				lc.close()
				mu.Lock()
				if failed == nil {
					failed = fmt.Errorf("probe request: status %d, %v", status, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok.Load() == 0 {
		return 0, errors.Join(errors.New("the capacity probe got no answer"), failed)
	}
	return float64(ok.Load()) / d.Seconds(), nil
}

// leanLoop runs spec s's open loop on the lean client with conns
// connections: openLoop's schedule and accounting, leaner.
func leanLoop(ctx context.Context, s genSpec, conns int) (overloadStep, error) {
	u, err := url.Parse(s.Base)
	if err != nil {
		return overloadStep{}, fmt.Errorf("overload generator: %w", err)
	}
	d := time.Duration(s.Seconds * float64(time.Second))
	interval := time.Duration(float64(time.Second) / s.Rate)
	n := int((d + interval - 1) / interval)
	reqs := leanRequests(s, u.Host, n)
	pool := make([]*leanConn, conns)
	for i := range pool {
		pool[i] = &leanConn{addr: u.Host}
		if err := pool[i].dial(); err != nil {
			for _, c := range pool[:i] {
				c.close()
			}
			return overloadStep{}, fmt.Errorf("overload generator: connect to %s: %w", u.Host, err)
		}
	}
	var (
		shots       = make([]shot, n)
		sent        = make([]bool, n)
		outstanding atomic.Int64
		wg          sync.WaitGroup
		jobs        = make(chan int, maxOutstanding)
		start       = time.Now()
		step        = overloadStep{OfferedPerSec: s.Rate}
	)
	due := func(i int) time.Time { return start.Add(time.Duration(i) * interval) }
	for _, lc := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lc.close()
			var out struct {
				Events []evPositions `json:"events"`
			}
			for i := range jobs {
				at, r := due(i), &reqs[i]
				sh := shot{id: r.id, sent: at}
				now := time.Now()
				sh.lag = now.Sub(at)
				status, body, err := lc.roundTrip(r.bytes, at.Add(shotTimeout))
				switch {
				case err != nil:
					lc.close() // its outcome unknown; the next request redials
				case status == 201:
					out.Events = out.Events[:0]
					if json.Unmarshal(body, &out) == nil && len(out.Events) == 1 {
						sh.status = status
						sh.ack = ack{stream: r.stream, id: r.id, position: out.Events[0].Position, globalPosition: out.Events[0].GlobalPosition}
					}
				default:
					sh.status = status
				}
				sh.took = time.Since(at)
				shots[i] = sh
				outstanding.Add(-1)
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(due(i)); wait > 0 {
			time.Sleep(wait)
		}
		if outstanding.Load() >= maxOutstanding {
			step.Dropped++
			continue
		}
		outstanding.Add(1)
		sent[i] = true
		step.Sent++
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	kept := shots[:0]
	for i, ok := range sent {
		if ok {
			kept = append(kept, shots[i])
		}
	}
	summarize(&step, kept, start.Add(d), d)
	return step, nil
}
