package manager_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestMain stops the Redis servers the tests started and fails the binary
// if a goroutine outlives the tests.
func TestMain(m *testing.M) { redistest.Main(m) }

// file builds a configuration by hand: every kind routed to route, each
// backend a memory plugin whose digest is given.
func file(route string, backends map[string]string) *config.File {
	f := &config.File{Routes: config.Routes{Metrics: route, Alerts: route, AgentStates: route}}
	for name, digest := range backends {
		f.Backends = append(f.Backends, config.Backend{
			Name:   name,
			Digest: digest,
			Config: host.Config{Name: name, Plugin: "builtin:memory", Instances: 2},
		})
	}
	return f
}

func put(t *testing.T, m *manager.Manager, id string) {
	t.Helper()
	err := m.Do(context.Background(), abi.KindAgentState, func(st *host.Store) error {
		_, err := st.PutAgentState(context.Background(), host.AgentState{AgentID: id, State: []byte(`{}`)})
		return err
	})
	require.NoError(t, err)
}

func get(m *manager.Manager, id string) (backend string, err error) {
	err = m.Do(context.Background(), abi.KindAgentState, func(st *host.Store) error {
		backend = st.Name()
		_, err := st.GetAgentState(context.Background(), id)
		return err
	})
	return backend, err
}

func TestReloadKeepsUnchangedAndReplacesChanged(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1", "b": "1"}), manager.Options{Registry: reg})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "x")

	// Unchanged: a keeps its data.
	ch, err := m.Reload(ctx, file("a", map[string]string{"a": "1", "b": "2", "c": "1"}))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, ch.Kept)
	require.Equal(t, []string{"b"}, ch.Replaced)
	require.Equal(t, []string{"c"}, ch.Added)
	require.Empty(t, ch.Rerouted)
	name, err := get(m, "x")
	require.NoError(t, err)
	require.Equal(t, "a", name)

	// Re-routed to c: a new, empty memory backend serves.
	ch, err = m.Reload(ctx, file("c", map[string]string{"c": "1"}))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "b"}, ch.Removed)
	require.Equal(t, []string{"metrics: a → c", "alerts: a → c", "agent_states: a → c"}, ch.Rerouted)
	name, err = get(m, "x")
	require.ErrorIs(t, err, host.ErrNotFound)
	require.Equal(t, "c", name)
	_, ok := m.Store("a")
	require.False(t, ok)

	require.Equal(t, 2.0, testutil.ToFloat64(reloads(t, reg, "ok")))
}

func reloads(t *testing.T, reg *prometheus.Registry, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "storage_host_reloads_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if mt.GetLabel()[0].GetValue() == result {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(mt.GetCounter().GetValue())
				return c
			}
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
}

func TestReloadFailureKeepsServing(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{Registry: reg})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "x")

	bad := file("a", map[string]string{"a": "2"})
	bad.Backends[0].Config.Plugin = "/nonexistent/plugin.wasm"
	_, err = m.Reload(ctx, bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), "backend a")

	_, err = get(m, "x")
	require.NoError(t, err, "the old backend keeps serving, with its data")
	require.Equal(t, 1.0, testutil.ToFloat64(reloads(t, reg, "failed")))

	_, _, err = m.ReloadFile(ctx, t.TempDir()+"/missing.hcl", nil)
	require.Error(t, err)
	require.Equal(t, 2.0, testutil.ToFloat64(reloads(t, reg, "failed")))
}

// TestSwapUnderLoad swaps the agent-state backend back and forth while
// writers run, and counts failed calls: there must be none. A call that
// reached the old store finishes there; one that found it closed runs on
// the new one.
func TestSwapUnderLoad(t *testing.T) {
	ctx := context.Background()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1", "b": "1"}), manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)

	var ops, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "agent-" + strings.Repeat("w", w+1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := m.Do(ctx, abi.KindAgentState, func(st *host.Store) error {
					_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{"n":1}`)})
					return err
				})
				ops.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for i := range 20 {
		route := "a"
		if i%2 == 0 {
			route = "b"
		}
		// Both backends are rebuilt each time, and the route alternates,
		// so the routed store is closed under load at every reload.
		digest := string(rune('2' + i))
		_, err := m.Reload(ctx, file(route, map[string]string{"a": digest, "b": digest}))
		require.NoError(t, err)
		// Let the writers run on the new stores before the next swap.
		before := ops.Load()
		require.Eventually(t, func() bool { return ops.Load() >= before+50 }, 10*time.Second, time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.Zero(t, failed.Load(), "failed calls (first: %v)", firstErr.Load())
	require.Greater(t, ops.Load(), int64(100))
}

// TestRetryOnRetiredStore has a call pick its store, lets a reload retire
// that store before the call reaches it, and checks that Do runs the call
// again on the new store rather than failing it.
func TestRetryOnRetiredStore(t *testing.T) {
	ctx := context.Background()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{})
	require.NoError(t, err)
	old, ok := m.Store("a")
	require.True(t, ok)
	picked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var runs atomic.Int32
	done := make(chan error)
	go func() {
		done <- m.Do(ctx, abi.KindAgentState, func(st *host.Store) error {
			runs.Add(1)
			once.Do(func() { close(picked) })
			<-release
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "late", State: []byte(`{}`)})
			return err
		})
	}()
	<-picked
	_, err = m.Reload(ctx, file("a", map[string]string{"a": "2"}))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return errors.Is(old.Ping(ctx), host.ErrClosed) }, 5*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	require.EqualValues(t, 2, runs.Load(), "the call ran again on the new store")
	_, err = get(m, "late")
	require.NoError(t, err)
	require.NoError(t, m.Close(ctx))
	require.ErrorIs(t, m.Do(ctx, abi.KindAgentState, func(*host.Store) error { return nil }), host.ErrClosed)
}

func TestReady(t *testing.T) {
	ctx := context.Background()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{})
	require.NoError(t, err)
	require.NoError(t, m.Ready(ctx))
	require.NoError(t, m.Close(ctx))
	require.ErrorIs(t, m.Ready(ctx), host.ErrClosed)
}

// A reload that would route a kind from a ready backend to one whose
// store does not answer (a Redis port mistyped) is refused, and the old
// configuration keeps serving; the same reload with the right port is
// taken.
func TestReloadRefusesToTakeAKindDown(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	redisFile := func(addr, digest string) *config.File {
		return &config.File{Routes: config.Routes{Metrics: "red", Alerts: "red", AgentStates: "red"}, Backends: []config.Backend{{
			Name: "red", Digest: digest, Config: host.Config{Name: "red", Plugin: "builtin:redis", Instances: 2,
				Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true}},
		}}}
	}
	m, err := manager.New(ctx, redisFile(addr, "1"), manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "before")

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unanswered := closed.Addr().String()
	require.NoError(t, closed.Close())
	_, err = m.Reload(ctx, redisFile(unanswered, "2"))
	require.ErrorContains(t, err, "backend red, which the file routes metrics to, is not ready")
	require.ErrorContains(t, err, "the configuration is refused and the old one keeps serving")
	put(t, m, "after")
	require.Equal(t, "1", m.Config().Backends[0].Digest, "the old configuration serves")

	change, err := m.Reload(ctx, redisFile(addr, "3"))
	require.NoError(t, err)
	require.Equal(t, []string{"red"}, change.Replaced)
	_, err = get(m, "after")
	require.NoError(t, err)
}
