package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// testPolicy checks the policy the backend declared (Policy).
func (s *suite) testPolicy(t *testing.T) {
	if keep := s.policy.MaxSamplesPerSeries; keep > 0 && s.has(abi.FeatureMetrics) {
		t.Run("Retention", func(t *testing.T) { s.testRetention(t, keep) })
	}
}

// testRetention: a series written keep+5 times, in shuffled time order,
// holds the newest keep samples; the older ones are NOT_FOUND; another
// series of the agent is untouched.
func (s *suite) testRetention(t *testing.T, keep int) {
	ctx := t.Context()
	p := s.prefix()
	agent := p + "agent"
	base := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	n := keep + 5
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// The five oldest are written last but one: a backend must drop by
	// timestamp, not by arrival.
	order = append(append(order[5:n-1:n-1], order[:5]...), order[n-1])
	other, err := s.st.PutMetric(ctx, host.Metric{AgentID: agent, Name: "other", Value: 1, Timestamp: base})
	require.NoError(t, err)
	for _, i := range order {
		_, err := s.st.PutMetric(ctx, host.Metric{AgentID: agent, Name: "kept", Value: float64(i), Timestamp: base.Add(time.Duration(i) * time.Second)})
		require.NoError(t, err)
	}
	got := queryMetrics(t, s.st, host.MetricQuery{AgentID: agent, Name: "kept"}, keep)
	require.Len(t, got, keep, "the series holds the newest %d samples", keep)
	for j, m := range got {
		require.Equal(t, float64(n-keep+j), m.Value, "sample %d of the series", j)
	}
	for i := range n - keep {
		_, err := s.st.GetMetric(ctx, host.MetricKey{AgentID: agent, Name: "kept", Timestamp: base.Add(time.Duration(i) * time.Second)})
		require.ErrorIs(t, err, host.ErrNotFound, "sample %d, older than the newest %d, is dropped", i, keep)
	}
	m, err := s.st.GetMetric(ctx, other.Key())
	require.NoError(t, err, "another series of the agent is kept")
	requireMetric(t, other, m)
}
