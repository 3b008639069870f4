package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// contents returns every record of st by key, encoded without its
// expiry: content and version.
func contents(t *testing.T, st *host.Store) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	var cur []byte
	for {
		p, err := st.QueryMetrics(ctx, host.MetricQuery{Limit: 1000, Cursor: cur})
		require.NoError(t, err)
		for _, m := range p.Items {
			m.ExpiresAt = time.Time{}
			out[key(&backup.Record{Kind: abi.KindMetric, Metric: m})] = enc(&m)
		}
		if cur = p.Next; len(cur) == 0 {
			break
		}
	}
	for {
		p, err := st.QueryAlerts(ctx, host.AlertQuery{Limit: 1000, Cursor: cur})
		require.NoError(t, err)
		for _, a := range p.Items {
			a.ExpiresAt = time.Time{}
			out[key(&backup.Record{Kind: abi.KindAlert, Alert: a})] = enc(&a)
		}
		if cur = p.Next; len(cur) == 0 {
			break
		}
	}
	for {
		p, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 1000, Cursor: cur})
		require.NoError(t, err)
		for _, s := range p.Items {
			s.ExpiresAt = time.Time{}
			out[key(&backup.Record{Kind: abi.KindAgentState, State: s})] = enc(&s)
		}
		if cur = p.Next; len(cur) == 0 {
			break
		}
	}
	return out
}

// changedSince returns the keys (as key names them) of the records
// written to st after the event log position from.
func changedSince(t *testing.T, st *host.Store, from string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The log's reader may lag the writes (a Redis stream): write a
	// marker and wait for its event, which follows every earlier write.
	tail, err := st.Subscribe(ctx, events.Filter{Kinds: []string{abi.KindAgentState.Name()}}, "")
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "marker", State: []byte(`{}`)})
	require.NoError(t, err)
	var to string
	for ev := range tail.Events() {
		if ev.Key == "marker" {
			to = ev.ID
			break
		}
	}
	tail.Close()
	require.NotEmpty(t, to, "the marker's event never came: %v", tail.Err())
	out := map[string]bool{}
	sub, err := st.Subscribe(ctx, events.Filter{}, from)
	require.NoError(t, err)
	defer sub.Close()
	for ev := range sub.Events() {
		switch ev.Kind {
		case abi.KindMetric.Name():
			i := strings.LastIndexByte(ev.Key, '@')
			require.Positive(t, i, ev.Key)
			ts, err := time.Parse(time.RFC3339Nano, ev.Key[i+1:])
			require.NoError(t, err)
			out[fmt.Sprintf("m/%s/%s/%d", ev.AgentID, ev.Key[:i], ts.UnixNano())] = true
		case abi.KindAlert.Name():
			out["a/"+ev.Key] = true
		case abi.KindAgentState.Name():
			out["s/"+ev.Key] = true
		}
		if ev.ID == to {
			return out
		}
	}
	t.Fatalf("the events after %s ended before %s: %v", from, to, sub.Err())
	return nil
}

// TestBackupSnapshotUnderWrites backs up a backend that a writer updates
// and deletes in while the backup reads it, and checks that the restored
// backup holds exactly the backend's records as of the backup's position:
// every record and version, both ways, but those written after it. With
// the memory backend, and with Redis, whose event log is a stream.
//
// The writes are placed by the backup's own reads, not by time: the
// backup's first query answer holds the scan until the writer has written
// a burst, after the backup's start position and over records both read
// and not yet read; then the writer stops, so the replay settles.
func TestBackupSnapshotUnderWrites(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		g := newScanGate()
		testSnapshotUnderWrites(t, openGated(t, "src", host.Config{Plugin: "builtin:memory"}, g), g)
	})
	t.Run("redis", func(t *testing.T) {
		g := newScanGate()
		addr := redistest.Addr(t)
		testSnapshotUnderWrites(t, openGated(t, "src", host.Config{Plugin: "builtin:redis", Redis: &redisbridge.Config{
			Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true,
		}}, g), g)
	})
}

// scanGate is a host.Observer that, once armed, holds the first query
// call it sees (the caller's goroutine waits in PluginCall) until the
// burst it announces on reached is over.
type scanGate struct {
	armed   atomic.Bool
	reached chan struct{} // closed at the held query
	done    chan struct{} // closed by the writer after its burst
}

