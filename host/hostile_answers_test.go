package host_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// The host checks every answer against its request (host/answers.go). The
// Go plugin testdata/plugins/gohostile/wrongkey answers chosen requests
// with another record; each test here would pass that record on (to the
// caller, the event log, the cache) without the checks.

// wrongkeyCache is one compilation cache for every store of this file: a
// Go module is slow to compile.
var wrongkeyCache = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "storage-host-wrongkey-cache-")
	if err != nil {
		panic(err)
	}
	return dir
})

func openWrongkey(t *testing.T, cfg host.Config) (*host.Store, *foreignLog) {
	t.Helper()
	cfg.WASM = goHostilePlugin(t, "wrongkey")
	cfg.Capabilities = []abi.Capability{abi.CapabilityLog, abi.CapabilityClock}
	return openGoHostile(t, cfg, wrongkeyCache())
}

// refused asserts err is the refusal of an answer that did not fit.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, host.ErrInternal)
	assert.ErrorContains(t, err, "answer refused")
	assert.ErrorContains(t, err, want)
}

var ts = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// TestHostileAnswersRefused: every single-record op answered with another
// record, a record outside the query, a page over its limit or a version
// that does not move forward fails with ErrInternal and returns nothing of
// the answer; each refusal is counted and logged.
func TestHostileAnswersRefused(t *testing.T) {
	st, logs := openWrongkey(t, host.Config{Instances: 1})
	ctx := context.Background()
	cases := []struct {
		name, want string
		call       func() (any, error)
	}{
		{"put metric of another agent", `answered "victim-agent"`, func() (any, error) {
			return st.PutMetric(ctx, host.Metric{AgentID: "wrong", Name: "cpu", Timestamp: ts, Value: 1})
		}},
		{"put metric at another time", "asked for metric", func() (any, error) {
			return st.PutMetric(ctx, host.Metric{AgentID: "shifted", Name: "cpu", Timestamp: ts, Value: 1})
		}},
		{"get metric of another agent", `answered "victim-agent"`, func() (any, error) {
			return st.GetMetric(ctx, host.MetricKey{AgentID: "wrong", Name: "cpu", Timestamp: ts})
		}},
		{"metric query outside its agent", `answered a metric of agent "victim-agent"`, func() (any, error) {
			return st.QueryMetrics(ctx, host.MetricQuery{AgentID: "wrong"})
		}},
		{"put alert answered as another alert", `answered alert "victim-alert"`, func() (any, error) {
			return st.PutAlert(ctx, host.Alert{ID: "wrong", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		}},
		{"put alert answered for another agent", `answered for agent "victim-agent"`, func() (any, error) {
			return st.PutAlert(ctx, host.Alert{ID: "wrong-agent", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		}},
		{"get alert answered as another alert", `answered alert "victim-alert"`, func() (any, error) {
			return st.GetAlert(ctx, "wrong")
		}},
		{"get alert answered with a severity outside the table", "no write could have stored: unknown alert severity 9", func() (any, error) {
			return st.GetAlert(ctx, "bad-severity")
		}},
		{"get alert answered with no agent", "no write could have stored: agent id is empty", func() (any, error) {
			return st.GetAlert(ctx, "no-agent")
		}},
		{"status change answered as another alert", `answered alert "victim-alert"`, func() (any, error) {
			return st.SetAlertStatus(ctx, "wrong", abi.AlertAcknowledged)
		}},
		{"status change answered in another status", "answered status 1", func() (any, error) {
			return st.SetAlertStatus(ctx, "wrong-status", abi.AlertResolved)
		}},
		{"alert query outside its agent", `of agent "victim-agent"`, func() (any, error) {
			return st.QueryAlerts(ctx, host.AlertQuery{AgentID: "wrong"})
		}},
		{"put state of another agent", `answered agent "victim-agent"`, func() (any, error) {
			return st.PutAgentState(ctx, host.AgentState{AgentID: "wrong", State: []byte("{}")})
		}},
		{"put state answered version 0", "answered version 0", func() (any, error) {
			return st.PutAgentState(ctx, host.AgentState{AgentID: "zero-version", State: []byte("{}")})
		}},
		{"get state of another agent", `answered agent "victim-agent"`, func() (any, error) {
			return st.GetAgentState(ctx, "wrong")
		}},
		{"state query outside its prefix", `answered agent "victim-agent"`, func() (any, error) {
			return st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "wrong"})
		}},
		{"state page over its limit", "page of 6 records for a limit of 5", func() (any, error) {
			return st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "many", Limit: 5})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := st.RefusedAnswers()
			v, err := c.call()
			refused(t, err, c.want)
			assert.Zero(t, v, "nothing of a refused answer reaches the caller")
			// A refused status change's unknown event names the alert's
			// agent, which the host asks for, and the plugin answers that
			// with another alert too.
			want := uint64(1)
			if c.name == "status change answered as another alert" {
				want = 2
			}
			assert.Equal(t, before+want, st.RefusedAnswers())
			if strings.HasPrefix(c.name, "put") || strings.HasPrefix(c.name, "status change") {
				assert.ErrorIs(t, err, host.ErrOutcomeUnknown, "a write the plugin answered may have been made")
			} else {
				assert.NotErrorIs(t, err, host.ErrOutcomeUnknown, "a read")
			}
		})
	}
	assert.Contains(t, logs.String(), "plugin answer refused")

	t.Run("version that does not move forward", func(t *testing.T) {
		first, err := st.PutAgentState(ctx, host.AgentState{AgentID: "stuck", State: []byte("1")})
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "stuck", State: []byte("2")}, host.IfVersion(first.Version))
		refused(t, err, "does not move forward")
	})

	t.Run("honest answers pass", func(t *testing.T) {
		before := st.RefusedAnswers()
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "a1", Name: "cpu", Timestamp: ts, Value: 1})
		require.NoError(t, err)
		_, err = st.PutAlert(ctx, host.Alert{ID: "al1", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		require.NoError(t, err)
		_, err = st.SetAlertStatus(ctx, "al1", abi.AlertAcknowledged)
		require.NoError(t, err)
		s1, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte("{}")})
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte("{}")}, host.IfVersion(s1.Version))
		require.NoError(t, err)
		_, err = st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "a", Limit: 5})
		require.NoError(t, err)
		assert.Equal(t, before, st.RefusedAnswers())
	})
}

