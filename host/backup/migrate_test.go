package backup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func openRedis(t testing.TB, name string) *host.Store {
	t.Helper()
	ctx := context.Background()
	addr := redistest.Addr(t)
	st, err := host.Open(ctx, host.Config{Name: name, Plugin: "builtin:redis", Redis: &redisbridge.Config{
		Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true,
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// TestMigrate100k copies 100,000 mixed records from memory to Redis and
// back to memory: the last backend holds what the first did, versions
// and all, expiries within a second.
func TestMigrate100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 100,000 records through Redis and back take 10 to 20 seconds")
	}
	ctx := context.Background()
	mem := openNamed(t, "mem")
	rds := openRedis(t, "rds")
	back := openNamed(t, "back")
	fill(t, mem, 60_000, 10_000, 30_000)
	want := backup.Counts{Metrics: 60_000, Alerts: 10_000, AgentStates: 30_000}

	for _, hop := range []struct{ from, to *host.Store }{{mem, rds}, {rds, back}} {
		var last backup.MigrateProgress
		sum, err := backup.Migrate(ctx, hop.from, hop.to, backup.MigrateOptions{
			State: filepath.Join(t.TempDir(), "state.json"),
			Progress: func(p backup.MigrateProgress) {
				if p.Phase != last.Phase {
					t.Logf("%s: phase %s at %s", hop.from.Name(), p.Phase, time.Now().Format("15:04:05.000"))
				}
				last = p
			},
		})
		require.NoError(t, err, "%s → %s", hop.from.Name(), hop.to.Name())
		require.Equal(t, want, sum.Total)
		require.Equal(t, want, sum.Copied)
		require.Zero(t, sum.Skipped.Total()+sum.Expired.Total())
		require.Equal(t, sum.Source, sum.Target)
		require.Equal(t, want, sum.Target.Counts())
		require.Equal(t, backup.MigrateProgress{Phase: backup.PhaseCompare, Done: 100_000, Total: 100_000}, last)
		t.Logf("%s → %s: %d records in %s (%.0f records/s, counting and comparing included)",
			hop.from.Name(), hop.to.Name(), sum.Copied.Total(), sum.Took.Round(time.Millisecond), float64(sum.Copied.Total())/sum.Took.Seconds())
	}
	requireSameContent(t, mem, back, time.Second)

	// Versions are intact: a CAS with the first backend's version works
	// on the last.
	s, err := mem.GetAgentState(ctx, "agent-12345")
	require.NoError(t, err)
	_, err = back.PutAgentState(ctx, host.AgentState{AgentID: "agent-12345", State: []byte(`{}`)}, host.IfVersion(s.Version))
	require.NoError(t, err)
}

// TestMigrateResume interrupts a migration half-way (its context ends)
// and resumes it from its checkpoint: it completes, compares equal, and
// counts each record once.
func TestMigrateResume(t *testing.T) {
	for _, target := range []string{"memory", "redis"} {
		t.Run(target, func(t *testing.T) {
			ctx := context.Background()
			src := openNamed(t, "src")
			var dst *host.Store
			if target == "redis" {
				dst = openRedis(t, "dst")
			} else {
				dst = openNamed(t, "dst")
			}
			fill(t, src, 5_500, 1_200, 3_300)
			state := filepath.Join(t.TempDir(), "state.json")

			cctx, cancel := context.WithCancel(ctx)
			pages := 0
			_, err := backup.Migrate(cctx, src, dst, backup.MigrateOptions{State: state, Progress: func(p backup.MigrateProgress) {
				if p.Phase == backup.PhaseCopy {
					if pages++; pages == 4 {
						cancel() // during the fifth page's read or write
					}
				}
			}})
			cancel()
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorContains(t, err, "the checkpoint in "+state+" resumes the migration")

			var cp struct {
				Kind   abi.RecordKind
				Copied backup.Counts
				Done   bool
			}
			b, err := os.ReadFile(state)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &cp))
			require.Equal(t, abi.KindMetric, cp.Kind)
			require.Equal(t, int64(4000), cp.Copied.Metrics, "four pages recorded")
			require.False(t, cp.Done)

			sum, err := backup.Migrate(ctx, src, dst, backup.MigrateOptions{State: state})
			require.NoError(t, err)
			require.True(t, sum.Resumed)
			require.Equal(t, backup.Counts{Metrics: 5_500, Alerts: 1_200, AgentStates: 3_300}, sum.Copied, "each record counted once")
			require.Equal(t, sum.Source, sum.Target)
			require.NoFileExists(t, state, "removed once done")
			requireSameContent(t, src, dst, time.Second)

			// Migrating again finds everything equal: nothing to refuse.
			again, err := backup.Migrate(ctx, src, dst, backup.MigrateOptions{})
			require.NoError(t, err)
			require.Equal(t, sum.Copied, again.Copied)
		})
	}
}

