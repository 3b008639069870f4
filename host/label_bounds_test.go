package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// labelsOf returns n labels with values of size bytes.
func labelsOf(n, size int) map[string]string {
	l := make(map[string]string, n)
	for i := range n {
		l[fmt.Sprintf("l%d", i)] = strings.Repeat("v", size)
	}
	return l
}

// TestLabelBoundsRefusedBeforeThePlugin: a metric or alert with more than
// host.MaxLabels labels, or labels over host.MaxLabelBytes, is refused as
// invalid by the host, single or in a batch, and nothing is stored; at
// the bounds it is stored.
func TestLabelBoundsRefusedBeforeThePlugin(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Plugin: "builtin:memory"}, host.WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	for _, c := range []struct {
		name   string
		labels map[string]string
		bound  string
	}{
		{"too many", labelsOf(host.MaxLabels+1, 1), fmt.Sprintf("at most %d per record", host.MaxLabels)},
		{"many thousand", labelsOf(100_000, 1), fmt.Sprintf("at most %d per record", host.MaxLabels)},
		{"too large", labelsOf(2, host.MaxLabelBytes/2), fmt.Sprintf("at most %d per record", host.MaxLabelBytes)},
	} {
		m := host.Metric{AgentID: "a", Name: c.name, Timestamp: ts, Value: 1, Labels: c.labels}
		_, err := st.PutMetric(ctx, m)
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		require.ErrorContains(t, err, c.bound, c.name)
		_, err = st.GetMetric(ctx, host.MetricKey{AgentID: "a", Name: c.name, Timestamp: ts})
		require.ErrorIs(t, err, host.ErrNotFound, "%s: nothing stored", c.name)

		ok := host.Metric{AgentID: "a", Name: c.name + " ok", Timestamp: ts, Value: 1}
		_, err = st.PutMetrics(ctx, []host.Metric{ok, m})
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		require.ErrorContains(t, err, "item 1: ", c.name)
		_, err = st.GetMetric(ctx, host.MetricKey{AgentID: "a", Name: ok.Name, Timestamp: ts})
		require.ErrorIs(t, err, host.ErrNotFound, "%s: a batch is refused whole", c.name)

		a := host.Alert{ID: c.name, AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring, Labels: c.labels}
		_, err = st.PutAlert(ctx, a)
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		require.ErrorContains(t, err, c.bound, c.name)
		_, err = st.PutAlerts(ctx, []host.Alert{a})
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		_, err = st.GetAlert(ctx, c.name)
		require.ErrorIs(t, err, host.ErrNotFound, "%s: nothing stored", c.name)
	}

	// At the bounds, a record is stored.
	atBound := labelsOf(host.MaxLabels, host.MaxLabelBytes/host.MaxLabels-4)
	_, err = st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "at bound", Timestamp: ts, Value: 1, Labels: atBound})
	require.NoError(t, err)
	_, err = st.PutAlert(ctx, host.Alert{ID: "at bound", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring, Labels: atBound})
	require.NoError(t, err)
}

// TestMatcherBoundsRefusedBeforeThePlugin: a query with more than
// host.MaxMatchers label matchers, or matchers over host.MaxMatcherBytes, is
// refused as invalid; at the bounds it is served.
func TestMatcherBoundsRefusedBeforeThePlugin(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Plugin: "builtin:memory"}, host.WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })

	matchers := func(n, size int) []abi.Matcher {
		ms := make([]abi.Matcher, n)
		for i := range ms {
			ms[i] = host.Matcher{Label: "l", Op: abi.MatchRegexp, Value: "(a|b)*c" + strings.Repeat("d", size)}
		}
		return ms
	}
	for _, c := range []struct {
		name  string
		ms    []abi.Matcher
		bound string
	}{
		{"too many", matchers(host.MaxMatchers+1, 0), fmt.Sprintf("at most %d per query", host.MaxMatchers)},
		{"thousands", matchers(4000, 0), fmt.Sprintf("at most %d per query", host.MaxMatchers)},
		{"too large", matchers(host.MaxMatchers, host.MaxMatcherBytes/host.MaxMatchers), fmt.Sprintf("at most %d per query", host.MaxMatcherBytes)},
	} {
		_, err := st.QueryMetrics(ctx, host.MetricQuery{Labels: c.ms})
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		require.ErrorContains(t, err, c.bound, c.name)
		_, err = st.QueryAlerts(ctx, host.AlertQuery{Labels: c.ms})
		require.ErrorIs(t, err, host.ErrInvalid, c.name)
		require.ErrorContains(t, err, c.bound, c.name)
	}
	ms := matchers(host.MaxMatchers, host.MaxMatcherBytes/host.MaxMatchers-16)
	_, err = st.QueryMetrics(ctx, host.MetricQuery{Labels: ms})
	require.NoError(t, err)
	_, err = st.QueryAlerts(ctx, host.AlertQuery{Labels: ms})
	require.NoError(t, err)
}
