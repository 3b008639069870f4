package manager_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// blocked returns a file with agent states routed to backend "bad", a
// builtin:local whose data directory cannot be made (under a regular file,
// blocker, until it is removed), and the other kinds to "good", a memory
// backend.
func blocked(t *testing.T, digest string) (f *config.File, blocker string) {
	blocker = filepath.Join(t.TempDir(), "blocker")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	f = file("good", map[string]string{"good": "1"})
	f.Routes.AgentStates = "bad"
	f.Backends = append(f.Backends, config.Backend{Name: "bad", Digest: digest,
		Config: host.Config{Name: "bad", Plugin: "builtin:local", Instances: 2, DataDir: filepath.Join(blocker, "kv")}})
	return f, blocker
}

// startBlocked starts a manager on blocked(t, "1"), closed when the test
// ends.
func startBlocked(t *testing.T) (m *manager.Manager, reg *prometheus.Registry, blocker string) {
	reg = prometheus.NewRegistry()
	f, blocker := blocked(t, "1")
	m, err := manager.New(context.Background(), f, manager.Options{Registry: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, reg, blocker
}

func backendOpen(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "storage_host_backend_open" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == name {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no storage_host_backend_open for %s", name)
	return 0
}

// A backend that does not open keeps neither the manager from starting
// nor the other backends from serving: its routes answer ErrNotOpen (503
// unavailable), Ready and the metrics name it, a subscription that needs
// it is refused while one that does not is served, and it serves once it
// opens, tried again without a reload.
func TestBackendThatDoesNotOpenWaitsAndServesOnceItOpens(t *testing.T) {
	ctx := context.Background()
	m, reg, blocker := startBlocked(t)

	require.NoError(t, m.Do(ctx, abi.KindMetric, func(st *host.Store) error {
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "cpu", Value: 1, Timestamp: time.Now()})
		return err
	}), "the other backend serves")
	_, err := get(m, "x")
	require.ErrorIs(t, err, manager.ErrNotOpen)
	require.ErrorIs(t, err, abi.StatusUnavailable, "answered 503 unavailable")
	require.ErrorContains(t, err, "backend bad: backend not open: ")
	require.ErrorContains(t, err, "not a directory")
	require.ErrorContains(t, m.Ready(ctx), "backend bad: backend not open")
	_, ok := m.Store("bad")
	require.False(t, ok)
	require.Equal(t, 0.0, backendOpen(t, reg, "bad"))
	require.Equal(t, 1.0, backendOpen(t, reg, "good"))

	_, err = m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.ErrorIs(t, err, events.ErrUnavailable, "every backend's events: bad's cannot be followed")
	sub, err := m.Subscribe(ctx, events.Filter{Kinds: []string{"metrics"}}, "", httpapi.LossEnds)
	require.NoError(t, err, "good's events only")
	sub.Close()

	require.NoError(t, os.Remove(blocker))
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond)
	put(t, m, "x")
	name, err := get(m, "x")
	require.NoError(t, err)
	require.Equal(t, "bad", name)
	require.Equal(t, 1.0, backendOpen(t, reg, "bad"))
	_, ok = m.Store("bad")
	require.True(t, ok)
	sub, err = m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	sub.Close()
}

// A reload in place of a backend that is not open: a definition that does
// not open either is taken (nothing served is lost) and tried instead of
// the old one; one that opens serves; a backend removed while not open is
// tried no more (TestMain finds any attempt left running).
func TestReloadOfABackendThatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	m, reg, blocker := startBlocked(t)

	f2, _ := blocked(t, "2")
	ch, err := m.Reload(ctx, f2)
	require.NoError(t, err)
	require.Equal(t, []string{"bad"}, ch.Replaced)
	require.Equal(t, 1.0, testutil.ToFloat64(reloads(t, reg, "ok")))
	// The first definition's directory can be made now, the second's not:
	// only the second is tried.
	require.NoError(t, os.Remove(blocker))
	require.Eventually(t, func() bool {
		_, err = get(m, "x")
		return strings.Contains(fmt.Sprint(err), "(failed 2 times;")
	}, 20*time.Second, 10*time.Millisecond, "the second definition tried again: %v", err)
	require.ErrorIs(t, err, manager.ErrNotOpen)
	require.ErrorContains(t, err, filepath.Dir(f2.Backends[1].Config.DataDir)+": not a directory")

	f3, _ := blocked(t, "3")
	f3.Backends[1].Config.DataDir = t.TempDir()
	ch, err = m.Reload(ctx, f3)
	require.NoError(t, err)
	require.Equal(t, []string{"bad"}, ch.Replaced)
	put(t, m, "x")

	f4, _ := blocked(t, "4")
	_, err = m.Reload(ctx, f4)
	require.ErrorContains(t, err, "backend bad: ", "a backend being served is not replaced by one that does not open")
	put(t, m, "y")

	// Not open again, then removed.
	m2, err := manager.New(ctx, f4, manager.Options{})
	require.NoError(t, err)
	ch, err = m2.Reload(ctx, file("good", map[string]string{"good": "1"}))
	require.NoError(t, err)
	require.Equal(t, []string{"bad"}, ch.Removed)
	require.NoError(t, m2.Close(ctx))
}

