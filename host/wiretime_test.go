package host_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// A time the wire cannot carry is refused before it reaches the plugin,
// in every request that holds one (a record, a key, a query's range, a
// batch's item): nothing is written, and nothing is read with a time the
// plugin would see wrapped (9999 as 1815) or as unset (the epoch itself).
func TestTimesTheWireCannotCarryAreRefused(t *testing.T) {
	ctx := context.Background()
	s, err := host.Open(ctx, host.Config{Name: "times", Plugin: "builtin:memory"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(ctx) })

	for _, bad := range []time.Time{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)} {
		m := host.Metric{AgentID: "a1", Name: "cpu", Value: 1, Timestamp: bad}
		_, err := s.PutMetric(ctx, m)
		require.ErrorIs(t, err, host.ErrInvalid)
		require.ErrorContains(t, err, "cannot be carried")
		_, err = s.GetMetric(ctx, host.MetricKey{AgentID: "a1", Name: "cpu", Timestamp: bad})
		require.ErrorIs(t, err, host.ErrInvalid)
		if bad.UnixNano() != 0 {
			_, err = s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1", To: bad})
			require.ErrorIs(t, err, host.ErrInvalid)
		}

		good := host.Metric{AgentID: "a1", Name: "cpu", Value: 2, Timestamp: time.Now()}
		_, err = s.PutMetrics(ctx, []host.Metric{good, m})
		require.ErrorIs(t, err, host.ErrInvalid)
		require.ErrorContains(t, err, "item 1")
	}
	page, err := s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1"})
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing was written")

	// The first and last instants the wire carries are records' times
	// like any other; a query's bound at the epoch selects as it says.
	first := time.Unix(0, math.MinInt64).UTC()
	last := time.Unix(0, math.MaxInt64).UTC()
	before := time.Unix(0, -1)
	for _, at := range []time.Time{first, before, last} {
		_, err = s.PutMetric(ctx, host.Metric{AgentID: "a1", Name: "cpu", Value: 1, Timestamp: at})
		require.NoError(t, err, "%v", at)
		got, err := s.GetMetric(ctx, host.MetricKey{AgentID: "a1", Name: "cpu", Timestamp: at})
		require.NoError(t, err)
		require.True(t, got.Timestamp.Equal(at))
	}
	epoch := time.Unix(0, 0)
	page, err = s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1", From: epoch})
	require.NoError(t, err)
	require.Len(t, page.Items, 1, "from the epoch: the last instant only")
	page, err = s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1", To: epoch})
	require.NoError(t, err)
	require.Len(t, page.Items, 2, "up to the epoch: the first instant and 1 ns before the epoch")
	_, err = s.QueryAlerts(ctx, host.AlertQuery{From: epoch, To: epoch.Add(time.Hour)})
	require.NoError(t, err)
}
