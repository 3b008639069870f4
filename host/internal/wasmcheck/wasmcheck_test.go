package wasmcheck

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	g "github.com/storage-host/storage-host/host/internal/wasmcheck/wasmgen"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestFeatures walks a module with one of each instruction form whose
// immediates differ, and checks that wazero, as the host configures it,
// compiles it too: the walk reads what the runtime reads.
func TestFeatures(t *testing.T) {
	wasm := readFile(t, "testdata/features.wasm")
	s, err := Check(wasm, Default)
	require.NoError(t, err)
	assert.Equal(t, uint32(6), s.Depth)
	assert.Equal(t, uint32(4), s.Locals) // $scalar: a parameter and three locals
	assert.Equal(t, uint32(3), s.Functions)
	assert.Equal(t, uint32(3), s.Globals)
	assert.Equal(t, uint32(2), s.Tables)
	assert.Equal(t, uint32(3), s.ElementSegments)
	assert.Equal(t, uint32(2), s.DataSegments)

	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
	defer rt.Close(ctx)
	_, err = rt.CompileModule(ctx, wasm)
	require.NoError(t, err)

	// A prefix is refused as malformed unless it ends between sections;
	// none is read past its end.
	refused := 0
	for n := range len(wasm) {
		if _, err := Check(wasm[:n], Default); err != nil {
			require.ErrorIs(t, err, ErrMalformed, "prefix of %d bytes", n)
			refused++
		}
	}
	assert.Greater(t, refused, len(wasm)*9/10)
}

// TestAtomics walks the threads proposal's instructions, which the host's
// runtime does not enable: their immediates are decoded all the same.
func TestAtomics(t *testing.T) {
	code := []byte{
		0x41, 0x00, 0xfe, 0x00, 0x02, 0x00, // i32.const 0, memory.atomic.notify align=2 offset=0 (with the count below)
	}
	code = append([]byte{0x41, 0x00}, code...)
	code = append(code, 0x1a,
		0xfe, 0x03, 0x00, // atomic.fence
		0x41, 0x00, 0xfe, 0x10, 0x02, 0x08, 0x1a, // i32.atomic.load offset=8, drop
		0x0b)
	mem := g.Section(5, g.Vec([]byte{0x03, 0x01, 0x01})) // shared memory 1..1
	types := g.Section(g.SecType, g.Vec([]byte{0x60, 0, 0}))
	wasm := g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(0))), mem,
		g.Section(g.SecCode, g.Vec(g.Body(nil, code))))
	s, err := Check(wasm, Default)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), s.Depth)
}

// TestVectorOpcodeIsOneByte: wazero reads a SIMD opcode as one byte. A
// walk reading it as LEB128 would take 0xfd 0x8c 0x00 for v128.const and
// skip the 16 bytes after it, where wazero finds 8 blocks opened and, in
// a second such place, closed: nesting it would not see.
func TestVectorOpcodeIsOneByte(t *testing.T) {
	code := []byte{0x00, 0xfd, 0x8c, 0x00} // unreachable, i16x8.neg (0x8c), unreachable
	for range 8 {
		code = append(code, 0x02, 0x40) // block
	}
	code = append(code, 0x00, 0xfd, 0x8c, 0x00)
	for range 8 {
		code = append(code, 0x0b) // end
	}
	for range 8 {
		code = append(code, 0x01) // nop
	}
	wasm := g.Functions(g.Body(nil, append(code, 0x0b)))

	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, wasm)
	require.NoError(t, err)
	s, err := Check(wasm, Default)
	require.NoError(t, err)
	assert.Equal(t, uint32(9), s.Depth)
}

// TestAgreesWithWazero changes each byte of the features module to a few
// values: whatever wazero compiles, the walk must read too, or it would
// be measuring something else.
func TestAgreesWithWazero(t *testing.T) {
	base := readFile(t, "testdata/features.wasm")
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	compiled := 0
	for i := 8; i < len(base); i++ {
		for _, v := range []byte{0x00, 0x01, 0x02, 0x0b, 0x40, 0x7f, 0x80, 0xff, base[i] + 1, base[i] - 1} {
			m := append([]byte(nil), base...)
			m[i] = v
			if _, err := rt.CompileModule(ctx, m); err != nil {
				continue
			}
			compiled++
			_, err := Check(m, Unlimited)
			assert.NoError(t, err, "byte %d set to %#x", i, v)
		}
	}
	assert.Greater(t, compiled, 1000)
}

