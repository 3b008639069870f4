package sdk

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// These tests run the dispatcher natively: the stores below make no host
// calls, so nothing needs a wasm host.

type stubStates struct{}

func (stubStates) PutAgentState(*abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{}, nil
}
func (stubStates) GetAgentState(string) (abi.AgentState, error) { return abi.AgentState{}, nil }
func (stubStates) DeleteAgentState(*abi.DeleteAgentState) error { return nil }

// restorer records the restores it serves and answers written, err.
type restorer struct {
	got     []abi.Restore
	written bool
	err     error
}

func (r *restorer) Restore(req *abi.Restore) (bool, error) {
	r.got = append(r.got, *req)
	return r.written, r.err
}

// call serves one request and returns the response's status and body.
func call(t *testing.T, d *dispatcher, op abi.Op, req []byte) (abi.Status, []byte) {
	t.Helper()
	var e abi.Encoder
	d.handle(op, req, &e)
	resp := e.Bytes()
	require.NotEmpty(t, resp)
	return abi.Status(resp[0]), resp[1:]
}

func encode(m interface{ Encode(*abi.Encoder) }) []byte {
	var e abi.Encoder
	m.Encode(&e)
	return e.Bytes()
}

func validState() abi.Restore {
	return abi.Restore{Kind: abi.KindAgentState, Mode: abi.RestoreFail, State: abi.AgentState{
		AgentID: "a1", State: []byte("x"), Version: 7, UpdatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}}
}

type queryingStates struct{ stubStates }

func (queryingStates) QueryAgentStates(*abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	return abi.Page[abi.AgentState]{}, nil
}

type stubAlerts struct{}

func (stubAlerts) PutAlert(*abi.PutAlert) (abi.Alert, error)             { return abi.Alert{}, nil }
func (stubAlerts) GetAlert(string) (abi.Alert, error)                    { return abi.Alert{}, nil }
func (stubAlerts) DeleteAlert(string) error                              { return nil }
func (stubAlerts) SetAlertStatus(*abi.SetAlertStatus) (abi.Alert, error) { return abi.Alert{}, nil }

// One feature bit covers the queries of every kind served: a plugin
// that serves some is refused at Register rather than left with query
// methods the host never calls.
func TestQueriesOfSomeKindsRefused(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: queryingStates{}})
	assert.True(t, d.meta.Features.Has(abi.FeatureQuery))
	d = newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Alerts: stubAlerts{}})
	assert.False(t, d.meta.Features.Has(abi.FeatureQuery), "no kind served with queries: none advertised")
	assert.PanicsWithValue(t, "sdk: queries are served for agent states (QueryAgentStates) but not for alerts (QueryAlerts): "+
		"the query feature covers every record kind a plugin serves (abi/README.md, section 9), so none would be called; "+
		"implement the missing method, or none",
		func() { newDispatcher(Plugin{Name: "p", AgentStates: queryingStates{}, Alerts: stubAlerts{}}) })
}

func TestRestoreNotAdvertisedByItself(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, TTL: true, Concurrency: true})
	assert.False(t, d.meta.Features.Has(abi.FeatureRestore), "the SDK advertises restore only for a Restorer")
	r := validState()
	st, _ := call(t, d, abi.OpRestore, encode(&r))
	assert.Equal(t, abi.StatusUnsupported, st)
}

func TestRestoreDispatch(t *testing.T) {
	rs := &restorer{written: true}
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Restorer: rs})
	assert.True(t, d.meta.Features.Has(abi.FeatureRestore))
	assert.Equal(t, abi.Current, d.meta.ABI)

	r := validState()
	st, body := call(t, d, abi.OpRestore, encode(&r))
	require.Equal(t, abi.StatusOK, st, "body %q", body)
	assert.Equal(t, []byte{1}, body, "written true")
	require.Len(t, rs.got, 1)
	assert.Equal(t, r, rs.got[0])

	rs.written = false
	st, body = call(t, d, abi.OpRestore, encode(&r))
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, []byte{0}, body, "written false")

	rs.err = fmt.Errorf("agent a1: %w", ErrConflict)
	st, body = call(t, d, abi.OpRestore, encode(&r))
	assert.Equal(t, abi.StatusConflict, st)
	assert.Equal(t, "agent a1", string(body))
}

func TestRestoreRefusals(t *testing.T) {
	rs := &restorer{written: true}
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Restorer: rs}) // no TTL
	version0 := validState()
	version0.State.Version = 0
	badMode := validState()
	badMode.Mode = 0
	metric := abi.Restore{Kind: abi.KindMetric, Mode: abi.RestoreFail,
		Metric: abi.Metric{AgentID: "a", Name: "n", Timestamp: time.Unix(1, 0)}}
	expiring := validState()
	expiring.State.ExpiresAt = time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		req  []byte
		want abi.Status
	}{
		{"truncated", encode(&version0)[:3], abi.StatusInvalid},
		{"trailing byte", append(encode(&metric), 0), abi.StatusInvalid},
		{"unknown kind", []byte{9, 1}, abi.StatusInvalid},
		{"version 0", encode(&version0), abi.StatusInvalid},
		{"unknown mode", encode(&badMode), abi.StatusInvalid},
		{"a kind the plugin does not store", encode(&metric), abi.StatusUnsupported},
		{"an expiry without ttl", encode(&expiring), abi.StatusUnsupported},
	} {
		st, body := call(t, d, abi.OpRestore, tc.req)
		assert.Equal(t, tc.want, st, "%s: %s", tc.name, body)
	}
	assert.Empty(t, rs.got, "no refused restore reaches the Restorer")
}