func TestMigrateModes(t *testing.T) {
	ctx := context.Background()
	src := openNamed(t, "src")
	fill(t, src, 50, 4, 30)
	dst := openNamed(t, "dst")
	// The target holds a different state of one agent, and a record of
	// its own.
	mine, err := dst.PutAgentState(ctx, host.AgentState{AgentID: "agent-00003", State: []byte(`"mine"`)})
	require.NoError(t, err)
	_, err = dst.PutAgentState(ctx, host.AgentState{AgentID: "zz-other", State: []byte(`"other"`)})
	require.NoError(t, err)

	_, err = backup.Migrate(ctx, src, dst, backup.MigrateOptions{})
	require.ErrorIs(t, err, backup.ErrExists)
	require.ErrorContains(t, err, "backend dst holds 1 records with the keys of src's and other contents (the first: agent state agent-00003); nothing was written")
	d, err := backup.DigestStore(ctx, dst)
	require.NoError(t, err)
	require.Equal(t, backup.Counts{AgentStates: 2}, d.Counts())

	sum, err := backup.Migrate(ctx, src, dst, backup.MigrateOptions{Mode: abi.RestoreSkip})
	require.ErrorIs(t, err, backup.ErrMismatch, "the target has a record of its own and one of another content")
	require.ErrorContains(t, err, "agent_states: the source holds 30, the target 31")
	require.Equal(t, backup.Counts{AgentStates: 1}, sum.Skipped)
	require.Equal(t, backup.Counts{Metrics: 50, Alerts: 4, AgentStates: 29}, sum.Copied)
	got, err := dst.GetAgentState(ctx, "agent-00003")
	require.NoError(t, err)
	require.Equal(t, mine.Version, got.Version)

	sum, err = backup.Migrate(ctx, src, dst, backup.MigrateOptions{Mode: abi.RestoreOverwrite})
	require.ErrorIs(t, err, backup.ErrMismatch, "zz-other is still there")
	require.Equal(t, backup.Counts{Metrics: 50, Alerts: 4, AgentStates: 30}, sum.Copied)
	require.NoError(t, dst.DeleteAgentState(ctx, "zz-other"))
	_, err = backup.Migrate(ctx, src, dst, backup.MigrateOptions{})
	require.NoError(t, err)
}

func TestMigrateCheckpointMismatch(t *testing.T) {
	ctx := context.Background()
	src, dst := openNamed(t, "src"), openNamed(t, "dst")
	state := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(state, []byte(`{"format":1,"from":"a","to":"b","mode":"fail","kind":1}`), 0o600))
	_, err := backup.Migrate(ctx, src, dst, backup.MigrateOptions{State: state})
	require.EqualError(t, err, fmt.Sprintf("backup: checkpoint %s is of a migration from a to b, not from src to dst", state))
	require.NoError(t, os.WriteFile(state, []byte(`{"format":1,"from":"src","to":"dst","mode":"skip","kind":1}`), 0o600))
	_, err = backup.Migrate(ctx, src, dst, backup.MigrateOptions{State: state})
	require.EqualError(t, err, fmt.Sprintf("backup: checkpoint %s is of a migration in mode skip, not fail", state))
}
