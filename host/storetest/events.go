package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// RunEvents checks the events a store publishes (host.Store.Subscribe):
// one per write, delete and status change, single and bulk, with the
// record's kind, agent, key and version, in the order of the writes; an
// expire event when a record the store wrote expires; and resuming after
// an event ID. The opener's store must have events enabled and support
// every kind, TTLs and batches (the built-in backends do).
func RunEvents(t *testing.T, open Opener) {
	s := &suite{open: open, run: newRunPrefix()}
	t.Run("Writes", func(t *testing.T) { s.eventsOfWrites(t) })
	t.Run("Expiry", func(t *testing.T) { s.eventsOfExpiry(t) })
	t.Run("Resume", func(t *testing.T) { s.eventsResume(t) })
	t.Run("Restore", func(t *testing.T) { s.eventsOfRestore(t) })
}

// eventsOfRestore: a restore is a write: each record it wrote is a put
// event with the restored version; one it skipped is none.
func (s *suite) eventsOfRestore(t *testing.T) {
	ctx := context.Background()
	st := s.openStore(t)
	agent := s.prefix() + "agent"
	sub, err := st.Subscribe(ctx, events.Filter{AgentIDs: []string{agent}}, "")
	require.NoError(t, err)
	defer sub.Close()
	now := time.Now()
	state := host.AgentState{AgentID: agent, State: []byte(`{}`), Version: 41, UpdatedAt: now}
	rs, err := st.Restore(ctx, []host.Restore{
		{Kind: host.KindAgentState, State: state, Mode: host.RestoreFail},
		{Kind: host.KindAgentState, State: state, Mode: host.RestoreSkip},
	})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.True(t, rs[0].Value)
	require.NoError(t, rs[1].Err)
	require.False(t, rs[1].Value, "skipped")
	e := nextEvent(t, sub)
	assert.Equal(t, events.OpPut, e.Op)
	assert.Equal(t, uint64(41), e.Version)
	select {
	case e := <-sub.Events():
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

// nextEvent receives one event or fails after a while: a long while, for
// a loaded machine.
func nextEvent(t *testing.T, s *events.Subscription) events.Event {
	t.Helper()
	select {
	case e, ok := <-s.Events():
		require.True(t, ok, "subscription ended: %v", s.Err())
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
		return events.Event{}
	}
}

func (s *suite) eventsOfWrites(t *testing.T) {
	ctx := context.Background()
	st := s.openStore(t)
	p := s.prefix()
	agent := p + "agent"
	sub, err := st.Subscribe(ctx, events.Filter{AgentIDs: []string{agent}}, "")
	require.NoError(t, err)
	defer sub.Close()

	type want struct {
		kind, op, key string
		version       uint64
	}
	var wants []want
	ts := time.Unix(1_700_000_000, 5).UTC()

	m, err := st.PutMetric(ctx, host.Metric{AgentID: agent, Name: "cpu", Value: 1, Timestamp: ts})
	require.NoError(t, err)
	mkey := "cpu@" + ts.Format(time.RFC3339Nano)
	wants = append(wants, want{abi.KindMetric.Name(), events.OpPut, mkey, 0})
	require.NoError(t, st.DeleteMetric(ctx, host.MetricKey{AgentID: m.AgentID, Name: m.Name, Timestamp: m.Timestamp}))
	wants = append(wants, want{abi.KindMetric.Name(), events.OpDelete, mkey, 0})

	a, err := st.PutAlert(ctx, host.Alert{ID: p + "al", AgentID: agent, Severity: abi.SeverityCritical, Status: abi.AlertFiring})
	require.NoError(t, err)
	wants = append(wants, want{abi.KindAlert.Name(), events.OpPut, a.ID, uint64(a.UpdatedAt.UnixNano())})
	a, err = st.SetAlertStatus(ctx, a.ID, abi.AlertAcknowledged)
	require.NoError(t, err)
	wants = append(wants, want{abi.KindAlert.Name(), events.OpStatus, a.ID, uint64(a.UpdatedAt.UnixNano())})
	require.NoError(t, st.DeleteAlert(ctx, a.ID))
	wants = append(wants, want{abi.KindAlert.Name(), events.OpDelete, a.ID, 0})

	for range 3 {
		s, err := st.PutAgentState(ctx, host.AgentState{AgentID: agent, State: []byte(`{}`)})
		require.NoError(t, err)
		wants = append(wants, want{abi.KindAgentState.Name(), events.OpPut, agent, s.Version})
	}
	require.NoError(t, st.DeleteAgentState(ctx, agent))
	wants = append(wants, want{abi.KindAgentState.Name(), events.OpDelete, agent, 0})

	// A failed write publishes nothing.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: agent}, host.IfVersion(1))
	require.ErrorIs(t, err, host.ErrConflict)
	require.ErrorIs(t, st.DeleteAgentState(ctx, agent), host.ErrNotFound)

	// Bulk writes publish one event per item that succeeded.
	rs, err := st.PutAgentStatesIf(ctx, []host.AgentState{{AgentID: agent, State: []byte(`1`)}, {AgentID: agent, State: []byte(`2`)}})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.ErrorIs(t, rs[1].Err, host.ErrConflict, "the second is create-only too")
	wants = append(wants, want{abi.KindAgentState.Name(), events.OpPut, agent, rs[0].Value.Version})
	ms, err := st.PutMetrics(ctx, []host.Metric{{AgentID: agent, Name: "mem", Value: 2, Timestamp: ts}})
	require.NoError(t, err)
	require.NoError(t, ms[0].Err)
	wants = append(wants, want{abi.KindMetric.Name(), events.OpPut, "mem@" + ts.Format(time.RFC3339Nano), 0})
	as, err := st.PutAlerts(ctx, []host.Alert{{ID: p + "al2", AgentID: agent, Severity: abi.SeverityInfo, Status: abi.AlertFiring}})
	require.NoError(t, err)
	require.NoError(t, as[0].Err)
	wants = append(wants, want{abi.KindAlert.Name(), events.OpPut, p + "al2", uint64(as[0].Value.UpdatedAt.UnixNano())})
	errs, err := st.DeleteAlerts(ctx, []string{p + "al2", p + "missing"})
	require.NoError(t, err)
	require.ErrorIs(t, errs[1], host.ErrNotFound)
	wants = append(wants, want{abi.KindAlert.Name(), events.OpDelete, p + "al2", 0})
	errs, err = st.DeleteAgentStates(ctx, []string{agent})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	wants = append(wants, want{abi.KindAgentState.Name(), events.OpDelete, agent, 0})
	errs, err = st.DeleteMetrics(ctx, []host.MetricKey{{AgentID: agent, Name: "mem", Timestamp: ts}})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	wants = append(wants, want{abi.KindMetric.Name(), events.OpDelete, "mem@" + ts.Format(time.RFC3339Nano), 0})

	for i, w := range wants {
		e := nextEvent(t, sub)
		got := want{e.Kind, e.Op, e.Key, e.Version}
		require.Equal(t, w, got, "event %d", i)
		assert.Equal(t, agent, e.AgentID, "event %d", i)
		assert.WithinDuration(t, time.Now(), e.Time, time.Minute, "event %d", i)
		assert.NotEmpty(t, e.ID)
	}
	select {
	case e := <-sub.Events():
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func (s *suite) eventsOfExpiry(t *testing.T) {
	ctx := context.Background()
	st := s.openStore(t)
	agent := s.prefix() + "agent"
	sub, err := st.Subscribe(ctx, events.Filter{AgentIDs: []string{agent}, Ops: []string{events.OpExpire}}, "")
	require.NoError(t, err)
	defer sub.Close()
	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: agent, State: []byte(`{}`)}, host.WithTTL(10*time.Second))
	require.NoError(t, err)
	// Rewritten before it expires, with a shorter TTL (so that a slow
	// machine cannot let the first expire before the rewrite): only the
	// second write's expiry counts.
	saved, err = st.PutAgentState(ctx, host.AgentState{AgentID: agent, State: []byte(`{}`)}, host.WithTTL(400*time.Millisecond))
	require.NoError(t, err)
	ts := time.Now().Truncate(time.Second)
	_, err = st.PutMetric(ctx, host.Metric{AgentID: agent, Name: "m", Value: 1, Timestamp: ts}, host.WithTTL(300*time.Millisecond))
	require.NoError(t, err)
	// A record deleted before its expiry does not expire.
	_, err = st.PutAlert(ctx, host.Alert{ID: agent + "-gone", AgentID: agent, Severity: abi.SeverityInfo, Status: abi.AlertFiring}, host.WithTTL(300*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, st.DeleteAlert(ctx, agent+"-gone"))

	// Two expiries, in either order (a slow machine may space the writes
	// by more than the TTLs differ).
	got := map[string]events.Event{}
	for range 2 {
		e := nextEvent(t, sub)
		got[e.Kind] = e
	}
	require.Contains(t, got, abi.KindMetric.Name())
	assert.Equal(t, "m@"+ts.UTC().Format(time.RFC3339Nano), got[abi.KindMetric.Name()].Key)
	require.Contains(t, got, abi.KindAgentState.Name())
	e := got[abi.KindAgentState.Name()]
	assert.Equal(t, saved.Version, e.Version)
	assert.Equal(t, saved.ExpiresAt, e.Time, "an expire event is stamped with the expiry")
	_, err = st.GetAgentState(ctx, agent)
	assert.ErrorIs(t, err, host.ErrNotFound)
	select {
	case e := <-sub.Events():
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
}

func (s *suite) eventsResume(t *testing.T) {
	ctx := context.Background()
	st := s.openStore(t)
	agent := s.prefix() + "agent"
	f := events.Filter{AgentIDs: []string{agent}}
	sub, err := st.Subscribe(ctx, f, "")
	require.NoError(t, err)
	for i := range 5 {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: agent, State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
	}
	var seen []events.Event
	for range 2 {
		seen = append(seen, nextEvent(t, sub))
	}
	sub.Close()
	again, err := st.Subscribe(ctx, f, seen[1].ID)
	require.NoError(t, err)
	defer again.Close()
	prev := seen[1].Version
	for range 3 {
		e := nextEvent(t, again)
		assert.Greater(t, e.Version, prev, "in write order")
		prev = e.Version
	}
	st.Close(ctx)
	for range again.Events() {
	}
	assert.ErrorIs(t, again.Err(), events.ErrClosed)
	_, err = st.Subscribe(ctx, f, "")
	assert.ErrorIs(t, err, host.ErrClosed)
}
