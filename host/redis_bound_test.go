package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// openBounded opens the redis plugin on a namespace of its own, its
// instances limited to pages of memory (0: the default).
func openBounded(t *testing.T, pages uint32) *host.Store {
	t.Helper()
	return openBoundedAt(t, pages, redistest.Prefix(t, redistest.Addr(t)))
}

// openBoundedAt is openBounded on the key prefix given.
func openBoundedAt(t *testing.T, pages uint32, prefix string) *host.Store {
	t.Helper()
	st, err := host.Open(t.Context(), host.Config{
		Plugin: "builtin:redis",
		Limits: host.Limits{MemoryPages: pages},
		Redis:  &redisbridge.Config{Addrs: []string{redistest.Addr(t)}, KeyPrefix: prefix, Scripts: true},
	}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// bigDoc is a document of n bytes that says which record it is.
func bigDoc(i, n int) []byte {
	d := bytes.Repeat([]byte{'a' + byte(i%26)}, n)
	copy(d, fmt.Sprintf("%05d", i))
	return d
}

// TestRedisReadsPageWithinTheReplyBound reads, with the default limits,
// records whose pages would pass the reply bound of a 64 MiB instance
// (8 MiB) and its response bound (16 MiB): 48 agent states of 1 MiB, 48
// alerts of 512 KiB and 48 metrics with a 256 KiB label, asked for 64 a
// page. Every record comes back, over pages of a few records: the plugin
// reads fewer records a round trip when the bridge answers LIMIT,
// instead of failing the query.
func TestRedisReadsPageWithinTheReplyBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	ctx := context.Background()
	st := openBounded(t, 0)
	const n = 48
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("big-%03d", i)
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: ids[i], State: bigDoc(i, 1<<20)})
		require.NoError(t, err)
		_, err = st.PutAlert(ctx, host.Alert{ID: ids[i], AgentID: "agent", Severity: abi.SeverityCritical, Status: abi.AlertFiring,
			Message: string(bigDoc(i, 512<<10))}, host.WithPersist())
		require.NoError(t, err)
		_, err = st.PutMetric(ctx, host.Metric{AgentID: "agent", Name: "m", Timestamp: t0.Add(time.Duration(i) * time.Second),
			Value: float64(i), Labels: map[string]string{"l": string(bigDoc(i, 256<<10))}}, host.WithPersist())
		require.NoError(t, err)
	}

	pages, seen := 0, 0
	var cur []byte
	for {
		p, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 64, Cursor: cur})
		require.NoError(t, err, "states, page %d", pages)
		for _, s := range p.Items {
			require.Equal(t, ids[seen], s.AgentID)
			require.Equal(t, bigDoc(seen, 1<<20), s.State, s.AgentID)
			seen++
		}
		pages++
		if cur = p.Next; cur == nil {
			break
		}
	}
	require.Equal(t, n, seen)
	t.Logf("%d states in %d pages", n, pages)

	pages, seen = 0, 0
	for {
		p, err := st.QueryAlerts(ctx, host.AlertQuery{Limit: 64, Cursor: cur})
		require.NoError(t, err, "alerts, page %d", pages)
		for _, a := range p.Items {
			require.Equal(t, ids[seen], a.ID)
			require.Equal(t, string(bigDoc(seen, 512<<10)), a.Message, a.ID)
			seen++
		}
		pages++
		if cur = p.Next; cur == nil {
			break
		}
	}
	require.Equal(t, n, seen)
	t.Logf("%d alerts in %d pages", n, pages)

	pages, seen = 0, 0
	for {
		p, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: "agent", Limit: 64, Cursor: cur})
		require.NoError(t, err, "metrics, page %d", pages)
		for _, m := range p.Items {
			require.Equal(t, float64(seen), m.Value)
			require.Equal(t, string(bigDoc(seen, 256<<10)), m.Labels["l"])
			seen++
		}
		pages++
		if cur = p.Next; cur == nil {
			break
		}
	}
	require.Equal(t, n, seen)
	t.Logf("%d metrics in %d pages", n, pages)

}