func newScanGate() *scanGate {
	return &scanGate{reached: make(chan struct{}), done: make(chan struct{})}
}

// PluginCall implements host.Observer.
func (g *scanGate) PluginCall(_ string, op abi.Op, _ time.Duration, _ error, _ bool) {
	switch op {
	case abi.OpQueryMetrics, abi.OpQueryAlerts, abi.OpQueryAgentStates:
	default:
		return
	}
	if !g.armed.CompareAndSwap(true, false) {
		return
	}
	close(g.reached)
	select {
	case <-g.done:
	case <-time.After(time.Minute): // the test fails on its own
	}
}

// openGated opens cfg, named name, with g observing it and instances to
// spare for the writer while g holds one.
func openGated(t *testing.T, name string, cfg host.Config, g *scanGate) *host.Store {
	t.Helper()
	ctx := context.Background()
	cfg.Name, cfg.Instances = name, 4
	st, err := host.Open(ctx, cfg, host.WithObserver(g))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

func testSnapshotUnderWrites(t *testing.T, src *host.Store, gate *scanGate) {
	ctx := context.Background()
	fill(t, src, 3000, 200, 3000)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(gate.done)
		select {
		case <-gate.reached:
		case <-time.After(time.Minute):
			t.Error("writer: the backup never queried the backend")
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 600 {
			j := rng.IntN(3000)
			var err error
			switch i % 6 {
			case 0, 1:
				_, err = src.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("agent-%05d", j), State: []byte(fmt.Sprintf(`{"i":%d}`, i))})
			case 2:
				err = src.DeleteAgentState(ctx, fmt.Sprintf("agent-%05d", j))
			case 3:
				_, err = src.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("w-alert-%03d", j%300), AgentID: "agent-001",
					Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: fmt.Sprint(i)}, host.WithPersist())
			case 4:
				err = src.DeleteAlert(ctx, fmt.Sprintf("w-alert-%03d", j%300))
			case 5:
				err = src.DeleteMetric(ctx, host.MetricKey{AgentID: fmt.Sprintf("agent-%03d", j%100), Name: fmt.Sprintf("m%d", j%7),
					Timestamp: t0.Add(time.Duration(j) * time.Millisecond)})
			}
			if err != nil && !errors.Is(err, host.ErrNotFound) {
				t.Errorf("writer: %v", err)
				return
			}
		}
	}()

	var buf bytes.Buffer
	gate.armed.Store(true)
	sum, err := backup.Backup(ctx, src, &buf)
	require.NoError(t, err)
	wg.Wait()
	require.True(t, sum.Settled, "the writes stopped during the backup: its replay settles")
	require.NotEmpty(t, sum.Position)
	require.Positive(t, sum.Overrides+sum.Tombstones, "the writer wrote nothing during the backup")
	t.Logf("%s, %d overrides, %d tombstones", sum.Counts, sum.Overrides, sum.Tombstones)

	later := changedSince(t, src, sum.Position)
	dst := openNamed(t, "dst")
	_, err = backup.Restore(ctx, dst, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{})
	require.NoError(t, err)

	want, got := contents(t, src), contents(t, dst)
	compared := 0
	for k, v := range want {
		if later[k] {
			continue
		}
		_, ok := got[k]
		require.True(t, ok, "%s: in the source, not restored", k)
		require.Equal(t, v, got[k], k)
		compared++
	}
	for k := range got {
		if later[k] {
			continue
		}
		_, ok := want[k]
		require.True(t, ok, "%s: restored, not in the source", k)
	}
	require.Greater(t, compared, 5000)
}

