package host_test

import (
	"context"
	"fmt"
	"strings"
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

// A plugin's own events hold a bounded room in its backend's log however
// large each one is: the bytes past an event's first 256 add up to at most
// 256 for each event the log retains. An outside
// check grew a shared Redis from 29 to 827 MB in 40 s, publishing events
// of 17 KiB at the allowed rate.
func TestPluginEventsHoldABoundedRoomInTheLog(t *testing.T) {
	big := abi.PluginEvent{Kind: "flood", Op: "big", Data: make([]byte, abi.MaxEventData)}
	small := abi.PluginEvent{Kind: "flood", Op: "small"}
	var e abi.Encoder
	big.Encode(&e)
	bigSize := len(e.Bytes())

	t.Run("room comes back as the log moves on", func(t *testing.T) {
		const retention = 200 // room for 51 200 bytes: three big events
		st := openEventsPlugin(t, host.Config{Events: events.Options{Retention: retention}})
		fits := retention * 256 / (bigSize - 256)
		require.Equal(t, 3, fits)
		for range fits {
			require.NoError(t, publish(st, big))
		}
		require.ErrorIs(t, publish(st, big), abi.StatusLimit, "past its room")
		// The log holds the last 200 events; the first big one is the
		// first of them, and six are in. Each publish below adds two, the
		// plugin's and the host's for the write: after 97, the log holds
		// 200 and the first big one is still in it, after 98 it is out and
		// its room is free again.
		for range 97 {
			require.NoError(t, publish(st, small))
		}
		require.ErrorIs(t, publish(st, big), abi.StatusLimit, "the first big event is still in the log")
		require.NoError(t, publish(st, small))
		require.NoError(t, publish(st, big))
	})

	t.Run("a flood into a shared Redis", func(t *testing.T) {
		addr := redistest.Addr(t)
		prefix := redistest.Prefix(t, addr)
		const retention = 2000 // room for 512 000 bytes past 256 an event
		st := openEventsPlugin(t, host.Config{
			Redis:  &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: prefix},
			Events: events.Options{Retention: retention},
		})
		// Big events as fast as the rate allows, small ones between them
		// to move the log on: without the room, the stream would keep
		// about a thousand of the big ones (16 MiB).
		var published, rounds int
		for start := time.Now(); time.Since(start) < 2*time.Second; rounds++ {
			if err := publish(st, big); err == nil {
				published++
			} else {
				require.ErrorIs(t, err, abi.StatusLimit)
			}
			if err := publish(st, small); err != nil {
				require.ErrorIs(t, err, abi.StatusLimit)
			}
		}
		require.Greater(t, published, 10, "the room lets big events through as the log moves on")
		require.NoError(t, st.Close(context.Background())) // appends what is queued

		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		entries, err := c.XRange(context.Background(), "__host__:{"+prefix+"}:events", "-", "+").Result()
		require.NoError(t, err)
		var held int
		for _, en := range entries {
			if en.Values["k"] == "flood" {
				held += len(fmt.Sprint(en.Values["d"]))
			}
		}
		// The stream is trimmed with MAXLEN ~, which keeps up to one node
		// of entries (100) past the retention: those may be big ones.
		bound := retention*512 + 100*bigSize
		assert.LessOrEqual(t, held, bound, "bytes of the plugin's events in the stream (%d entries)", len(entries))
		t.Logf("%d rounds, %d big events published; %d bytes of the plugin's events in a stream of %d entries (bound %d)", rounds, published, held, len(entries), bound)
	})
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
