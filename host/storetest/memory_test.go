package storetest_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/storetest"
)

// cacheDir is the wazero compilation cache every store of this package
// shares, so the plugin is compiled once per test binary, not per Open.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storetest-wazero-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest: compilation cache:", err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// openMemory opens the built-in memory backend; every call is a new host
// and so a new namespace.
func openMemory(t *testing.T, options map[string]string, opts ...host.Option) *host.Store {
	t.Helper()
	opts = append([]host.Option{host.WithCompilationCache(cacheDir)}, opts...)
	st, err := host.Open(t.Context(), host.Config{Options: options}, opts...)
	require.NoError(t, err)
	return st
}

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *host.Store { return openMemory(t, nil) })
}

func TestMemoryDefaultTTLs(t *testing.T) {
	storetest.RunDefaultTTLs(t, func(t *testing.T, options map[string]string) *host.Store {
		return openMemory(t, options)
	})
}

// fakeClock is a host clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestMemoryDefaultTTLClock checks, on a clock under the test's control,
// what RunDefaultTTLs cannot: the default counts from each write (an update
// without a TTL option moves the expiry), WithKeepTTL and SetAlertStatus do
// not move it, and a record vanishes exactly at its expiry.
func TestMemoryDefaultTTLClock(t *testing.T) {
	const metricTTL, alertTTL, stateTTL = 60 * time.Second, 120 * time.Second, 180 * time.Second
	clock := newFakeClock()
	st := openMemory(t, map[string]string{
		"metric_ttl_seconds": "60", "alert_ttl_seconds": "120", "agent_state_ttl_seconds": "180",
	}, host.WithClock(clock.Now))
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ctx := t.Context()

	requireAt := func(t *testing.T, want, got time.Time, what string) {
		t.Helper()
		require.True(t, want.Equal(got), "%s: ExpiresAt is %v, want %v", what, got.UTC(), want.UTC())
	}

	t.Run("Metric", func(t *testing.T) {
		m := host.Metric{AgentID: "agent", Name: "n", Value: 1, Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		t0 := clock.Now()
		put, err := st.PutMetric(ctx, m)
		require.NoError(t, err)
		requireAt(t, t0.Add(metricTTL), put.ExpiresAt, "first write")

		clock.Advance(30 * time.Second)
		t1 := clock.Now()
		put, err = st.PutMetric(ctx, m)
		require.NoError(t, err)
		requireAt(t, t1.Add(metricTTL), put.ExpiresAt, "an update without a TTL option counts the default from the update")

		clock.Advance(10 * time.Second)
		put, err = st.PutMetric(ctx, m, host.WithKeepTTL())
		require.NoError(t, err)
		requireAt(t, t1.Add(metricTTL), put.ExpiresAt, "WithKeepTTL")

		clock.Advance(metricTTL - 10*time.Second - time.Nanosecond)
		got, err := st.GetMetric(ctx, m.Key())
		require.NoError(t, err, "a nanosecond before its expiry")
		requireAt(t, t1.Add(metricTTL), got.ExpiresAt, "get")
		clock.Advance(time.Nanosecond)
		_, err = st.GetMetric(ctx, m.Key())
		require.ErrorIs(t, err, host.ErrNotFound, "at its expiry")
	})

	t.Run("Alert", func(t *testing.T) {
		a := host.Alert{ID: "alert", AgentID: "agent", Severity: abi.SeverityWarning, Status: abi.AlertFiring}
		t0 := clock.Now()
		put, err := st.PutAlert(ctx, a)
		require.NoError(t, err)
		requireAt(t, t0.Add(alertTTL), put.ExpiresAt, "first write")

		clock.Advance(30 * time.Second)
		t1 := clock.Now()
		put, err = st.PutAlert(ctx, a)
		require.NoError(t, err)
		requireAt(t, t1.Add(alertTTL), put.ExpiresAt, "an update without a TTL option counts the default from the update")
		require.True(t, t0.Equal(put.CreatedAt), "CreatedAt is %v, want the first write's %v", put.CreatedAt, t0)
		require.True(t, t1.Equal(put.UpdatedAt), "UpdatedAt is %v, want the update's %v", put.UpdatedAt, t1)

		clock.Advance(10 * time.Second)
		set, err := st.SetAlertStatus(ctx, a.ID, abi.AlertAcknowledged)
		require.NoError(t, err)
		requireAt(t, t1.Add(alertTTL), set.ExpiresAt, "SetAlertStatus")

		clock.Advance(alertTTL - 10*time.Second)
		_, err = st.GetAlert(ctx, a.ID)
		require.ErrorIs(t, err, host.ErrNotFound, "at its expiry")
	})

	t.Run("AgentState", func(t *testing.T) {
		s := host.AgentState{AgentID: "agent", State: []byte("x")}
		t0 := clock.Now()
		put, err := st.PutAgentState(ctx, s)
		require.NoError(t, err)
		requireAt(t, t0.Add(stateTTL), put.ExpiresAt, "first write")

		clock.Advance(30 * time.Second)
		t1 := clock.Now()
		put, err = st.PutAgentState(ctx, s, host.IfVersion(put.Version))
		require.NoError(t, err)
		requireAt(t, t1.Add(stateTTL), put.ExpiresAt, "an update without a TTL option counts the default from the update")

		clock.Advance(10 * time.Second)
		put, err = st.PutAgentState(ctx, s, host.WithKeepTTL())
		require.NoError(t, err)
		requireAt(t, t1.Add(stateTTL), put.ExpiresAt, "WithKeepTTL")

		clock.Advance(stateTTL - 10*time.Second)
		_, err = st.GetAgentState(ctx, s.AgentID)
		require.ErrorIs(t, err, host.ErrNotFound, "at its expiry")
		_, err = st.PutAgentState(ctx, s, host.IfAbsent())
		require.NoError(t, err, "an expired state is absent")
	})
}

func TestMemoryOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options map[string]string
	}{
		{"Unknown", map[string]string{"metric_ttl": "60"}},
		{"NotANumber", map[string]string{"metric_ttl_seconds": "sixty"}},
		{"Fraction", map[string]string{"alert_ttl_seconds": "1.5"}},
		{"Negative", map[string]string{"agent_state_ttl_seconds": "-5"}},
		{"Duration", map[string]string{"agent_state_ttl_seconds": "1h"}},
		{"Empty", map[string]string{"metric_ttl_seconds": ""}},
		{"TooLarge", map[string]string{"metric_ttl_seconds": "99999999999999999999"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := host.Open(t.Context(), host.Config{Options: tc.options}, host.WithCompilationCache(cacheDir))
			if err == nil {
				_ = st.Close(context.Background())
			}
			require.ErrorIs(t, err, host.ErrInvalid, "options %v", tc.options)
		})
	}
	t.Run("Zero", func(t *testing.T) {
		// 0 means no default: records never expire.
		st := openMemory(t, map[string]string{"metric_ttl_seconds": "0", "alert_ttl_seconds": "0", "agent_state_ttl_seconds": "0"})
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		put, err := st.PutAgentState(t.Context(), host.AgentState{AgentID: "agent", State: []byte("x")})
		require.NoError(t, err)
		require.True(t, put.ExpiresAt.IsZero(), "ExpiresAt is %v, want zero", put.ExpiresAt)
	})
}

func TestMemoryEvents(t *testing.T) {
	storetest.RunEvents(t, func(t *testing.T) *host.Store { return openMemory(t, nil) })
}