// Options.Prepare's failure leaves the backend not open, tried again with
// Prepare until it succeeds.
func TestPrepareFailureIsAFailureToOpen(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	prepare := func(_ context.Context, def config.Backend, _ *host.Store) error {
		if calls.Add(1) < 3 {
			return errors.New("no backup verifies")
		}
		return nil
	}
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{Prepare: prepare})
	require.NoError(t, err)
	defer m.Close(ctx)
	require.ErrorContains(t, m.Ready(ctx), "backend a: backend not open: see the daemon's log for why", "readiness, which needs no token, does not tell why")
	_, err = get(m, "x")
	require.ErrorContains(t, err, "backend a: backend not open: no backup verifies")
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, int32(3), calls.Load())
	put(t, m, "x")
}

// The failure of an open is the plugin's text (a migration's RAISE, say)
// and is answered by every call routed to the backend and by Ready: it is
// cut to 4 KiB, on one line.
func TestOpenFailureTextIsBounded(t *testing.T) {
	ctx := context.Background()
	raised := errors.New("raised:\n" + strings.Repeat("A", 8<<20))
	prepare := func(context.Context, config.Backend, *host.Store) error { return fmt.Errorf("migration 1: %w", raised) }
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{Prepare: prepare})
	require.NoError(t, err)
	defer m.Close(ctx)
	_, err = get(m, "x")
	require.ErrorIs(t, err, manager.ErrNotOpen)
	text := err.Error()
	require.Less(t, len(text), 4<<10+200)
	require.True(t, strings.HasPrefix(text, "backend a: backend not open: migration 1: raised: AAAA"), "%.100s", text)
	require.NotContains(t, text, "\n")
	require.Contains(t, text, "… (8384533 bytes more) (failed 1 times; next attempt in ")
	require.Less(t, len(m.Ready(ctx).Error()), 4<<10+200)
}

// A backend whose plugin failed its check (config.Backend.Unchecked) is
// not opened as it is: each attempt checks it again (Options.Recheck)
// and opens what that finds, once it checks.
func TestUncheckedBackendIsCheckedAgainBeforeItOpens(t *testing.T) {
	ctx := context.Background()
	f := file("a", map[string]string{"a": "1"})
	f.Backends[0].Unchecked = errors.New("storage-host.hcl:2:12: Plugin cannot be loaded; boom")
	var calls atomic.Int32
	recheck := func(_ context.Context, name string) (config.Backend, error) {
		require.Equal(t, "a", name)
		def := file("a", map[string]string{"a": "1"}).Backends[0]
		switch calls.Add(1) {
		case 1:
			return config.Backend{}, errors.New("the file does not load")
		case 2:
			def.Unchecked = errors.New("storage-host.hcl:2:12: Plugin cannot be loaded; boom again")
		}
		return def, nil
	}
	m, err := manager.New(ctx, f, manager.Options{Recheck: recheck})
	require.NoError(t, err)
	defer m.Close(ctx)
	_, err = get(m, "x")
	require.ErrorContains(t, err, "backend a: backend not open: storage-host.hcl:2:12: Plugin cannot be loaded; boom (failed 1 times")
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, int32(3), calls.Load())
	put(t, m, "x")
}

// A reload that changes only the backup block of a backend that is not
// open (a block Digest leaves out) replaces it: the new block is tried,
// not the old one for ever.
func TestReloadOfTheBackupBlockOfABackendThatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	prepare := func(_ context.Context, def config.Backend, _ *host.Store) error {
		if def.Backup != nil && def.Backup.RestoreOnStart {
			return errors.New("none of the backups verifies")
		}
		return nil
	}
	f := file("a", map[string]string{"a": "1"})
	f.Backends[0].Backup = &config.Backup{Interval: time.Hour, Directory: t.TempDir(), Keep: 1, RestoreOnStart: true}
	m, err := manager.New(ctx, f, manager.Options{Prepare: prepare})
	require.NoError(t, err)
	defer m.Close(ctx)
	_, err = get(m, "x")
	require.ErrorIs(t, err, manager.ErrNotOpen)

	ch, err := m.Reload(ctx, file("a", map[string]string{"a": "1"}))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, ch.Replaced)
	put(t, m, "x")
}

