package main_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestPluginTestPasses: `storage-host plugin test` runs the conformance
// suite on the built-in plugins, the redis one on a real Redis, and on the
// hand-written WAT plugin, and each passes with exit 0.
func TestPluginTestPasses(t *testing.T) {
	wat := filepath.Join("..", "..", "testdata", "plugins", "agentstate.wasm")
	for name, args := range map[string][]string{
		"memory":     {"builtin:memory"},
		"redis":      {"-redis", redistest.Addr(t), "builtin:redis"},
		"agentstate": {wat},
		// A retention policy, declared.
		"retention": {"-option", "max_samples_per_series=30", "-max-samples-per-series", "30", "builtin:memory"},
		// A default TTL given: the rules that expect none run without it,
		// and the DefaultTTLs rules check the plugin's defaults.
		"default ttl": {"-v", "-option", "agent_state_ttl_seconds=60", "builtin:memory"},
	} {
		t.Run(name, func(t *testing.T) {
			before := suiteUsers(t)
			stdout, stderr, code := runCommand(t, nil, append([]string{"plugin", "test"}, args...)...)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			require.Regexp(t, `(?m)^ok: [1-9][0-9]* rules passed, 0 failed`, stdout)
			// The WAT plugin advertises no batch: the report says what that costs.
			if name == "agentstate" {
				require.Contains(t, stdout, "note: without batch the host serves no bulk call")
			} else {
				require.NotContains(t, stdout, "note: without batch")
			}
			if name == "default ttl" {
				require.Contains(t, stdout, "PASS DefaultTTLs/AgentState/Default")
				require.Contains(t, stdout, "PASS TTL/DefaultIsNone")
			} else {
				require.NotContains(t, stdout, "DefaultTTLs/")
			}
			if name == "redis" {
				// Nothing of the suite's stores is left on the Redis: no
				// key under their prefixes, no ACL user made for them.
				rc := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
				defer rc.Close()
				keys, err := rc.Keys(t.Context(), "storage-host-plugin-test:*").Result()
				require.NoError(t, err)
				require.Empty(t, keys)
				for u := range suiteUsers(t) {
					require.Contains(t, before, u, "the ACL user of a store of the suite is left")
				}
			}
		})
	}
}

// TestPluginTestFailsALaxPlugin: a plugin that answers every request OK
// without reading it (testdata/plugins/lax.wat) fails, exit 1, with the
// rules it breaks named and each failure kept short; -json says the same
// for a CI, and -run picks rules.
func TestPluginTestFailsALaxPlugin(t *testing.T) {
	lax := filepath.Join("..", "..", "testdata", "plugins", "lax.wasm")
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", lax)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for _, want := range []string{
		"plugin lax 1.0.0, advertising [agent_states]",
		"FAIL Protocol/Malformed",
		"PutAgentState/TrailingByte (op 30",
		"answered OK \"\", want INVALID",
		"FAIL Protocol/Unadvertised",
		"FAIL AgentStates/RoundTrip",
		"FAILED: ",
	} {
		require.Contains(t, stdout, want)
	}
	for _, line := range strings.Split(stdout, "\n") {
		require.LessOrEqual(t, len(line), 400, "a report line is cut short")
	}
	// What failed, not where in the suite's own source.
	require.Contains(t, stdout, "Error:")
	require.NotContains(t, stdout, "Error Trace:")
	require.NotContains(t, stdout, "host/storetest/")

	stdout, stderr, code = runCommand(t, nil, "plugin", "test", "-json", "-run", "Protocol", lax)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	var rep struct {
		Plugin string
		Passed int
		Failed int
		Rules  []struct {
			Name   string
			Result string
			Output []string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	require.Equal(t, "lax 1.0.0", rep.Plugin)
	got := map[string]string{}
	for _, r := range rep.Rules {
		got[r.Name] = r.Result
		require.True(t, strings.HasPrefix(r.Name, "Protocol/"), "-run Protocol ran %s", r.Name)
	}
	require.Equal(t, map[string]string{
		"Protocol/Malformed":        "fail",
		"Protocol/InvalidWrites":    "fail",
		"Protocol/Unadvertised":     "fail",
		"Protocol/ServesAfterwards": "pass",
	}, got)
	require.Equal(t, 3, rep.Failed)
}

// TestPluginTestFailsAForgetfulPlugin: a plugin that keeps its records in
// its instance's memory (testdata/plugins/gohostile/forgetful), correct
// while one instance serves it, fails the NewInstances rule, which says
// why.
func TestPluginTestFailsAForgetfulPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin; skipped with -short")
	}
	wasm := filepath.Join(t.TempDir(), "forgetful.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "./testdata/plugins/gohostile/forgetful")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	stdout, stderr, code := runCommand(t, nil, "plugin", "test", wasm)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "FAIL AgentStates/NewInstances")
	require.Contains(t, stdout, "not in an instance's memory")
	require.Contains(t, stdout, "1 failed")
}

