package localstore

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
)

// A plugin writing, within its quota, each value a little larger than the
// last and deleting it, a small one kept between: bbolt reuses no freed
// run for the next, larger value, and never shrinks its file (an outside
// check: 158 MB of file for 1.25 MB of data under a 32 MiB quota, and
// growing). The committer compacts a file that grew past twice its size
// and the slack once it is mostly free, and the data survives it, and a
// reopen.
func TestFileIsCompactedWhenMostlyFree(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 750 MB; skipped with -short")
	}
	defer func(was int64) { compactSlack = was }(compactSlack)
	compactSlack = 4 << 20
	dir := t.TempDir()
	s, err := Open(dir, time.Now, 0, Quota{MaxBytes: 16 << 20})
	require.NoError(t, err)
	do := func(r *abi.KVRequest) {
		var e abi.Encoder
		s.Do(r, &e)
		_, err := abi.ParseResponse(e.Bytes())
		require.NoError(t, err)
		require.NoError(t, s.Sync(context.Background()))
	}
	largest := int64(0)
	const rounds = 250
	for r := range rounds {
		do(&abi.KVRequest{Op: abi.KVPut, Key: fmt.Appendf(nil, "v%05d", r), Value: bytes.Repeat([]byte{'x'}, 24<<10*(r+1))})
		do(&abi.KVRequest{Op: abi.KVPut, Key: fmt.Appendf(nil, "p%05d", r), Value: bytes.Repeat([]byte{'p'}, 5000)})
		do(&abi.KVRequest{Op: abi.KVDelete, Key: fmt.Appendf(nil, "v%05d", r)})
		fi, err := os.Stat(filepath.Join(dir, FileName))
		require.NoError(t, err)
		largest = max(largest, fi.Size())
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	t.Logf("largest file %d KiB, last %d KiB, for %d KiB of data, %d compactions", largest>>10, fi.Size()>>10, s.Bytes()>>10, s.j.compactions.Load())
	require.Positive(t, s.j.compactions.Load())
	// Within its quota and the slack, and one commit's growth: the
	// largest value, and bbolt's step when it grows a file (16 MiB).
	bound := int64(16<<20) + compactSlack + 16<<20 + 24<<10*rounds
	require.LessOrEqual(t, largest, bound, "the file grew past its bound")
	require.NoError(t, s.Close())

	again, err := Open(dir, time.Now, 0, Quota{MaxBytes: 16 << 20})
	require.NoError(t, err)
	defer again.Close()
	require.Equal(t, rounds, again.Len())
	var e abi.Encoder
	again.Do(&abi.KVRequest{Op: abi.KVGet, Key: []byte("p00007")}, &e)
	body, err := abi.ParseResponse(e.Bytes())
	require.NoError(t, err)
	require.NotEmpty(t, body)
	_, err = os.Stat(filepath.Join(dir, FileName+compactingSuffix))
	require.ErrorIs(t, err, os.ErrNotExist)
}
