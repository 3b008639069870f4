package wasmcheck

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	g "github.com/storage-host/storage-host/host/internal/wasmcheck/wasmgen"
)

// fuelRuntime returns a runtime providing the fuel import, which counts
// its calls in refuels and refills the counter by refill.
func fuelRuntime(t testing.TB, refill uint32, refuels *int) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
	t.Cleanup(func() { _ = rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder(FuelModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			*refuels++
			stack[0] = uint64(refill)
		}), nil, []api.ValueType{api.ValueTypeI32}).Export(FuelFunc).Instantiate(ctx)
	require.NoError(t, err)
	return rt
}

func TestInstrumentCompiles(t *testing.T) {
	for _, path := range []string{"testdata/features.wasm", "../../builtin/memory.wasm", "../../builtin/redis.wasm"} {
		t.Run(path, func(t *testing.T) {
			wasm := readFile(t, path)
			out, err := Instrument(wasm, Default)
			require.NoError(t, err)
			var n int
			rt := fuelRuntime(t, 100, &n)
			_, err = rt.CompileModule(context.Background(), out)
			require.NoError(t, err)
			t.Logf("%d bytes → %d", len(wasm), len(out))
		})
	}
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func name(s string) []byte { return cat(g.U32(uint32(len(s))), []byte(s)) }

// Section IDs wasmgen does not name.
const (
	secImportID  = 2
	secGlobalID  = 6
	secStartID   = 8
	secElementID = 9
)

// indexModule imports one function and defines six, referring to them in
// every way an index can appear: calls, ref.func in code and in a global's
// initialiser, element segments of all eight encodings, exports, the start
// function and the name section. Its table, once init has run:
//
//	0: f1 (flags 0)   1: f2 (flags 2)   2: f1 (flags 4)   3: f2 (flags 6)
//	8: f2 (flags 1, table.init)   9: imported (flags 5, table.init)
//	10: f2 (ref.func in code)   11: f2 (ref.func in a global)
//
// f1 returns 11, f2 22, the import 7; the start function stores f1's
// result in the exported global "started".
func indexModule() []byte {
	const (
		tI32    = 0 // () -> i32
		tGet    = 1 // (i32) -> i32
		tVoid   = 2 // () -> ()
		funcref = 0x70
	)
	types := g.Section(g.SecType, g.Vec(
		[]byte{0x60, 0, 1, 0x7f},
		[]byte{0x60, 1, 0x7f, 1, 0x7f},
		[]byte{0x60, 0, 0},
	))
	imports := g.Section(secImportID, g.Vec(cat(name("env"), name("f"), []byte{0, tI32})))
	funcs := g.Section(g.SecFunction, g.Vec([]byte{tI32}, []byte{tI32}, []byte{tGet}, []byte{tVoid}, []byte{tVoid}))
	table := g.Section(g.SecTable, g.Vec([]byte{funcref, 0, 16}))
	globals := g.Section(secGlobalID, g.Vec(
		[]byte{0x7f, 1, 0x41, 0, 0x0b},    // started: mut i32 = 0
		[]byte{funcref, 0, 0xd2, 2, 0x0b}, // funcref = ref.func f2
	))
	exports := g.Section(g.SecExport, g.Vec(
		cat(name("get"), []byte{0, 3}),
		cat(name("init"), []byte{0, 4}),
		cat(name("started"), []byte{3, 0}),
	))
	start := g.Section(secStartID, []byte{5})
	i32 := func(v byte) []byte { return []byte{0x41, v, 0x0b} }
	elems := g.Section(secElementID, g.Vec(
		cat([]byte{0}, i32(0), g.Vec([]byte{1})),
		cat([]byte{1, 0}, g.Vec([]byte{2})),
		cat([]byte{2, 0}, i32(1), []byte{0}, g.Vec([]byte{2})),
		cat([]byte{3, 0}, g.Vec([]byte{2})),
		cat([]byte{4}, i32(2), g.Vec([]byte{0xd2, 1, 0x0b})),
		cat([]byte{5, funcref}, g.Vec([]byte{0xd2, 0, 0x0b})),
		cat([]byte{6, 0}, i32(3), []byte{funcref}, g.Vec([]byte{0xd2, 2, 0x0b})),
		cat([]byte{7, funcref}, g.Vec([]byte{0xd2, 1, 0x0b})),
	))
	code := g.Section(g.SecCode, g.Vec(
		g.Body(nil, []byte{0x41, 11, 0x0b}),
		g.Body(nil, []byte{0x41, 22, 0x0b}),
		g.Body(nil, []byte{0x20, 0, 0x11, tI32, 0, 0x0b}), // call_indirect
		g.Body(nil, []byte{
			0x41, 8, 0x41, 0, 0x41, 1, 0xfc, 12, 1, 0, // table.init segment 1
			0x41, 9, 0x41, 0, 0x41, 1, 0xfc, 12, 5, 0, // table.init segment 5
			0x41, 10, 0xd2, 2, 0x26, 0, // table.set 10 (ref.func f2)
			0x41, 11, 0x23, 1, 0x26, 0, // table.set 11 (global 1)
			0x0b,
		}),
		g.Body(nil, []byte{0x10, 1, 0x24, 0, 0x0b}), // started = f1()
	))
	names := g.Section(0, cat(name("name"),
		g.Section(1, g.Vec(cat([]byte{1}, name("eleven")), cat([]byte{2}, name("twentytwo")), cat([]byte{3}, name("get")))),
		g.Section(2, g.Vec(cat([]byte{3}, g.Vec(cat([]byte{0}, name("slot")))))),
	))
	return g.Module(types, imports, funcs, table, globals, exports, start, elems, code, names)
}

// TestInstrumentIndices runs indexModule instrumented: every function
// reference reaches the function it named before the import moved it.
func TestInstrumentIndices(t *testing.T) {
	ctx := context.Background()
	wasm := indexModule()
	out, err := Instrument(wasm, Default)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		wasm []byte
	}{{"original", wasm}, {"instrumented", out}} {
		t.Run(tc.name, func(t *testing.T) {
			var refuels int
			rt := fuelRuntime(t, 100, &refuels)
			_, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
				WithFunc(func() int32 { return 7 }).Export("f").Instantiate(ctx)
			require.NoError(t, err)
			mod, err := rt.InstantiateWithConfig(ctx, tc.wasm, wazero.NewModuleConfig())
			require.NoError(t, err)
			assert.Equal(t, uint64(11), mod.ExportedGlobal("started").Get(), "the start function ran and called f1")
			_, err = mod.ExportedFunction("init").Call(ctx)
			require.NoError(t, err)
			for slot, want := range map[uint64]uint64{0: 11, 1: 22, 2: 11, 3: 22, 8: 22, 9: 7, 10: 22, 11: 22} {
				got, err := mod.ExportedFunction("get").Call(ctx, slot)
				require.NoError(t, err, "slot %d", slot)
				assert.Equal(t, want, got[0], "slot %d", slot)
			}
			assert.Equal(t, "get", mod.ExportedFunction("get").Definition().Name(), "the name section follows the functions")
			assert.Equal(t, "slot", mod.ExportedFunction("get").Definition().ParamNames()[0])
		})
	}
}