// TestPluginTestUsage: a plugin that does not load is one line and exit
// 1; bad flags and a -run matching nothing are errors too.
func TestPluginTestUsage(t *testing.T) {
	_, stderr, code := runCommand(t, nil, "plugin", "test", filepath.Join("..", "..", "testdata", "plugins", "noexports.wasm"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "plugin test: the plugin does not load")

	// A Redis that does not answer: one line, not a failure of every rule.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-redis", closed, "builtin:redis")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "plugin test: the backend is not ready, so no rule could pass")
	require.NotContains(t, stdout, "FAIL")

	// Scripts are granted only when asked for (or to builtin:redis): a
	// script that loops after a write stops its Redis for good.
	module := filepath.Join(t.TempDir(), "redis.wasm")
	wasm, err := host.BuiltinWASM("redis")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(module, wasm, 0o600))
	_, stderr, code = runCommand(t, nil, "plugin", "test", "-redis", redistest.Addr(t), module)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `needs capability "redis_scripts", which the configuration does not grant`)
	require.Contains(t, stderr, "-scripts grants them")
	// A capability the suite was given nothing for: the flag that gives it.
	_, stderr, code = runCommand(t, nil, "plugin", "test", module)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `needs capability "redis"`)
	require.Contains(t, stderr, "-redis HOST:PORT gives the suite a Redis")
	_, stderr, code = runCommand(t, nil, "plugin", "test", "-scripts", "builtin:memory")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-scripts grants Lua scripts on the Redis of -redis, which is missing")

	_, stderr, code = runCommand(t, nil, "plugin", "test", "-run", "NoSuchRule", "builtin:memory")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no rule matches -run "NoSuchRule"`)

	// The same retention, undeclared: the paging rules fail.
	stdout, _, code = runCommand(t, nil, "plugin", "test", "-option", "max_samples_per_series=30", "builtin:memory")
	require.Equal(t, 1, code)
	require.Contains(t, stdout, "FAIL Query/Pagination/DefaultLimit")

	_, stderr, code = runCommand(t, nil, "plugin", "test", "-max-samples-per-series", "5", "builtin:memory")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-max-samples-per-series 5 is below 20")

	_, stderr, code = runCommand(t, nil, "plugin", "test", "builtin:memory", "-option", "fallback=fail")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `storage-host plugin test: flag -option after "builtin:memory": flags go before it`)

	// An option the plugin refuses: the plugin is named by its own name.
	_, stderr, code = runCommand(t, nil, "plugin", "test", "-option", "bogus=1", "builtin:memory")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `plugin test: the plugin does not load: host: configure plugin memory: invalid: unknown option "bogus"`)

	_, stderr, code = runCommand(t, nil, "plugin", "test", "-option", "novalue", "builtin:memory")
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, `want key=value, got "novalue"`)
}

// TestPluginTestRunAlternatives: every alternative of -run picks rules
// below the suite, as the README's "Protocol|AgentStates" means (package
// testing splits a pattern at "|" before it splits it at "/").
func TestPluginTestRunAlternatives(t *testing.T) {
	for _, run := range []string{"Protocol|AgentStates", "AgentStates|Protocol", "(Protocol|AgentStates)"} {
		stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-v", "-run", run, "builtin:memory")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.Contains(t, stdout, "PASS Protocol/", run)
		require.Contains(t, stdout, "PASS AgentStates/", run)
		require.NotContains(t, stdout, "PASS Metrics/", run)
	}
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-v", "-run", "Protocol/Malformed|AgentStates/Versions", "builtin:memory")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "PASS Protocol/Malformed")
	require.Contains(t, stdout, "PASS AgentStates/Versions")
	require.NotContains(t, stdout, "PASS Protocol/BatchItems")
}

// TestPluginTestSkip: -skip leaves out the rules it matches below the
// suite, for a plugin whose own policy (a TTL of its own for resolved
// alerts, say) makes them fail.
func TestPluginTestSkip(t *testing.T) {
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-v", "-run", "AgentStates", "-skip", "AgentStates/Versions", "builtin:memory")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "PASS AgentStates/")
	require.NotContains(t, stdout, "AgentStates/Versions")
	_, stderr, code = runCommand(t, nil, "plugin", "test", "-run", "AgentStates/Versions", "-skip", "AgentStates", "builtin:memory")
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, `and not -skip "AgentStates"`)
}

// TestPluginTestFromConfig: the plugin, its options and capabilities come
// from a backend block of a configuration file; here a Redis backend,
// whose stores the suite opens under key prefixes of their own.
func TestPluginTestFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage.hcl")
	prefix := redistest.Prefix(t, redistest.Addr(t))
	require.NoError(t, os.WriteFile(cfg, []byte(`
