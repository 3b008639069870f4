package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

// A backup follows each listing's next cursor until it is empty, and the
// plugin makes the cursors. These tests back up the hostile plugins of
// testdata/plugins/hostile whose listings never end, and a large honest
// backend, and check that each backup stops within its bounds with an
// error, leaving no file behind.

// hangGuard only says the backup did not hang; nothing here times it.
const hangGuard = 2 * time.Minute

func openHostilePlugin(t *testing.T, name string) *host.Store {
	t.Helper()
	wasm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "plugins", "hostile", name+".wasm"))
	require.NoError(t, err)
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{WASM: wasm, Instances: 1}, host.WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// backupBounded runs a backup into a file in a fresh directory and returns
// the directory's entries afterwards and the backup's error.
func backupBounded(t *testing.T, st *host.Store, o backup.Options) ([]os.DirEntry, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir := t.TempDir()
	_, err := backup.BackupFileWith(ctx, st, filepath.Join(dir, "b.shbk"), o)
	require.NoError(t, ctx.Err(), "the backup hung")
	left, rerr := os.ReadDir(dir)
	require.NoError(t, rerr)
	return left, err
}

// TestBackupCursorLoop: a plugin whose cursors come round again ("c0",
// "c1", "c2", "c0") fails the backup at the first repeat, with the bounds
// switched off, so only the cursor check can stop it.
func TestBackupCursorLoop(t *testing.T) {
	st := openHostilePlugin(t, "cursorloop")
	left, err := backupBounded(t, st, backup.Options{MaxBytes: -1, MaxDuration: -1})
	require.ErrorIs(t, err, host.ErrInternal)
	assert.ErrorContains(t, err, "answered page 4 of its metrics with a cursor it gave before")
	assert.Empty(t, left, "a failed backup leaves nothing behind")
}

// TestBackupMaxBytes: a plugin that answers the same record on page after
// page, each with a new cursor, fills the backup up to MaxBytes and no
// further; the stream written is at most MaxBytes long.
func TestBackupMaxBytes(t *testing.T) {
	st := openHostilePlugin(t, "cursorwalk")
	const bound = 1 << 20
	var out countingWriter
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, err := backup.BackupWith(ctx, st, &out, backup.Options{MaxBytes: bound, MaxDuration: -1})
	require.NoError(t, ctx.Err(), "the backup hung")
	require.ErrorIs(t, err, host.ErrLimit)
	assert.ErrorContains(t, err, fmt.Sprintf("over its bound of %d bytes (Options.MaxBytes)", bound))
	assert.LessOrEqual(t, out.n, int64(bound))
	assert.Greater(t, out.n, int64(bound/2), "the backup wrote up to its bound")

	left, err := backupBounded(t, st, backup.Options{MaxBytes: bound, MaxDuration: -1})
	require.ErrorIs(t, err, host.ErrLimit)
	assert.Empty(t, left, "the partial file is removed")
}

// TestBackupMaxDuration: the same plugin, with no bound on size, is
// stopped at MaxDuration.
func TestBackupMaxDuration(t *testing.T) {
	st := openHostilePlugin(t, "cursorwalk")
	left, err := backupBounded(t, st, backup.Options{MaxBytes: -1, MaxDuration: 300 * time.Millisecond})
	require.ErrorIs(t, err, host.ErrLimit)
	assert.ErrorContains(t, err, "ran past its bound of 300ms (Options.MaxDuration)")
	assert.Empty(t, left)
}

// TestBackupBoundsLeaveHonestBackupsAlone: an honest backend's backup
// within the bounds is whole, and the same one over MaxBytes is refused.
func TestBackupBoundsLeaveHonestBackupsAlone(t *testing.T) {
	st := openNamed(t, "honest")
	ctx := context.Background()
	for i := range 3000 {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("agent-%05d", i), State: []byte(`{"n":1}`)})
		require.NoError(t, err)
	}
	var out countingWriter
	sum, err := backup.BackupWith(ctx, st, &out, backup.Options{})
	require.NoError(t, err)
	assert.Equal(t, int64(3000), sum.Counts.AgentStates)

	_, err = backup.BackupWith(ctx, st, &countingWriter{}, backup.Options{MaxBytes: out.n - 1})
	require.ErrorIs(t, err, host.ErrLimit)
	_, err = backup.BackupWith(ctx, st, &countingWriter{}, backup.Options{MaxBytes: out.n})
	require.NoError(t, err, "a bound of exactly the backup's size holds it")
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// TestMigrateCursorLoop: a migration reads its source with the same pager,
// so the same plugin stops it too.
func TestMigrateCursorLoop(t *testing.T) {
	from := openHostilePlugin(t, "cursorloop")
	to := openNamed(t, "target")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, err := backup.Migrate(ctx, from, to, backup.MigrateOptions{})
	require.NoError(t, ctx.Err(), "the migration hung")
	require.ErrorIs(t, err, host.ErrInternal)
	assert.ErrorContains(t, err, "with a cursor it gave before")
}
