package host_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

func TestSHA256Pin(t *testing.T) {
	ctx := context.Background()
	wasm, err := host.BuiltinWASM("memory")
	require.NoError(t, err)
	sum := sha256.Sum256(wasm)
	good := hex.EncodeToString(sum[:])
	path := filepath.Join(t.TempDir(), "memory.wasm")
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	cache := host.WithCompilationCache(t.TempDir())

	st, err := host.Open(ctx, host.Config{Plugin: path, SHA256: strings.ToUpper(good)}, cache)
	require.NoError(t, err, "a matching pin loads (hex case does not matter)")
	require.NoError(t, st.Ping(ctx))
	require.NoError(t, st.Close(ctx))

	bad := strings.Repeat("0", 64)
	_, err = host.Open(ctx, host.Config{Plugin: path, SHA256: bad}, cache)
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, good, "the error names the digest found")
	require.ErrorContains(t, err, bad, "and the one pinned")

	_, err = host.Open(ctx, host.Config{WASM: wasm, SHA256: bad}, cache)
	require.ErrorIs(t, err, host.ErrIncompatible, "bytes given directly are checked too")
}

// TestMemoryLimitTooSmall: a module whose initial memory exceeds
// Limits.MemoryPages cannot even start, and says so at Open.
func TestMemoryLimitTooSmall(t *testing.T) {
	_, err := host.Open(context.Background(), host.Config{Limits: host.Limits{MemoryPages: 2}}, host.WithCompilationCache(t.TempDir()))
	require.Error(t, err)
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, "memory")
}
