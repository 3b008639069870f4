package storetest_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// commandCalls reads the calls Redis counted per command (INFO
// commandstats), by lower-case command name.
func commandCalls(t *testing.T, rc *redis.Client) map[string]int {
	t.Helper()
	info, err := rc.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	calls := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		calls[name], err = strconv.Atoi(n)
		require.NoError(t, err)
	}
	return calls
}

// openOwnRedis opens the redis plugin on a redis-server of the test's
// own, whose command counts no other client moves, and returns a client
// of that server and the backend's key prefix. Skipped with -short.
func openOwnRedis(t *testing.T) (st *host.Store, rc *redis.Client, prefix string) {
	t.Helper()
	skipShort(t)
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	prefix = redistest.Prefix(t, addrs...)
	return openRedisAt(t, addrs, prefix, nil, host.Limits{}), directClient(t, srv.Addr()), prefix
}

// TestRedisBatchIsOneScriptCall: on a single node a batch of writes is
// one script call for all its records and their index, each item still
// answered on its own: a failed condition fails its item alone, a record
// Redis refuses to write (a key of another type) fails alone, and every
// other item gets its own version.
func TestRedisBatchIsOneScriptCall(t *testing.T) {
	st, rc, prefix := openOwnRedis(t)
	ctx := t.Context()

	const n = 100
	states := make([]host.AgentState, n)
	for i := range states {
		states[i] = host.AgentState{AgentID: fmt.Sprintf("agent-%d", i), State: []byte(strconv.Itoa(i))}
	}
	put, err := st.PutAgentStates(ctx, states)
	require.NoError(t, err)
	for i := range put {
		require.NoError(t, put[i].Err)
	}
	require.NoError(t, rc.Set(ctx, prefix+"s:{agent-7}", "not a hash", 0).Err())
	for i := range states {
		states[i].Version = put[i].Value.Version
	}
	states[3].Version++ // not current

	before := commandCalls(t, rc)
	got, err := st.PutAgentStatesIf(ctx, states)
	require.NoError(t, err)
	after := commandCalls(t, rc)
	scripts := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]
	require.Equal(t, 1, scripts, "script calls for a batch of %d writes", n)

	for i := range got {
		switch i {
		case 3:
			require.ErrorIs(t, got[i].Err, host.ErrConflict, "item %d", i)
		case 7:
			require.ErrorContains(t, got[i].Err, "WRONGTYPE", "item %d", i)
		default:
			require.NoError(t, got[i].Err, "item %d", i)
			require.Greater(t, got[i].Value.Version, put[i].Value.Version, "item %d", i)
			doc, ok := storedState(t, rc, prefix, states[i].AgentID)
			require.True(t, ok)
			require.Equal(t, strconv.Itoa(i), doc)
		}
	}
	require.NoError(t, rc.Del(ctx, prefix+"s:{agent-7}").Err())
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 2 * n})
	require.NoError(t, err)
	require.Len(t, page.Items, n-1, "every state but the foreign key's is listed")
}

// TestRedisOverwriteWithoutExpiry: rewriting an agent state that has no
// expiry, without one, neither clears an expiry it does not have nor
// rewrites its index's bound and write time: one HSET, no PERSIST, and
// its entry is still listed. An alert that had an expiry loses it when
// rewritten without one.
func TestRedisOverwriteWithoutExpiry(t *testing.T) {
	st, rc, prefix := openOwnRedis(t)
	ctx := t.Context()

	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`1`)})
	require.NoError(t, err)
	before := commandCalls(t, rc)
	const n = 10
	for range n {
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`2`)})
		require.NoError(t, err)
	}
	after := commandCalls(t, rc)
	require.Equal(t, n, after["hset"]-before["hset"], "HSETs for %d rewrites", n)
	require.Zero(t, after["persist"]-before["persist"], "PERSISTs")
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)

	alert := host.Alert{ID: "al1", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring}
	_, err = st.PutAlert(ctx, alert)
	require.NoError(t, err)
	_, err = st.PutAlert(ctx, alert, host.WithTTL(time.Hour))
	require.NoError(t, err)
	a, err := st.PutAlert(ctx, alert)
	require.NoError(t, err)
	require.True(t, a.ExpiresAt.IsZero(), "an alert rewritten without expiry keeps %v", a.ExpiresAt)
	a, err = st.GetAlert(ctx, alert.ID)
	require.NoError(t, err)
	require.True(t, a.ExpiresAt.IsZero(), "an alert rewritten without expiry reads %v", a.ExpiresAt)
	require.Equal(t, time.Duration(-1), rc.PTTL(ctx, prefix+"a:{al1}").Val(), "the alert's TTL in Redis")
}