// TestHostileAnswersBulk: each item of a batch is checked against its own
// request item; the honest items of the batch succeed, the others fail
// with ErrInternal and carry no value.
func TestHostileAnswersBulk(t *testing.T) {
	st, _ := openWrongkey(t, host.Config{Instances: 1})
	ctx := context.Background()

	rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "b1", State: []byte("{}")}, {AgentID: "wrong", State: []byte("{}")}})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	assert.Equal(t, "b1", rs[0].Value.AgentID)
	refused(t, rs[1].Err, `item 1: asked for the state of agent "wrong"`)
	assert.Zero(t, rs[1].Value)

	gs, err := st.GetAgentStates(ctx, []string{"b1", "wrong"})
	require.NoError(t, err)
	require.NoError(t, gs[0].Err)
	refused(t, gs[1].Err, "item 1")
	assert.Zero(t, gs[1].Value)

	ms, err := st.PutMetrics(ctx, []host.Metric{{AgentID: "wrong", Name: "cpu", Timestamp: ts}, {AgentID: "a1", Name: "cpu", Timestamp: ts}})
	require.NoError(t, err)
	refused(t, ms[0].Err, "item 0")
	assert.Zero(t, ms[0].Value)
	require.NoError(t, ms[1].Err)

	gm, err := st.GetMetrics(ctx, []host.MetricKey{{AgentID: "shifted", Name: "cpu", Timestamp: ts}, {AgentID: "wrong", Name: "cpu", Timestamp: ts}})
	require.NoError(t, err)
	require.NoError(t, gm[0].Err)
	refused(t, gm[1].Err, "item 1")

	as, err := st.PutAlerts(ctx, []host.Alert{{ID: "wrong-agent", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring}})
	require.NoError(t, err)
	refused(t, as[0].Err, "item 0")

	ga, err := st.GetAlerts(ctx, []string{"wrong", "fine"})
	require.NoError(t, err)
	refused(t, ga[0].Err, "item 0")
	require.NoError(t, ga[1].Err)
	assert.Equal(t, uint64(6), st.RefusedAnswers())
}

