package crypto

import (
	"context"
	"errors"
	"sync"
)

// flight runs one load per key at a time and hands its result to every
// caller that asked meanwhile, so that a cold start with many requests for
// one tenant makes one root-key call, not one per request.
type flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
}

var errFlightPanicked = errors.New("key load panicked")

// do returns fn's result, running fn unless a call for key is under way, in
// which case it waits for that one. A waiter whose own context is still live
// retries when the leader's context ended the load.
func (g *flight[T]) do(ctx context.Context, key string, fn func() (T, error)) (T, error) {
	for {
		g.mu.Lock()
		if g.calls == nil {
			g.calls = make(map[string]*flightCall[T])
		}
		c, ok := g.calls[key]
		if !ok {
			c = &flightCall[T]{done: make(chan struct{}), err: errFlightPanicked}
			g.calls[key] = c
			g.mu.Unlock()
			g.run(key, c, fn)
			return c.val, c.err
		}
		g.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
		leaderCancelled := errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)
		if !leaderCancelled || ctx.Err() != nil {
			return c.val, c.err
		}
	}
}

func (g *flight[T]) run(key string, c *flightCall[T], fn func() (T, error)) {
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
}
