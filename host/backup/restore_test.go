package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

func openNamed(t testing.TB, name string) *host.Store {
	t.Helper()
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Name: name, Plugin: "builtin:memory"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// requireSameContent checks that two backends hold the same records,
// versions included, with expiries within tolerance of each other.
func requireSameContent(t *testing.T, a, b *host.Store, tolerance time.Duration) {
	t.Helper()
	ctx := context.Background()
	da, err := backup.DigestStore(ctx, a)
	require.NoError(t, err)
	db, err := backup.DigestStore(ctx, b)
	require.NoError(t, err)
	require.Equal(t, da, db)

	// A record's TTL is read at some instant during its backup, and turned
	// into an expiry at the backup's end: each side's expiries are off by
	// up to its backup's duration, which the tolerance takes in.
	expiries := func(st *host.Store) map[string]time.Time {
		out := map[string]time.Time{}
		var buf bytes.Buffer
		started := time.Now()
		defer func() { tolerance += time.Since(started) }()
		_, err := backup.Backup(ctx, st, &buf)
		require.NoError(t, err)
		r, err := backup.NewReader(&buf)
		require.NoError(t, err)
		now := time.Now()
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			var at time.Time
			if rec.TTL > 0 {
				at = now.Add(rec.TTL)
			}
			out[key(rec)] = at
		}
		return out
	}
	ea, eb := expiries(a), expiries(b)
	require.Len(t, eb, len(ea))
	for k, at := range ea {
		other, ok := eb[k]
		require.True(t, ok, k)
		require.Equal(t, at.IsZero(), other.IsZero(), "%s: persisted on one side only", k)
		require.WithinDuration(t, at, other, tolerance, k)
	}
}

func key(r *backup.Record) string {
	switch r.Kind {
	case abi.KindMetric:
		return fmt.Sprintf("m/%s/%s/%d", r.Metric.AgentID, r.Metric.Name, r.Metric.Timestamp.UnixNano())
	case abi.KindAlert:
		return "a/" + r.Alert.ID
	}
	return "s/" + r.State.AgentID
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	src := openNamed(t, "src")
	fill(t, src, 700, 20, 600)
	var buf bytes.Buffer
	sum, err := backup.Backup(ctx, src, &buf)
	require.NoError(t, err)
	file := buf.Bytes()

	dst := openNamed(t, "dst")
	var progress []backup.RestoreProgress
	got, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{
		Progress: func(p backup.RestoreProgress) { progress = append(progress, p) },
	})
	require.NoError(t, err)
	require.Equal(t, sum, got.File)
	require.Equal(t, sum.Counts, got.Written)
	require.Zero(t, got.Skipped.Total())
	require.Zero(t, got.Expired.Total())
	require.Equal(t, []backup.RestoreProgress{{500, 1320}, {1000, 1320}, {1320, 1320}}, progress)
	requireSameContent(t, src, dst, 2*time.Second)

	// Versions are kept: a CAS with the version read from the source
	// succeeds on the copy, and the next version is larger.
	s, err := src.GetAgentState(ctx, "agent-00007")
	require.NoError(t, err)
	require.Greater(t, s.Version, uint64(1))
	next, err := dst.PutAgentState(ctx, host.AgentState{AgentID: "agent-00007", State: []byte(`{}`)}, host.IfVersion(s.Version))
	require.NoError(t, err)
	require.Greater(t, next.Version, s.Version)
	// An alert keeps its status and times.
	a, err := dst.GetAlert(ctx, "alert-0001")
	require.NoError(t, err)
	require.Equal(t, abi.AlertAcknowledged, a.Status)

	t.Run("fail refuses a backend holding records of the backup, before writing", func(t *testing.T) {
		_, err := dst.PutMetric(ctx, host.Metric{AgentID: "agent-new", Name: "x", Value: 1, Timestamp: t0})
		require.NoError(t, err)
		before, err := backup.DigestStore(ctx, dst)
		require.NoError(t, err)
		_, err = backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Mode: abi.RestoreFail})
		require.ErrorIs(t, err, backup.ErrExists)
		require.ErrorIs(t, err, host.ErrConflict)
		require.ErrorContains(t, err, "backend dst holds 1320 of its records (the first: metric agent-000/m0@")
		after, err := backup.DigestStore(ctx, dst)
		require.NoError(t, err)
		require.Equal(t, before, after, "nothing written")
	})

	t.Run("skip keeps the backend's records", func(t *testing.T) {
		got, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Mode: abi.RestoreSkip})
		require.NoError(t, err)
		require.Equal(t, sum.Counts, got.Skipped)
		require.Zero(t, got.Written.Total())
		s, err := dst.GetAgentState(ctx, "agent-00007")
		require.NoError(t, err)
		require.Equal(t, next.Version, s.Version, "the newer state stays")
	})

	t.Run("overwrite puts the backup's back", func(t *testing.T) {
		got, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Mode: abi.RestoreOverwrite})
		require.NoError(t, err)
		require.Equal(t, sum.Counts, got.Written)
		s2, err := dst.GetAgentState(ctx, "agent-00007")
		require.NoError(t, err)
		require.Equal(t, s.Version, s2.Version)
		require.Equal(t, s.State, s2.State)
	})
}

