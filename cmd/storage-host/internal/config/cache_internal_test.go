package config

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A PluginCache keeps one inspection per module and one verdict per
// module and options, across Checks of different Files; a failure that is
// not the module's (a cancelled check) is not kept.
func TestPluginCache(t *testing.T) {
	src := []byte("backend \"m\" {\n  plugin  = \"builtin:memory\"\n  options = { agent_state_ttl_seconds = 60 }\n}\n")
	var pc PluginCache
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	f, err := Parse(src, "m.hcl")
	require.NoError(t, err)
	require.Error(t, f.Check(cancelled, WithPluginCache(&pc)))
	require.Empty(t, pc.inspections, "a cancelled inspection is asked again")
	require.Empty(t, pc.options)

	for range 2 {
		f, err := Parse(src, "m.hcl")
		require.NoError(t, err)
		require.NoError(t, f.Check(t.Context(), WithPluginCache(&pc)))
		require.Len(t, pc.inspections, 1)
		require.Len(t, pc.options, 1)
	}
	f, err = Parse([]byte("backend \"m\" {\n  plugin  = \"builtin:memory\"\n  options = { agent_state_ttl_seconds = 61 }\n}\n"), "m.hcl")
	require.NoError(t, err)
	require.NoError(t, f.Check(t.Context(), WithPluginCache(&pc)))
	require.Len(t, pc.inspections, 1, "one module")
	require.Len(t, pc.options, 2, "two sets of options")
}