// TestRedisBatchRewriteWithoutExpiry: in a batch, as in a single put, an
// agent state rewritten without expiry over one without expiry is only
// listed: its bound in the expiry index and its write time are left, and
// a batch of nothing else adds no bound and no write time at all. A
// record the batch creates, one it writes twice and one it gives an
// expiry take the full path (their write times move).
func TestRedisBatchRewriteWithoutExpiry(t *testing.T) {
	st, rc, prefix := openOwnRedis(t)
	ctx := t.Context()
	bounds, times := prefix+"{idx}:s:x", prefix+"{idx}:s:t"

	const n = 20
	states := make([]host.AgentState, n)
	for i := range states {
		states[i] = host.AgentState{AgentID: fmt.Sprintf("agent-%d", i), State: []byte(`1`)}
	}
	putAll := func(states []host.AgentState, opts ...host.WriteOption) {
		t.Helper()
		got, err := st.PutAgentStates(ctx, states, opts...)
		require.NoError(t, err)
		for i := range got {
			require.NoError(t, got[i].Err, "item %d", i)
		}
	}
	putAll(states)
	written := rc.HGetAll(ctx, times).Val()
	require.Len(t, written, n)

	// Only rewrites: one HSET a record, one ZADD (the listing).
	time.Sleep(5 * time.Millisecond) // a write time taken now differs
	before := commandCalls(t, rc)
	putAll(states)
	after := commandCalls(t, rc)
	require.Equal(t, n, after["hset"]-before["hset"], "HSETs for %d rewrites", n)
	require.Equal(t, 1, after["zadd"]-before["zadd"], "ZADDs for %d rewrites", n)
	require.Equal(t, written, rc.HGetAll(ctx, times).Val(), "write times of rewrites")

	// Rewrites beside a new record and a record written twice.
	time.Sleep(5 * time.Millisecond)
	mixed := append(append([]host.AgentState{}, states...),
		host.AgentState{AgentID: "fresh", State: []byte(`1`)},
		host.AgentState{AgentID: "agent-5", State: []byte(`2`)})
	putAll(mixed)
	now := rc.HGetAll(ctx, times).Val()
	require.Len(t, now, n+1)
	require.NotEmpty(t, now["fresh"], "the new record's write time")
	require.NotEqual(t, written["agent-5"], now["agent-5"], "the write time of a record written twice")
	for i := range n {
		if i != 5 {
			id := states[i].AgentID
			require.Equal(t, written[id], now[id], "write time of %s", id)
		}
	}
	_, err := rc.ZScore(ctx, bounds, "fresh").Result()
	require.NoError(t, err, "the new record is in the expiry index")
	require.EqualValues(t, n+1, rc.ZCard(ctx, bounds).Val(), "records in the expiry index")

	// A rewrite that gives an expiry takes the full path.
	time.Sleep(5 * time.Millisecond)
	putAll(states[:3], host.WithTTL(time.Hour))
	later := rc.HGetAll(ctx, times).Val()
	for _, s := range states[:3] {
		require.NotEqual(t, now[s.AgentID], later[s.AgentID], "write time of %s", s.AgentID)
	}
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 2 * n})
	require.NoError(t, err)
	require.Len(t, page.Items, n+1, "every state is listed")
}
