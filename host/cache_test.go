package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// openShared opens the redis plugin on addr's namespace prefix: two calls
// with one prefix are two hosts sharing a backend.
func openShared(t *testing.T, addr, prefix string, cache int, opts ...host.Option) *host.Store {
	t.Helper()
	st, err := host.Open(t.Context(), host.Config{
		Plugin: "builtin:redis",
		Redis:  &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true},
		Cache:  host.CacheOptions{Entries: cache},
	}, append([]host.Option{host.WithCompilationCache(benchCache)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func waitEvent(t *testing.T, sub *events.Subscription, key string, version uint64) {
	t.Helper()
	for {
		select {
		case e, ok := <-sub.Events():
			require.True(t, ok, "subscription ended: %v", sub.Err())
			if e.Key == key && e.Version == version {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the event of %s version %d did not arrive", key, version)
		}
	}
}

// A write through one host is never followed by a stale read through
// another's cache once the write's event has arrived there.
func TestCacheInvalidatedByAnotherHostsWrites(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	cached := openShared(t, addr, prefix, 1000)
	writer := openShared(t, addr, prefix, 0)
	sub, err := cached.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	for i := range 50 {
		s, err := writer.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		waitEvent(t, sub, "a1", s.Version)
		for range 3 { // a miss, then hits: all of them this version
			got, err := cached.GetAgentState(ctx, "a1")
			require.NoError(t, err)
			require.Equal(t, s.Version, got.Version, "round %d: stale read after the event arrived", i)
			require.Equal(t, fmt.Sprint(i), string(got.State))
		}
	}
	st := cached.Stats().Cache
	assert.True(t, st.Enabled)
	assert.GreaterOrEqual(t, st.Hits, uint64(50), "two hits a round at least (a fill can lose a race with an event)")
	assert.GreaterOrEqual(t, st.Invalidations, uint64(40))

	// Alerts too: a status change elsewhere.
	a, err := writer.PutAlert(ctx, host.Alert{ID: "al", AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertFiring})
	require.NoError(t, err)
	waitEvent(t, sub, "al", uint64(a.UpdatedAt.UnixNano()))
	got, err := cached.GetAlert(ctx, "al")
	require.NoError(t, err)
	require.Equal(t, abi.AlertFiring, got.Status)
	a, err = writer.SetAlertStatus(ctx, "al", abi.AlertResolved)
	require.NoError(t, err)
	waitEvent(t, sub, "al", uint64(a.UpdatedAt.UnixNano()))
	got, err = cached.GetAlert(ctx, "al")
	require.NoError(t, err)
	assert.Equal(t, abi.AlertResolved, got.Status)

	// A delete elsewhere: NOT_FOUND, not the cached alert.
	require.NoError(t, writer.DeleteAlert(ctx, "al"))
	waitEvent(t, sub, "al", 0)
	_, err = cached.GetAlert(ctx, "al")
	assert.ErrorIs(t, err, host.ErrNotFound)
}

// A host reads its own writes at once, without waiting for their events;
// expired entries are never served; callers get copies.
//
// The store's clock is the test's: it stands still while the entry is
// live, so the reads before the expiry are the cache's whatever the
// machine's load, and it is moved past the expiry at once. Redis expires
// the key at the same instant (PXAT, from the same clock), on its own
// clock: that wait is polled, bounded.
func TestCacheOwnWritesExpiryAndCopies(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	clock := newForeignClock()
	clock.ns.Store(time.Now().UnixNano())
	st := openShared(t, addr, redistest.Prefix(t, addr), 1000, host.WithClock(clock.Now))
	for i := range 20 {
		s, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		got, err := st.GetAgentState(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, s.Version, got.Version)
		got.State[0] = 'X' // the caller's copy
		again, err := st.GetAgentState(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(again.State))
	}
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	const ttl = 5 * time.Second // Redis holds the key this long: the first read must reach it before
	// The clock set to the real time (to Redis's millisecond), which Redis
	// compares the expiry with.
	clock.ns.Store(time.Now().Truncate(time.Millisecond).UnixNano())
	put, err := st.PutAgentState(ctx, host.AgentState{AgentID: "short", State: []byte("x")}, host.WithTTL(ttl))
	require.NoError(t, err)
	require.Equal(t, clock.Now().Add(ttl), put.ExpiresAt)
	// The put's own event, arriving during a read, would refuse its fill.
	waitEvent(t, sub, "short", put.Version)
	_, err = st.GetAgentState(ctx, "short") // from Redis, into the cache
	require.NoError(t, err)
	hits := st.Stats().Cache.Hits
	_, err = st.GetAgentState(ctx, "short")
	require.NoError(t, err)
	require.Equal(t, hits+1, st.Stats().Cache.Hits, "the live entry is served by the cache")

	clock.Advance(ttl) // the entry's expiry is now
	redistest.WaitFor(t, ttl+10*time.Second, 20*time.Millisecond, func() bool {
		before := st.Stats().Cache
		_, err := st.GetAgentState(ctx, "short")
		after := st.Stats().Cache
		require.Equal(t, before.Hits, after.Hits, "an expired entry served by the cache")
		require.Greater(t, after.Misses, before.Misses)
		if errors.Is(err, host.ErrNotFound) {
			return true
		}
		require.NoError(t, err, "read from Redis, which has not expired it yet")
		return false
	}, "Redis did not expire the key")
}

// A change that wrote no event (here a host with events disabled; in
// life a host that crashed before its event's append, a key deleted by
// hand) is served from the cache for CacheOptions.MaxAge at most.
func TestCacheEntriesAreReadAgainAfterMaxAge(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	clock := newForeignClock()
	clock.ns.Store(time.Now().UnixNano())
	const maxAge = 10 * time.Second
	open := func(cfg host.Config, opts ...host.Option) *host.Store {
		cfg.Plugin = "builtin:redis"
		cfg.Redis = &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true}
		st, err := host.Open(ctx, cfg, append([]host.Option{host.WithCompilationCache(benchCache)}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	}
	cached := open(host.Config{Cache: host.CacheOptions{Entries: 100, MaxAge: maxAge}}, host.WithClock(clock.Now))
	silent := open(host.Config{DisableEvents: true})
	sub, err := cached.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	old, err := cached.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("old")})
	require.NoError(t, err)
	waitEvent(t, sub, "a", old.Version) // its own event, arriving during a read, would refuse the fill
	_, err = cached.GetAgentState(ctx, "a")
	require.NoError(t, err)
	_, err = silent.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("new")})
	require.NoError(t, err)

	clock.Advance(maxAge - time.Millisecond)
	got, err := cached.GetAgentState(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "old", string(got.State), "served from the cache: no event said the record changed")
	hits := cached.Stats().Cache.Hits
	assert.NotZero(t, hits)

	clock.Advance(time.Millisecond)
	got, err = cached.GetAgentState(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "new", string(got.State), "read again once the entry is MaxAge old")
	assert.Equal(t, hits, cached.Stats().Cache.Hits)
}

// While the event log cannot be read, invalidations do not arrive: the
// cache is flushed and bypassed, and comes back with Redis.
// cachedRecord opens a store with a read cache on the Redis at addr, and
// leaves agent "a"'s state in its cache.
func cachedRecord(t *testing.T, addr string) *host.Store {
	ctx := context.Background()
	st := openShared(t, addr, "cache-test:", 1000)
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	s, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("1")})
	require.NoError(t, err)
	// The put's own event, arriving during a read, would refuse its fill.
	waitEvent(t, sub, "a", s.Version)
	for range 2 {
		_, err = st.GetAgentState(ctx, "a")
		require.NoError(t, err)
	}
	require.Equal(t, 1, st.Stats().Cache.Entries)
	return st
}

