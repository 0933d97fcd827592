package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestOpenPageOpensEachOnceAndReturnsTheFirstError: every index is opened
// exactly once, on small pages and on pages spread over goroutines, and
// the error returned is the lowest index's, as a loop would return.
func TestOpenPageOpensEachOnceAndReturnsTheFirstError(t *testing.T) {
	for _, n := range []int{0, 1, minOpenPerWorker - 1, 2 * minOpenPerWorker, 1000} {
		counts := make([]atomic.Int32, n)
		if err := openPage(n, func(i int) error { counts[i].Add(1); return nil }); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d opened %d times", n, i, c)
			}
		}
		for _, bad := range [][]int{{n - 1}, {n / 2, n - 1}, {0, n - 1}} {
			if n == 0 {
				break
			}
			fail := map[int]bool{}
			for _, b := range bad {
				fail[b] = true
			}
			err := openPage(n, func(i int) error {
				if fail[i] {
					return fmt.Errorf("event %d", i)
				}
				return nil
			})
			if want := fmt.Sprintf("event %d", bad[0]); err == nil || err.Error() != want {
				t.Errorf("n=%d, failing %v: error %v, want %q", n, bad, err, want)
			}
		}
	}
	if err := openPage(3, func(int) error { return errors.New("x") }); err == nil {
		t.Error("no error from a failing small page")
	}
}
