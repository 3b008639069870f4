package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// openBuiltin opens a built-in plugin: memory, or redis on its own prefix.
func openBuiltin(t *testing.T, name string) *host.Store {
	t.Helper()
	cfg := host.Config{Plugin: "builtin:" + name}
	if name == "redis" {
		addr := redistest.Addr(t)
		cfg.Redis = &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true}
	}
	st, err := host.Open(context.Background(), cfg, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	return st
}

var builtinNames = []string{"memory", "redis"}

// TestQueryRegexpBounds: a label regular expression that is too long,
// repeats too often or compiles too big is refused as INVALID, naming the
// bound, before any record is read.
func TestQueryRegexpBounds(t *testing.T) {
	ctx := context.Background()
	for _, name := range builtinNames {
		st := openBuiltin(t, name)
		for pattern, bound := range map[string]string{
			strings.Repeat("a", 600):        "over the limit of 512",
			"(.*a){100}":                    "repetition count 100 is over the limit of 32",
			strings.Repeat("[a-z]{30}", 10): "over the limit of 256",
		} {
			q := host.MetricQuery{Labels: []host.Matcher{{Label: "h", Op: 3, Value: pattern}}}
			_, err := st.QueryMetrics(ctx, q)
			require.ErrorIs(t, err, host.ErrInvalid, "%s: %.20s", name, pattern)
			require.Contains(t, err.Error(), bound, name)
			_, err = st.QueryAlerts(ctx, host.AlertQuery{Labels: q.Labels})
			require.ErrorIs(t, err, host.ErrInvalid, "%s: %.20s", name, pattern)
		}
	}
}

// TestQueryMatchWorkIsBounded: five metrics with 100 KiB labels and an
// expression of about a hundred instructions: matching one record alone
// is over the per-call budget, so the query is LIMIT, naming the bound,
// instead of computing for seconds in a plugin nothing can interrupt.
func TestQueryMatchWorkIsBounded(t *testing.T) {
	ctx := context.Background()
	for _, name := range builtinNames {
		st := openBuiltin(t, name)
		big := strings.Repeat("b", 100<<10)
		for i := range 5 {
			_, err := st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "m", Timestamp: time.Unix(int64(i+1), 0), Labels: map[string]string{"h": big}})
			require.NoError(t, err)
		}
		q := host.MetricQuery{Labels: []host.Matcher{{Label: "h", Op: 3, Value: "(.*a){20}"}}}
		start := time.Now()
		_, err := st.QueryMetrics(ctx, q)
		require.ErrorIs(t, err, host.ErrLimit, name)
		require.Contains(t, err.Error(), "per-call limit", name)
		t.Logf("%s: refused in %v", name, time.Since(start))
	}
}

// TestQueryPagesOnMatchBudget: when a scan's regular-expression work
// reaches the per-call budget, the page ends early with a cursor, and
// following the cursors finds every match exactly once.
func TestQueryPagesOnMatchBudget(t *testing.T) {
	ctx := context.Background()
	for _, name := range builtinNames {
		st := openBuiltin(t, name)
		const n = 60
		val := strings.Repeat("b", 8<<10) // 8 KiB: about 20 records a call
		want := map[string]bool{}
		for i := range n {
			v := val
			if i%7 == 0 {
				v = "a" + val
				want[fmt.Sprint(i)] = true
			}
			_, err := st.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("al-%03d", i), AgentID: "a", Severity: 1, Status: 1, Labels: map[string]string{"h": v, "i": fmt.Sprint(i)}})
			require.NoError(t, err)
		}
		q := host.AlertQuery{Limit: 1000, Labels: []host.Matcher{{Label: "h", Op: 3, Value: "a[b-z]{0,30}.*"}}}
		got := map[string]bool{}
		pages := 0
		for {
			p, err := st.QueryAlerts(ctx, q)
			require.NoError(t, err, name)
			pages++
			for _, a := range p.Items {
				require.False(t, got[a.Labels["i"]], "%s: %s twice", name, a.ID)
				got[a.Labels["i"]] = true
			}
			if len(p.Next) == 0 {
				break
			}
			q.Cursor = p.Next
			require.Less(t, pages, 100, name)
		}
		require.Equal(t, want, got, name)
		require.Greater(t, pages, 1, "%s: the scan was split over several calls", name)
	}
}

// TestLargeAgentStatesPage: three 4 MiB agent states are listed over
// several pages, each within the page byte budget, never running the
// plugin out of memory.
func TestLargeAgentStatesPage(t *testing.T) {
	ctx := context.Background()
	for _, name := range builtinNames {
		st := openBuiltin(t, name)
		doc := []byte(`"` + strings.Repeat("x", 4<<20-2) + `"`)
		for i := range 3 {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("big-%d", i), State: doc})
			require.NoError(t, err)
		}
		for try := range 5 {
			var q host.AgentStateQuery
			seen := 0
			for {
				p, err := st.QueryAgentStates(ctx, q)
				require.NoError(t, err, "%s try %d", name, try)
				require.LessOrEqual(t, len(p.Items), 1, "%s: a page stops at the byte budget", name)
				for _, s := range p.Items {
					require.Len(t, s.State, len(doc))
				}
				seen += len(p.Items)
				if len(p.Next) == 0 {
					break
				}
				q.Cursor = p.Next
			}
			require.Equal(t, 3, seen, name)
		}
	}
}
