package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// clusterEnv provides the secrets redis-cluster.hcl reads from the
// environment, and returns a directory holding a copy of it beside the
// secret file it reads (as cmd/storage-host/internal/config's tests do).
func clusterEnv(t *testing.T) (dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	src, err := os.ReadFile(repoFile("testdata", "config", "redis-cluster.hcl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "redis-cluster.hcl"), src, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets", "dashboard.token"), []byte("dashboard-token-0123456789\n"), 0o600))
	return dir, []string{"REDIS_PASSWORD=redis-password", "STORAGE_HOST_FLEET_TOKEN=fleet-token-0123456789"}
}

// TestValidateExamples checks every example configuration the way an
// operator would before deploying it.
func TestValidateExamples(t *testing.T) {
	t.Parallel()
	clusterDir, clusterSecrets := clusterEnv(t)
	for _, tc := range []struct {
		file string
		env  []string
		want string // after "FILE: ok: "
	}{
		{repoFile("testdata", "config", "memory.hcl"), nil,
			"backends memory; metrics → memory, alerts → memory, agent_states → memory; 0 token(s)"},
		{repoFile("testdata", "config", "memory.json"), nil,
			"backends memory; metrics → memory, alerts → memory, agent_states → memory; 0 token(s)"},
		{repoFile("testdata", "config", "redis-fallback.hcl"), nil,
			"backends redis, metrics; metrics → metrics, alerts → redis, agent_states → redis; 0 token(s)"},
		{filepath.Join(clusterDir, "redis-cluster.hcl"), clusterSecrets,
			"backends redis; metrics → redis, alerts → redis, agent_states → redis; 2 token(s)"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCommand(t, tc.env, "validate", tc.file)
			require.Equal(t, 0, code, "stderr: %s", stderr)
			require.Equal(t, tc.file+": ok: "+tc.want+"\n", stdout)
			require.Empty(t, stderr)
		})
	}
	t.Run("a lone backend that stores one kind", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "states.hcl")
		plugin, err := filepath.Abs(repoFile("testdata", "plugins", "agentstate.wasm"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(file, fmt.Appendf(nil, "backend \"states\" {\n  plugin = %q\n}\n", plugin), 0o600))
		stdout, stderr, code := runCommand(t, nil, "validate", "-data-dir", t.TempDir(), file)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		const notServed = " (not served by its plugin: requests answer 501)"
		require.Equal(t, file+": ok: backends states; metrics → states"+notServed+", alerts → states"+notServed+
			", agent_states → states; 0 token(s)\n", stdout)
	})
	t.Run("redis-cluster.hcl without its secrets", func(t *testing.T) {
		t.Parallel()
		dir, _ := clusterEnv(t)
		file := filepath.Join(dir, "redis-cluster.hcl")
		require.NoError(t, os.Remove(filepath.Join(dir, "secrets", "dashboard.token")))
		stdout, stderr, code := runCommand(t, []string{"REDIS_PASSWORD=", "STORAGE_HOST_FLEET_TOKEN="}, "validate", file)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, []string{
			file + ":43:20: Unset secret; The environment variable REDIS_PASSWORD is unset or empty.",
			file + ":65:18: Unset secret; The environment variable STORAGE_HOST_FLEET_TOKEN is unset or empty.",
		}, strings.Split(strings.TrimSpace(stderr), "\n")[:2])
		require.Contains(t, stderr, file+":73:19: Unreadable secret file; ")
	})
}

// TestValidateShippedExamplesOffline is what CI runs: every example
// configuration the repository ships validates with -offline, without
// any of the secrets it names (environment variables unset, secret files
// absent), its plugins loaded and checked all the same.
func TestValidateShippedExamplesOffline(t *testing.T) {
	t.Parallel()
	var examples []string
	for _, pattern := range []string{"*.hcl", "*.json"} {
		m, err := filepath.Glob(repoFile("testdata", "config", pattern))
		require.NoError(t, err)
		examples = append(examples, m...)
	}
	require.GreaterOrEqual(t, len(examples), 4)
	noSecrets := []string{"REDIS_PASSWORD=", "STORAGE_HOST_FLEET_TOKEN="}
	sawSecrets := false
	for _, file := range examples {
		stdout, stderr, code := runCommand(t, noSecrets, "validate", "-offline", file)
		require.Equal(t, 0, code, "%s: %s", file, stderr)
		require.Empty(t, stderr, file)
		require.True(t, strings.HasPrefix(stdout, file+": ok (offline: secrets not read): backends "), "%s: %s", file, stdout)
		if _, _, code := runCommand(t, noSecrets, "validate", file); code != 0 {
			sawSecrets = true // this one needs its secrets online
		}
	}
	require.True(t, sawSecrets, "an example needs secrets: -offline is what lets CI check it")
}

