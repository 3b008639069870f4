package host

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/storage-host/storage-host/abi"
)

// TestAnswerChecksBounds: the query checks hold the filters' edges as
// abi/README.md section 13.4 defines them: [from, to), a limit of 0 is
// 100, above 1000 is 1000.
func TestAnswerChecksBounds(t *testing.T) {
	t0 := time.Unix(100, 0)
	page := func(ts ...time.Time) *Page[Metric] {
		p := &Page[Metric]{}
		for _, x := range ts {
			p.Items = append(p.Items, Metric{AgentID: "a", Name: "n", Timestamp: x})
		}
		return p
	}
	q := &MetricQuery{AgentID: "a", From: t0, To: t0.Add(time.Second)}
	assert.Empty(t, metricsOutside(page(t0, t0.Add(time.Second-1)), q))
	assert.Contains(t, metricsOutside(page(t0.Add(-1)), q), "outside its time range")
	assert.Contains(t, metricsOutside(page(t0.Add(time.Second)), q), "outside its time range")

	many := make([]time.Time, 101)
	for i := range many {
		many[i] = t0
	}
	assert.Contains(t, metricsOutside(page(many...), &MetricQuery{}), "page of 101 records for a limit of 100")
	assert.Empty(t, metricsOutside(page(many...), &MetricQuery{Limit: 5000}))

	assert.Empty(t, putStateMismatch(&AgentState{AgentID: "a", Version: 8}, "a", abi.Condition{Mode: abi.IfVersion, Version: 7}))
	assert.NotEmpty(t, putStateMismatch(&AgentState{AgentID: "a", Version: 6}, "a", abi.Condition{Mode: abi.IfVersion, Version: 7}))
	// A metric's timestamp is compared as an instant, whatever its zone.
	assert.Empty(t, metricKeyMismatch(&Metric{AgentID: "a", Name: "n", Timestamp: t0.UTC()}, "a", "n", t0.In(time.FixedZone("x", 3600))))
}

// BenchmarkAnswerChecks is what the host adds to each call to check its
// answer: one record's identity, and a full page of 100 metrics against
// an agent, name and time filter.
func BenchmarkAnswerChecks(b *testing.B) {
	t0 := time.Unix(100, 0)
	st := AgentState{AgentID: "agent-42", Version: 9}
	m := Metric{AgentID: "agent-42", Name: "cpu", Timestamp: t0}
	b.Run("state", func(b *testing.B) {
		for b.Loop() {
			if putStateMismatch(&st, "agent-42", abi.Condition{}) != "" {
				b.Fatal("refused")
			}
		}
	})
	b.Run("metric", func(b *testing.B) {
		for b.Loop() {
			if metricKeyMismatch(&m, "agent-42", "cpu", t0) != "" {
				b.Fatal("refused")
			}
		}
	})
	p := &Page[Metric]{}
	for i := range 100 {
		p.Items = append(p.Items, Metric{AgentID: "agent-42", Name: "cpu", Timestamp: t0.Add(time.Duration(i) * time.Second)})
	}
	q := &MetricQuery{AgentID: "agent-42", Name: "cpu", From: t0, To: t0.Add(time.Hour), Limit: 100}
	b.Run("page100", func(b *testing.B) {
		for b.Loop() {
			if w := metricsOutside(p, q); w != "" {
				b.Fatal(w)
			}
		}
	})
}

// The log of refused answers takes refusalsLoggedPerSecond lines a
// second, and says how many it left out.
func TestRefusalLogRateLimit(t *testing.T) {
	var r refusalLog
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		ok, dropped := r.allow(t0.Add(time.Duration(i) * time.Millisecond))
		if ok != (i < refusalsLoggedPerSecond) || dropped != 0 {
			t.Fatalf("refusal %d: allowed %v, dropped %d", i, ok, dropped)
		}
	}
	ok, dropped := r.allow(t0.Add(time.Second))
	if !ok || dropped != 100-refusalsLoggedPerSecond {
		t.Fatalf("next second: allowed %v, dropped %d", ok, dropped)
	}
}

// A metric answered at twice or half the time asked for, as a plugin that
// reads or writes a time without its zig-zag step answers, is named so;
// any other time is not.
func TestZigzagHint(t *testing.T) {
	asked := time.Date(2026, 12, 5, 10, 0, 0, 7, time.UTC) // odd nanoseconds
	n := asked.UnixNano()
	var plain, read abi.Encoder
	plain.Uvarint(uint64(n)) // what a plugin that skips zig-zag writes
	read.Varint(n)           // what the host wrote, read back plainly
	unzigzagged := abi.NewDecoder(plain.Bytes()).Varint()
	doubled, _ := binary.Uvarint(read.Bytes())
	for _, got := range []int64{unzigzagged, int64(doubled)} {
		m := Metric{AgentID: "a", Name: "cpu", Timestamp: time.Unix(0, got)}
		assert.Contains(t, metricKeyMismatch(&m, "a", "cpu", asked), "read or written as a plain uvarint: a time is a zig-zag varint")
	}
	m := Metric{AgentID: "a", Name: "cpu", Timestamp: asked.Add(time.Second)}
	assert.NotContains(t, metricKeyMismatch(&m, "a", "cpu", asked), "zig-zag")
}
