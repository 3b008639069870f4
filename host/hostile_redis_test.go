package host_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// redishog (testdata/plugins/gohostile/redishog) attacks the Redis it
// shares, through the ABI, the way a plugin author who read the spec
// would. Each attack must be refused or defused, and the Redis must keep
// serving everyone else.

func TestGoHostileRedisHog(t *testing.T) {
	wasm := goHostilePlugin(t, "redishog")
	ctx := context.Background()
	// A Redis of the test's own: the looping script stalls it for
	// busy-reply-threshold (100 ms here, below the read timeout, as
	// SECURITY.md advises).
	srv := redistest.NewServer(t, "--busy-reply-threshold", "100")
	const prefix = "hog:"
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true, ReadTimeout: 10 * time.Second})
	defer direct.Close()
	require.NoError(t, direct.Set(ctx, prefix+"big", strings.Repeat("v", 8<<20), 0).Err())

	limits := host.DefaultLimits
	limits.MaxResponseBytes = 1 << 20
	st, _ := openGoHostile(t, host.Config{
		Name: "hog", WASM: wasm, Instances: 1, Limits: limits,
		Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: prefix, Scripts: true, ReadTimeout: 2 * time.Second},
	}, t.TempDir())

	for _, tc := range []struct {
		attack string
		want   error
	}{
		{"setrange", host.ErrInvalid},
		{"srandmember", host.ErrInvalid},
		{"flood", host.ErrLimit},
		{"mget", host.ErrLimit},
		{"forge", host.ErrInvalid}, // the script's NOPERM, as the plugin reports it
		{"loop", host.ErrUnavailable},
	} {
		var err error
		alloc := allocatedBy(func() { _, err = st.GetAgentState(ctx, tc.attack) })
		require.ErrorIs(t, err, tc.want, tc.attack)
		assert.NotContains(t, err.Error(), "let it through", tc.attack)
		if tc.attack == "mget" {
			assert.Less(t, alloc, uint64(16<<20), "host bytes allocated for 64 MiB of replies")
		}
		if tc.attack == "loop" {
			failed := time.Now()
			redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool { return direct.Ping(ctx).Err() == nil }, "Redis serves others again")
			assert.Less(t, time.Since(failed), time.Second)
		}
	}
	assert.Zero(t, direct.StrLen(ctx, prefix+"k").Val(), "SETRANGE never ran")
	msgs, err := direct.XRange(ctx, "__host__:{"+prefix+"}:events", "-", "+").Result()
	require.NoError(t, err)
	for _, m := range msgs {
		assert.NotEqual(t, "forged", m.Values["y"], "a forged event in the host's stream")
	}
	// The backend still serves.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte(`{}`)})
	require.NoError(t, err)
}

// allocatedBy returns the bytes the process allocated while f ran.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A Redis out of memory refuses writes before running them: the built-in
// plugin answers UNAVAILABLE with Redis's message (503 over HTTP: not
// applied, retry), not INTERNAL; reads still serve; with
// fallback=buffer a single write goes to the buffer and reaches Redis
// once it has room.
func TestRedisOutOfMemoryIsUnavailable(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	open := func(prefix string, opts map[string]string) *host.Store {
		st, err := host.Open(ctx, host.Config{Plugin: "builtin:redis", Options: opts,
			Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: prefix, Scripts: true}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
		return st
	}
	fail := open("fail:", nil)
	buffer := open("buffer:", map[string]string{"fallback": "buffer"})
	for _, st := range []*host.Store{fail, buffer} {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "before", State: []byte(`1`)})
		require.NoError(t, err)
	}
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "1").Err())
	t.Cleanup(func() { admin.ConfigSet(context.Background(), "maxmemory", "0") })

	_, err := fail.PutAgentState(ctx, host.AgentState{AgentID: "during", State: []byte(`2`)})
	require.ErrorIs(t, err, host.ErrUnavailable)
	assert.ErrorContains(t, err, "OOM")
	_, err = fail.GetAgentState(ctx, "during")
	assert.ErrorIs(t, err, host.ErrNotFound, "not applied")
	_, err = fail.GetAgentState(ctx, "before")
	assert.NoError(t, err, "reads still serve")

	_, err = buffer.PutAgentState(ctx, host.AgentState{AgentID: "during", State: []byte(`2`)})
	require.NoError(t, err, "acknowledged into the buffer")
	_, err = buffer.GetAgentState(ctx, "during")
	assert.ErrorIs(t, err, host.ErrStale, "served from the buffer")

	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err())
	_, err = fail.PutAgentState(ctx, host.AgentState{AgentID: "during", State: []byte(`2`)})
	require.NoError(t, err)
	redistest.WaitFor(t, 30*time.Second, 50*time.Millisecond, func() bool {
		return admin.Exists(ctx, "buffer:s:{during}").Val() == 1
	}, "the buffered write reaches Redis")
}