// TestValidateOffline: -offline names secrets without reading them, and
// checks everything else as validate does.
func TestValidateOffline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "app.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte(`backend "m" {
  plugin = "builtin:memory"
}
auth {
  token "file" {
    secret_file = "secrets/missing.token"
    scopes      = ["*:read"]
  }
  token "env" {
    secret_env = "VALIDATE_OFFLINE_UNSET"
    scopes     = ["*:read"]
  }
}
`), 0o600))
	stdout, stderr, code := runCommand(t, []string{"VALIDATE_OFFLINE_UNSET="}, "validate", "-offline", cfg)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Equal(t, cfg+": ok (offline: secrets not read): backends m; metrics → m, alerts → m, agent_states → m; 2 token(s)\n", stdout)
	_, stderr, code = runCommand(t, []string{"VALIDATE_OFFLINE_UNSET="}, "validate", cfg)
	require.Equal(t, 1, code, "online, the secrets are read")
	require.Contains(t, stderr, cfg+":6:19: Unreadable secret file; ")
	require.Contains(t, stderr, cfg+":10:18: Unset secret; The environment variable VALIDATE_OFFLINE_UNSET is unset or empty.")

	// What the file says is still checked: a broken file, two sources of
	// one secret, an empty name, a plugin that cannot be granted.
	stdout, stderr, code = runCommand(t, nil, "validate", "-offline", "testdata/config/broken.hcl")
	require.Equal(t, 1, code)
	require.Empty(t, stdout)
	require.Equal(t, brokenDiagnostics, stderr)
	require.NoError(t, os.WriteFile(cfg, []byte(`backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs        = ["127.0.0.1:6379"]
    key_prefix   = "offline:"
    password_env = ""
    scripts      = false
  }
}
auth {
  token "both" {
    secret_env  = "A"
    secret_file = "a.token"
    scopes      = ["*:read"]
  }
}
`), 0o600))
	_, stderr, code = runCommand(t, nil, "validate", "-offline", cfg)
	require.Equal(t, 1, code)
	require.Equal(t, []string{
		cfg + ":6:20: Invalid environment variable name; password_env names no variable.",
		cfg + ":13:19: Conflicting secret sources; secret_env and secret_file are both set; set only one of secret, secret_env and secret_file.",
	}, strings.Split(strings.TrimSpace(stderr), "\n"), "the text's errors first, before any plugin runs")
	// With the text right, the plugin's needs are checked, offline too.
	src, err := os.ReadFile(cfg)
	require.NoError(t, err)
	src = []byte(strings.NewReplacer(`password_env = ""`, `password_env = "A"`, `    secret_file = "a.token"`+"\n", "").Replace(string(src)))
	require.NoError(t, os.WriteFile(cfg, src, 0o600))
	_, stderr, code = runCommand(t, nil, "validate", "-offline", cfg)
	require.Equal(t, 1, code)
	require.Equal(t, []string{
		cfg + ":7:20: Capability not granted; plugin declares capability \"redis_scripts\", which this backend does not grant (set scripts = true in its redis block: the plugin runs Lua scripts on Redis, and would fail every request that does)",
	}, strings.Split(strings.TrimSpace(stderr), "\n"))
}

// brokenDiagnostics is what checking testdata/config/broken.hcl reports:
// every mistake, each at its file:line:col.
var brokenDiagnostics = strings.Join([]string{
	`testdata/config/broken.hcl:6:15: Invalid value for "instances"; instances must be a whole number from 1 to 2147483647.`,
	`testdata/config/broken.hcl:7:3: Unsupported argument; An argument named "colour" is not expected here.`,
	`testdata/config/broken.hcl:13:18: Unknown backend; No backend named "disk" is defined (defined: memory).`,
}, "\n") + "\n"

func TestValidateBrokenConfig(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runCommand(t, nil, "validate", "testdata/config/broken.hcl")
	require.Equal(t, 1, code)
	require.Empty(t, stdout)
	require.Equal(t, brokenDiagnostics, stderr)

	_, stderr, code = runCommand(t, nil, "validate", "testdata/config/missing.hcl")
	require.Equal(t, 1, code)
	require.Equal(t, "config: open testdata/config/missing.hcl: no such file or directory\n", stderr)

	_, stderr, code = runCommand(t, nil, "validate")
	require.Equal(t, 2, code, "a usage error")
	require.Equal(t, "usage: storage-host validate [-offline] [-data-dir DIR] FILE\n", stderr)
}

// TestServeRefusesBrokenConfig: serve checks its file as validate does and
// starts nothing when it is wrong.
func TestServeRefusesBrokenConfig(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runCommand(t, nil, "serve", "-config", "testdata/config/broken.hcl", "-listen", "127.0.0.1:0")
	require.Equal(t, 1, code)
	require.Empty(t, stdout, "no serving line")
	require.Equal(t, brokenDiagnostics, stderr)
}

// inspection is the output of `plugin inspect -json`.
type inspection struct {
	File         string   `json:"file"`
	SHA256       string   `json:"sha256"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	ABI          string   `json:"abi"`
	HostABI      string   `json:"host_abi"`
	Features     []string `json:"features"`
	Capabilities []string `json:"capabilities"`
	Imports      []string `json:"imports"`
	KVReads      []string `json:"kv_reads"`
	RedisReads   []string `json:"redis_reads"`
	WASI         bool     `json:"wasi"`
	Loadable     bool     `json:"loadable"`
	Problem      string   `json:"problem"`
}

