package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/storage-host/storage-host/host"
)

// members returns n label members, "k0":"v0",...
func members(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf(`"k%d":"v{%d},:[\""`, i, i)
	}
	return strings.Join(ms, ",")
}

// TestOverLabels: the scan finds the labels members of each record as the
// decoder would read them, and nothing else.
func TestOverLabels(t *testing.T) {
	over, max := members(65), members(64)
	for _, c := range []struct {
		body  string
		batch bool
		item  int
		n     int
	}{
		{`{"labels":{` + max + `}}`, false, -1, 0},
		{`{"labels":{` + over + `}}`, false, -1, 65},
		{` { "agent_id" : "a" , "labels" : { ` + over + ` } } `, false, -1, 65},
		{`{"LaBeLs":{` + over + `}}`, false, -1, 65},
		{`{"\u006cabels":{` + over + `}}`, false, -1, 65},
		{`{"label\u017f":{` + over + `}}`, false, -1, 65},                                  // ſ folds to s, as encoding/json matches it
		{`{"labels":{` + members(40) + `},"labels":{` + members(25) + `}}`, false, -1, 65}, // merged by decoding
		{`{"labels":{"a":"b"},"x":{"labels":{` + over + `}}}`, false, -1, 0},               // not a record's labels
		{`{"message":"\"labels\":{` + over + `}"}`, false, -1, 0},                          // inside a string
		{`{"labels":"{` + over + `}"}`, false, -1, 0},                                      // not an object
		{`{"labels":[{` + over + `}]}`, false, -1, 0},
		{`{"labels":{` + over, false, -1, 0}, // malformed: left to the decoder
		{`{"items":[{"labels":{` + over + `}}]}`, false, -1, 0},
		{`{"items":[{"labels":{` + max + `}},{"labels":{` + over + `}}]}`, true, 1, 65},
		{`{"items":[1,"x",null,{"a":[{}]},{"Labels":{` + over + `}}],"ttl":"1h"}`, true, 4, 65},
		{`{"ttl":"1h","ITEMS":[{"labels":{}},{"labels":{` + over + `}}]}`, true, 1, 65},
		{`{"items":[{"labels":{` + max + `}}],"items":[{"labels":{` + max + `}}]}`, true, -1, 0},
		{`{"labels":{` + over + `},"items":[]}`, true, -1, 0},
		{`{"items":[{"x":{"items":[{"labels":{` + over + `}}]}}]}`, true, -1, 0},
	} {
		item, n := overLabels([]byte(c.body), c.batch)
		assert.Equal(t, [2]int{c.item, c.n}, [2]int{item, n}, "%.120s", c.body)
	}
}

// BenchmarkOverLabels: the scan of a 4 MiB body allocates nothing.
func BenchmarkOverLabels(b *testing.B) {
	body := []byte(`{"items":[` + strings.Repeat(`{"agent_id":"a","labels":{`+members(64)+`}},`, 1000) + `{}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		overLabels(body, true)
	}
}

// FuzzOverLabels: no body that decodes to a record with more labels than
// the bound passes the scan.
func FuzzOverLabels(f *testing.F) {
	f.Add(`{"labels":{`+members(65)+`}}`, false)
	f.Add(`{"Label\u017f":{`+members(65)+`}}`, false)
	f.Add(`{"items":[{},{"labels":{`+members(65)+`}}]}`, true)
	f.Fuzz(func(t *testing.T, body string, batch bool) {
		if len(body) > 1<<16 {
			return
		}
		item, n := overLabels([]byte(body), batch)
		if batch {
			var req struct{ Items []metricInput }
			if json.Unmarshal([]byte(body), &req) != nil {
				return
			}
			for i, in := range req.Items {
				if len(in.Labels) > host.MaxLabels && (n == 0 || item > i) {
					t.Fatalf("item %d has %d labels; the scan says item %d has %d", i, len(in.Labels), item, n)
				}
			}
			return
		}
		var in metricInput
		if json.Unmarshal([]byte(body), &in) != nil {
			return
		}
		if len(in.Labels) > host.MaxLabels && n == 0 {
			t.Fatalf("%d labels passed the scan", len(in.Labels))
		}
	})
}

// TestOverlongList: the scan counts the elements of the top-level
// object's array members as the decoder would read them, and nothing
// else.
func TestOverlongList(t *testing.T) {
	list := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat(`{"a":"x,\",[]"},`, n), ",") + "]" }
	for _, c := range []struct {
		body string
		name string // "" when the body passes
	}{
		{`{"items":` + list(maxBulkItems) + `}`, ""},
		{`{"items":` + list(maxBulkItems+1) + `}`, "items"},
		{`{"ttl":"1h", "ids" : ` + list(maxBulkItems+1) + `}`, "ids"},
		{`{"i\"d":` + list(maxBulkItems+1) + `}`, `i\"d`},
		{`{"x":{"items":` + list(maxBulkItems+1) + `}}`, ""},              // not a member of the top-level object
		{`{"items":[` + list(maxBulkItems+1) + `]}`, ""},                  // one element, a list
		{`{"s":"` + strings.Repeat(`,`, maxBulkItems+1) + `"}`, ""},       // commas in a string
		{`{"items":` + list(maxBulkItems) + `,"more":[1,2]}`, ""},         // each list counted alone
		{`{"items":[1,2,3` + strings.Repeat(`,4`, maxBulkItems), "items"}, // malformed, but already too long
		{`{"items":"` + strings.Repeat(`\\`, 3), ""},                      // a string left open
	} {
		name, ok := overlongList([]byte(c.body))
		assert.Equal(t, c.name == "", ok, "%.80s", c.body)
		assert.Equal(t, c.name, name, "%.80s", c.body)
	}
}