// TestRedisBatchWithinTheReplyBound reads, with the default limits, a
// batch of 16 agent states of 1 MiB, whose replies pass the reply bound
// of a 64 MiB instance (8 MiB): the plugin reads them in parts within
// the bound, answers as many as fit in a page's bytes (4 MiB), and LIMIT
// for the rest, which the next batches read. Before, the batch failed
// whole (LIMIT past the 16 MiB response bound).
func TestRedisBatchWithinTheReplyBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	ctx := context.Background()
	st := openBounded(t, 0)
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprintf("big-%03d", i)
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: ids[i], State: bigDoc(i, 1<<20)})
		require.NoError(t, err)
	}
	left := ids
	for round := 0; len(left) > 0; round++ {
		require.Less(t, round, 16, "a batch answers a record at least")
		rs, err := st.GetAgentStates(ctx, left)
		require.NoError(t, err)
		var again []string
		for i, r := range rs {
			if errors.Is(r.Err, host.ErrLimit) {
				require.ErrorContains(t, r.Err, "read it in another batch")
				again = append(again, left[i])
				continue
			}
			require.NoError(t, r.Err, left[i])
			var j int
			_, _ = fmt.Sscanf(left[i], "big-%d", &j)
			require.Equal(t, bigDoc(j, 1<<20), r.Value.State, left[i])
		}
		require.Less(t, len(again), len(left))
		left = again
	}
}

// TestRedisRecordPastTheReplyBound: an agent state larger than a 32 MiB
// instance's reply bound (4 MiB) is refused by its writes; one written
// by a store of larger instances (another host's configuration) answers
// LIMIT when read, naming it, alone: a get, its item of a batch, and the
// page of a query that reaches it (the page before it has the records
// before it). The store keeps working: the next calls read the other
// records.
func TestRedisRecordPastTheReplyBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	ctx := context.Background()
	prefix := redistest.Prefix(t, redistest.Addr(t))
	st := openBoundedAt(t, 512, prefix)
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "b", State: bigDoc(1, 5<<20)})
	require.ErrorIs(t, err, host.ErrLimit, "refused before it is stored")
	larger := openBoundedAt(t, 2048, prefix) // replies of 16 MiB
	for _, s := range []host.AgentState{
		{AgentID: "a", State: []byte("small")},
		{AgentID: "b", State: bigDoc(1, 5<<20)},
		{AgentID: "c", State: []byte("small too")},
	} {
		_, err := larger.PutAgentState(ctx, s)
		require.NoError(t, err)
	}

	_, err = st.GetAgentState(ctx, "b")
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, `agent state "b" is larger than one read may answer`)
	got, err := st.GetAgentState(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "small", string(got.State))

	rs, err := st.GetAgentStates(ctx, []string{"a", "b", "c"})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.ErrorIs(t, rs[1].Err, host.ErrLimit)
	require.ErrorContains(t, rs[1].Err, `agent state "b" is larger than one read may answer`)
	require.NoError(t, rs[2].Err)
	require.Equal(t, "small too", string(rs[2].Value.State))

	p, err := st.QueryAgentStates(ctx, host.AgentStateQuery{})
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
	require.Equal(t, "a", p.Items[0].AgentID)
	require.NotNil(t, p.Next)
	_, err = st.QueryAgentStates(ctx, host.AgentStateQuery{Cursor: p.Next})
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, `agent state "b" is larger than one read may answer`)

	p, err = st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "c"})
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
}

// TestRedisBatchOfOneRecordManyTimes: a batch get naming one agent state
// 20 times, more often than the bridge lets one request's commands read
// a key (8), is answered whole, each item the record. (On a single node
// the plugin reads a batch in one script call, which that bound does not
// count; on a cluster it sends commands, and reads a batch the bridge
// answers LIMIT in parts, as for the reply bound.)
func TestRedisBatchOfOneRecordManyTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	ctx := context.Background()
	st := openBounded(t, 0)
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "same", State: []byte(`{"n":1}`)})
	require.NoError(t, err)
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = "same"
	}
	rs, err := st.GetAgentStates(ctx, ids)
	require.NoError(t, err)
	require.Len(t, rs, len(ids))
	for i, r := range rs {
		require.NoError(t, r.Err, "item %d", i)
		require.Equal(t, `{"n":1}`, string(r.Value.State), "item %d", i)
	}
}
