package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Plain progress lines (not a terminal) come at most one a plainEvery
// within a phase, while counting too (no total: a backend answering page
// after empty page once printed a line a page, 79 MB in a minute); a
// phase's first line and, once there is a total, its last are printed.
func TestPlainProgressIsThrottled(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "migrate")
	for range 10_000 {
		p.update("count", 0, 0)
	}
	p.update("copy", 0, 3)
	p.update("copy", 1, 3)
	p.update("copy", 3, 3)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Equal(t, []string{"migrate: count 0 records", "migrate: copy 0/3 records (0%)", "migrate: copy 3/3 records (100%)"}, lines)
}
