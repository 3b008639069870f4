package wasmcheck

import (
	"errors"
	"path/filepath"
	"testing"
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
