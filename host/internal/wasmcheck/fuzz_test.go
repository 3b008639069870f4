package wasmcheck

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzCheck walks arbitrary bytes, seeded with every WebAssembly text
// fixture's module: it never panics, refuses with one of its two errors,
// and measures without bounds no less than with them.
func FuzzCheck(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"testdata/*.wasm", "../../../testdata/plugins/*.wasm", "../../../testdata/plugins/*/*.wasm"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) < 10 {
		f.Fatalf("only %d seed modules", len(seeds))
	}
	for _, path := range seeds {
		f.Add(readFile(f, path))
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		bounded, err := Check(wasm, Default)
		if err != nil && !errors.Is(err, ErrBound) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error of neither kind: %v", err)
		}
		_, uerr := Check(wasm, Unlimited)
		if uerr != nil && !errors.Is(uerr, ErrMalformed) {
			t.Fatalf("unbounded check: %v", uerr)
		}
		if err == nil && uerr != nil {
			t.Fatalf("passes the bounds but is malformed without them: %v", uerr)
		}
		if err == nil && bounded.Locals > Default.Locals {
			t.Fatalf("passed with %d locals", bounded.Locals)
		}
	})
}

// FuzzInstrument instruments what Check accepts, seeded like FuzzCheck and
// with the modules of the instrumentation tests: Instrument never panics,
// refuses only with ErrMalformed, and its output is a module Check
// accepts; under 64 KiB, one that wazero compiles whenever it compiles the
// input.
func FuzzInstrument(f *testing.F) {
	for _, pattern := range []string{"testdata/*.wasm", "../../../testdata/plugins/*.wasm", "../../../testdata/plugins/*/*.wasm"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range m {
			f.Add(readFile(f, path))
		}
	}
	f.Add(indexModule())
	f.Add(fuelModule(0))
	f.Add(fuelModule(200))
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Cleanup(func() { _ = rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if _, err := Check(wasm, Default); err != nil {
			return
		}
		out, err := Instrument(wasm, Default)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refused with neither kind of error: %v", err)
			}
			return
		}
		if _, err := Check(out, Unlimited); err != nil {
			t.Fatalf("instrumented module is malformed: %v", err)
		}
		if len(wasm) > 64<<10 {
			return
		}
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return
		}
		_ = cm.Close(ctx)
		cm, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero compiles the module but not its instrumented form: %v", err)
		}
		_ = cm.Close(ctx)
	})
}

// BenchmarkModuleCheck walks the built-in redis plugin, as Open does before
// compiling it.
func BenchmarkModuleCheck(b *testing.B) {
	wasm := readFile(b, "../../builtin/redis.wasm")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(wasm, Default); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstrument instruments the built-in redis plugin, as Open does
// before compiling an untrusted module.
func BenchmarkInstrument(b *testing.B) {
	wasm := readFile(b, "../../builtin/redis.wasm")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(wasm, Default); err != nil {
			b.Fatal(err)
		}
	}
}
