package main_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestReadCacheAcrossDaemons: two daemons share one Redis backend with a
// read cache. A state read through B is cached there (the hits counter
// moves); a write through A reaches B as an event, and from the moment
// B's event stream has delivered it, reads through B answer the new
// version, never the cached old one — round after round.
func TestReadCacheAcrossDaemons(t *testing.T) {
	t.Parallel()
	addr := redistest.Addr(t)
	cfg := sharedRedisConfig(t, addr, redistest.Prefix(t, addr), "cache {\n    entries = 1000\n  }")
	a := startDaemon(t, nil, "-config", cfg, "-watch=false")
	b := startDaemon(t, nil, "-config", cfg, "-watch=false")
	onB := openEvents(t, b.url, "?kind=agent_states", "")

	get := func() string { return stateVersion(t, b.url, "cached") }
	for round := range 20 {
		version := putState(t, a.url, "cached")
		for {
			if c := onB.change(); c.Key == "cached" && c.Version == version {
				break
			}
		}
		for range 3 {
			require.Equal(t, version, get(), "round %d: B answered a version the write through A replaced", round)
		}
	}
	require.GreaterOrEqual(t, b.metric(`storage_host_cache_hits_total{backend="shared"}`), 20.0)
	require.GreaterOrEqual(t, b.metric(`storage_host_cache_invalidations_total{backend="shared"}`), 15.0)
}

// TestReadCacheMaxAgeAcrossDaemons: a change that reaches Redis without
// an event (here through a daemon whose events are off; in an outage, a
// daemon killed between a write and its event's append) is served by
// another daemon's cache for its max_age at most, then read again.
func TestReadCacheMaxAgeAcrossDaemons(t *testing.T) {
	t.Parallel()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	cached := startDaemon(t, nil, "-config", sharedRedisConfig(t, addr, prefix, "cache {\n    entries = 100\n    max_age = \"2s\"\n  }"), "-watch=false")
	silent := startDaemon(t, nil, "-config", sharedRedisConfig(t, addr, prefix, "events {\n    enabled = false\n  }"), "-watch=false")
	onCached := openEvents(t, cached.url, "?kind=agent_states", "")

	get := func() string { return stateVersion(t, cached.url, "a") }
	old := putState(t, cached.url, "a")
	for c := onCached.change(); c.Key != "a" || c.Version != old; c = onCached.change() {
	}
	require.Equal(t, old, get())
	hits := cached.metric(`storage_host_cache_hits_total{backend="shared"}`)
	require.Equal(t, old, get())
	require.Greater(t, cached.metric(`storage_host_cache_hits_total{backend="shared"}`), hits, "served by the cache")

	silently := putState(t, silent.url, "a")
	require.NotEqual(t, old, silently)
	deadline := time.Now().Add(15 * time.Second) // max_age, and a margin for a loaded machine
	for v := get(); v != silently; v = get() {
		require.Equal(t, old, v)
		require.True(t, time.Now().Before(deadline), "the cache still serves the version the silent write replaced")
		time.Sleep(50 * time.Millisecond)
	}
}
