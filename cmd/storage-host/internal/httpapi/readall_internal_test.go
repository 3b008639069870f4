package httpapi

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trickle returns its bytes a few at a time, then err.
type trickle struct {
	b   []byte
	err error
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, t.err
	}
	n := copy(p[:min(len(p), 1000)], t.b)
	t.b = t.b[n:]
	return n, nil
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReadAllGrowsWithWhatArrives: a body that declares a megabyte and
// sends a few bytes costs a few kilobytes, not the megabyte its
// Content-Length announced (a client holding 500 such requests open held
// 550 MB of the daemon's heap for a minute); a body that arrives whole is
// read in a few allocations, three times its size together at most.
func TestReadAllGrowsWithWhatArrives(t *testing.T) {
	cut := errors.New("connection closed")
	var got []byte
	var err error
	alloc := allocated(func() { got, err = readAll(&trickle{b: make([]byte, 100), err: cut}, 1<<20) })
	require.ErrorIs(t, err, cut)
	assert.Len(t, got, 100)
	assert.Less(t, alloc, uint64(128<<10), "a body declared 1 MiB of which 100 bytes arrived allocated %d bytes", alloc)

	for _, n := range []int{1, firstRead - 1, firstRead, firstRead + 1, 300_000, 1 << 20} {
		body := bytes.Repeat([]byte("x"), n)
		alloc := allocated(func() { got, err = readAll(&trickle{b: body, err: io.EOF}, int64(n)) })
		require.NoError(t, err)
		require.Equal(t, body, got)
		assert.Less(t, alloc, uint64(3*n+2*firstRead+4096), "a body of %d bytes allocated %d bytes", n, alloc)
	}
}