func TestCacheBypassedWhileEventsAreDown(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	st := cachedRecord(t, srv.Addr())

	srv.Stop()
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool { return !st.Stats().Cache.Enabled }, "the cache is bypassed")
	assert.Zero(t, st.Stats().Cache.Entries, "flushed")
	_, err := st.GetAgentState(ctx, "a")
	assert.ErrorIs(t, err, host.ErrUnavailable, "served by Redis, which is away, not by the cache")

	srv.Start()
	redistest.WaitFor(t, 20*time.Second, 20*time.Millisecond, func() bool { return st.Stats().Cache.Enabled }, "the cache is back")
	assert.Equal(t, uint64(1), st.Stats().Cache.Flushes)
}

// When Redis loses its data without the connection failing (FLUSHDB,
// FLUSHALL, a failover to an empty replica), the records it lost stop
// being served from the cache: the event log's reader notices its stream
// is gone and the cache is flushed, as when the log cannot be read.
func TestCacheFlushedWhenRedisLosesItsData(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	st := cachedRecord(t, srv.Addr())

	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	require.NoError(t, c.FlushAll(ctx).Err())
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool {
		_, err := st.GetAgentState(ctx, "a")
		return errors.Is(err, host.ErrNotFound)
	}, "the record Redis lost is still served")
	assert.Equal(t, uint64(1), st.Stats().Cache.Flushes)
	assert.True(t, st.Stats().Cache.Enabled)
}