// TestRestoreLastFrameWins restores a file whose redo frames replace one
// record and drop another: the last frame of a key wins, a tombstone
// keeps its key out, and Verify counts every frame.
func TestRestoreLastFrameWins(t *testing.T) {
	ctx := context.Background()
	recs := sample(3)
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{Created: t0, Backend: "b", Plugin: "memory", PluginVersion: "1.0.0"})
	require.NoError(t, err)
	for i := range recs {
		require.NoError(t, w.Write(&recs[i]))
	}
	var state, metric int
	for i := range recs {
		switch recs[i].Kind {
		case abi.KindAgentState:
			state = i
		case abi.KindMetric:
			metric = i
		}
	}
	newer := recs[state]
	newer.Override = true
	newer.State.State = []byte(`{"newer":true}`)
	newer.State.Version++
	require.NoError(t, w.Write(&newer))
	newest := newer
	newest.State.Version++
	require.NoError(t, w.Write(&newest))
	gone := backup.Record{Kind: abi.KindMetric, Tombstone: true, Metric: abi.Metric{
		AgentID: recs[metric].Metric.AgentID, Name: recs[metric].Metric.Name, Timestamp: recs[metric].Metric.Timestamp}}
	require.NoError(t, w.Write(&gone))
	require.ErrorContains(t, w.Write(&recs[0]), "a plain record after a redo frame")
	w.Settle("1-2")
	sum, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, int64(2), sum.Overrides)
	require.Equal(t, int64(1), sum.Tombstones)

	got, err := backup.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, sum, got)
	require.True(t, got.Settled)
	require.Equal(t, "1-2", got.Position)
	require.Equal(t, 2, got.Version)

	dst := openNamed(t, "dst")
	var progress backup.RestoreProgress
	res, err := backup.Restore(ctx, dst, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{
		Progress: func(p backup.RestoreProgress) { progress = p },
	})
	require.NoError(t, err)
	require.Equal(t, int64(len(recs)-1), res.Written.Total())
	require.Equal(t, backup.RestoreProgress{Done: got.Counts.Total(), Total: got.Counts.Total()}, progress)
	s, err := dst.GetAgentState(ctx, newest.State.AgentID)
	require.NoError(t, err)
	require.Equal(t, newest.State.Version, s.Version)
	require.JSONEq(t, `{"newer":true}`, string(s.State))
	_, err = dst.GetMetric(ctx, recs[metric].Metric.Key())
	require.ErrorIs(t, err, host.ErrNotFound)

	// A tombstone deletes nothing in the target: restored again over the
	// same backend with skip, the metric written meanwhile stays.
	m := recs[metric].Metric
	_, err = dst.PutMetric(ctx, m)
	require.NoError(t, err)
	_, err = backup.Restore(ctx, dst, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{Mode: abi.RestoreSkip})
	require.NoError(t, err)
	_, err = dst.GetMetric(ctx, m.Key())
	require.NoError(t, err)
}

// TestVersion1 checks that a version 1 file, written before redo frames,
// still verifies and restores.
func TestVersion1(t *testing.T) {
	ctx := context.Background()
	recs := sample(3)
	var buf bytes.Buffer
	w, err := backup.NewWriterV1(&buf, backup.Header{Created: t0, Backend: "b", Plugin: "memory", PluginVersion: "1.0.0"})
	require.NoError(t, err)
	for i := range recs {
		require.NoError(t, w.Write(&recs[i]))
	}
	over := recs[0]
	over.Override = true
	require.Error(t, w.Write(&over), "version 1 has no redo frames")
	w.Settle("1-1")
	_, err = w.Close()
	require.NoError(t, err)
	require.Equal(t, byte(1), buf.Bytes()[len(backup.Magic)])

	sum, err := backup.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, 1, sum.Version)
	require.False(t, sum.Settled)
	require.Equal(t, int64(len(recs)), sum.Counts.Total())
	res, err := backup.Restore(ctx, openNamed(t, "dst"), bytes.NewReader(buf.Bytes()), backup.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(len(recs)), res.Written.Total())
}

// TestBackupWithoutEvents backs up a backend whose events are disabled:
// the backup is written as before, not settled.
func TestBackupWithoutEvents(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Name: "quiet", Plugin: "builtin:memory", DisableEvents: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	fill(t, st, 10, 3, 10)
	var buf bytes.Buffer
	sum, err := backup.Backup(ctx, st, &buf)
	require.NoError(t, err)
	require.False(t, sum.Settled)
	require.Empty(t, sum.Position)
	require.Equal(t, backup.Counts{Metrics: 10, Alerts: 3, AgentStates: 10}, sum.Counts)
	got, err := backup.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, sum, got)
}
