//go:build unix

package main_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPluginCommandsRefuseAPipeOrADevice: plugin inspect and plugin test
// read a regular file of at most a plugin's size, as a configuration's
// plugin is read: /dev/zero filled memory until killed, a pipe hung them.
func TestPluginCommandsRefuseAPipeOrADevice(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "pipe.wasm")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))
	for _, args := range [][]string{
		{"plugin", "inspect", pipe},
		{"plugin", "test", pipe},
		{"plugin", "inspect", "/dev/zero"},
	} {
		_, stderr, code := runCommand(t, nil, args...)
		require.Equal(t, 1, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "is not a regular file", "%v", args)
	}
}