// A reload refused (a backend it adds does not open) leaves a backend that
// is not open tried again as it was: the attempts the reload paused start
// again.
func TestRefusedReloadKeepsTryingABackendThatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	m, _, blocker := startBlocked(t)
	f2, blocker2 := blocked(t, "2")
	f2.Backends = append(f2.Backends, config.Backend{Name: "new", Digest: "1",
		Config: host.Config{Name: "new", Plugin: "builtin:local", Instances: 2, DataDir: filepath.Join(blocker2, "new")}})
	_, err := m.Reload(ctx, f2)
	require.ErrorContains(t, err, "backend new: ")
	require.NoError(t, os.Remove(blocker))
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond, "the first definition is tried again")
	put(t, m, "x")
}

// Without Options.Recheck, an attempt checks the backend again as the
// configuration being served defines it: a plugin whose run fails no more
// opens (its Unchecked of the start is not kept), under the served routes.
func TestUncheckedBackendOpensOnceItsPluginRuns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "storage-host.hcl")
	require.NoError(t, os.WriteFile(path, []byte("backend \"a\" {\n  plugin = \"builtin:memory\"\n}\n"), 0o600))
	f, err := config.Load(path)
	require.NoError(t, err)
	require.NoError(t, f.Check(ctx, config.DeferPluginRuns()))
	// As a plugin whose run failed at the daemon's start would leave it.
	f.Backends[0].Unchecked = errors.New("storage-host.hcl:2:12: Plugin cannot be loaded; a run that failed then")
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	_, err = get(m, "x")
	require.ErrorContains(t, err, "a run that failed then")
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 10*time.Millisecond)
	put(t, m, "x")
	require.NotNil(t, f.Backends[0].Unchecked, "the served file is not changed by the check")
}

// A backend slow to open holds only its own routes: Start returns while
// it opens, the other backend serves, a call routed to it waits for its
// first attempt (answering ErrNotOpen when the call's context ends
// first), Ready names it, and once it opened it serves, Started
// returning. Closed while it opens, its attempt is stopped and what it
// opened closed.
func TestBackendSlowToOpenHoldsOnlyItsRoutes(t *testing.T) {
	ctx := context.Background()
	f := file("good", map[string]string{"good": "1", "slow": "1"})
	f.Routes.AgentStates = "slow"
	release := make(chan struct{})
	var prepared, stopped atomic.Int32
	prepare := func(ctx context.Context, def config.Backend, _ *host.Store) error {
		if def.Name != "slow" {
			return nil
		}
		prepared.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			stopped.Add(1)
			return ctx.Err()
		}
	}
	m, err := manager.Start(ctx, f, manager.Options{Prepare: prepare})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close(context.Background()) })

	// Alerts go to good, which serves while slow opens.
	require.NoError(t, m.Do(ctx, abi.KindAlert, func(st *host.Store) error {
		_, err := st.PutAlert(ctx, host.Alert{ID: "x1", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		return err
	}))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = m.Do(short, abi.KindAgentState, func(st *host.Store) error {
		_, err := st.GetAgentState(short, "a1")
		return err
	})
	cancel()
	require.ErrorIs(t, err, manager.ErrNotOpen)
	require.ErrorContains(t, err, "first attempt to open has not ended")
	require.ErrorContains(t, m.Ready(ctx), "backend slow")
	require.Eventually(t, func() bool { return prepared.Load() == 1 }, 30*time.Second, 10*time.Millisecond, "slow's attempt reaches its Prepare")

	waiting := make(chan error, 1)
	go func() {
		waiting <- m.Do(ctx, abi.KindAgentState, func(st *host.Store) error {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte("{}")})
			return err
		})
	}()
	select {
	case err := <-waiting:
		t.Fatalf("a call routed to a backend opening did not wait for it: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-waiting, "the call waiting for the first attempt runs once it opened")
	require.NoError(t, m.Started(ctx))
	require.NoError(t, m.Ready(ctx))
	_, ok := m.Store("slow")
	require.True(t, ok)

	// Closed while its first attempt runs: the attempt is stopped.
	preparing := make(chan struct{})
	m2, err := manager.Start(ctx, f, manager.Options{Prepare: func(ctx context.Context, def config.Backend, st *host.Store) error {
		if def.Name != "slow" {
			return nil
		}
		close(preparing)
		<-ctx.Done()
		stopped.Add(1)
		return ctx.Err()
	}})
	require.NoError(t, err)
	<-preparing
	require.NoError(t, m2.Close(ctx))
	require.Equal(t, int32(1), stopped.Load(), "Close stops a first attempt")
	started, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	require.NoError(t, m2.Started(started), "a stopped first attempt has ended")
}
