package host

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// restoreAlone sends r as an OpRestore of its own, not as a batch item:
// Store.Restore always batches, so this is the only way to reach a
// plugin's single-request path (for the redis plugin, not its Batcher).
func restoreAlone(t *testing.T, s *Store, r Restore) (bool, error) {
	t.Helper()
	var written bool
	err := s.roundTrip(t.Context(), abi.OpRestore, r.Encode, func(d *abi.Decoder) { written = d.Bool() })
	return written, err
}

// TestRestoreAlone runs a restore of each kind through both built-ins'
// single-request path: written, then skipped, refused and overwritten.
func TestRestoreAlone(t *testing.T) {
	backends := map[string]func(t *testing.T) *Store{
		"memory": func(t *testing.T) *Store {
			st, err := Open(t.Context(), Config{})
			require.NoError(t, err)
			return st
		},
		"redis": func(t *testing.T) *Store {
			addr := redistest.Addr(t)
			st, err := Open(t.Context(), Config{Plugin: "builtin:redis", Redis: &redisbridge.Config{
				Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true,
			}})
			require.NoError(t, err)
			return st
		},
	}
	ts := time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	items := []Restore{
		{Kind: KindMetric, Metric: Metric{AgentID: "a", Name: "n", Value: 2.5, Timestamp: ts,
			Labels: map[string]string{"l": "v"}, ExpiresAt: exp}},
		{Kind: KindAlert, Alert: Alert{ID: "al", AgentID: "a", Severity: abi.SeverityWarning, Status: abi.AlertResolved,
			Message: "m", CreatedAt: ts, UpdatedAt: ts.Add(time.Minute), ExpiresAt: exp}},
		{Kind: KindAgentState, State: AgentState{AgentID: "a", State: []byte("doc"), Version: 99, UpdatedAt: ts, ExpiresAt: exp}},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { _ = st.Close(context.Background()) })
			for _, r := range items {
				r.Mode = RestoreFail
				written, err := restoreAlone(t, st, r)
				require.NoError(t, err, "%s", r.Kind)
				require.True(t, written)
				_, err = restoreAlone(t, st, r)
				require.ErrorIs(t, err, ErrConflict, "%s: fail over a live record", r.Kind)
				r.Mode = RestoreSkip
				written, err = restoreAlone(t, st, r)
				require.NoError(t, err)
				require.False(t, written, "%s: skip over a live record", r.Kind)
				r.Mode = RestoreOverwrite
				written, err = restoreAlone(t, st, r)
				require.NoError(t, err)
				require.True(t, written, "%s: overwrite", r.Kind)
			}
			m, err := st.GetMetric(t.Context(), items[0].Metric.Key())
			require.NoError(t, err)
			require.Equal(t, items[0].Metric, m)
			a, err := st.GetAlert(t.Context(), "al")
			require.NoError(t, err)
			require.Equal(t, items[1].Alert, a)
			s, err := st.GetAgentState(t.Context(), "a")
			require.NoError(t, err)
			require.Equal(t, items[2].State, s)

			expired := items[2]
			expired.State.AgentID, expired.State.ExpiresAt, expired.Mode = "gone", time.Now().Add(-time.Millisecond), RestoreFail
			written, err := restoreAlone(t, st, expired)
			require.NoError(t, err)
			require.False(t, written, "an expired record is not restored")
			_, err = st.GetAgentState(t.Context(), "gone")
			require.ErrorIs(t, err, ErrNotFound)
		})
	}
}