// TestHostileAnswersPublishNothing: a refused write publishes nothing for
// the record the plugin answered with; for the record asked for, whose
// write the plugin says it made, it publishes an unknown event (read the
// record). The events of one host are published in order, so once an
// honest write's event has arrived every event before it has too.
func TestHostileAnswersPublishNothing(t *testing.T) {
	st, _ := openWrongkey(t, host.Config{Instances: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "wrong", State: []byte("{}")})
	refused(t, err, "victim-agent")
	_, err = st.PutMetric(ctx, host.Metric{AgentID: "wrong", Name: "cpu", Timestamp: ts})
	refused(t, err, "victim-agent")
	_, err = st.PutAlert(ctx, host.Alert{ID: "wrong-agent", AgentID: "a1", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
	refused(t, err, "victim-agent")
	_, err = st.SetAlertStatus(ctx, "wrong", abi.AlertAcknowledged)
	refused(t, err, "victim-alert")
	rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "wrong", State: []byte("{}")}})
	require.NoError(t, err)
	refused(t, rs[0].Err, "victim-agent")

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "sentinel", State: []byte("{}")})
	require.NoError(t, err)
	unknown := 0
	for {
		select {
		case ev := <-sub.Events():
			if ev.Op == events.OpUnknown {
				require.True(t, ev.AgentID == "wrong" || ev.Key == "wrong" || ev.Key == "wrong-agent", "an unknown event names the record asked for: %+v", ev)
				unknown++
				continue
			}
			require.Equal(t, "sentinel", ev.AgentID, "a refused answer published %+v", ev)
			assert.Equal(t, 5, unknown, "one unknown event per refused write")
			return
		case <-ctx.Done():
			t.Fatal("the sentinel's event never arrived")
		}
	}
}

// TestHostileAnswersCacheUntouched: a get answered with another agent's
// record is not cached under the agent asked for, and a put answered with
// another agent's record does not drop that agent's cached entry.
func TestHostileAnswersCacheUntouched(t *testing.T) {
	st, _ := openWrongkey(t, host.Config{Instances: 1, Cache: host.CacheOptions{Entries: 64}})
	ctx := context.Background()
	require.Eventually(t, func() bool { return st.Stats().Cache.Enabled }, 10*time.Second, 10*time.Millisecond)

	for range 2 {
		_, err := st.GetAgentState(ctx, "wrong")
		refused(t, err, "victim-agent")
		_, err = st.GetAlert(ctx, "wrong")
		refused(t, err, "victim-alert")
	}
	assert.Zero(t, st.Stats().Cache.Entries, "a refused answer was cached")

	// The victim's own state, cached; a put of "wrong" answered with the
	// victim's record must leave that entry alone.
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "victim-agent", State: []byte("mine")})
	require.NoError(t, err)
	// The put's own event arrives when it will, and may keep the read
	// below from filling the cache: the check is tried for up to five
	// seconds, and a refused answer that drops the entry fails every try.
	kept := false
	for try := 0; try < 100 && !kept; try++ {
		_, err = st.GetAgentState(ctx, "victim-agent")
		require.NoError(t, err)
		if st.Stats().Cache.Entries != 1 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "wrong", State: []byte("{}")})
		refused(t, err, "victim-agent")
		hits := st.Stats().Cache.Hits
		got, err := st.GetAgentState(ctx, "victim-agent")
		require.NoError(t, err)
		assert.Equal(t, "mine", string(got.State))
		kept = st.Stats().Cache.Hits == hits+1
	}
	assert.True(t, kept, "the victim's cached entry was dropped")
}

// TestHostileAnswerOfManyLabels: a metric answered with 100 000 labels
// (about 700 KB on the wire, tens of MB once decoded; the same answer
// grown to 16 MiB took a daemon from 165 MB to 3.8 GB at eight requests
// at once) is refused as malformed, as a record past abi.MaxLabels is
// wherever it is decoded (that the decoder stops before it builds the map
// is abi's TestRecordLabelsBounded; here the guest's own growth for its
// map would hide it in the host's heap figures).
func TestHostileAnswerOfManyLabels(t *testing.T) {
	// The plugin builds the 100 000 labels in the call: a minute for it
	// on a loaded machine (the default 5 s was passed under a CI run).
	st, _ := openWrongkey(t, host.Config{Instances: 1, Limits: host.Limits{CallTimeout: time.Minute}})
	ctx := context.Background()
	_, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: "labels"})
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, "100000 labels; at most 64 per record")
	_, err = st.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1"})
	require.NoError(t, err, "the store serves on")
}
