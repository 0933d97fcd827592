package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestShortPagesOfLargeEventsStillGiveNext: three events of 1.5 MiB each
// pass eventvault.MaxPageBytes together, so a stream page of limit 100
// holds fewer than 100 events before the end. next must be there until
// the last page (forward and backward), and following next must read each
// event once; read-all's next, followed until an empty page, the same.
func TestShortPagesOfLargeEventsStillGiveNext(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	big := strings.Repeat("x", 3<<19)
	const n = 3
	for range n {
		a.doJSON(http.MethodPost, "/v1/streams/blob-1/events", tok, map[string]any{"events": []any{event("Blob", big)}}, http.StatusCreated, nil)
	}
	for _, dir := range []struct {
		name  string
		first string
		want  []int64
	}{
		{"forward", "0", []int64{0, 1, 2}},
		{"backward", "2", []int64{2, 1, 0}},
	} {
		var got []int64
		pages := 0
		for from := dir.first; ; pages++ {
			var page streamOut
			a.doJSON(http.MethodGet, fmt.Sprintf("/v1/streams/blob-1/events?direction=%s&limit=100&from=%s", dir.name, from), tok, nil, http.StatusOK, &page)
			for _, e := range page.Events {
				got = append(got, e.Position)
			}
			if page.Next == nil {
				break
			}
			if len(page.Events) == 0 || pages > n {
				t.Fatalf("%s: page from %s has %d events and next %d", dir.name, from, len(page.Events), *page.Next)
			}
			from = fmt.Sprint(*page.Next)
		}
		if fmt.Sprint(got) != fmt.Sprint(dir.want) || pages < 1 {
			t.Fatalf("%s: following next read positions %v in %d pages; want %v in more than one page", dir.name, got, pages+1, dir.want)
		}
	}

	var globals []int64
	for from := int64(0); ; {
		var page struct {
			Events []struct {
				GlobalPosition int64 `json:"global_position"`
			} `json:"events"`
			Next int64 `json:"next"`
		}
		a.doJSON(http.MethodGet, fmt.Sprintf("/v1/events?from=%d&limit=100", from), tok, nil, http.StatusOK, &page)
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			globals = append(globals, e.GlobalPosition)
		}
		from = page.Next
	}
	if fmt.Sprint(globals) != "[0 1 2]" {
		t.Fatalf("following read-all's next read %v; want [0 1 2]", globals)
	}
}

// TestSubjectExportReadsEveryPageOfLargeEvents: a subject's stream of
// three 1.5 MiB events is read in short pages (eventvault.MaxPageBytes);
// the export must hold all three, not stop at the first short page.
func TestSubjectExportReadsEveryPageOfLargeEvents(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	big := strings.Repeat("y", 3<<19)
	for range 3 {
		a.doJSON(http.MethodPost, "/v1/streams/blob-2/events", tok, map[string]any{"subject": "sam", "events": []any{event("Blob", big)}}, http.StatusCreated, nil)
	}
	var x struct {
		Events []struct {
			Position int64 `json:"position"`
		} `json:"events"`
	}
	a.doJSON(http.MethodPost, "/v1/subject-exports", a.eraser("acme"), map[string]any{"subject": "sam"}, http.StatusOK, &x)
	if len(x.Events) != 3 {
		t.Fatalf("the export holds %d of the subject's 3 events", len(x.Events))
	}
}
