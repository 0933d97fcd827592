package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// TestASecondGroupStartsOnlyForEnoughEvents: a tenant's first group starts
// at once; beside one in flight, a second starts only once
// secondGroupEvents events wait, so that small appends arriving during a
// commit go together in the next group rather than one or two at a time,
// or once the first has been in flight for secondGroupAfter; never more
// than maxGroupsInFlight.
func TestASecondGroupStartsOnlyForEnoughEvents(t *testing.T) {
	now := time.Now()
	waiting := func(inFlight int, events ...int) *tenantGroups {
		q := &tenantGroups{inFlight: inFlight, taken: now.Add(-time.Millisecond)}
		for _, n := range events {
			q.pending = append(q.pending, &groupMember{w: &batchWrite{n: n}})
			q.pendingEvents += n
		}
		return q
	}
	slow := func(q *tenantGroups) *tenantGroups {
		q.taken = now.Add(-secondGroupAfter)
		return q
	}
	for _, c := range []struct {
		name   string
		q      *tenantGroups
		starts bool
	}{
		{"nothing waits", waiting(0), false},
		{"a lone append, none in flight", waiting(0, 1), true},
		{"one append beside a group in flight", waiting(1, 1), false},
		{"seven single events beside a group in flight", waiting(1, 1, 1, 1, 1, 1, 1, 1), false},
		{"one event short of a second group", waiting(1, 40, secondGroupEvents-41), false},
		{"enough events for a second group", waiting(1, 40, secondGroupEvents-40), true},
		{"a batch of 100 beside a group in flight", waiting(1, 100), true},
		{"a full house in flight", waiting(maxGroupsInFlight, 1000), false},
		{"one append behind a group in flight for secondGroupAfter", slow(waiting(1, 1)), true},
		{"nothing behind a slow group", slow(waiting(1)), false},
		{"a full house, slow", slow(waiting(maxGroupsInFlight, 1)), false},
	} {
		if got := c.q.startsGroup(now); got != c.starts {
			t.Errorf("%s: starts a group %v, want %v", c.name, got, c.starts)
		}
	}
}

// TestTakeKeepsTheCountOfEventsLeft: take leaves what does not fit for the
// next group, and the count startsGroup reads is that of what is left.
func TestTakeKeepsTheCountOfEventsLeft(t *testing.T) {
	q := &tenantGroups{}
	for range maxGroupAppends + 3 {
		m := &groupMember{ctx: t.Context(), w: &batchWrite{n: 2}}
		m.req.Stream = eventvault.StreamName(fmt.Sprintf("stream-%d", len(q.pending)))
		q.pending = append(q.pending, m)
		q.pendingEvents += 2
	}
	group := q.take()
	if len(group) != maxGroupAppends || len(q.pending) != 3 || q.pendingEvents != 6 {
		t.Fatalf("took %d, left %d appends and %d events; want %d, 3 and 6", len(group), len(q.pending), q.pendingEvents, maxGroupAppends)
	}
}