// TestDefaultFitsBuiltins measures the built-in Go plugins: every bound is
// at least four times what they need.
func TestDefaultFitsBuiltins(t *testing.T) {
	paths, err := filepath.Glob("../../builtin/*.wasm")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		wasm := readFile(t, path)
		s, err := Check(wasm, Default)
		require.NoError(t, err, path)
		t.Logf("%s: %d bytes, %+v", filepath.Base(path), len(wasm), s)
		d := Default
		for _, c := range []struct {
			name         string
			needs, bound uint64
		}{
			{"module bytes", uint64(len(wasm)), uint64(d.ModuleBytes)},
			{"types", uint64(s.Types), uint64(d.Types)},
			{"imports", uint64(s.Imports), uint64(d.Imports)},
			{"functions", uint64(s.Functions), uint64(d.Functions)},
			{"globals", uint64(s.Globals), uint64(d.Globals)},
			{"exports", uint64(s.Exports), uint64(d.Exports)},
			{"tables", uint64(s.Tables), uint64(d.Tables)},
			{"table elements", uint64(s.TableElements), uint64(d.TableElements)},
			{"element segments", uint64(s.ElementSegments), uint64(d.ElementSegments)},
			{"data segments", uint64(s.DataSegments), uint64(d.DataSegments)},
			{"element entries", uint64(s.ElementEntries), uint64(d.ElementEntries)},
			{"names", uint64(s.Names), uint64(d.Names)},
			{"name bytes", uint64(s.NameBytes), uint64(d.NameBytes)},
			{"locals", uint64(s.Locals), uint64(d.Locals)},
			{"module locals", s.ModuleLocals, d.ModuleLocals},
			{"body bytes", uint64(s.BodyBytes), uint64(d.BodyBytes)},
			{"code bytes", uint64(s.CodeBytes), uint64(d.CodeBytes)},
			{"depth", uint64(s.Depth), uint64(d.Depth)},
			{"locals times depth", s.LocalsTimesDepth, d.LocalsTimesDepth},
			{"module locals times depth", s.ModuleLocalsTimesDepth, d.ModuleLocalsTimesDepth},
			{"branches", uint64(s.Branches), uint64(d.Branches)},
			{"branch values", s.BranchValues, d.BranchValues},
			{"module branch values", s.ModuleBranchValues, d.ModuleBranchValues},
			{"blocks", uint64(s.Blocks), uint64(d.Blocks)},
			{"module blocks squared", s.ModuleBlocksSquared, d.ModuleBlocksSquared},
		} {
			assert.LessOrEqual(t, 4*c.needs, c.bound, "%s: %s needs %d", path, c.name, c.needs)
		}
	}
}

func locals(n ...uint32) []g.Locals {
	l := make([]g.Locals, len(n))
	for i := range n {
		l[i] = g.Locals{N: n[i], Type: g.I32}
	}
	return l
}

// table returns a module with one table of min elements, and max if not
// negative, and a function using table.grow if grow.
func table(min uint32, max int64, grow bool) []byte {
	limits := append([]byte{0x00}, g.U32(min)...)
	if max >= 0 {
		limits = append(append([]byte{0x01}, g.U32(min)...), g.U32(uint32(max))...)
	}
	code := []byte{0x0b}
	if grow {
		code = []byte{0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a, 0x0b} // ref.null func, i32.const 1, table.grow 0, drop
	}
	types := g.Section(g.SecType, g.Vec([]byte{0x60, 0, 0}))
	return g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(0))),
		g.Section(g.SecTable, g.Vec(append([]byte{0x70}, limits...))),
		g.Section(g.SecCode, g.Vec(g.Body(nil, code))))
}