func inspectJSON(t *testing.T, plugin string, wantCode int) inspection {
	t.Helper()
	stdout, stderr, code := runCommand(t, nil, "plugin", "inspect", "-json", plugin)
	require.Equal(t, wantCode, code, "stderr: %s", stderr)
	var out inspection
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "stdout: %s", stdout)
	require.False(t, dec.More(), "one JSON document: %s", stdout)
	return out
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPluginInspect(t *testing.T) {
	t.Parallel()
	memory, err := host.BuiltinWASM("memory")
	require.NoError(t, err)
	agentstatePath := repoFile("testdata", "plugins", "agentstate.wasm")
	agentstate, err := os.ReadFile(agentstatePath)
	require.NoError(t, err)
	oldabiPath := repoFile("testdata", "plugins", "oldabi.wasm")

	t.Run("builtin:memory", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCommand(t, nil, "plugin", "inspect", "builtin:memory")
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Equal(t, []string{
			"file:         builtin:memory",
			"sha256:       " + sha256Hex(memory),
			"name:         memory",
			"version:      1.0.0",
			"abi:          1.9 (host speaks 1.9)",
			"features:     metrics, alerts, agent_states, query, batch, ttl, concurrency, restore",
			"capabilities: log, clock, kv",
			"imports:      clock, kv (and WASI); asked for, not imported: log (what it writes to WASI's stdout and stderr is its log)",
			`kv reads:     alerts "a\x00"+id, agent_states "s\x00"+id (gets the host answers from the kv store)`,
			"loadable:     yes (grant: log, clock, kv)",
		}, strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"))

		got := inspectJSON(t, "builtin:memory", 0)
		require.Equal(t, inspection{
			File: "builtin:memory", SHA256: sha256Hex(memory), Name: "memory", Version: "1.0.0",
			ABI: "1.9", HostABI: "1.9",
			Features:     []string{"metrics", "alerts", "agent_states", "query", "batch", "ttl", "concurrency", "restore"},
			Capabilities: []string{"log", "clock", "kv"}, Imports: []string{"clock", "kv"},
			KVReads: []string{`alerts "a\x00"+id`, `agent_states "s\x00"+id`},
			WASI:    true, Loadable: true,
		}, got)
	})

	t.Run("builtin:redis", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCommand(t, nil, "plugin", "inspect", "builtin:redis")
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Contains(t, stdout, "\n"+`redis reads:  alerts "a:{"+id+"}" unless kv holds "q/"…, agent_states "s:{"+id+"}" unless kv holds "q/"… (gets the host answers with an HMGET)`+"\n")
		got := inspectJSON(t, "builtin:redis", 0)
		require.Equal(t, []string{`alerts "a:{"+id+"}" unless kv holds "q/"…`, `agent_states "s:{"+id+"}" unless kv holds "q/"…`}, got.RedisReads)
	})

	t.Run("agentstate.wasm", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCommand(t, nil, "plugin", "inspect", agentstatePath)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Contains(t, stdout, "name:         agentstate\n")
		require.Contains(t, stdout, "abi:          1.0 (host speaks 1.9)\n", "an older minor version loads")
		require.Contains(t, stdout, "loadable:     yes (grant: log, clock, kv)\n")

		got := inspectJSON(t, agentstatePath, 0)
		require.Equal(t, inspection{
			File: agentstatePath, SHA256: sha256Hex(agentstate), Name: "agentstate", Version: "1.0.0",
			ABI: "1.0", HostABI: "1.9", Features: []string{"agent_states"},
			Capabilities: []string{"log", "clock", "kv"}, Imports: []string{"log", "clock", "kv"},
			Loadable: true,
		}, got)
	})

	t.Run("oldabi.wasm", func(t *testing.T) {
		t.Parallel()
		const problem = "host: incompatible plugin: ABI version mismatch: host speaks 1.9, plugin needs 2.0"
		stdout, stderr, code := runCommand(t, nil, "plugin", "inspect", oldabiPath)
		require.Equal(t, 1, code, "a plugin this host cannot load fails the command")
		require.Empty(t, stderr)
		require.Contains(t, stdout, "loadable:     no: "+problem+"\n")

		got := inspectJSON(t, oldabiPath, 1)
		require.False(t, got.Loadable)
		require.Equal(t, problem, got.Problem)
		require.Equal(t, "1.9", got.HostABI)
		require.Len(t, got.SHA256, 64)
	})

	t.Run("mistakes", func(t *testing.T) {
		t.Parallel()
		_, stderr, code := runCommand(t, nil, "plugin", "inspect", "builtin:nope")
		require.Equal(t, 1, code)
		require.Equal(t, "storage-host: host: no built-in plugin \"nope\"\n", stderr)
		_, stderr, code = runCommand(t, nil, "plugin", "inspect", "testdata/nope.wasm")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "testdata/nope.wasm: no such file or directory")
		_, stderr, code = runCommand(t, nil, "plugin", "list")
		require.Equal(t, 2, code, "a usage error")
		require.Contains(t, stderr, `plugin: unknown subcommand "list": the subcommands are inspect and test`)
	})
}

