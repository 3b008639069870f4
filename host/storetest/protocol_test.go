package storetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/storetest"
)

// TestProtocolFailsALaxPlugin runs the suite, in a child process, on a
// plugin that answers every request OK without reading it
// (testdata/plugins/lax.wat): each Protocol rule must fail it, naming the
// request it answered wrongly.
func TestProtocolFailsALaxPlugin(t *testing.T) {
	lax := filepath.Join("..", "..", "testdata", "plugins", "lax.wasm")
	if os.Getenv("STORETEST_LAX_CHILD") != "" {
		storetest.Run(t, func(t *testing.T) *host.Store {
			st, err := host.Open(t.Context(), host.Config{Plugin: lax}, host.WithCompilationCache(cacheDir))
			require.NoError(t, err)
			return st
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProtocolFailsALaxPlugin$/^Protocol$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_LAX_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the suite passed a plugin that refuses nothing:\n%s", out)
	for _, want := range []string{
		"--- FAIL: TestProtocolFailsALaxPlugin/Protocol/Malformed",
		"PutAgentState/TrailingByte (op 30",
		"answered OK \"\", want INVALID",
		"--- FAIL: TestProtocolFailsALaxPlugin/Protocol/InvalidWrites",
		"PutAgentState/NULInID",
		"--- FAIL: TestProtocolFailsALaxPlugin/Protocol/Unadvertised",
		"PutAgentState/IfAbsentWithoutConcurrency",
		"UnknownOp99",
	} {
		require.Contains(t, string(out), want)
	}
}

// TestKVReadsFailAMisdeclaredPlugin runs the KVReads rule, in a child
// process, on a plugin that declares a kv read of its agent states at the
// key it writes but keeps a value layout of its own
// (testdata/plugins/kvmisdeclared.wat): the rule must fail it.
func TestKVReadsFailAMisdeclaredPlugin(t *testing.T) {
	plugin := filepath.Join("..", "..", "testdata", "plugins", "kvmisdeclared.wasm")
	if os.Getenv("STORETEST_KV_CHILD") != "" {
		storetest.Run(t, func(t *testing.T) *host.Store {
			st, err := host.Open(t.Context(), host.Config{Plugin: plugin}, host.WithCompilationCache(cacheDir))
			require.NoError(t, err)
			return st
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKVReadsFailAMisdeclaredPlugin$/^(KVReads|AgentStates)$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_KV_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the suite passed a plugin whose kv read is misdeclared:\n%s", out)
	require.Contains(t, string(out), "--- FAIL: TestKVReadsFailAMisdeclaredPlugin/KVReads", "%s", out)
	require.Contains(t, string(out), "entries at a declared prefix are not the record", "%s", out)
	require.Contains(t, string(out), "--- PASS: TestKVReadsFailAMisdeclaredPlugin/AgentStates", "the plugin serves its records: %s", out)
}
