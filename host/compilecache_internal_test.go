package host

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCached writes a file of size bytes at dir/name with the given
// access and modification times.
func writeCached(t *testing.T, path string, size int, atime, mtime time.Time) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, make([]byte, size), 0o600))
	require.NoError(t, os.Chtimes(path, atime, mtime))
}

func remaining(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	}))
	return names
}

func TestTrimCompilationCacheRemovesLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	sub := filepath.Join(dir, "wazero-v1.12.0-amd64-linux")
	old := filepath.Join(dir, "wazero-v1.11.0-amd64-linux") // an older wazero's
	writeCached(t, filepath.Join(old, "aa"), 100, now.Add(-5*time.Hour), now.Add(-5*time.Hour))
	writeCached(t, filepath.Join(sub, "a"), 100, now.Add(-3*time.Hour), now.Add(-3*time.Hour))
	writeCached(t, filepath.Join(sub, "c"), 100, now.Add(-time.Hour), now.Add(-time.Hour))
	writeCached(t, filepath.Join(sub, "a.123.tmp"), 50, now.Add(-2*time.Hour), now.Add(-2*time.Hour)) // a write that never finished
	writeCached(t, filepath.Join(sub, "d.456.tmp"), 50, now, now)                                     // a write under way
	writeCached(t, filepath.Join(dir, "other"), 1000, now.Add(-9*time.Hour), now.Add(-9*time.Hour))   // not wazero's
	writeCached(t, filepath.Join(dir, "elsewhere", "x"), 1000, now.Add(-9*time.Hour), now.Add(-9*time.Hour))

	// Counted: aa, a, c and the stale temporary file, 350 bytes.
	n, freed := trimCompilationCache(dir, 350)
	assert.Zero(t, n, "nothing past the bound")
	assert.Zero(t, freed)

	n, freed = trimCompilationCache(dir, 200)
	assert.Equal(t, 2, n) // the stale temporary file, then the older wazero's module
	assert.Equal(t, int64(150), freed)
	assert.ElementsMatch(t, []string{
		"wazero-v1.12.0-amd64-linux/a", "wazero-v1.12.0-amd64-linux/c", "wazero-v1.12.0-amd64-linux/d.456.tmp",
		"other", "elsewhere/x",
	}, remaining(t, dir))

	n, _ = trimCompilationCache(dir, 100)
	assert.Equal(t, 1, n)
	assert.NotContains(t, remaining(t, dir), "wazero-v1.12.0-amd64-linux/a", "the least recently used goes first")
	assert.Contains(t, remaining(t, dir), "wazero-v1.12.0-amd64-linux/c")

	n, _ = trimCompilationCache(filepath.Join(dir, "missing"), 0)
	assert.Zero(t, n, "a cache directory that is not there is left as it is")
}

func TestTrimCompilationCacheReadsAccessTimes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("access times are read on Linux; elsewhere a module's last use is its last write")
	}
	dir := t.TempDir()
	now := time.Now()
	sub := filepath.Join(dir, "wazero-v1.12.0-amd64-linux")
	// Written long ago and read a minute ago (a cache hit), against one
	// written and last read an hour ago.
	writeCached(t, filepath.Join(sub, "read"), 100, now.Add(-time.Minute), now.Add(-48*time.Hour))
	writeCached(t, filepath.Join(sub, "idle"), 100, now.Add(-time.Hour), now.Add(-time.Hour))
	n, _ := trimCompilationCache(dir, 100)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"wazero-v1.12.0-amd64-linux/read"}, remaining(t, dir))
}

// TestOpenTrimsCompilationCache: a load trims the cache to its bound and
// keeps the module it just used.
func TestOpenTrimsCompilationCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() {
		st, err := Open(ctx, Config{Plugin: "../testdata/plugins/agentstate.wasm"}, WithCompilationCache(dir))
		require.NoError(t, err)
		require.NoError(t, st.Close(ctx))
	}
	open()
	files := remaining(t, dir)
	require.Len(t, files, 1, "the module compiled into the cache")
	info, err := os.Stat(filepath.Join(dir, files[0]))
	require.NoError(t, err)

	sub, _, _ := strings.Cut(files[0], "/")
	long := time.Now().Add(-72 * time.Hour)
	for _, name := range []string{"0001", "0002", "0003"} {
		writeCached(t, filepath.Join(dir, sub, name), 1<<20, long, long)
	}
	defer func(limit int64) { compilationCacheBytes = limit }(compilationCacheBytes)
	compilationCacheBytes = info.Size() + 1<<20 // room for one of the three
	open()
	left := remaining(t, dir)
	assert.Len(t, left, 2)
	assert.Contains(t, left, files[0])
}
