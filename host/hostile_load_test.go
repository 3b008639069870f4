package host_test

import (
	"context"
	"math"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	g "github.com/storage-host/storage-host/host/internal/wasmcheck/wasmgen"
)

// hostileModules are modules that ask wazero for memory or time by what
// they declare: the hostile/*.wat fixtures that the text format can
// express, and byte-built ones for those it cannot (a declaration of 2^32-1
// locals; 100 001 functions would take a 700 KB source). Each is paired
// with the bound its refusal names.
func hostileModules(t *testing.T) map[string]struct {
	wasm []byte
	want string
} {
	t.Helper()
	fixture := func(name string) []byte {
		b, err := os.ReadFile(hostilePath(name))
		require.NoError(t, err)
		return b
	}
	bomb := func(n uint32) []byte {
		return g.Functions(g.Body([]g.Locals{{N: n, Type: g.I32}}, []byte{0x0b}))
	}
	bodies := make([][]byte, 100_001)
	for i := range bodies {
		bodies[i] = g.Body(nil, []byte{0x0b})
	}
	// Each function within the bound, 2*10^8 locals in 160 KB together.
	spread := make([][]byte, 20_000)
	for i := range spread {
		spread[i] = g.Body([]g.Locals{{N: 10_000, Type: g.I32}}, []byte{0x0b})
	}
	return map[string]struct {
		wasm []byte
		want string
	}{
		// 201 bytes of this kind made wazero ask for 32 GiB; the Go runtime
		// then ends the process.
		"locals 2^32-1": {bomb(math.MaxUint32), "function 0 declares 4294967295 locals, more than 10000"},
		"locals 10^8":   {bomb(100_000_000), "function 0 declares 100000000 locals, more than 10000"},
		"deepnest": {fixture("deepnest"),
			"function 0 has 1000 locals at nesting depth 1001, 1001000 together, more than 250000"},
		"hugetable": {fixture("hugetable"), "table 0 declares 134217728 elements, more than 262144"},
		"growtable": {fixture("growtable"),
			"table 0 declares no maximum size, and function 0 uses table.grow on it, which could take it past 262144 elements"},
		"many functions": {g.Functions(bodies...), "module declares 100001 functions, more than 100000"},
		"locals spread over functions": {g.Functions(spread...),
			"functions up to 100 declare 1010000 locals together, more than 1000000"},
		// 200 KB of br_table labels to 64 blocks (a megabyte of them: 12 s
		// and 2.4 GB of compilation, which the host's RSS kept).
		"br_table labels": {g.Functions(g.Body(nil, g.BrTable(64, 200_000))),
			"function 0 has 200001 branches (an if two, a br_table one a label), more than 40000"},
		// 33 KB, each of 30 001 edges carrying 1 000 values (40 001 of them:
		// 44 s and 420 MiB).
		"branch values": {g.BranchValues(1000, 30_000),
			"function 0 has 30001 branches carrying up to 0 locals and 1000 values each, and calls of 0 values, 30031001 together, more than 250000"},
		// 240 KB of empty blocks in a row (300 KB of them: a minute of
		// compilation, which grows with the square of a function's blocks).
		"blocks": {g.Functions(g.Body(nil, g.Blocks(80_000))),
			"function 0 has 80000 blocks, loops and ifs, more than 5000"},
		// 12 KB: 2 000 ifs in a row, then 1 000 locals read past their
		// merges (10 000 ifs took 61 s and 2 GB).
		"ifs and locals": {g.Functions(g.Body([]g.Locals{{N: 1000, Type: g.I32}}, g.IfsThenLocals(1000, 2000))),
			"function 0 has 4000 branches carrying up to 1000 locals and 0 values each, and calls of 0 values, 4004000 together, more than 250000"},
		// 25 KB: a function of 1 000 parameters and results calling itself
		// 10 000 times in a chain, 42 s and 8 GB.
		"call chain": {g.CallChain(1000, 10_000),
			"function 0 has 0 branches carrying up to 1000 locals and 1000 values each, and calls of 20000000 values, 20000000 together, more than 250000"},
		// Each function within the bounds, and a second of compilation.
		"deep functions": {g.Functions(slices.Repeat([][]byte{g.Body([]g.Locals{{N: 1000, Type: g.I32}}, g.ReadInLoops(1000, 248))}, 21)...),
			"functions up to 20 have locals times nesting depth of 5229000 together, more than 5000000"},
	}
}

// TestHostileLoadRefused opens each module that would have wazero allocate
// by its declarations: Open refuses it with ErrIncompatible naming the
// bound and the value, before compiling, so the process's memory barely
// grows and the refusal is immediate.
func TestHostileLoadRefused(t *testing.T) {
	for name, m := range hostileModules(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
			defer cancel()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			st, err := host.Open(ctx, host.Config{WASM: m.wasm, Limits: hostileLimits}, host.WithCompilationCache(""))
			runtime.ReadMemStats(&after)
			if st != nil {
				_ = st.Close(ctx)
			}
			require.ErrorIs(t, err, host.ErrIncompatible)
			assert.Contains(t, err.Error(), m.want)
			// Sys never shrinks: it is the most the process ever had.
			assert.Less(t, after.Sys-before.Sys, uint64(64<<20), "bytes obtained from the system")
			assert.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(64<<20), "heap growth")
		})
	}
}

// TestHostileLoadInspect gives the same modules to Inspect and
// CheckOptions, which compile too (storage-host validate and inspect, and
// every configuration load, go through them).
func TestHostileLoadInspect(t *testing.T) {
	for name, m := range hostileModules(t) {
		t.Run(name, func(t *testing.T) {
			info := host.Inspect(t.Context(), m.wasm)
			require.ErrorIs(t, info.Err, host.ErrIncompatible)
			assert.Contains(t, info.Err.Error(), m.want)
			err := host.CheckOptions(t.Context(), m.wasm, map[string]string{"x": "1"})
			require.ErrorIs(t, err, host.ErrIncompatible)
			assert.Contains(t, err.Error(), m.want)
		})
	}
}