// TestInstrumentRefuses: the module's own code may not reach the counter
// or the import.
func TestInstrumentRefuses(t *testing.T) {
	void := g.Section(g.SecType, g.Vec([]byte{0x60, 0, 0}))
	one := g.Section(g.SecFunction, g.Vec([]byte{0}))
	for name, wasm := range map[string][]byte{
		"global.get past the module's globals": g.Functions(g.Body(nil, []byte{0x23, 0, 0x1a, 0x0b})),
		"global.set past the module's globals": g.Functions(g.Body(nil, []byte{0x41, 1, 0x24, 0, 0x0b})),
		"export of a global past the module's": g.Module(void, g.Section(g.SecExport, g.Vec(cat(name("fuel"), []byte{3, 0})))),
		"export named as the grow flag": g.Module(void, g.Section(secGlobalID, g.Vec([]byte{0x7f, 0, 0x41, 0, 0x0b})),
			g.Section(g.SecExport, g.Vec(cat(name(GrowRefused), []byte{3, 0})))),
		"global initialiser reading it": g.Module(g.Section(secGlobalID, g.Vec([]byte{0x7f, 0, 0x23, 1, 0x0b})) /* the counter is global 1 */),
		"import from the fuel module": g.Module(void,
			g.Section(secImportID, g.Vec(cat(name(FuelModule), name(FuelFunc), []byte{0, 0})))),
		"data offset reading it": g.Module(g.Section(5, g.Vec([]byte{0, 1})),
			g.Section(11, g.Vec(cat([]byte{0, 0x23, 0, 0x0b}, g.Vec())))),
		"element offset reading it": g.Module(void, one, g.Section(g.SecTable, g.Vec([]byte{0x70, 0, 1})),
			g.Section(secElementID, g.Vec(cat([]byte{0, 0x23, 0, 0x0b}, g.Vec()))),
			g.Section(g.SecCode, g.Vec(g.Body(nil, []byte{0x0b})))),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Check(wasm, Default)
			require.NoError(t, err, "the walk alone does not resolve indices")
			_, err = Instrument(wasm, Default)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

// fuelModule exports spin(n), a loop of n iterations; fib(n), a doubly
// recursive function without loops; fill(n, times), times fills of n
// bytes; recurse(), which never returns; and bigspin(n), a loop of n
// iterations whose body is 640 nops. It has globals globals of its own, so
// that the counter's index takes one LEB128 byte or more.
func fuelModule(globals int) []byte {
	types := g.Section(g.SecType, g.Vec(
		[]byte{0x60, 1, 0x7f, 0},       // (i32) -> ()
		[]byte{0x60, 1, 0x7f, 1, 0x7f}, // (i32) -> i32
		[]byte{0x60, 2, 0x7f, 0x7f, 0}, // (i32, i32) -> ()
		[]byte{0x60, 0, 0},             // () -> ()
	))
	funcs := g.Section(g.SecFunction, g.Vec([]byte{0}, []byte{1}, []byte{2}, []byte{3}, []byte{0}))
	memory := g.Section(5, g.Vec([]byte{0, 2}))
	exports := g.Section(g.SecExport, g.Vec(
		cat(name("spin"), []byte{0, 0}), cat(name("fib"), []byte{0, 1}),
		cat(name("fill"), []byte{0, 2}), cat(name("recurse"), []byte{0, 3}),
		cat(name("bigspin"), []byte{0, 4}),
	))
	nops := make([]byte, 640)
	for i := range nops {
		nops[i] = 0x01
	}
	code := g.Section(g.SecCode, g.Vec(
		// loop: n -= 1; br_if n != 0
		g.Body(nil, []byte{0x03, 0x40, 0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x0b}),
		// if n < 2 { n } else { fib(n-1) + fib(n-2) }
		g.Body(nil, []byte{0x20, 0, 0x41, 2, 0x48, 0x04, 0x7f, 0x20, 0, 0x05,
			0x20, 0, 0x41, 1, 0x6b, 0x10, 1, 0x20, 0, 0x41, 2, 0x6b, 0x10, 1, 0x6a, 0x0b, 0x0b}),
		// loop: memory.fill(0, 0, n); times -= 1; br_if times != 0
		g.Body(nil, []byte{0x03, 0x40, 0x41, 0, 0x41, 0, 0x20, 0, 0xfc, 11, 0,
			0x20, 1, 0x41, 1, 0x6b, 0x22, 1, 0x0d, 0, 0x0b, 0x0b}),
		g.Body(nil, []byte{0x10, 3, 0x0b}),
		g.Body(nil, cat([]byte{0x03, 0x40}, nops, []byte{0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x0b})),
	))
	own := make([][]byte, globals)
	for i := range own {
		own[i] = []byte{0x7f, 0, 0x41, 0, 0x0b}
	}
	return g.Module(types, funcs, memory, g.Section(secGlobalID, g.Vec(own...)), exports, code)
}

// TestInstrumentFuel counts the refuels of instrumented code: loops,
// calls and bulk memory instructions each take fuel.
func TestInstrumentFuel(t *testing.T) {
	for _, globals := range []int{0, 200} {
		out, err := Instrument(fuelModule(globals), Default)
		require.NoError(t, err)
		testFuel(t, out)
	}
}

func testFuel(t *testing.T, out []byte) {
	ctx := context.Background()
	const refill = 1000
	for _, tc := range []struct {
		fn       string
		args     []uint64
		min, max int
	}{
		{"spin", []uint64{100_000}, 99, 101},      // one unit per iteration
		{"fib", []uint64{20}, 21, 23},             // one unit per call: fib(20) makes 21891
		{"fill", []uint64{1 << 16, 100}, 99, 101}, // 1 + 65536>>6 per fill: one refuel each
		{"fill", []uint64{0, 100_000}, 199, 201},  // 2 per fill of nothing (the loop and the fill)
		{"bigspin", []uint64{1000}, 10, 12},       // 1 + 650>>6 per iteration
	} {
		var refuels int
		rt := fuelRuntime(t, refill, &refuels)
		mod, err := rt.Instantiate(ctx, out)
		require.NoError(t, err)
		_, err = mod.ExportedFunction(tc.fn).Call(ctx, tc.args...)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, refuels, tc.min, "%s%v", tc.fn, tc.args)
		assert.LessOrEqual(t, refuels, tc.max, "%s%v", tc.fn, tc.args)
	}
}

// TestRecursionTraps: wazero ends unbounded recursion with a trap, so the
// entry checks are there for recursion that is deep in total, not in
// depth (fib above), not for this.
func TestRecursionTraps(t *testing.T) {
	ctx := context.Background()
	out, err := Instrument(fuelModule(0), Default)
	require.NoError(t, err)
	var refuels int
	mod, err := fuelRuntime(t, 1<<30, &refuels).Instantiate(ctx, out)
	require.NoError(t, err)
	_, err = mod.ExportedFunction("recurse").Call(ctx)
	require.ErrorContains(t, err, "stack overflow")
}

// BenchmarkFuelLoop runs a loop of a million iterations, as compiled and
// instrumented with refills of several sizes: the cost of the checks and
// of the refuels, which is what the host's refill size trades against how
// late a timeout is noticed (a refill's worth of iterations at most).
func BenchmarkFuelLoop(b *testing.B) {
	ctx := context.Background()
	wasm := fuelModule(0)
	out, err := Instrument(wasm, Default)
	require.NoError(b, err)
	run := func(b *testing.B, module []byte, refill uint32) {
		var refuels int
		mod, err := fuelRuntime(b, refill, &refuels).Instantiate(ctx, module)
		require.NoError(b, err)
		spin := mod.ExportedFunction("spin")
		b.ResetTimer()
		for b.Loop() {
			if _, err := spin.Call(ctx, 1_000_000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(refuels)/float64(b.N), "refuels/op")
	}
	b.Run("original", func(b *testing.B) { run(b, wasm, 0) })
	for _, refill := range []uint32{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("refill=%d", refill), func(b *testing.B) { run(b, out, refill) })
	}
}

// growModule exports grow(n), which answers memory.grow(n), and
// growFill(n), which grows by n pages and then fills none of them (a bulk
// instruction and a grow in one body share the scratch local); its memory
// may grow to 4 pages. With own, it has a global and an export of its
// own besides; without, its exports are the only section of its kind.
func growModule(own bool) []byte {
	types := g.Section(g.SecType, g.Vec([]byte{0x60, 1, 0x7f, 1, 0x7f})) // (i32) -> i32
	funcs := g.Section(g.SecFunction, g.Vec([]byte{0}, []byte{0}))
	memory := g.Section(5, g.Vec([]byte{1, 1, 4}))
	exports := [][]byte{cat(name("grow"), []byte{0, 0}), cat(name("growFill"), []byte{0, 1})}
	var globals []byte
	if own {
		globals = g.Section(secGlobalID, g.Vec([]byte{0x7f, 0, 0x41, 5, 0x0b}))
		exports = append(exports, cat(name("five"), []byte{3, 0}))
	}
	code := g.Section(g.SecCode, g.Vec(
		g.Body(nil, []byte{0x20, 0, 0x40, 0, 0x0b}),
		// memory.grow(n), then memory.fill(0, 0, 0) with the result kept
		g.Body(nil, []byte{0x20, 0, 0x40, 0, 0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 11, 0, 0x0b}),
	))
	return g.Module(types, funcs, memory, globals, g.Section(g.SecExport, g.Vec(exports...)), code)
}

// TestInstrumentFlagsRefusedGrowth: the exported flag stays 0 while every
// memory.grow succeeds (or asks for nothing), turns 1 at the first one
// answered -1 and stays so, and the grow's own result is unchanged.
func TestInstrumentFlagsRefusedGrowth(t *testing.T) {
	ctx := context.Background()
	for _, own := range []bool{false, true} {
		for _, fn := range []string{"grow", "growFill"} {
			t.Run(fmt.Sprintf("own=%v/%s", own, fn), func(t *testing.T) {
				out, err := Instrument(growModule(own), Default)
				require.NoError(t, err)
				var refuels int
				mod, err := fuelRuntime(t, 100, &refuels).Instantiate(ctx, out)
				require.NoError(t, err)
				flag := mod.ExportedGlobal(GrowRefused)
				require.NotNil(t, flag)
				grow := func(pages uint64) int32 {
					got, err := mod.ExportedFunction(fn).Call(ctx, pages)
					require.NoError(t, err)
					return int32(got[0])
				}
				assert.Equal(t, int32(1), grow(2), "grown from 1 page")
				assert.Equal(t, int32(3), grow(0))
				assert.Zero(t, flag.Get(), "every grow succeeded")
				assert.Equal(t, int32(-1), grow(2), "past the maximum of 4 pages")
				assert.Equal(t, uint64(1), flag.Get())
				assert.Equal(t, int32(3), grow(1), "a later grow that fits")
				assert.Equal(t, uint64(1), flag.Get(), "the flag stays until the host clears it")
				flag.(api.MutableGlobal).Set(0)
				assert.Equal(t, int32(-1), grow(1))
				assert.Equal(t, uint64(1), flag.Get())
				if own {
					assert.Equal(t, uint64(5), mod.ExportedGlobal("five").Get(), "the module's own global and export")
				}
			})
		}
	}
}