// TestCommandLine: help lists the commands, version says what was built,
// and the exit status tells a script what went wrong: 0 success, 1 a
// failure, 2 a mistake in the command line.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	commands := []string{"serve", "validate", "plugin inspect", "backup", "restore", "migrate", "version", "help"}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}} {
		stdout, stderr, code := runCommand(t, nil, args...)
		require.Equal(t, 0, code, "%v", args)
		require.Empty(t, stderr, "%v", args)
		require.True(t, strings.HasPrefix(stdout, "usage: storage-host [command] [arguments]\n"), "%v: %s", args, stdout)
		for _, c := range commands {
			require.Regexp(t, `(?m)^  `+regexp.QuoteMeta(c)+` +\S`, stdout, "%v: one line for %s", args, c)
		}
		require.NotContains(t, stdout, "-listen", "%v: the commands, not serve's flags", args)
		require.Contains(t, stdout, "0 success, 1 failure, 2 usage error")
	}

	// A command's flags: asked for, on standard output, status 0.
	stdout, _, code := runCommand(t, nil, "help", "serve")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "-listen")
	_, stderr, code := runCommand(t, nil, "serve", "-h")
	require.Equal(t, 0, code)
	require.Contains(t, stderr, "-listen")

	// The configuration reference: a file validate accepts as it is.
	stdout, _, code = runCommand(t, nil, "help", "config")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "key_prefix")
	reference := filepath.Join(t.TempDir(), "reference.hcl")
	require.NoError(t, os.WriteFile(reference, []byte(stdout), 0o600))
	_, stderr, code = runCommand(t, nil, "validate", "-offline", reference)
	require.Equal(t, 0, code, "validate -offline of the reference: %s", stderr)

	// version: the module version the go command recorded in the binary.
	out, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	mod := regexp.MustCompile(`(?m)^\tmod\tgithub.com/storage-host/storage-host\t(\S+)`).FindSubmatch(out)
	require.NotNil(t, mod, "go version -m: %s", out)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code = runCommand(t, nil, args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		require.Equal(t, "storage-host "+string(mod[1]), lines[0])
		require.Contains(t, lines, "go:     "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
		require.Contains(t, lines, "abi:    "+abi.Current.String())
		// The commit, when the build recorded one; else a line saying so.
		if rev := regexp.MustCompile(`(?m)^\tbuild\tvcs.revision=(\S+)`).FindSubmatch(out); rev != nil {
			require.Contains(t, stdout, "commit: "+string(rev[1]))
		} else {
			require.Contains(t, lines, "commit: (not recorded: built outside a git checkout, by go run, or with -buildvcs=false)")
		}
	}

	// Usage errors: 2, with the reason on standard error.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `storage-host: unknown command "frobnicate"`},
		{[]string{"serve", "-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, `storage-host: serve: unexpected argument "extra"`},
		{[]string{"serve", "-log-level", "loud"}, `storage-host: serve: -log-level "loud" is not one of trace, debug, info, warn, error`},
		{[]string{"-log-format", "xml"}, `storage-host: serve: -log-format "xml" is not text or json`},
		{[]string{"validate"}, "usage: storage-host validate"},
		{[]string{"validate", "-nope", "x.hcl"}, "flag provided but not defined: -nope"},
		{[]string{"plugin", "list"}, `plugin: unknown subcommand "list": the subcommands are inspect and test`},
		{[]string{"plugin", "inspect"}, "usage: storage-host plugin inspect"},
		{[]string{"backup", "-config", "x.hcl"}, "usage: storage-host backup"},
		{[]string{"backup", "verify"}, "usage: storage-host backup verify FILE"},
		{[]string{"restore", "-config", "x.hcl", "-backend", "b", "-mode", "bogus", "f.shbk"}, `restore: -mode "bogus" is not fail, skip or overwrite`},
		{[]string{"migrate", "-config", "x.hcl", "-from", "a", "-to", "a"}, `migrate: -from and -to both name backend "a"`},
		{[]string{"version", "extra"}, "usage: storage-host version"},
		{[]string{"help", "frobnicate"}, `storage-host: help: unknown command "frobnicate"`},
	} {
		stdout, stderr, code := runCommand(t, nil, tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Empty(t, stdout, "%v", tc.args)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
	}

	// Failures while running: 1.
	_, _, code = runCommand(t, nil, "validate", "testdata/config/broken.hcl")
	require.Equal(t, 1, code)
	_, _, code = runCommand(t, nil, "backup", "verify", "testdata/config/missing.shbk")
	require.Equal(t, 1, code)
}

// TestValidateRefusesAnExposedListenWithoutAuth: validate refuses what
// serve refuses of the file's listen address, a non-loopback one without
// tokens, and passes it with allow_unauthenticated or on loopback.
func TestValidateRefusesAnExposedListenWithoutAuth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file string
		code int
	}{
		{"listen = \"0.0.0.0:18490\"\nbackend \"m\" {\n  plugin = \"builtin:memory\"\n}\n", 1},
		{"listen = \"0.0.0.0:18490\"\nauth {\n  allow_unauthenticated = true\n}\nbackend \"m\" {\n  plugin = \"builtin:memory\"\n}\n", 0},
		{"listen = \"127.0.0.1:18490\"\nbackend \"m\" {\n  plugin = \"builtin:memory\"\n}\n", 0},
	} {
		cfg := configFile(t, "%s", c.file)
		for _, args := range [][]string{{"validate", cfg}, {"validate", "-offline", cfg}} {
			_, stderr, code := runCommand(t, nil, args...)
			require.Equal(t, c.code, code, "%v of\n%s\nstderr: %s", args, c.file, stderr)
			if c.code == 1 {
				require.Equal(t, cfg+": refusing to serve 0.0.0.0:18490 without authentication: configure auth tokens, listen on a loopback address, or pass -allow-unauthenticated\n", stderr)
				_, serveErr, serveCode := runCommand(t, nil, "serve", "-config", cfg)
				require.Equal(t, 1, serveCode)
				require.Contains(t, serveErr, "refusing to serve 0.0.0.0:18490 without authentication")
			}
		}
	}
}