// TestBounds refuses a module past each bound, naming it and the value.
func TestBounds(t *testing.T) {
	manyParams := make([]byte, 0, 20_010)
	manyParams = append(append(manyParams, 0x60), g.U32(10_001)...)
	for range 10_001 {
		manyParams = append(manyParams, g.I32)
	}
	manyParams = append(manyParams, 0)
	empty := g.Body(nil, []byte{0x0b})
	bodies := make([][]byte, Default.Functions+1)
	for i := range bodies {
		bodies[i] = empty
	}
	nops := make([]byte, Default.BodyBytes+1)
	nops[len(nops)-1] = 0x0b
	for i := range len(nops) - 1 {
		nops[i] = 0x01
	}
	for _, c := range []struct {
		name, want string
		wasm       []byte
	}{
		{"2^32-1 locals", "function 0 declares 4294967295 locals, more than 10000",
			g.Functions(g.Body(locals(math.MaxUint32), []byte{0x0b}))},
		{"10^8 locals", "function 0 declares 100000000 locals, more than 10000",
			g.Functions(g.Body(locals(100_000_000), []byte{0x0b}))},
		{"locals summing past 2^32", "function 1 declares 8589934590 locals, more than 10000",
			g.Functions(empty, g.Body(locals(math.MaxUint32, math.MaxUint32), []byte{0x0b}))},
		{"parameters count as locals", "function 0 declares 10001 locals, more than 10000",
			g.Module(g.Section(g.SecType, g.Vec(manyParams)), g.Section(g.SecFunction, g.Vec(g.U32(0))),
				g.Section(g.SecCode, g.Vec(empty)))},
		{"nesting", "function 0 nests blocks 10001 deep, more than 10000",
			g.Functions(g.Body(nil, g.Nested(10_000)))},
		{"locals times depth", "function 0 has 1000 locals at nesting depth 301, 301000 together, more than 250000",
			g.Functions(g.Body(locals(1000), g.ReadInLoops(1000, 300)))},
		{"locals times depth of the module", "functions up to 20 have locals times nesting depth of 5229000 together, more than 5000000",
			g.Functions(slices.Repeat([][]byte{g.Body(locals(1000), g.ReadInLoops(1000, 248))}, 21)...)},
		{"functions", "module declares 100001 functions, more than 100000", g.Functions(bodies...)},
		{"module locals", "functions up to 100 declare 1010000 locals together, more than 1000000",
			g.Functions(slices.Repeat([][]byte{g.Body(locals(10_000), []byte{0x0b})}, 101)...)},
		{"body", "function 0 has a body of 262146 bytes, more than 262144",
			g.Functions(g.Body(nil, nops))},
		{"table", "table 0 declares 134217728 elements, more than 262144", table(1<<27, 1<<27, false)},
		{"growable table", "table 0 declares no maximum size, and function 0 uses table.grow on it, which could take it past 262144 elements",
			table(1, -1, true)},
		{"table grown past the bound", "table 0 declares a maximum size of 262145, and function 0 uses table.grow on it",
			table(1, 1<<18+1, true)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Check(c.wasm, Default)
			require.ErrorIs(t, err, ErrBound)
			assert.Contains(t, err.Error(), c.want)
		})
	}

	// A table without a maximum that no function grows stays its size.
	_, err := Check(table(1, -1, false), Default)
	require.NoError(t, err)
	_, err = Check(table(1, 1<<18, true), Default)
	require.NoError(t, err)
}

// TestCountBounds lowers each count's bound under what the features
// module declares.
func TestCountBounds(t *testing.T) {
	wasm := readFile(t, "testdata/features.wasm")
	for _, c := range []struct {
		want string
		set  func(*Limits)
	}{
		{"module of 541 bytes, more than 540", func(l *Limits) { l.ModuleBytes = 540 }},
		{"module declares 2 types, more than 1", func(l *Limits) { l.Types = 1 }},
		{"module declares 1 imports, more than 0", func(l *Limits) { l.Imports = 0 }},
		{"module declares 3 functions, more than 2", func(l *Limits) { l.Functions = 2 }},
		{"module declares 1 functions, more than 0", func(l *Limits) { l.Functions = 0 }},
		{"module declares 3 globals, more than 2", func(l *Limits) { l.Globals = 2 }},
		{"module declares 2 exports, more than 1", func(l *Limits) { l.Exports = 1 }},
		{"module declares 2 tables, more than 1", func(l *Limits) { l.Tables = 1 }},
		{"table 0 declares 4 elements, more than 3", func(l *Limits) { l.TableElements = 3 }},
		{"module declares 3 element segments, more than 2", func(l *Limits) { l.ElementSegments = 2 }},
		{"module declares 2 data segments (data count section), more than 1", func(l *Limits) { l.DataSegments = 1 }},
		{"function 1 declares 4 locals, more than 3", func(l *Limits) { l.Locals = 3 }},
		{"functions up to 2 declare 6 locals together, more than 5", func(l *Limits) { l.ModuleLocals = 5 }},
		{"module declares 5 element segment entries, more than 3", func(l *Limits) { l.ElementEntries = 3 }},
		{"function 1 has a body of 219 bytes, more than 100", func(l *Limits) { l.BodyBytes = 100 }},
		{"code section of", func(l *Limits) { l.CodeBytes = 100 }},
		{"function 1 nests blocks 6 deep, more than 5", func(l *Limits) { l.Depth = 5 }},
		{"function 1 has 4 locals at nesting depth 6, 24 together, more than 23", func(l *Limits) { l.LocalsTimesDepth = 23 }},
		{"functions up to 2 have locals times nesting depth of 26 together, more than 25", func(l *Limits) { l.ModuleLocalsTimesDepth = 25 }},
		// A br_table of two labels and its default, an if (two) and a
		// return; a call_indirect and a call, each of one parameter and one
		// result.
		{"function 1 has 6 branches (an if two, a br_table one a label), more than 5", func(l *Limits) { l.Branches = 5 }},
		{"function 1 has 6 branches carrying up to 4 locals and 2 values each, and calls of 4 values, 46 together, more than 45", func(l *Limits) { l.BranchValues = 45 }},
		{"functions up to 1 have branches carrying 46 locals and values together, more than 45", func(l *Limits) { l.ModuleBranchValues = 45 }},
		{"function 1 has 5 blocks, loops and ifs, more than 4", func(l *Limits) { l.Blocks = 4 }},
		{"functions up to 1 have blocks, loops and ifs whose counts squared add up to 25, more than 24", func(l *Limits) { l.ModuleBlocksSquared = 24 }},
	} {
		l := Default
		c.set(&l)
		_, err := Check(wasm, l)
		require.ErrorIs(t, err, ErrBound, c.want)
		assert.Contains(t, err.Error(), c.want)
	}
}

