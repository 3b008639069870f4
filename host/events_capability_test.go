package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// openEventsPlugin opens testdata/plugins/events.wat, which publishes the
// PluginEvent it is sent as an agent state's document and answers with
// publish's status.
func openEventsPlugin(t *testing.T, cfg host.Config) *host.Store {
	t.Helper()
	cfg.Plugin = foreignPath("events")
	if cfg.Capabilities == nil {
		cfg.Capabilities = []abi.Capability{abi.CapabilityEvents}
	}
	st, err := host.Open(t.Context(), cfg, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// publish makes the plugin publish ev and returns publish's answer.
func publish(st *host.Store, ev abi.PluginEvent) error {
	var e abi.Encoder
	ev.Encode(&e)
	_, err := st.PutAgentState(context.Background(), host.AgentState{AgentID: "a", State: e.Bytes()})
	return err
}

func TestPluginPublishesEvents(t *testing.T) {
	ctx := context.Background()
	st := openEventsPlugin(t, host.Config{})
	sub, err := st.Subscribe(ctx, events.Filter{Kinds: []string{"deploy"}}, "")
	require.NoError(t, err)
	defer sub.Close()
	ops, err := st.Subscribe(ctx, events.Filter{Ops: []string{"rolled-back"}, AgentIDs: []string{"a7"}}, "")
	require.NoError(t, err)
	defer ops.Close()

	before := time.Now()
	require.NoError(t, publish(st, abi.PluginEvent{Kind: "deploy", Op: "started", AgentID: "a7", Key: "v1.2", Data: []byte{0, 1, 2}}))
	require.NoError(t, publish(st, abi.PluginEvent{Kind: "deploy", Op: "rolled-back", AgentID: "a7"}))
	require.NoError(t, publish(st, abi.PluginEvent{Kind: "other", Op: "rolled-back", AgentID: "a8"}))

	e := nextEvent(t, sub)
	assert.Equal(t, events.Event{ID: e.ID, Kind: "deploy", Op: "started", AgentID: "a7", Key: "v1.2", Time: e.Time, Data: []byte{0, 1, 2}}, e)
	assert.WithinDuration(t, before, e.Time, time.Minute, "stamped by the host clock")
	assert.Equal(t, "rolled-back", nextEvent(t, sub).Op)
	e = nextEvent(t, ops)
	assert.Equal(t, "deploy", e.Kind, "the filters apply to plugin events as to the host's")

	// Refused, each with its status, and nothing published.
	for name, c := range map[string]struct {
		ev     abi.PluginEvent
		status abi.Status
	}{
		"reserved kind":  {abi.PluginEvent{Kind: "agent_states", Op: "put", AgentID: "a"}, abi.StatusInvalid},
		"empty op":       {abi.PluginEvent{Kind: "deploy"}, abi.StatusInvalid},
		"upper case":     {abi.PluginEvent{Kind: "Deploy", Op: "x"}, abi.StatusInvalid},
		"data too large": {abi.PluginEvent{Kind: "deploy", Op: "x", Data: make([]byte, abi.MaxEventData+1)}, abi.StatusLimit},
		"bad agent":      {abi.PluginEvent{Kind: "deploy", Op: "x", AgentID: "a\x00b"}, abi.StatusInvalid},
	} {
		err := publish(st, c.ev)
		assert.ErrorIs(t, err, c.status, name)
	}
	// Malformed bytes: not a PluginEvent at all.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte{0xff}})
	assert.ErrorIs(t, err, abi.StatusInvalid)
	select {
	case e := <-sub.Events():
		t.Fatalf("a refused event was published: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}

	// Past the rate (1000 a second, bursts of 1000), LIMIT.
	var limited int
	for range 1500 {
		if err := publish(st, abi.PluginEvent{Kind: "flood", Op: "x"}); err != nil {
			require.ErrorIs(t, err, abi.StatusLimit)
			limited++
		}
	}
	assert.Greater(t, limited, 0)
}

func TestEventsCapabilityIsGranted(t *testing.T) {
	_, err := host.Open(t.Context(), host.Config{Plugin: foreignPath("events"), Capabilities: []abi.Capability{abi.CapabilityLog}},
		host.WithCompilationCache(benchCache))
	require.ErrorIs(t, err, host.ErrIncompatible)
	assert.Contains(t, err.Error(), "events")

	_, err = host.Open(t.Context(), host.Config{Plugin: foreignPath("events"), Capabilities: []abi.Capability{abi.CapabilityEvents}, DisableEvents: true},
		host.WithCompilationCache(benchCache))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "events are disabled"), err.Error())
}

func nextEvent(t *testing.T, s *events.Subscription) events.Event {
	t.Helper()
	select {
	case e, ok := <-s.Events():
		require.True(t, ok, "subscription ended: %v", s.Err())
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return events.Event{}
	}
}
