package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// testBulk checks the bulk methods: with FeatureBatch each item keeps the
// single-item contract, results come back in request order, and a failing
// item does not fail its neighbours; without it every bulk method is
// refused.
func (s *suite) testBulk(t *testing.T) {
	if !s.has(abi.FeatureBatch) {
		s.refuseBulk(t)
		return
	}
	if s.has(abi.FeatureAgentStates) {
		t.Run("AgentStates", s.testBulkAgentStates)
	}
	if s.has(abi.FeatureMetrics) {
		t.Run("Metrics", s.testBulkMetrics)
	}
	if s.has(abi.FeatureAlerts) {
		t.Run("Alerts", s.testBulkAlerts)
	}
}

// requireItems requires errs[i] to match want[i] (nil for success).
func requireItems(t *testing.T, want []error, errs []error, what string) {
	t.Helper()
	require.Len(t, errs, len(want), "%s: one result per item", what)
	for i := range want {
		if want[i] == nil {
			require.NoError(t, errs[i], "%s: item %d", what, i)
		} else {
			require.ErrorIs(t, errs[i], want[i], "%s: item %d", what, i)
		}
	}
}

func errsOf[T any](rs []host.Result[T]) []error {
	errs := make([]error, len(rs))
	for i := range rs {
		errs[i] = rs[i].Err
	}
	return errs
}

func (s *suite) testBulkAgentStates(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	ids := make([]string, 150)
	states := make([]host.AgentState, len(ids))
	for i := range ids {
		ids[i] = p + "agent-" + strconv.Itoa(i)
		states[i] = host.AgentState{AgentID: ids[i], State: []byte(`{"i":` + strconv.Itoa(i) + `}`)}
	}
	states[7].AgentID = "" // invalid: fails alone
	put, err := s.st.PutAgentStates(ctx, states)
	require.NoError(t, err)
	want := make([]error, len(states))
	want[7] = host.ErrInvalid
	requireItems(t, want, errsOf(put), "PutAgentStates")
	for i, r := range put {
		if i == 7 {
			continue
		}
		require.Equal(t, ids[i], r.Value.AgentID, "item %d answers for its own agent", i)
		require.NotZero(t, r.Value.Version, "item %d has a version", i)
		got, err := s.st.GetAgentState(ctx, ids[i])
		require.NoError(t, err)
		requireState(t, r.Value, got, "a bulk-written state reads back as put returned it")
	}

	missing := p + "missing"
	got, err := s.st.GetAgentStates(ctx, []string{ids[0], missing, ids[149], ""})
	require.NoError(t, err)
	requireItems(t, []error{nil, host.ErrNotFound, nil, host.ErrInvalid}, errsOf(got), "GetAgentStates")
	requireState(t, put[0].Value, got[0].Value)
	requireState(t, put[149].Value, got[2].Value)

	if s.has(abi.FeatureConcurrency) {
		cas, err := s.st.PutAgentStatesIf(ctx, []host.AgentState{
			{AgentID: ids[0], State: []byte(`{"cas":1}`), Version: put[0].Value.Version}, // current: ok
			{AgentID: ids[1], State: []byte(`{"cas":1}`), Version: put[1].Value.Version + 1000},
			{AgentID: p + "new", State: []byte(`{"cas":1}`)}, // create-only, absent: ok
			{AgentID: ids[2], State: []byte(`{"cas":1}`)},    // create-only, exists
		})
		require.NoError(t, err)
		requireItems(t, []error{nil, host.ErrConflict, nil, host.ErrConflict}, errsOf(cas), "PutAgentStatesIf")
		still, err := s.st.GetAgentState(ctx, ids[1])
		require.NoError(t, err)
		requireState(t, put[1].Value, still, "a conflicting bulk item writes nothing")
	} else {
		_, err := s.st.PutAgentStatesIf(ctx, states[:1])
		requireUnsupported(t, err, "PutAgentStatesIf")
	}

	errs, err := s.st.DeleteAgentStates(ctx, []string{ids[3], missing, ids[4]})
	require.NoError(t, err)
	requireItems(t, []error{nil, host.ErrNotFound, nil}, errs, "DeleteAgentStates")
	_, err = s.st.GetAgentState(ctx, ids[3])
	require.ErrorIs(t, err, host.ErrNotFound)

	empty, err := s.st.PutAgentStates(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, empty, "an empty batch answers no items")
}