// TestNameBound bounds the name section's entries, function and local
// names together, each of which the runtime keeps.
func TestNameBound(t *testing.T) {
	entry := append(g.U32(0), g.Vec([]byte("f"))...) // index 0, name "f"
	funcNames := g.Vec(entry, entry)
	localNames := g.Vec(append(g.U32(0), g.Vec(entry, entry)...))
	content := append(g.U32(4), "name"...)
	content = append(append(append(content, 1), g.U32(uint32(len(funcNames)))...), funcNames...)
	content = append(append(append(content, 2), g.U32(uint32(len(localNames)))...), localNames...)
	wasm := g.Module(g.Section(0, content))
	s, err := Check(wasm, Default)
	require.NoError(t, err)
	assert.Equal(t, uint32(4), s.Names)
	l := Default
	l.Names = 3
	_, err = Check(wasm, l)
	require.ErrorIs(t, err, ErrBound)
	assert.Contains(t, err.Error(), "module declares 4 names (name section), more than 3")
}

// TestNameBytesBound bounds each name of the name section: the module's,
// a function's, a local's. A trap's text names up to 30 functions, and a
// module naming one with 2 MiB made every trap hundreds of MB of log.
func TestNameBytesBound(t *testing.T) {
	long := []byte(strings.Repeat("\x01", 4097))
	sub := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, g.U32(uint32(len(body)))...), body...)
	}
	name := func(b []byte) []byte { return append(g.U32(uint32(len(b))), b...) }
	entry := func(b []byte) []byte { return append(g.U32(0), name(b)...) }
	for what, sec := range map[string][]byte{
		"module":   sub(0, name(long)),
		"function": sub(1, g.Vec(entry(long))),
		"local":    sub(2, g.Vec(append(g.U32(0), g.Vec(entry(long))...))),
	} {
		wasm := g.Module(g.Section(0, append(append(g.U32(4), "name"...), sec...)))
		_, err := Check(wasm, Default)
		require.ErrorIs(t, err, ErrBound, what)
		assert.Contains(t, err.Error(), "a name of 4097 bytes, more than 4096", what)
		l := Default
		l.NameBytes = 4097
		s, err := Check(wasm, l)
		require.NoError(t, err, what)
		assert.Equal(t, uint32(4097), s.NameBytes, what)
	}
}

