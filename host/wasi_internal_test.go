package host

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Every path function of wazero's WASI is one of the host's (noPaths),
// with the same parameters, so that none reads a guest's path.
func TestEveryWASIPathFunctionIsTheHosts(t *testing.T) {
	r := wazero.NewRuntime(t.Context())
	defer r.Close(t.Context())
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	m, err := b.Compile(t.Context())
	require.NoError(t, err)
	ours := map[string][]api.ValueType{}
	for _, f := range noPaths {
		ours[f.name] = f.params
	}
	paths := 0
	for name, def := range m.ExportedFunctions() {
		if strings.HasPrefix(name, "path_") {
			paths++
			if assert.Contains(t, ours, name, "%s is not the host's", name) {
				assert.Equal(t, def.ParamTypes(), ours[name], name)
			}
		}
	}
	assert.Equal(t, len(noPaths), paths, "the host's path functions are wazero's")
}