// TestRestoreInBatch: without a Batcher the SDK serves restore items one
// by one, each with its own result.
func TestRestoreInBatch(t *testing.T) {
	rs := &restorer{written: true}
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Restorer: rs})
	ok, bad := validState(), validState()
	bad.State.AgentID = ""
	var e abi.Encoder
	abi.EncodeBatch(&e, []abi.BatchItem{
		{Op: abi.OpRestore, Payload: encode(&ok)},
		{Op: abi.OpRestore, Payload: encode(&bad)},
	})
	st, body := call(t, d, abi.OpBatch, e.Bytes())
	require.Equal(t, abi.StatusOK, st)
	dec := abi.NewDecoder(body)
	results := abi.DecodeBatchResults(dec)
	require.NoError(t, dec.Finish())
	require.Len(t, results, 2)
	assert.Equal(t, abi.BatchResult{Status: abi.StatusOK, Body: []byte{1}}, results[0])
	assert.Equal(t, abi.StatusInvalid, results[1].Status)
	assert.Len(t, rs.got, 1)
}

// TestPublishChecksFirst: an event Check refuses never reaches the host
// (natively, a host call would panic).
func TestPublishChecksFirst(t *testing.T) {
	for _, ev := range []abi.PluginEvent{
		{},
		{Kind: "metrics", Op: "put"},
		{Kind: "wf", Op: "done", Data: make([]byte, abi.MaxEventData+1)},
	} {
		err := Publish(ev)
		require.Error(t, err)
		var ae *abi.Error
		require.True(t, errors.As(err, &ae), "%v", err)
		assert.Contains(t, []abi.Status{abi.StatusInvalid, abi.StatusLimit}, ae.Status)
	}
	assert.Panics(t, func() { _ = Publish(abi.PluginEvent{Kind: "wf", Op: "done"}) }, "a valid event goes to the host")
}

// bufferingStates answers every write as buffered (ErrStale).
type bufferingStates struct{}

func (bufferingStates) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{AgentID: r.State.AgentID, Version: 9}, ErrStale
}
func (bufferingStates) GetAgentState(string) (abi.AgentState, error) { return abi.AgentState{}, nil }
func (bufferingStates) DeleteAgentState(*abi.DeleteAgentState) error {
	return fmt.Errorf("buffered: %w", ErrStale)
}

func TestTickDispatch(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}})
	assert.False(t, d.meta.Features.Has(abi.FeatureTick), "no Tick hook, no tick feature")
	st, _ := call(t, d, abi.OpTick, nil)
	assert.Equal(t, abi.StatusUnsupported, st)

	want := abi.TickResult{More: true, Pending: 3, Writes: []abi.TickWrite{{Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "a"}}}}
	ticks := 0
	var resumed []bool
	d = newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Tick: func() (abi.TickResult, error) {
		ticks++
		resumed = append(resumed, TickResumed())
		return want, nil
	}})
	assert.True(t, d.meta.Features.Has(abi.FeatureTick))
	st, body := call(t, d, abi.OpTick, nil)
	require.Equal(t, abi.StatusOK, st, "body %q", body)
	assert.Equal(t, 1, ticks)
	assert.Equal(t, encode(&want), body)

	// ABI 1.7: a TickRequest, whose resumed the hook reads.
	for _, req := range [][]byte{{1}, {0}} {
		st, _ = call(t, d, abi.OpTick, req)
		require.Equal(t, abi.StatusOK, st)
	}
	assert.Equal(t, []bool{false, true, false}, resumed, "an empty request (a host of 1.6 or older) is not resumed")
	assert.False(t, TickResumed(), "outside a tick")

	st, _ = call(t, d, abi.OpTick, []byte{0, 0})
	assert.Equal(t, abi.StatusInvalid, st, "a TickRequest with trailing bytes")
}

func TestBufferedWrites(t *testing.T) {
	tick := func() (abi.TickResult, error) { return abi.TickResult{}, nil }
	put := abi.PutAgentState{State: abi.AgentState{AgentID: "a1"}}
	del := abi.DeleteAgentState{AgentID: "a1"}

	d := newDispatcher(Plugin{Name: "p", AgentStates: bufferingStates{}, Tick: tick})
	st, body := call(t, d, abi.OpPutAgentState, encode(&put))
	require.Equal(t, abi.StatusStale, st, "a buffered put is STALE, with its result")
	assert.Equal(t, encode(&abi.AgentState{AgentID: "a1", Version: 9}), body)
	st, body = call(t, d, abi.OpDeleteAgentState, encode(&del))
	assert.Equal(t, abi.StatusStale, st)
	assert.Empty(t, body)

	// Without a Tick hook nothing would ever report the write.
	d = newDispatcher(Plugin{Name: "p", AgentStates: bufferingStates{}})
	st, _ = call(t, d, abi.OpPutAgentState, encode(&put))
	assert.Equal(t, abi.StatusInternal, st)
	st, _ = call(t, d, abi.OpDeleteAgentState, encode(&del))
	assert.Equal(t, abi.StatusInternal, st)
}