backend "mem" {
  plugin  = "builtin:memory"
  options = { max_samples_per_series = 40 }
}
backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs      = ["`+redistest.Addr(t)+`"]
    key_prefix = "`+prefix+`"
  }
}
routes {
  metrics      = "mem"
  alerts       = "r"
  agent_states = "r"
}
`), 0o600))
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-config", cfg, "-backend", "mem", "-max-samples-per-series", "40", "-run", "Query|Policy")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "plugin memory ")
	stdout, stderr, code = runCommand(t, nil, "plugin", "test", "-config", cfg, "-backend", "r", "-run", "AgentStates|Protocol")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "plugin redis ")

	_, stderr, code = runCommand(t, nil, "plugin", "test", "-config", cfg, "-backend", "nosuch")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `has no backend "nosuch"`)
	_, stderr, code = runCommand(t, nil, "plugin", "test", "-config", cfg)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "has 2 backends (mem, r): name one with -backend")

	// A file of one backend needs no -backend.
	one := filepath.Join(dir, "one.hcl")
	require.NoError(t, os.WriteFile(one, []byte(`backend "only" { plugin = "builtin:memory" }`+"\n"), 0o600))
	stdout, stderr, code = runCommand(t, nil, "plugin", "test", "-config", one, "-run", "AgentStates/Versions")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "plugin memory ")
}

// suiteUsers returns the Redis ACL users made for the key prefixes of
// plugin test's stores: the Redis is shared, so a test compares the set
// before and after its run.
func suiteUsers(t *testing.T) map[string]bool {
	rc := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
	defer rc.Close()
	users, err := rc.Do(t.Context(), "ACL", "USERS").StringSlice()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, u := range users {
		if strings.Contains(u, "storage-host-plugin-test:") {
			out[u] = true
		}
	}
	return out
}

// TestPluginTestShowsTheLogUnderItsRule: what the host and the plugin log
// while a rule runs is shown with that rule's failure (here the host's
// refusals of a plugin that answers for the wrong agent).
func TestPluginTestShowsTheLogUnderItsRule(t *testing.T) {
	fdwrite := filepath.Join("..", "..", "testdata", "plugins", "hostile", "fdwrite.wasm")
	stdout, stderr, code := runCommand(t, nil, "plugin", "test", "-run", "AgentStates/NotFound", fdwrite)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "FAIL AgentStates/NotFound")
	rule := stdout[strings.Index(stdout, "FAIL AgentStates/NotFound"):]
	require.Contains(t, rule, "log.plugin.plugin-test-run-")
	require.Contains(t, rule, `plugin answer refused: op=get_agent_state reason="asked for the state of agent`)
}