// TestRestoreVerifiesFirst: a damaged file restores nothing, wherever the
// damage is — even in its last byte, after every record.
func TestRestoreVerifiesFirst(t *testing.T) {
	ctx := context.Background()
	src := openNamed(t, "src")
	fill(t, src, 600, 5, 600)
	var buf bytes.Buffer
	_, err := backup.Backup(ctx, src, &buf)
	require.NoError(t, err)
	file := buf.Bytes()

	dst := openNamed(t, "dst")
	empty, err := backup.DigestStore(ctx, dst)
	require.NoError(t, err)
	for _, damage := range []struct {
		name string
		file []byte
	}{
		{"last byte flipped", func() []byte { b := bytes.Clone(file); b[len(b)-1] ^= 0x40; return b }()},
		{"a byte in the middle flipped", func() []byte { b := bytes.Clone(file); b[len(b)/2] ^= 1; return b }()},
		{"trailer cut", file[:len(file)-1]},
		{"half", file[:len(file)/2]},
	} {
		for _, mode := range []abi.RestoreMode{abi.RestoreFail, abi.RestoreSkip, abi.RestoreOverwrite} {
			_, err := backup.Restore(ctx, dst, bytes.NewReader(damage.file), backup.RestoreOptions{Mode: mode})
			require.ErrorIs(t, err, backup.ErrCorrupt, "%s, %s", damage.name, mode)
			now, err := backup.DigestStore(ctx, dst)
			require.NoError(t, err)
			require.Equal(t, empty, now, "%s, %s: nothing written", damage.name, mode)
		}
	}

	// From a path, too.
	path := filepath.Join(t.TempDir(), "b"+backup.Ext)
	require.NoError(t, os.WriteFile(path, file[:100], 0o600))
	_, err = backup.RestoreFile(ctx, dst, path, backup.RestoreOptions{})
	require.ErrorIs(t, err, backup.ErrTruncated)
	require.NoError(t, os.WriteFile(path, file, 0o600))
	got, err := backup.RestoreFile(ctx, dst, path, backup.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1205), got.Written.Total())
}

// TestRestoreTTL: a record gets back what was left of its TTL, counted
// from the restore; one whose TTL ran out meanwhile is not restored.
func TestRestoreTTL(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{Created: t0})
	require.NoError(t, err)
	state := func(id string, ttl time.Duration) *backup.Record {
		return &backup.Record{Kind: abi.KindAgentState, TTL: ttl,
			State: abi.AgentState{AgentID: id, State: []byte(`1`), Version: 42, UpdatedAt: t0}}
	}
	require.NoError(t, w.Write(state("long", time.Hour)))
	require.NoError(t, w.Write(state("never", 0)))
	require.NoError(t, w.Write(state("short", time.Millisecond)))
	_, err = w.Close()
	require.NoError(t, err)

	dst := openNamed(t, "dst")
	// A TTL of 1 ms may run out before the backend writes the record:
	// it is then counted as expired.
	got, err := backup.Restore(ctx, dst, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(3), got.Written.AgentStates+got.Expired.AgentStates)
	require.GreaterOrEqual(t, got.Written.AgentStates, int64(2))
	long, err := dst.GetAgentState(ctx, "long")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), long.ExpiresAt, 5*time.Second)
	require.Equal(t, uint64(42), long.Version)
	never, err := dst.GetAgentState(ctx, "never")
	require.NoError(t, err)
	require.True(t, never.ExpiresAt.IsZero())
	require.Eventually(t, func() bool {
		_, err := dst.GetAgentState(ctx, "short")
		return err != nil
	}, 5*time.Second, time.Millisecond)
}

func TestRestoreRefusesBackendsThatCannot(t *testing.T) {
	ctx := context.Background()
	file, _ := write(t, sample(2))
	wasm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "plugins", "agentstate.wasm"))
	require.NoError(t, err)
	st, err := host.Open(ctx, host.Config{Name: "old", WASM: wasm})
	require.NoError(t, err)
	defer st.Close(ctx)
	_, err = backup.Restore(ctx, st, bytes.NewReader(file), backup.RestoreOptions{})
	require.ErrorContains(t, err, "backend old cannot restore records")

	_, err = backup.Backup(ctx, st, &bytes.Buffer{})
	require.EqualError(t, err, "backup: backend old stores agent_states but cannot list them (its plugin has no query feature)")
}

// TestRestoreKeepExpiry: with KeepExpiry, TTLs count from the backup's
// creation, and a record whose time is up is not restored.
func TestRestoreKeepExpiry(t *testing.T) {
	ctx := context.Background()
	created := time.Now().Add(-time.Hour)
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{Created: created})
	require.NoError(t, err)
	for id, ttl := range map[string]time.Duration{"gone": 30 * time.Minute, "left": 2 * time.Hour, "never": 0} {
		require.NoError(t, w.Write(&backup.Record{Kind: abi.KindAgentState, TTL: ttl,
			State: abi.AgentState{AgentID: id, State: []byte(`1`), Version: 3, UpdatedAt: t0}}))
	}
	_, err = w.Close()
	require.NoError(t, err)

	dst := openNamed(t, "dst")
	got, err := backup.Restore(ctx, dst, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{KeepExpiry: true})
	require.NoError(t, err)
	require.Equal(t, backup.Counts{AgentStates: 2}, got.Written)
	require.Equal(t, backup.Counts{AgentStates: 1}, got.Expired)
	_, err = dst.GetAgentState(ctx, "gone")
	require.ErrorIs(t, err, host.ErrNotFound)
	left, err := dst.GetAgentState(ctx, "left")
	require.NoError(t, err)
	require.WithinDuration(t, created.Add(2*time.Hour), left.ExpiresAt, time.Second)
}
