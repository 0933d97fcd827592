package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/eventvault/eventvault"
)

// Processing is the records of processing of a tenant over a period, in
// the spirit of GDPR Art. 30: which categories of streams were written and
// read, and by whom, and what was erased, held and exported. It is derived
// from the audit log alone, so it says what the log proves and nothing
// the log does not hold. Principals appear as the log names them (token
// ids, JWT actor ids, "operator").
type Processing struct {
	Tenant  string    `json:"tenant"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Records int64     `json:"records"` // records of the period
	// Categories maps a stream category ("order" for order-42) to who
	// wrote and read it.
	Categories []CategoryUse `json:"categories"`
	Erasures   int64         `json:"erasure_requests"`
	Shreds     int64         `json:"streams_shredded"`
	Holds      int64         `json:"holds_placed"`
	HoldsLift  int64         `json:"holds_lifted"`
	Exports    int64         `json:"audit_exports"`
	Denials    int64         `json:"requests_refused"`
}

// CategoryUse is one category's use over the period.
type CategoryUse struct {
	Category      string   `json:"category"`
	EventsWritten int64    `json:"events_written"`
	EventsRead    int64    `json:"events_read"`
	Writers       []string `json:"writers"`
	Readers       []string `json:"readers"`
}

// DefaultPeriod is the period a summary covers when none is given.
const DefaultPeriod = 30 * 24 * time.Hour

// ParsePeriod reads a summary's period: from and to as RFC 3339 times, to
// exclusive; an empty one defaults to now - DefaultPeriod and now. The
// names are the parameters' as the caller took them ("from", "-from").
// Errors: EINVALID naming the parameter.
func ParsePeriod(fromName, from, toName, to string, now time.Time) (time.Time, time.Time, error) {
	end, start := now.UTC(), now.UTC().Add(-DefaultPeriod)
	for _, f := range []struct {
		name, text string
		into       *time.Time
	}{{fromName, from, &start}, {toName, to, &end}} {
		if f.text == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.text)
		if err != nil {
			return time.Time{}, time.Time{}, eventvault.Errorf(eventvault.EINVALID, "%s must be an RFC 3339 time, such as 2026-11-01T00:00:00Z", f.name)
		}
		*f.into = t
	}
	return start, end, nil
}

// MaxProcessingRecords bounds the records one summary reads.
const MaxProcessingRecords = 1_000_000

// Summarize derives the records of processing of tenant's log for records
// stamped in [from, to). Errors: EINVALID for from after to; ETOOLARGE
// for a log over MaxProcessingRecords.
func Summarize(ctx context.Context, store eventvault.AuditStore, tenant eventvault.TenantID, from, to time.Time) (Processing, error) {
	if !from.Before(to) {
		return Processing{}, eventvault.Errorf(eventvault.EINVALID, "from must be before to")
	}
	size, err := store.AuditSize(ctx, tenant)
	if err != nil {
		return Processing{}, err
	}
	if size > MaxProcessingRecords {
		return Processing{}, eventvault.Errorf(eventvault.ETOOLARGE, "the log holds %d records; a summary reads at most %d", size, MaxProcessingRecords)
	}
	out := Processing{Tenant: LogTenant(tenant), From: from.UTC(), To: to.UTC()}
	cats := map[string]*catUse{}
	const chunk = 10_000
	for start := int64(0); start < size; start += chunk {
		end := min(start+chunk, size)
		lines, err := store.AuditRecords(ctx, tenant, start, end)
		if err != nil {
			return Processing{}, err
		}
		for i, line := range lines {
			r, err := ParseLine(line)
			if err != nil {
				return Processing{}, fmt.Errorf("record %d: %w", start+int64(i), err)
			}
			if r.Time.Before(from) || !r.Time.Before(to) {
				continue
			}
			out.Records++
			out.add(r, cats)
		}
	}
	names := make([]string, 0, len(cats))
	for c := range cats {
		names = append(names, c)
	}
	sort.Strings(names)
	out.Categories = make([]CategoryUse, 0, len(names))
	for _, c := range names {
		u := cats[c]
		out.Categories = append(out.Categories, CategoryUse{Category: c, EventsWritten: u.written, EventsRead: u.read, Writers: sorted(u.writers), Readers: sorted(u.readers)})
	}
	return out, nil
}

type catUse struct {
	written, read    int64
	writers, readers map[string]bool
}

func (p *Processing) add(r Record, cats map[string]*catUse) {
	use := func(stream string) *catUse {
		c, _, _ := strings.Cut(stream, "-")
		u := cats[c]
		if u == nil {
			u = &catUse{writers: map[string]bool{}, readers: map[string]bool{}}
			cats[c] = u
		}
		return u
	}
	stream, isStream := strings.CutPrefix(r.Resource, "stream:")
	switch r.Action {
	case ActionAppend:
		if isStream && r.Outcome == OutcomeOK {
			u := use(stream)
			u.written += intDetail(r, "count")
			u.writers[r.Actor] = true
		}
	case ActionRead:
		if isStream {
			u := use(stream)
			u.read += intDetail(r, "events")
			u.readers[r.Actor] = true
		}
	case "read_all":
		// Read-all reads every category; it is counted apart.
		u := use("*")
		u.read += intDetail(r, "events")
		u.readers[r.Actor] = true
	case "erasure_requested":
		p.Erasures++
	case ActionShred:
		p.Shreds++
	case "hold_placed":
		p.Holds++
	case "hold_lifted":
		p.HoldsLift++
	case ActionExport:
		p.Exports++
	case ActionDenied:
		p.Denials += intDetail(r, "requests")
	}
}

func intDetail(r Record, key string) int64 {
	n, _ := r.Detail[key].(int64)
	return n
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