func (s *suite) testBulkMetrics(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	ms := make([]host.Metric, 20)
	keys := make([]host.MetricKey, len(ms))
	for i := range ms {
		ms[i] = host.Metric{AgentID: p + "agent", Name: "tokens", Value: float64(i) - 0.5, Timestamp: base.Add(time.Duration(i) * time.Second), Labels: map[string]string{"i": strconv.Itoa(i)}}
		keys[i] = ms[i].Key()
	}
	ms[5].Timestamp = time.Time{} // invalid: fails alone
	put, err := s.st.PutMetrics(ctx, ms)
	require.NoError(t, err)
	want := make([]error, len(ms))
	want[5] = host.ErrInvalid
	requireItems(t, want, errsOf(put), "PutMetrics")

	got, err := s.st.GetMetrics(ctx, keys)
	require.NoError(t, err)
	want[5] = host.ErrNotFound
	requireItems(t, want, errsOf(got), "GetMetrics")
	for i := range got {
		if i != 5 {
			requireMetric(t, put[i].Value, got[i].Value, "item %d", i)
		}
	}

	errs, err := s.st.DeleteMetrics(ctx, keys[:7])
	require.NoError(t, err)
	requireItems(t, []error{nil, nil, nil, nil, nil, host.ErrNotFound, nil}, errs, "DeleteMetrics")
	_, err = s.st.GetMetric(ctx, keys[0])
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = s.st.GetMetric(ctx, keys[7])
	require.NoError(t, err, "a sample outside the delete batch stays")
}

func (s *suite) testBulkAlerts(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	first, err := s.st.PutAlert(ctx, host.Alert{ID: p + "resolved", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertResolved, Message: "done"})
	require.NoError(t, err)
	as := []host.Alert{
		{ID: p + "a", AgentID: p + "agent", Severity: abi.SeverityCritical, Status: abi.AlertFiring, Message: "disk"},
		{ID: p + "resolved", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertAcknowledged}, // resolved → acknowledged is refused
		{ID: p + "b", AgentID: p + "agent", Severity: 9, Status: abi.AlertFiring},                                // invalid severity
	}
	put, err := s.st.PutAlerts(ctx, as)
	require.NoError(t, err)
	requireItems(t, []error{nil, host.ErrConflict, host.ErrInvalid}, errsOf(put), "PutAlerts")

	got, err := s.st.GetAlerts(ctx, []string{p + "a", p + "resolved", p + "b"})
	require.NoError(t, err)
	requireItems(t, []error{nil, nil, host.ErrNotFound}, errsOf(got), "GetAlerts")
	requireAlert(t, put[0].Value, got[0].Value)
	requireAlert(t, first, got[1].Value, "a refused transition in a batch changes nothing")

	errs, err := s.st.DeleteAlerts(ctx, []string{p + "a", p + "b"})
	require.NoError(t, err)
	requireItems(t, []error{nil, host.ErrNotFound}, errs, "DeleteAlerts")
}

func (s *suite) refuseBulk(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	key := host.MetricKey{AgentID: p + "agent", Name: "n", Timestamp: ts}
	_, err := s.st.PutMetrics(ctx, []host.Metric{{AgentID: key.AgentID, Name: key.Name, Timestamp: ts}})
	requireUnsupported(t, err, "PutMetrics")
	_, err = s.st.GetMetrics(ctx, []host.MetricKey{key})
	requireUnsupported(t, err, "GetMetrics")
	_, err = s.st.DeleteMetrics(ctx, []host.MetricKey{key})
	requireUnsupported(t, err, "DeleteMetrics")
	_, err = s.st.PutAlerts(ctx, []host.Alert{{ID: p + "a", AgentID: key.AgentID, Severity: abi.SeverityInfo, Status: abi.AlertFiring}})
	requireUnsupported(t, err, "PutAlerts")
	_, err = s.st.GetAlerts(ctx, []string{p + "a"})
	requireUnsupported(t, err, "GetAlerts")
	_, err = s.st.DeleteAlerts(ctx, []string{p + "a"})
	requireUnsupported(t, err, "DeleteAlerts")
	_, err = s.st.PutAgentStates(ctx, []host.AgentState{{AgentID: key.AgentID}})
	requireUnsupported(t, err, "PutAgentStates")
	_, err = s.st.GetAgentStates(ctx, []string{key.AgentID})
	requireUnsupported(t, err, "GetAgentStates")
	_, err = s.st.DeleteAgentStates(ctx, []string{key.AgentID})
	requireUnsupported(t, err, "DeleteAgentStates")
	// Nothing was written by the refused calls.
	if s.has(abi.FeatureAgentStates) {
		_, err = s.st.GetAgentState(ctx, key.AgentID)
		require.ErrorIs(t, err, host.ErrNotFound)
	}
}
