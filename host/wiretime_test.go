package host_test

import (
	"context"
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
		_, err = s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1", To: bad})
		require.ErrorIs(t, err, host.ErrInvalid)

		good := host.Metric{AgentID: "a1", Name: "cpu", Value: 2, Timestamp: time.Now()}
		_, err = s.PutMetrics(ctx, []host.Metric{good, m})
		require.ErrorIs(t, err, host.ErrInvalid)
		require.ErrorContains(t, err, "item 1")
	}
	page, err := s.QueryMetrics(ctx, host.MetricQuery{AgentID: "a1"})
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing was written")
}