// Closing a store whose writes were acknowledged from the fallback buffer
// while Redis is away does not wait for Redis: Close's ticks give up on
// replaying them, and writes that never reached Redis published no event
// (none is queued, none dropped).
func TestCloseDoesNotWaitForAnAbsentRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	st, err := host.Open(ctx, host.Config{
		Plugin:  "builtin:redis",
		Options: map[string]string{"fallback": "buffer"},
		// Long enough for an instance's _initialize on a loaded machine
		// (300 ms was not, in a CI run): Redis refuses at once, and no
		// call here waits for its timeout.
		Limits: host.Limits{CallTimeout: 2 * time.Second},
		Redis:  &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "close-test:", Scripts: true},
	}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	srv.Stop()
	for i := range 20 {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprint("a", i), State: []byte("1")})
		require.NoError(t, err, "acknowledged from the fallback buffer")
	}
	start := time.Now()
	err = st.Close(ctx)
	require.ErrorIs(t, err, host.ErrBufferLost, "the buffer was in memory")
	require.ErrorContains(t, err, "20 writes acknowledged into its buffer had not reached its store")
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Zero(t, st.Stats().Events.Dropped, "no event of a write not in Redis")
	assert.Zero(t, st.Stats().Events.Published)
	assert.Equal(t, uint64(20), st.Stats().BufferedWrites, "left in the buffer")
}

// The cache holds at most MaxBytes of records, however few entries that
// is, and never one larger than a sixteenth of it: a plugin that answered
// every read with a state of 12 MiB left 920 MB in a cache of 50 000
// entries after 40 reads.
func TestCacheBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Plugin: "builtin:memory", Cache: host.CacheOptions{Entries: 1000, MaxBytes: 1 << 20}},
		host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	defer st.Close(ctx)
	require.Eventually(t, func() bool { return st.Stats().Cache.Enabled }, 10*time.Second, 10*time.Millisecond)

	doc := bytes.Repeat([]byte("x"), 60<<10)
	for i := range 40 {
		id := fmt.Sprintf("agent-%d", i)
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: doc})
		require.NoError(t, err)
		_, err = st.GetAgentState(ctx, id)
		require.NoError(t, err)
	}
	n := st.Stats().Cache.Entries
	assert.Positive(t, n)
	assert.LessOrEqual(t, n*(60<<10), 1<<20, "%d entries of 60 KiB", n)

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "large", State: bytes.Repeat([]byte("y"), 100<<10)})
	require.NoError(t, err)
	_, err = st.GetAgentState(ctx, "large")
	require.NoError(t, err)
	misses := st.Stats().Cache.Misses
	_, err = st.GetAgentState(ctx, "large")
	require.NoError(t, err)
	assert.Equal(t, misses+1, st.Stats().Cache.Misses, "a record over a sixteenth of MaxBytes is not cached")
}
