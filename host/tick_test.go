package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// The host's ticks (abi.OpTick), through testdata/plugins/gohostile/ticker,
// whose puts are acknowledged STALE and reported by a later tick. The
// redis plugin's replay is tested against Redis in host/storetest.

func openTicker(t *testing.T, mode string) (*host.Store, *foreignLog) {
	t.Helper()
	wasm := goHostilePlugin(t, "ticker")
	return openGoHostile(t, host.Config{WASM: wasm, Instances: 1, Options: map[string]string{"mode": mode}}, t.TempDir())
}

func nextTickEvent(t *testing.T, sub *events.Subscription) events.Event {
	t.Helper()
	select {
	case ev := <-sub.Events():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event: %v", sub.Err())
	}
	return events.Event{}
}

// TestTickPublishesBufferedWrites: a write answered STALE succeeds with no
// event; the tick that reports it publishes its event, with the version
// the plugin reports.
func TestTickPublishesBufferedWrites(t *testing.T) {
	st, _ := openTicker(t, "")
	require.True(t, st.Metadata().Features.Has(abi.FeatureTick))
	ctx := context.Background()
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	acked, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("1")})
	require.NoError(t, err, "a buffered write is a success")
	redistest.WaitFor(t, 5*time.Second, 5*time.Millisecond, func() bool { return st.Stats().BufferedWrites == 1 },
		"a tick reports the write pending")
	select {
	case ev := <-sub.Events():
		t.Fatalf("an event for a write still buffered: %+v", ev)
	case <-time.After(300 * time.Millisecond): // three ticks
	}

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "release", State: []byte("go")})
	require.NoError(t, err)
	require.Equal(t, "release", nextTickEvent(t, sub).Key, "a write answered OK publishes at once")
	ev := nextTickEvent(t, sub)
	require.Equal(t, "a", ev.Key, "the tick reports the buffered write")
	require.Equal(t, events.OpPut, ev.Op)
	require.Greater(t, ev.Version, acked.Version, "with the version the store kept, not the acknowledged one")
	redistest.WaitFor(t, 5*time.Second, 5*time.Millisecond, func() bool { return st.Stats().BufferedWrites == 0 }, "nothing pending")
	require.Zero(t, st.Stats().TickFailures)
}

// TestTickRefusesInvalidWrites: a write a tick reports with an invalid ID
// publishes nothing and counts as a refused answer; ticking goes on.
func TestTickRefusesInvalidWrites(t *testing.T) {
	st, logs := openTicker(t, "invalid")
	ctx := context.Background()
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	redistest.WaitFor(t, 5*time.Second, 5*time.Millisecond, func() bool { return st.RefusedAnswers() >= 2 }, "refused, tick after tick")
	require.Contains(t, logs.String(), "reported a put_agent_state write that is not valid")
	select {
	case ev := <-sub.Events():
		t.Fatalf("an event for an invalid write: %+v", ev)
	default:
	}
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "release", State: []byte("go")})
	require.NoError(t, err, "the store serves on")
}

// TestTickFailuresAreCountedAndLogged: a tick that fails is counted and
// logged, at most once per ten seconds, and changes nothing else.
func TestTickFailuresAreCountedAndLogged(t *testing.T) {
	st, logs := openTicker(t, "fail")
	redistest.WaitFor(t, 5*time.Second, 5*time.Millisecond, func() bool { return st.Stats().TickFailures >= 3 }, "ticks fail")
	require.Equal(t, 1, strings.Count(logs.String(), "tick failed"), "rate-limited")
	require.Contains(t, logs.String(), "ticker: this tick fails")
	_, err := st.PutAgentState(context.Background(), host.AgentState{AgentID: "release", State: []byte("go")})
	require.NoError(t, err)
}

