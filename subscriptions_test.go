package eventvault_test

import (
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

func TestFeedFilterSelects(t *testing.T) {
	f := eventvault.FeedFilter{Categories: []string{"order"}, Types: []string{"OrderPlaced"}}
	cases := []struct {
		stream eventvault.StreamName
		typ    string
		want   bool
	}{
		{"order-1", "OrderPlaced", true},
		{"order-1", "OrderShipped", false},
		{"orders-1", "OrderPlaced", false}, // a category is the whole part before '-'
		{"invoice-1", "OrderPlaced", false},
		{eventvault.TombstoneStream, eventvault.TombstoneType, true}, // decided on its streams once opened
	}
	for _, c := range cases {
		if got := f.MatchesEnvelope(c.stream, c.typ); got != c.want {
			t.Errorf("MatchesEnvelope(%s, %s) = %v, want %v", c.stream, c.typ, got, c.want)
		}
	}
	if !f.CoversStreams([]eventvault.StreamName{"invoice-1", "order-9"}) || f.CoversStreams([]eventvault.StreamName{"invoice-1"}) || f.CoversStreams(nil) {
		t.Error("CoversStreams: want true when one stream's category is in the filter, false otherwise")
	}
	all := eventvault.FeedFilter{}
	if !all.MatchesEnvelope("x-1", "Any") || !all.CoversStreams([]eventvault.StreamName{"x-1"}) {
		t.Error("an empty filter selects everything")
	}
}

func TestFeedFilterAndConsumerNameRefuseBadInput(t *testing.T) {
	long := make([]string, eventvault.MaxFilterEntries+1)
	for i := range long {
		long[i] = "a"
	}
	for _, c := range []struct {
		f    eventvault.FeedFilter
		says string
	}{
		{eventvault.FeedFilter{Categories: []string{"order-1"}}, "categories[0]"},
		{eventvault.FeedFilter{Categories: []string{""}}, "categories[0]"},
		{eventvault.FeedFilter{Categories: []string{"1order"}}, "categories[0]"},
		{eventvault.FeedFilter{Types: []string{"ok", "bad type"}}, "types[1]"},
		{eventvault.FeedFilter{Categories: long}, "at most"},
	} {
		err := c.f.Validate()
		if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(eventvault.ErrorMessage(err), c.says) {
			t.Errorf("Validate(%+v) = %v, want EINVALID saying %q", c.f, err, c.says)
		}
	}
	for _, name := range []string{"", "-a", "a b", "a/b", strings.Repeat("a", 101), "é"} {
		if eventvault.ErrorCode(eventvault.ValidateConsumerName(name)) != eventvault.EINVALID {
			t.Errorf("ValidateConsumerName(%q) accepted", name)
		}
	}
	for _, name := range []string{"a", "orders-view", "v2.projection_1", strings.Repeat("a", 100)} {
		if err := eventvault.ValidateConsumerName(name); err != nil {
			t.Errorf("ValidateConsumerName(%q) = %v", name, err)
		}
	}
}
