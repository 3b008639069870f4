package host

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

// openPGReads opens the built-in postgres plugin, which declares its gets
// postgres reads, in a schema of its own.
func openPGReads(t *testing.T, calls *callCounter) *Store {
	t.Helper()
	st, err := Open(t.Context(), Config{Plugin: "builtin:postgres", Postgres: &PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}},
		WithObserver(calls), WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NotNil(t, st.p.pgReads[abi.KindAgentState])
	require.NotNil(t, st.p.pgReads[abi.KindAlert])
	return st
}

// TestPGReadsAnswerAsThePluginDoes: the postgres plugin declares its
// alert and agent-state gets postgres reads; the host answers them with
// the plugin's statement, without entering the plugin, with what the
// plugin's own get answers, NOT_FOUND for absent and deleted records.
func TestPGReadsAnswerAsThePluginDoes(t *testing.T) {
	ctx := t.Context()
	calls := &callCounter{}
	st := openPGReads(t, calls)

	_, err := st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte(`{"step":1}`)})
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "a2"}, WithTTL(time.Hour))
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "gone", State: []byte("x")})
	require.NoError(t, err)
	require.NoError(t, st.DeleteAgentState(ctx, "gone"))
	_, err = st.PutAlert(ctx, Alert{ID: "x1", AgentID: "a1", Severity: abi.SeverityCritical, Status: abi.AlertFiring,
		Message: "disk", Labels: map[string]string{"dc": "eu", "team": "db"}}, WithTTL(time.Hour))
	require.NoError(t, err)

	for _, id := range []string{"a1", "a2", "gone", "never"} {
		before, gets := st.p.pgServed.Load(), calls.gets.Load()
		got, err := st.GetAgentState(ctx, id)
		require.Equal(t, before+1, st.p.pgServed.Load(), "%s is read by the host", id)
		require.Equal(t, gets, calls.gets.Load(), "%s: the plugin is not called", id)
		own, ownErr := fromPlugin(ctx, st.agentStateFromPlugin, id)
		require.Equal(t, gets+1, calls.gets.Load(), "%s: the plugin answers itself", id)
		assert.Equal(t, own, got, id)
		assert.Equal(t, ownErr == nil, err == nil, "%s: %v / %v", id, ownErr, err)
		if ownErr != nil {
			assert.ErrorIs(t, err, ErrNotFound, id)
		}
	}
	for _, id := range []string{"x1", "never"} {
		before := st.p.pgServed.Load()
		got, err := st.GetAlert(ctx, id)
		require.Equal(t, before+1, st.p.pgServed.Load(), "%s is read by the host", id)
		own, ownErr := fromPlugin(ctx, st.alertFromPlugin, id)
		assert.Equal(t, own, got, id)
		assert.Equal(t, ownErr == nil, err == nil, "%s: %v / %v", id, ownErr, err)
	}
	alert, err := st.GetAlert(ctx, "x1")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"dc": "eu", "team": "db"}, alert.Labels)
	assert.Zero(t, st.p.pgReadFaults.Load())
}

// TestPGReadOutOfForm: a declared statement whose answer is not the row
// the ABI fixes (other columns, several rows, a failing statement) sends
// the get to the plugin, which answers as ever; only the first two are
// faults of the declaration.
func TestPGReadOutOfForm(t *testing.T) {
	ctx := t.Context()
	calls := &callCounter{}
	st := openPGReads(t, calls)
	_, err := st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte("doc")})
	require.NoError(t, err)
	for _, c := range []struct {
		name, sql string
		fault     bool
	}{
		{"columns out of order", "SELECT version, state, updated_at, expires_at FROM agent_states WHERE agent_id = $1 AND $2::bigint > 0", true},
		{"a column missing", "SELECT state, version, updated_at FROM agent_states WHERE agent_id = $1 AND $2::bigint > 0", true},
		{"two rows", "SELECT state, version, updated_at, expires_at FROM agent_states, generate_series(1, 2) WHERE agent_id = $1 AND $2::bigint > 0", true},
		{"a NULL state", "SELECT NULL::bytea, version, updated_at, expires_at FROM agent_states WHERE agent_id = $1 AND $2::bigint > 0", true},
		{"an expired row", "SELECT state, version, updated_at, 1::bigint FROM agent_states WHERE agent_id = $1 AND $2::bigint > 0", false},
		{"a failing statement", "SELECT state, version, updated_at, expires_at FROM no_such_table WHERE agent_id = $1 AND $2::bigint > 0", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			declared := st.p.pgReads[abi.KindAgentState]
			st.p.pgReads[abi.KindAgentState] = &pgRead{sql: c.sql, columns: 4}
			defer func() { st.p.pgReads[abi.KindAgentState] = declared }()
			faults, gets, served := st.p.pgReadFaults.Load(), calls.gets.Load(), st.p.pgServed.Load()
			got, err := st.GetAgentState(ctx, "a1")
			require.NoError(t, err)
			assert.Equal(t, "doc", string(got.State))
			assert.Equal(t, gets+1, calls.gets.Load(), "the plugin serves")
			assert.Equal(t, served, st.p.pgServed.Load())
			want := faults
			if c.fault {
				want++
			}
			assert.Equal(t, want, st.p.pgReadFaults.Load())
		})
	}
}

// TestPGReadPastTheCallTimeout: a declared statement that runs out the
// call's time is UNAVAILABLE at once; the plugin, whose get is the same
// statement, is not given a second call timeout.
func TestPGReadPastTheCallTimeout(t *testing.T) {
	ctx := t.Context()
	calls := &callCounter{}
	st, err := Open(ctx, Config{Plugin: "builtin:postgres", Postgres: &PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")},
		Limits: Limits{CallTimeout: 500 * time.Millisecond}}, WithObserver(calls), WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte("doc")})
	require.NoError(t, err)
	st.p.pgReads[abi.KindAgentState] = &pgRead{columns: 4,
		sql: "SELECT state, version, updated_at, expires_at FROM agent_states, pg_sleep(5) WHERE agent_id = $1 AND $2::bigint > 0"}
	gets := calls.gets.Load()
	_, err = st.GetAgentState(ctx, "a1")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorContains(t, err, "ran past the call timeout")
	assert.Equal(t, gets, calls.gets.Load(), "the plugin is not called")
}
