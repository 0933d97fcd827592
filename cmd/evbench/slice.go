package main

import (
	"context"
	"sync"
	"syscall"
	"time"
)

// runSlice runs ops concurrently, each in a loop, until d has passed, and
// returns what they did. A worker finishes the request it is in when d
// ends; the slice's time runs until the last has. The first error stops
// every worker and is returned.
func runSlice(ctx context.Context, ops []op, d time.Duration) (sample, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		total    sample
		firstErr error
		wg       sync.WaitGroup
	)
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine sample
			mine.latencies = make([]time.Duration, 0, 1024)
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := o(ctx)
				t1 := time.Now()
				if err != nil {
					// Record before cancelling, so that the cause wins over
					// the cancellations it brings about in other workers.
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					break
				}
				mine.events += int64(n)
				mine.requests++
				mine.latencies = append(mine.latencies, t1.Sub(t0))
				if !t1.Before(deadline) {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total.add(mine)
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.cpu = processCPU() - cpu0
	if firstErr != nil {
		return sample{}, firstErr
	}
	return total, ctx.Err()
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
