package host

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/storage-host/storage-host/host/internal/wasmcheck"
)

// checkModule refuses a module past the bounds of wasmcheck.Default before
// wazero allocates what it declares (SECURITY.md, "Module loading"). Its
// errors read as compilation's: the check is the first step of it.
func checkModule(wasm []byte) error {
	if _, err := wasmcheck.Check(wasm, wasmcheck.Default); err != nil {
		return fmt.Errorf("%w: compile: %w", ErrIncompatible, err)
	}
	return nil
}

// instrumentModule is checkModule for an untrusted module, returning it
// with fuel checks added (wasmcheck.Instrument).
func instrumentModule(wasm []byte) ([]byte, error) {
	out, err := wasmcheck.Instrument(wasm, wasmcheck.Default)
	if err != nil {
		return nil, fmt.Errorf("%w: compile: %w", ErrIncompatible, err)
	}
	return out, nil
}

// instrumentedBuiltins holds each built-in module with its fuel checks,
// made once per process: instrumenting a 4 MB module takes 0.1–0.4 s,
// which every Open of a built-in backend would pay again.
var instrumentedBuiltins sync.Map // built-in name → func() ([]byte, error)

// instrumentBuiltin is instrumentModule for the built-in plugin name, whose
// module is wasm.
func instrumentBuiltin(name string, wasm []byte) ([]byte, error) {
	once, _ := instrumentedBuiltins.LoadOrStore(name, sync.OnceValues(func() ([]byte, error) {
		return instrumentModule(wasm)
	}))
	return once.(func() ([]byte, error))()
}

// compileTimeout bounds the wait for one module's compilation. The built-in
// plugins take seconds; the race detector multiplies that.
var compileTimeout = 5 * time.Minute

// maxAbandoned bounds the compilations still running after their Open gave
// up on them, so that retries cannot pile them up.
const maxAbandoned = 2

// abandoned counts those compilations.
var abandoned atomic.Int32

// compileModule is wazero's compilation; tests replace it.
var compileModule = func(ctx context.Context, rt wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	return rt.CompileModule(ctx, wasm)
}

// compile compiles wasm in rt, returning when it is compiled, when ctx
// ends or when compileTimeout passes. wazero checks its context between
// functions, never within one, so a compilation given up on may run on; it
// then closes rt once finished, never under it. On error, rt is closed or
// will be: the caller must not use it again.
func compile(ctx context.Context, rt wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	if n := abandoned.Load(); n >= maxAbandoned {
		_ = rt.Close(context.Background())
		return nil, fmt.Errorf("%w: %d compilations given up on are still running; try again when they end", ErrLimit, n)
	}
	cctx, cancel := context.WithTimeout(ctx, compileTimeout)
	type result struct {
		cm  wazero.CompiledModule
		err error
	}
	done := make(chan result, 1)
	compileFn := compileModule
	go func() {
		cm, err := compileFn(cctx, rt, wasm)
		done <- result{cm, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-cctx.Done():
		select {
		case r = <-done: // finished just as the context ended
		default:
			abandoned.Add(1)
			go func() {
				<-done
				_ = rt.Close(context.Background())
				abandoned.Add(-1)
			}()
			cancel()
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("host: compile: %w", err)
			}
			return nil, fmt.Errorf("%w: compiling the module took more than %v", ErrLimit, compileTimeout)
		}
	}
	expired := cctx.Err() != nil // read before cancel sets it
	cancel()
	switch {
	case r.err == nil:
		return r.cm, nil
	case ctx.Err() != nil: // wazero stopped because the context ended
		r.err = fmt.Errorf("host: compile: %w", ctx.Err())
	case expired:
		r.err = fmt.Errorf("%w: compiling the module took more than %v", ErrLimit, compileTimeout)
	default:
		r.err = fmt.Errorf("%w: compile: %v", ErrIncompatible, r.err)
	}
	_ = rt.Close(context.Background())
	return nil, r.err
}
