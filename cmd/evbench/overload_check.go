package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// ackCheck is the verdict on one side's overload appends, looked up in
// its streams once every step is over.
type ackCheck struct {
	Side string `json:"side"`
	// Acked is how many appends were acknowledged (2xx); Lost those not
	// found; Moved those found at another position than acknowledged.
	Acked int `json:"acked"`
	Lost  int `json:"lost"`
	Moved int `json:"moved"`
	// Duplicated counts ids found more than once.
	Duplicated int `json:"duplicated"`
	// RefusedWritten counts refused appends (429, 503) found written: a
	// refusal must have written nothing.
	RefusedWritten int `json:"refused_written"`
	// UnknownWritten counts appends of unknown outcome (timeouts, other
	// failures) found written: allowed, once at most.
	Unknown        int  `json:"unknown"`
	UnknownWritten int  `json:"unknown_written"`
	OK             bool `json:"ok"`
}

// found is where an event was found: its position and global position,
// and how often.
type found struct {
	position, global int64
	times            int
}

// checkAcks compares the steps' acknowledgements with what the streams
// hold (read by read: id -> where it was found).
func checkAcks(side string, steps []overloadStep, held map[uuid.UUID]*found) ackCheck {
	c := ackCheck{Side: side}
	for _, f := range held {
		if f.times > 1 {
			c.Duplicated++
		}
	}
	for _, st := range steps {
		for _, a := range st.acks {
			c.Acked++
			f, ok := held[a.id]
			switch {
			case !ok:
				c.Lost++
			case f.position != a.position || f.global != a.globalPosition:
				c.Moved++
			}
		}
		for _, id := range st.refused {
			if _, ok := held[id]; ok {
				c.RefusedWritten++
			}
		}
		for _, id := range st.unknown {
			c.Unknown++
			if _, ok := held[id]; ok {
				c.UnknownWritten++
			}
		}
	}
	c.OK = c.Lost == 0 && c.Moved == 0 && c.Duplicated == 0 && c.RefusedWritten == 0
	return c
}

// eventVaultHeld reads the overload streams prefix-0 … through the API.
func eventVaultHeld(ctx context.Context, c *evClient, prefix string) (map[uuid.UUID]*found, error) {
	held := map[uuid.UUID]*found{}
	for i := range overloadStreams {
		stream := fmt.Sprintf("%s-%d", prefix, i)
		for from := int64(0); ; {
			var page struct {
				Events []evEvent `json:"events"`
				Next   *int64    `json:"next"`
			}
			path := "/v1/streams/" + stream + "/events?from=" + strconv.FormatInt(from, 10) + "&limit=1000"
			if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &page); err != nil {
				if strings.Contains(err.Error(), "answered 404") {
					break // no append reached this stream
				}
				return nil, err
			}
			for _, e := range page.Events {
				id, err := uuid.Parse(e.ID)
				if err != nil {
					return nil, fmt.Errorf("read %s: event id %q: %w", stream, e.ID, err)
				}
				if f, ok := held[id]; ok {
					f.times++
					continue
				}
				held[id] = &found{position: e.Position, global: e.GlobalPosition, times: 1}
			}
			if page.Next == nil {
				break
			}
			from = *page.Next
		}
	}
	return held, nil
}

// rawHeld reads the raw baseline's overload streams from raw_events.
func rawHeld(ctx context.Context, table *rawbench.Table) (map[uuid.UUID]*found, error) {
	held := map[uuid.UUID]*found{}
	for i := range overloadStreams {
		stream := fmt.Sprintf("%s-%s-%d", rawPrefix, rawPrefix, i)
		for from := int64(0); ; {
			rows, err := table.ReadStream(ctx, stream, from, 1000)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				if f, ok := held[r.ID]; ok {
					f.times++
					continue
				}
				held[r.ID] = &found{position: r.Position, global: r.GlobalPosition, times: 1}
			}
			if len(rows) < 1000 {
				break
			}
			from = rows[len(rows)-1].Position + 1
		}
	}
	return held, nil
}
