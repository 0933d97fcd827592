package engine

import (
	"runtime"
	"sync"
)

// minOpenPerWorker is the fewest events a goroutine of openPage opens:
// below it, the hand-off costs more than the decryption it spreads.
const minOpenPerWorker = 128

// openPage runs open(i) for every i below n, spread over up to GOMAXPROCS
// goroutines in contiguous chunks once n is large enough, so that a large
// page's decryption takes a fraction of its time on an idle core. It
// returns the error of the lowest i that failed, as a loop would (a chunk
// stops at its first error; later chunks' errors lose to earlier ones).
// open must be safe for concurrent use on distinct i.
func openPage(n int, open func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/minOpenPerWorker)
	if workers <= 1 {
		for i := range n {
			if err := open(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, workers)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := open(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