// TestNoTickWithoutTheFeature: a plugin without the tick feature is never
// ticked, and its stats show nothing buffered.
func TestNoTickWithoutTheFeature(t *testing.T) {
	st, err := host.Open(context.Background(), host.Config{}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	defer st.Close(context.Background())
	require.False(t, st.Metadata().Features.Has(abi.FeatureTick))
	time.Sleep(250 * time.Millisecond)
	require.Zero(t, st.Stats().TickFailures)
	require.Zero(t, st.Stats().BufferedWrites)
}

// TestCloseFlushTicks: Close ticks to empty the plugin's buffer only when
// something may be in it, and stops at a tick that says the store is
// away. host.HaltTicks stops the background ticks first, so that what
// Close ticks is counted alone.
func TestCloseFlushTicks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, mode string
		write      bool // a buffered write after the ticks so far
		flush      func(t *testing.T, ticks uint64)
	}{
		{"nothing written", "", false, func(t *testing.T, ticks uint64) {
			require.Zero(t, ticks, "the last tick found nothing pending and nothing was written since: Close does not tick")
		}},
		{"written since", "", true, func(t *testing.T, ticks uint64) {
			require.Positive(t, ticks, "a write since the last tick: Close ticks to flush it")
		}},
		{"store away", "away", true, func(t *testing.T, ticks uint64) {
			require.Equal(t, uint64(1), ticks, "a tick that finds the store away ends the flush")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, _ := openTicker(t, c.mode)
			redistest.WaitFor(t, 5*time.Second, 5*time.Millisecond, func() bool { return st.Stats().Ticks >= 2 }, "ticks")
			if c.write {
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("1")})
				require.NoError(t, err, "buffered")
			}
			n := host.HaltTicks(st)
			if err := st.Close(ctx); c.write {
				// The fixture keeps what it buffered, in memory.
				require.ErrorIs(t, err, host.ErrBufferLost)
			} else {
				require.NoError(t, err)
			}
			c.flush(t, st.Stats().Ticks-n)
		})
	}
}

// TestResumedTickReportsWritesAgain: the redis plugin forgets the writes a
// tick replayed only at the tick after it. A host that stops between the
// two (a crash, before it published their events) leaves them replayed
// and unsettled on disk, and the next Store on the directory tells its
// first tick it is resumed: the plugin reports them again, as they stand
// in Redis, and their events reach the subscribers. Without it a SIGKILL
// during a replay lost the events of up to a tick's writes.
func TestResumedTickReportsWritesAgain(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	dir := t.TempDir()
	redisCfg := &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "resume:", Scripts: true}
	open := func(cfg host.Config) *host.Store {
		st, err := host.Open(ctx, cfg, host.WithCompilationCache(benchCache))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	}
	buffered := host.Config{Plugin: "builtin:redis", Options: map[string]string{"fallback": "buffer"}, Redis: redisCfg, DataDir: dir}
	a := open(buffered)
	host.CrashAtReportedWrites(a)
	srv.Stop()
	const n = 100
	for i := range n {
		_, err := a.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("agent-%d", i), State: []byte("doc")})
		require.NoError(t, err, "buffered while Redis is away")
	}
	srv.Start()
	watcher := open(host.Config{Plugin: "builtin:redis", Redis: redisCfg})
	sub, err := watcher.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer direct.Close()
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool {
		return direct.Exists(ctx, fmt.Sprintf("resume:s:{agent-%d}", n-1)).Val() == 1
	}, "a tick replays the buffer into Redis")
	select {
	case ev := <-sub.Events():
		t.Fatalf("the crashed host published %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}

	b := open(buffered)
	// Its first tick comes once it is open, which under the race detector
	// and a loaded machine takes seconds more than the ticks after it.
	var first events.Event
	select {
	case first = <-sub.Events():
	case <-time.After(30 * time.Second):
		t.Fatalf("no event from the resumed host: %v", sub.Err())
	}
	seen := map[string]bool{}
	for len(seen) < n {
		ev := first
		if ev.Key == "" {
			ev = nextTickEvent(t, sub)
		}
		first = events.Event{}
		require.Equal(t, events.OpPut, ev.Op, "%+v", ev)
		v, err := direct.HGet(ctx, "resume:s:{"+ev.Key+"}", "v").Uint64()
		require.NoError(t, err)
		require.Equal(t, v, ev.Version, "the version Redis holds")
		seen[ev.Key] = true
	}
	redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool { return b.Stats().Ticks >= 3 }, "ticks after the resumed one")
	require.NoError(t, b.Close(ctx))
	c := open(buffered)
	redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool { return c.Stats().Ticks >= 2 }, "ticks")
	select {
	case ev := <-sub.Events():
		t.Fatalf("settled writes reported again: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}
