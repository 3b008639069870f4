package storetest_test

import (
	"bytes"
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
// key it writes but keeps a value layout of its own: agentstate.wasm
// (testdata/plugins/agentstate.wat, whose values are its update time and
// document) with its metadata rewritten to ABI 1.8 and the declaration.
// The rule must fail it; the plugin's other rules still pass.
func TestKVReadsFailAMisdeclaredPlugin(t *testing.T) {
	if path := os.Getenv("STORETEST_KV_CHILD"); path != "" {
		storetest.Run(t, func(t *testing.T) *host.Store {
			st, err := host.Open(t.Context(), host.Config{Plugin: path}, host.WithCompilationCache(cacheDir))
			require.NoError(t, err)
			return st
		})
		return
	}
	wasm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "plugins", "agentstate.wasm"))
	require.NoError(t, err)
	// The same lengths, so the module is rewritten in place: its 34-byte
	// metadata, and storage_abi_version's i32.const 0x00010000.
	for _, r := range []struct{ old, new string }{
		{"\x01\x00\x0aagentstate\x051.0.0\x04\x03\x03log\x05clock\x02kv", "\x01\x08\x05agent\x051.0.0\x04\x03\x03log\x05clock\x02kv\x01\x03\x02s\x00"},
		{"\x41\x80\x80\x04", "\x41\x88\x80\x04"},
	} {
		require.Equal(t, 1, bytes.Count(wasm, []byte(r.old)), "agentstate.wasm changed: %q", r.old)
		wasm = bytes.Replace(wasm, []byte(r.old), []byte(r.new), 1)
	}
	path := filepath.Join(t.TempDir(), "misdeclared.wasm")
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	cmd := exec.Command(os.Args[0], "-test.run=^TestKVReadsFailAMisdeclaredPlugin$/^(KVReads|AgentStates)$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_KV_CHILD="+path)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the suite passed a plugin whose kv read is misdeclared:\n%s", out)
	require.Contains(t, string(out), "backend agent 1.0.0 advertises", "the rewritten plugin loaded: %s", out)
	require.Contains(t, string(out), "--- FAIL: TestKVReadsFailAMisdeclaredPlugin/KVReads", "%s", out)
	require.Contains(t, string(out), "is not in the promised form: the host called the plugin instead", "%s", out)
	require.Contains(t, string(out), "--- PASS: TestKVReadsFailAMisdeclaredPlugin/AgentStates", "the plugin serves its records: %s", out)
}
