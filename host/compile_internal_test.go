package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

// stallCompile makes compilation wait until the returned release is
// called, as wazero does inside one function it cannot stop compiling.
func stallCompile(t *testing.T) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	orig := compileModule
	compileModule = func(context.Context, wazero.Runtime, []byte) (wazero.CompiledModule, error) {
		<-gate
		return nil, errors.New("released")
	}
	var released bool
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(func() {
		release()
		compileModule = orig
		require.Eventually(t, func() bool { return abandoned.Load() == 0 }, time.Minute, 10*time.Millisecond,
			"a compilation given up on never finished")
	})
	return release
}

// openBounded opens the agentstate plugin, failing the test if Open
// has not returned within a minute (a hang guard, not a measure).
func openBounded(t *testing.T, ctx context.Context) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		st, err := Open(ctx, Config{Plugin: "../testdata/plugins/agentstate.wasm"}, WithCompilationCache(""))
		if st != nil {
			_ = st.Close(context.Background())
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Open waited for a compilation")
		return nil
	}
}

// TestCompileGivesUpWhenContextEnds: Open returns as soon as its context
// ends, while wazero is still compiling; the runtime is closed once the
// compilation is done with it.
func TestCompileGivesUpWhenContextEnds(t *testing.T) {
	release := stallCompile(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := openBounded(t, ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "host: compile")
	assert.Equal(t, int32(1), abandoned.Load())
	release()
}

// TestCompileTimeout: past compileTimeout, Open gives up with ErrLimit.
func TestCompileTimeout(t *testing.T) {
	release := stallCompile(t)
	defer release()
	orig := compileTimeout
	compileTimeout = 50 * time.Millisecond
	defer func() { compileTimeout = orig }()
	err := openBounded(t, context.Background())
	require.ErrorIs(t, err, ErrLimit)
	assert.Contains(t, err.Error(), "compiling the module took more than 50ms")
}

// TestCompileAbandonedBound: while maxAbandoned compilations given up on
// still run, Open refuses at once rather than start another; once they
// end, it loads again.
func TestCompileAbandonedBound(t *testing.T) {
	release := stallCompile(t)
	for range maxAbandoned {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		require.ErrorIs(t, openBounded(t, ctx), context.Canceled)
	}
	err := openBounded(t, context.Background())
	require.ErrorIs(t, err, ErrLimit)
	assert.Contains(t, err.Error(), "compilations given up on are still running")
	release()
	require.Eventually(t, func() bool { return abandoned.Load() == 0 }, time.Minute, 10*time.Millisecond)
	compileModule = func(ctx context.Context, rt wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
		return rt.CompileModule(ctx, wasm)
	}
	require.NoError(t, openBounded(t, context.Background()))
}
