//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// TestWatcherNeverReadsAPipeOrADevice: a watched file replaced by a pipe,
// a link to /dev/zero or a sparse file past the plugin bound is
// fingerprinted at once, without being read: hashing /dev/zero never
// ended, opening a pipe waited for a writer (holding the watcher, and the
// reload that asked for a snapshot, for ever), and a file of a terabyte
// took half an hour. A reload refuses each of them unread.
func TestWatcherNeverReadsAPipeOrADevice(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "pipe.wasm")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))
	zero := filepath.Join(dir, "zero.wasm")
	require.NoError(t, os.Symlink("/dev/zero", zero))
	huge := filepath.Join(dir, "huge.wasm")
	f, err := os.Create(huge)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<40)) // sparse: a terabyte of nothing
	require.NoError(t, f.Close())
	files := []string{pipe, zero, huge, filepath.Join(dir, "missing.wasm")}

	done := make(chan map[string][32]byte, 1)
	go func() { done <- fingerprints(files) }()
	var sums map[string][32]byte
	select {
	case sums = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("fingerprinting a pipe, a device or a huge file did not return")
	}
	require.Len(t, sums, len(files))
	require.Equal(t, sums, fingerprints(files), "stable while nothing changes")

	require.NoError(t, os.Truncate(huge, 1<<40+1))
	require.NotEqual(t, sums[huge], fingerprints(files)[huge], "a huge file's change is still seen, by its size")

	for _, p := range []string{pipe, zero} {
		_, err := config.ReadPlugin(p)
		require.ErrorContains(t, err, "not a regular file", p)
	}
	_, err = config.ReadPlugin(huge)
	require.ErrorContains(t, err, "is longer than")
}