// TestDeclaredCounts gives vectors lengths of 2^32-1 with nothing behind
// them: each is refused as malformed, having allocated a few kilobytes.
func TestDeclaredCounts(t *testing.T) {
	huge := g.U32(math.MaxUint32)
	types := g.Section(g.SecType, g.Vec([]byte{0x60, 0, 0}))
	oneFunc := g.Section(g.SecFunction, g.Vec(g.U32(0)))
	code := func(body []byte) []byte {
		return g.Section(g.SecCode, append(g.U32(1), append(g.U32(uint32(len(body))), body...)...))
	}
	custom := func(name string, content []byte) []byte {
		return g.Section(0, append(append(g.U32(uint32(len(name))), name...), content...))
	}
	for _, c := range []struct {
		name string
		wasm []byte
	}{
		{"types", g.Module(g.Section(g.SecType, huge))},
		{"parameters", g.Module(g.Section(g.SecType, append([]byte{1, 0x60}, huge...)))},
		{"imports", g.Module(g.Section(2, huge))},
		{"functions", g.Module(types, g.Section(g.SecFunction, huge))},
		{"tables", g.Module(g.Section(g.SecTable, huge))},
		{"globals", g.Module(g.Section(6, huge))},
		{"exports", g.Module(g.Section(g.SecExport, huge))},
		{"export name", g.Module(g.Section(g.SecExport, append([]byte{1}, huge...)))},
		{"elements", g.Module(g.Section(9, huge))},
		{"element entries", g.Module(g.Section(9, append([]byte{1, 1, 0}, huge...)))},
		{"data", g.Module(g.Section(11, huge))},
		{"data bytes", g.Module(g.Section(11, append([]byte{1, 1}, huge...)))},
		{"bodies", g.Module(types, oneFunc, g.Section(g.SecCode, huge))},
		{"body size", g.Module(types, oneFunc, g.Section(g.SecCode, append([]byte{1}, huge...)))},
		{"local groups", g.Module(types, oneFunc, code(append(huge, 0x0b)))},
		{"br_table labels", g.Module(types, oneFunc, code(append(append([]byte{0, 0x41, 0, 0x0e}, huge...), 0x0b)))},
		{"select types", g.Module(types, oneFunc, code(append(append([]byte{0, 0x1c}, huge...), 0x0b)))},
		{"section size", append(g.Module(), append([]byte{0}, huge...)...)},
		{"function names", g.Module(custom("name", append([]byte{1, 5}, huge...)))},
		{"local names", g.Module(custom("name", append([]byte{2, 5}, huge...)))},
		{"local names of a function", g.Module(custom("name", append([]byte{2, 7, 1, 0}, huge...)))},
		{"function name", g.Module(custom("name", append([]byte{1, 7, 1, 0}, huge...)))},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Check(c.wasm, Unlimited)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "allocated")
		})
	}
}

// TestRefusesUnknown refuses what the walk cannot size.
func TestRefusesUnknown(t *testing.T) {
	types := g.Section(g.SecType, g.Vec([]byte{0x60, 0, 0}))
	fn := func(code ...byte) []byte {
		return g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(0))), g.Section(g.SecCode, g.Vec(g.Body(nil, code))))
	}
	for name, wasm := range map[string][]byte{
		"not wasm":              []byte("hello, world"),
		"version 2":             []byte("\x00asm\x02\x00\x00\x00"),
		"unknown section":       g.Module(g.Section(14, nil)),
		"sections out of order": g.Module(g.Section(g.SecFunction, g.Vec()), types),
		"duplicate section":     g.Module(types, types),
		"tail call":             fn(0x12, 0x00, 0x0b),
		"try_table":             fn(0x1f, 0x40, 0x00, 0x0b, 0x0b),
		"relaxed simd":          fn(0xfd, 0x80, 0x02, 0x0b),
		"bad 0xfc":              fn(0xfc, 0x12, 0x0b),
		"bad 0xfe":              fn(0xfe, 0x04, 0x0b),
		"gc rec group":          g.Module(g.Section(g.SecType, g.Vec([]byte{0x4e, 0x00}))),
		"end missing":           fn(0x01),
		"code after end":        fn(0x0b, 0x01),
		"body shorter than declared": g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(0))),
			g.Section(g.SecCode, []byte{1, 5, 0, 0x0b})),
		"no code section":     g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(0)))),
		"type out of range":   g.Module(types, g.Section(g.SecFunction, g.Vec(g.U32(1)))),
		"negative block type": fn(0x02, 0x7a, 0x0b, 0x0b),
		"long LEB128":         fn(0x0c, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b),
		"LEB128 over 32 bits": fn(0x0c, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x0b),
	} {
		_, err := Check(wasm, Unlimited)
		assert.ErrorIs(t, err, ErrMalformed, name)
		assert.False(t, errors.Is(err, ErrBound), name)
	}
}
