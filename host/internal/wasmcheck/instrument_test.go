package wasmcheck

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
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
