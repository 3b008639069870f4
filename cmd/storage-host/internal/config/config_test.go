package config_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// examples is the directory of the example configurations.
var examples = filepath.Join("..", "..", "..", "..", "testdata", "config")

// plugins is the directory of the test plugins.
var plugins = filepath.Join("..", "..", "..", "..", "testdata", "plugins")

// setClusterEnv provides the secrets redis-cluster.hcl reads from the
// environment, and returns a directory holding a copy of it with the
// secret file it reads, and that secret.
func setClusterEnv(t testing.TB, setenv func(k, v string)) (dir string) {
	setenv("REDIS_PASSWORD", "redis-password")
	setenv("STORAGE_HOST_FLEET_TOKEN", "fleet-token-0123456789")
	dir = t.TempDir()
	src, err := os.ReadFile(filepath.Join(examples, "redis-cluster.hcl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "redis-cluster.hcl"), src, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets", "dashboard.token"), []byte("dashboard-token-0123456789\n"), 0o600))
	return dir
}

func TestMemoryExample(t *testing.T) {
	f, err := loadChecked(filepath.Join(examples, "memory.hcl"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(examples, "memory.hcl"), f.Path)
	require.Equal(t, "127.0.0.1:8474", f.Listen)
	require.Equal(t, config.Log{Level: "info", Format: "text"}, f.Log)
	require.Len(t, f.Backends, 1)
	b := f.Backends[0]
	require.Equal(t, "memory", b.Name)
	require.Equal(t, "memory", b.Config.Name)
	require.Equal(t, "builtin:memory", b.Config.Plugin)
	require.Equal(t, map[string]string{
		"metric_ttl_seconds":      "86400",
		"alert_ttl_seconds":       "604800",
		"agent_state_ttl_seconds": "3600",
	}, b.Config.Options)
	require.Equal(t, host.DefaultCapabilities, b.Config.Capabilities)
	require.Equal(t, host.DefaultLimits, b.Config.Limits)
	require.Nil(t, b.Config.Redis)
	require.Len(t, b.Digest, 64)
	require.Equal(t, config.Routes{Metrics: "memory", Alerts: "memory", AgentStates: "memory"}, f.Routes)
	require.Empty(t, f.Auth.Tokens)

	// The JSON form is the same configuration.
	j, err := loadChecked(filepath.Join(examples, "memory.json"))
	require.NoError(t, err)
	require.Equal(t, f.Listen, j.Listen)
	require.Equal(t, f.Log, j.Log)
	require.Equal(t, f.Backends, j.Backends)
	require.Equal(t, f.Routes, j.Routes)
	require.Equal(t, f.Auth, j.Auth)

	// Its Config is ready for host.Open, options included.
	ctx := context.Background()
	st, err := host.Open(ctx, b.Config)
	require.NoError(t, err)
	defer st.Close(ctx)
	require.Equal(t, "memory", st.Name())
	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err)
	require.False(t, saved.ExpiresAt.IsZero(), "agent_state_ttl_seconds reached the plugin")
}

func TestRedisFallbackExample(t *testing.T) {
	f, err := loadChecked(filepath.Join(examples, "redis-fallback.hcl"))
	require.NoError(t, err)
	require.Equal(t, config.Routes{Metrics: "metrics", Alerts: "redis", AgentStates: "redis"}, f.Routes)
	require.Len(t, f.Backends, 2)

	r, ok := f.Backend("redis")
	require.True(t, ok)
	require.Equal(t, "builtin:redis", r.Config.Plugin)
	require.Equal(t, 32, r.Config.Instances)
	require.Equal(t, map[string]string{
		"fallback":                "buffer",
		"fallback_buffer_entries": "10000",
		"alert_ttl_seconds":       "1209600",
		"agent_state_ttl_seconds": "86400",
	}, r.Config.Options)
	// The plugin imports redis, granted by the redis block alone:
	// host.Open adds it to the capabilities, which therefore leave it out.
	require.Equal(t, host.DefaultCapabilities, r.Config.Capabilities)
	lim := host.DefaultLimits
	lim.CallTimeout = 10 * time.Second
	require.Equal(t, lim, r.Config.Limits)
	require.NotNil(t, r.Config.Redis)
	require.Equal(t, "redis://127.0.0.1:6379/0", r.Config.Redis.URL)
	require.Nil(t, r.Config.Redis.Addrs)
	require.Equal(t, events.Options{Retention: 200000, Buffer: 1024}, r.Config.Events)
	require.False(t, r.Config.DisableEvents)
	require.Equal(t, host.CacheOptions{Entries: 50000, MaxAge: 5 * time.Minute}, r.Config.Cache)
	require.Equal(t, "storage-host:prod:", r.Config.Redis.KeyPrefix)
	require.True(t, r.Config.Redis.Scripts)
	require.Equal(t, time.Second, r.Config.Redis.DialTimeout)
	require.Zero(t, r.Config.Redis.ReadTimeout)

	m, ok := f.Backend("metrics")
	require.True(t, ok)
	require.Equal(t, map[string]string{"metric_ttl_seconds": "3600"}, m.Config.Options)
	require.NotEqual(t, r.Digest, m.Digest)

	_, ok = f.Backend("nope")
	require.False(t, ok)
}

func TestRedisClusterExample(t *testing.T) {
	dir := setClusterEnv(t, t.Setenv)
	f, err := loadChecked(filepath.Join(dir, "redis-cluster.hcl"))
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:8474", f.Listen)
	require.Equal(t, config.Log{Level: "info", Format: "json"}, f.Log)
	require.Equal(t, config.Routes{Metrics: "redis", Alerts: "redis", AgentStates: "redis"}, f.Routes)
	require.Len(t, f.Backends, 1)
	rc := f.Backends[0].Config.Redis
	require.NotNil(t, rc)
	require.Equal(t, []string{"redis-0.redis.internal:6379", "redis-1.redis.internal:6379", "redis-2.redis.internal:6379"}, rc.Addrs)
	require.True(t, rc.Cluster)
	require.Equal(t, "storage-host-admin", rc.Username)
	require.Equal(t, "redis-password", rc.Password)
	require.True(t, rc.TLS)
	require.True(t, rc.Scripts)
	require.Equal(t, 32, rc.PoolSize)
	require.Equal(t, 4, rc.MinIdleConns)
	require.Equal(t, 0, rc.DB)
	require.Equal(t, "fail", f.Backends[0].Config.Options["fallback"])

	require.False(t, f.Auth.AllowUnauthenticated)
	require.Equal(t, []httpapi.Token{
		{Name: "fleet", Secret: "fleet-token-0123456789", Scopes: []httpapi.Scope{
			{Kind: abi.KindMetric, Write: true}, {Kind: abi.KindAlert, Write: true},
			{Kind: abi.KindAgentState}, {Kind: abi.KindAgentState, Write: true},
		}},
		// The file's trailing newline is trimmed.
		{Name: "dashboard", Secret: "dashboard-token-0123456789", Scopes: []httpapi.Scope{{AllKinds: true}}},
	}, f.Auth.Tokens)
}

func TestRelativePluginPath(t *testing.T) {
	// The file need not exist: paths are relative to its directory.
	name := filepath.Join(examples, "inline.hcl")
	f, err := parseChecked([]byte(`
backend "local" {
  plugin = "../plugins/agentstate.wasm"
  sha256 = "`+sha256File(t, filepath.Join(plugins, "agentstate.wasm"))+`"
  trusted = true
  capabilities = ["kv", "clock", "log"]
  limits {
    memory_pages = 16
    max_response_bytes = 65536
    max_host_calls = 10
    log_lines_per_second = 0.5
    max_log_line_bytes = 80
  }
}
`), name)
	require.NoError(t, err)
	want, err := filepath.Abs(filepath.Join(plugins, "agentstate.wasm"))
	require.NoError(t, err)
	cfg := f.Backends[0].Config
	require.True(t, filepath.IsAbs(cfg.Plugin))
	require.Equal(t, want, cfg.Plugin)
	require.True(t, cfg.Trusted)
	require.Equal(t, []abi.Capability{abi.CapabilityKV, abi.CapabilityClock, abi.CapabilityLog}, cfg.Capabilities)
	require.Equal(t, host.Limits{
		MemoryPages: 16, CallTimeout: host.DefaultLimits.CallTimeout, MaxResponseBytes: 65536,
		MaxHostCalls: 10, LogLinesPerSecond: 0.5, MaxLogLineBytes: 80,
		MaxLogBytesPerCall: host.DefaultLimits.MaxLogBytesPerCall, MaxKVBytes: host.DefaultLimits.MaxKVBytes,
		MaxKVEntries: host.DefaultLimits.MaxKVEntries, MaxKVScanBytes: host.DefaultLimits.MaxKVScanBytes,
		MaxEventsPerCall: host.DefaultLimits.MaxEventsPerCall,
	}, cfg.Limits)

	// A capability list naming redis beside a redis block leaves it to
	// the block, so that host.Open grants it once.
	f, err = parseChecked([]byte(`
backend "r" {
  plugin = "builtin:redis"
  capabilities = ["log", "clock", "kv", "redis"]
  redis {
    addrs = ["127.0.0.1:6379"]
    key_prefix = "r:"
  }
}
`), "r.hcl")
	require.NoError(t, err)
	require.Equal(t, host.DefaultCapabilities, f.Backends[0].Config.Capabilities)
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return host.Inspect(context.Background(), b).SHA256
}

// TestBadConfigs checks the position and message of each kind of error.
func TestBadConfigs(t *testing.T) {
	t.Setenv("CONFIG_TEST_SHORT", "short")
	t.Setenv("CONFIG_TEST_UNSET", "")
	mem := `backend "m" { plugin = "builtin:memory" }` + "\n"
	inExamples := filepath.Join(examples, "bad.hcl")
	for _, tc := range []struct {
		name     string
		src      string
		filename string // default bad.hcl
		pos      string // line:col
		want     string
	}{
		{"syntax", "backend \"m\" {\n  plugin = \n}\n", "", "2:12", "Invalid expression"},
		{"unknown attribute", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  colour = \"red\"\n}\n", "", "3:3", `Unsupported argument; An argument named "colour" is not expected here.`},
		{"unknown block", mem + "cache {\n}\n", "", "2:1", `Unsupported block type; Blocks of type "cache" are not expected here.`},
		{"cache without entries", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  cache {\n  }\n}\n", "", "3:3", `Missing required argument; The argument "entries" is required`},
		{"cache entries zero", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  cache {\n    entries = 0\n  }\n}\n", "", "4:15", "entries must be a whole number from 1 to"},
		{"cache max_age not a duration", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  cache {\n    entries = 10\n    max_age = \"a minute\"\n  }\n}\n", "", "5:15", `max_age: "a minute" is not a duration`},
		{"cache max_age zero", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  cache {\n    entries = 10\n    max_age = \"0s\"\n  }\n}\n", "", "5:15", "max_age must be positive"},
		{"cache without events", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  events {\n    enabled = false\n  }\n  cache {\n    entries = 10\n  }\n}\n", "", "6:3", "Cache without events"},
		{"events retention negative", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  events {\n    retention = -1\n  }\n}\n", "", "4:17", "retention must be a whole number from 1 to"},
		{"events unknown attribute", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  events {\n    ttl = 3\n  }\n}\n", "", "4:5", `An argument named "ttl" is not expected here`},
		{"events capability with events off", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = [\"log\", \"events\"]\n  events {\n    enabled = false\n  }\n}\n", "", "3:18", "Capability without events"},
		{"unknown top-level attribute", "port = 1\n" + mem, "", "1:1", `An argument named "port" is not expected here`},
		{"no backend", "listen = \"127.0.0.1:1\"\n", "", "1:1", "Missing backend block"},
		{"backend without label", "backend {\n  plugin = \"builtin:memory\"\n}\n", "", "1:9", "Missing name for backend"},
		{"bad backend name", "backend \"Fast\" {\n  plugin = \"builtin:memory\"\n}\n", "", "1:1", `Invalid backend name; "Fast"`},
		{"duplicate backend", mem + "\nbackend \"m\" {\n  plugin = \"builtin:memory\"\n}\n", "", "3:1", `Duplicate backend; A backend named "m" is already defined at bad.hcl:1,1-12.`},
		{"missing plugin", "backend \"m\" {\n  trusted = true\n}\n", "", "1:1", `Missing required argument; The argument "plugin" is required.`},
		{"wrong type", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  instances = \"eight\"\n}\n", "", "3:15", `Inappropriate value for attribute "instances": a number is required.`},
		{"wrong type bool", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  trusted = \"yes\"\n}\n", "", "3:13", `attribute "trusted": a bool is required`},
		{"wrong type list", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = \"log\"\n}\n", "", "3:18", `attribute "capabilities": list of string required`},
		{"variable", "backend \"m\" {\n  plugin = var.plugin\n}\n", "", "2:12", "Variables not allowed"},
		{"instances zero", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  instances = 0\n}\n", "", "3:15", "instances must be a whole number from 1 to"},
		{"instances negative", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  instances = -3\n}\n", "", "3:15", "instances must be a whole number from 1 to"},
		{"instances fraction", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  instances = 1.5\n}\n", "", "3:15", "instances must be a whole number"},
		{"option refused by the plugin", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  options = { colour = \"blue\" }\n}\n", "", "3:13", `Options refused by the plugin; host: configure plugin memory: invalid: unknown option "colour"`},
		{"redis option refused", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  options = { fallback = \"sometimes\" }\n  redis {\n    addrs = [\"127.0.0.1:1\"]\n    key_prefix = \"x:\"\n  }\n}\n", "", "3:13", `"sometimes" is neither fail nor buffer`},
		{"unknown capability", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = [\"log\", \"clock\", \"kv\", \"net\"]\n}\n", "", "3:41", `Unknown capability; "net" is not a capability`},
		{"redis capability without block", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = [\"log\", \"clock\", \"kv\", \"redis\"]\n}\n", "", "3:41", `Capability "redis" is granted by a redis block`},
		{"option nested", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  options = { a = 1, b = [1] }\n}\n", "", "3:26", `Invalid option value; Option "b"`},
		{"option null", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  options = { a = null }\n}\n", "", "3:19", `Option "a"`},
		{"options not a map", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  options = \"ttl=1\"\n}\n", "", "3:13", "a map of strings, numbers or bools is required"},
		{"bad duration", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    call_timeout = \"5 seconds\"\n  }\n}\n", "", "4:20", `Invalid duration; call_timeout: "5 seconds" is not a duration`},
		{"duration without unit", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    call_timeout = 5\n  }\n}\n", "", "4:20", `call_timeout: "5" is not a duration`},
		{"negative duration", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    call_timeout = \"-1s\"\n  }\n}\n", "", "4:20", "call_timeout must be positive"},
		{"memory pages", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    memory_pages = 70000\n  }\n}\n", "", "4:20", "memory_pages must be a whole number from 1 to 65536"},
		{"log lines", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    log_lines_per_second = 0\n  }\n}\n", "", "4:28", "log_lines_per_second must be a positive number"},
		{"unknown limit", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    cpu = 1\n  }\n}\n", "", "4:5", `An argument named "cpu" is not expected here`},
		{"two limits blocks", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {}\n  limits {}\n}\n", "", "4:3", "Duplicate limits block"},
		{"unreadable plugin", "backend \"m\" {\n  plugin = \"missing.wasm\"\n}\n", "", "2:12", "Unreadable plugin; open "},
		{"plugin is a directory", "backend \"m\" {\n  plugin = \"../plugins\"\n}\n", inExamples, "2:12", "is not a regular file"},
		{"empty plugin", "backend \"m\" {\n  plugin = \"\"\n}\n", "", "2:12", "Invalid plugin"},
		{"unknown builtin", "backend \"m\" {\n  plugin = \"builtin:nosuch\"\n}\n", "", "2:12", `This host has no built-in plugin "nosuch".`},
		{"sha256 mismatch", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  sha256 = \"" + strings.Repeat("0", 64) + "\"\n}\n", "", "3:12", "Plugin does not match its pin; builtin:memory has sha256 "},
		{"sha256 malformed", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  sha256 = \"abc\"\n}\n", "", "3:12", "64 hexadecimal digits"},
		{"ungranted redis", "backend \"r\" {\n  plugin = \"builtin:redis\"\n}\n", "", "2:12", `Capability not granted; plugin imports capability "redis", which this backend does not grant (add a redis block)`},
		{"ungranted kv", "backend \"u\" {\n  plugin = \"../plugins/ungranted.wasm\"\n  capabilities = [\"log\"]\n}\n", inExamples, "2:12", `plugin imports capability "kv", which this backend does not grant (add it to capabilities)`},
		{"ungranted declared", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = [\"clock\", \"kv\"]\n}\n", "", "2:12", `plugin declares capability "log", which this backend does not grant`},
		{"plugin of another ABI", "backend \"o\" {\n  plugin = \"../plugins/oldabi.wasm\"\n}\n", inExamples, "2:12", "Plugin cannot be loaded; host: incompatible plugin: ABI version mismatch"},
		{"plugin with unknown import", "backend \"o\" {\n  plugin = \"../plugins/badimport.wasm\"\n}\n", inExamples, "2:12", "imports env.something, which this host does not provide"},
		{"not wasm", "backend \"o\" {\n  plugin = \"memory.hcl\"\n}\n", inExamples, "2:12", "Plugin cannot be loaded; host: incompatible plugin: compile"},
		{"missing routes", mem + "backend \"n\" {\n  plugin = \"builtin:memory\"\n}\n", "", "2:1", "Missing routes block"},
		{"undefined route target", mem + "routes {\n  metrics = \"m\"\n  alerts = \"m\"\n  agent_states = \"redis\"\n}\n", "", "5:18", `Unknown backend; No backend named "redis" is defined (defined: m).`},
		{"route to a backend that does not serve the kind", mem + "backend \"s\" {\n  plugin = \"../plugins/agentstate.wasm\"\n}\nroutes {\n  metrics = \"s\"\n  alerts = \"m\"\n  agent_states = \"s\"\n}\n", inExamples, "6:13",
			`Backend does not serve metrics; Backend "s" runs plugin agentstate 1.0.0, which does not serve metrics (it advertises [agent_states]); every metrics request would be refused.`},
		{"incomplete routes", mem + "routes {\n  metrics = \"m\"\n  alerts = \"m\"\n}\n", "", "2:1", `The argument "agent_states" is required.`},
		{"bad log level", "log {\n  level = \"verbose\"\n}\n" + mem, "", "2:11", `"verbose" is not one of trace, debug, info, warn, error`},
		{"bad log format", "log {\n  format = \"xml\"\n}\n" + mem, "", "2:12", `"xml" is not one of text, json`},
		{"bad listen", "listen = \"8474\"\n" + mem, "", "1:10", "listen must be host:port"},
		{"listen port too large", "listen = \"127.0.0.1:99999\"\n" + mem, "", "1:10", `port "99999" is not a number from 0 to 65535`},
		{"listen port negative", "listen = \"127.0.0.1:-1\"\n" + mem, "", "1:10", `port "-1" is not a number`},
		{"max_event_streams zero", "max_event_streams = 0\n" + mem, "", "1:21", "max_event_streams must be a whole number from 1 to 1048576"},
		{"max_event_streams fraction", mem + "max_event_streams = 2.5\n", "", "2:21", "max_event_streams must be a whole number from 1 to 1048576"},
		{"max_event_streams too many", "max_event_streams = 100000000\n" + mem, "", "1:21", "max_event_streams must be a whole number from 1 to 1048576"},
		{"max_event_streams string", "max_event_streams = \"many\"\n" + mem, "", "1:21", `Inappropriate value for attribute "max_event_streams": a number is required.`},
		{"max_event_streams not under max_connections", "max_connections = 10\nmax_event_streams = 10\n" + mem, "", "2:21", "max_event_streams (10) must be less than max_connections (10)"},
		{"max_connections zero", "max_connections = 0\n" + mem, "", "1:19", "max_connections must be a whole number from 1 to 1048576"},
		{"json max_event_streams", "{\n  \"backend\": {\"m\": {\"plugin\": \"builtin:memory\"}},\n  \"max_event_streams\": -1\n}\n", "bad.json", "3:24", "max_event_streams must be a whole number from 1 to 1048576"},
		{"redis two password sources", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    password = \"x\"\n    password_env = \"REDIS_PASSWORD\"\n  }\n}\n", "", "7:20", "Conflicting secret sources; password and password_env are both set"},
		{"redis unset password env", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    password_env = \"CONFIG_TEST_UNSET\"\n  }\n}\n", "", "6:20", "Unset secret; The environment variable CONFIG_TEST_UNSET is unset or empty."},
		{"redis unreadable password file", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    password_file = \"no/such/file\"\n  }\n}\n", "", "6:21", "Unreadable secret file"},
		{"redis without key prefix", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n  }\n}\n", "", "3:3", `The argument "key_prefix" is required.`},
		{"redis bad key prefix", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:*\"\n  }\n}\n", "", "3:3", "Invalid redis block; redisbridge: KeyPrefix \"r:*\": no glob characters"},
		{"redis url and addrs", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    url = \"redis://127.0.0.1:6379\"\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n  }\n}\n", "", "3:3", "URL and Addrs are exclusive"},
		{"redis no address", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    key_prefix = \"r:\"\n  }\n}\n", "", "3:3", "URL or Addrs is required"},
		{"redis bad url", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    url = \"http://127.0.0.1\"\n    key_prefix = \"r:\"\n  }\n}\n", "", "3:3", "Invalid redis block; redisbridge: URL"},
		{"redis cluster db", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"a:1\", \"b:1\"]\n    db = 2\n    key_prefix = \"r:\"\n  }\n}\n", "", "3:3", "a cluster has only database 0"},
		{"redis unknown command", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    allow_commands = [\"FLUSHALL\"]\n  }\n}\n", "", "3:3", `AllowCommands: "FLUSHALL" is not in the bridge's command table`},
		{"redis negative pool", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    pool_size = -1\n  }\n}\n", "", "6:17", "pool_size must be a whole number from 0 to"},
		{"redis bad timeout", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    read_timeout = \"2\"\n  }\n}\n", "", "6:20", `read_timeout: "2" is not a duration`},
		{"redis unknown attribute", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n    sentinel = true\n  }\n}\n", "", "6:5", `An argument named "sentinel" is not expected here`},
		{"bad scope", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    scopes = [\"metrics:read\", \"metrics:delete\"]\n  }\n}\n", "", "5:31", `Invalid scope; "metrics:delete"`},
		{"bad scope kind", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    scopes = [\"logs:read\"]\n  }\n}\n", "", "5:15", `Invalid scope; "logs:read"`},
		{"no scopes", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    scopes = []\n  }\n}\n", "", "5:14", "A token needs at least one scope."},
		{"missing scopes", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n  }\n}\n", "", "3:3", `The argument "scopes" is required.`},
		{"unset env secret", mem + "auth {\n  token \"t\" {\n    secret_env = \"CONFIG_TEST_UNSET\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "4:18", "The environment variable CONFIG_TEST_UNSET is unset or empty."},
		{"short env secret", mem + "auth {\n  token \"t\" {\n    secret_env = \"CONFIG_TEST_SHORT\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "4:18", `Token secret too short; Token "t" has a secret of 5 bytes; at least 16 are required.`},
		{"secret with spaces", mem + "auth {\n  token \"t\" {\n    secret = \"  0123456789abcdef0  \"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "4:14", `Token secret with spaces; Token "t" has a secret that begins or ends with white space`},
		{"short inline secret", mem + "auth {\n  token \"t\" {\n    secret = \"0123\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "4:14", "Token secret too short"},
		{"unreadable secret file", mem + "auth {\n  token \"t\" {\n    secret_file = \"no/such/token\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "4:19", "Unreadable secret file"},
		{"two secret sources", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    secret_env = \"CONFIG_TEST_SHORT\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "5:18", "Conflicting secret sources; secret and secret_env are both set"},
		{"no secret", mem + "auth {\n  token \"t\" {\n    scopes = [\"*:read\"]\n  }\n}\n", "", "3:3", "Missing token secret"},
		{"duplicate token", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    scopes = [\"*:read\"]\n  }\n  token \"t\" {\n    secret = \"fedcba9876543210\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "7:3", `Duplicate token; A token named "t" is already defined at bad.hcl:3,3-12.`},
		{"duplicate token secret", mem + "auth {\n  token \"t\" {\n    secret = \"0123456789abcdef\"\n    scopes = [\"*:read\"]\n  }\n  token \"u\" {\n    secret = \"0123456789abcdef\"\n    scopes = [\"*:read\"]\n  }\n}\n", "", "8:14", `Token "u" has the same secret as token "t".`},
		{"allow_unauthenticated type", mem + "auth {\n  allow_unauthenticated = \"no\"\n}\n", "", "3:27", "a bool is required"},

		// The JSON syntax reports positions in the JSON text.
		{"json unknown attribute", "{\n  \"backend\": {\n    \"m\": {\n      \"plugin\": \"builtin:memory\",\n      \"colour\": \"red\"\n    }\n  }\n}\n", "bad.json", "5:7", `Extraneous JSON object property; No argument or block type is named "colour".`},
		{"json wrong type", "{\n  \"backend\": {\n    \"m\": {\n      \"plugin\": \"builtin:memory\",\n      \"instances\": true\n    }\n  }\n}\n", "bad.json", "5:20", `Inappropriate value for attribute "instances": number required, but have bool.`},
		{"json syntax", "{\n  \"backend\": {\n}\n", "bad.json", "1:1", "Unclosed object"},
		{"json scope", "{\n  \"backend\": {\"m\": {\"plugin\": \"builtin:memory\"}},\n  \"auth\": {\"token\": {\"t\": {\"secret\": \"0123456789abcdef\", \"scopes\": [\"*:read\", \"*:all\"]}}}\n}\n", "bad.json", "3:79", `Invalid scope; "*:all"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filename := cmpOr(tc.filename, "bad.hcl")
			_, err := parseChecked([]byte(tc.src), filename)
			require.Error(t, err)
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			prefix := filename + ":" + tc.pos + ": "
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, prefix) && strings.Contains(line, tc.want) {
					return
				}
			}
			t.Fatalf("no error at %s containing %q; got:\n%s", prefix, tc.want, err)
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestAllErrors checks that Parse reports every error of the text, and
// Check every error of what it names, each in file order.
func TestAllErrors(t *testing.T) {
	src := `backend "a" {
  plugin    = "builtin:memory"
  instances = 0
}
backend "b" {
  plugin = "nope.wasm"
}
routes {
  metrics      = "a"
  alerts       = "c"
  agent_states = "b"
}
`
	summaries := func(err error) []string {
		var cerr *config.Error
		require.ErrorAs(t, err, &cerr)
		var got []string
		for _, d := range cerr.Diagnostics {
			got = append(got, d.Subject.String()+" "+d.Summary)
		}
		return got
	}
	_, err := config.Parse([]byte(src), "all.hcl")
	require.Equal(t, []string{
		"all.hcl:3,15-16 Invalid value for \"instances\"",
		"all.hcl:10,18-21 Unknown backend",
	}, summaries(err))
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, `all.hcl:10:18: Unknown backend; No backend named "c" is defined (defined: a, b).`, lines[1])
	// The diagnostics themselves are reachable too.
	var diags hcl.Diagnostics
	require.ErrorAs(t, err, &diags)
	require.Len(t, diags, 2)

	src = strings.NewReplacer("instances = 0", "instances = 1", `"c"`, `"a"`, "builtin:memory", "builtin:nope").Replace(src)
	f, err := config.Parse([]byte(src), "all.hcl")
	require.NoError(t, err)
	require.Equal(t, []string{
		"all.hcl:2,15-29 Unknown built-in plugin",
		"all.hcl:6,12-23 Unreadable plugin",
	}, summaries(f.Check(t.Context())))
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "none.hcl"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	var cerr *config.Error
	require.False(t, errors.As(err, &cerr))
}

func TestDefault(t *testing.T) {
	d := config.Default()
	require.Empty(t, d.Path)
	require.Empty(t, d.Listen)
	require.Equal(t, config.Log{Level: "info", Format: "text"}, d.Log)
	require.Equal(t, config.Routes{Metrics: "memory", Alerts: "memory", AgentStates: "memory"}, d.Routes)
	require.Equal(t, config.Auth{}, d.Auth)
	require.Len(t, d.Backends, 1)
	b, ok := d.Backend("memory")
	require.True(t, ok)
	require.Equal(t, "builtin:memory", b.Config.Plugin)

	// It is the smallest file spelled out: same backend, same Digest.
	f, err := parseChecked([]byte(`backend "memory" { plugin = "builtin:memory" }`), "min.hcl")
	require.NoError(t, err)
	require.Equal(t, d.Backends, f.Backends)
	require.Equal(t, d.Routes, f.Routes)
}

func TestDigest(t *testing.T) {
	parse := func(t *testing.T, src, filename string) *config.File {
		t.Helper()
		f, err := parseChecked([]byte(src), filename)
		require.NoError(t, err)
		return f
	}
	digests := func(f *config.File) map[string]string {
		m := map[string]string{}
		for _, b := range f.Backends {
			m[b.Name] = b.Digest
		}
		return m
	}

	t.Run("events and cache", func(t *testing.T) {
		base := digests(parse(t, `backend "a" { plugin = "builtin:memory" }`, "a.hcl"))["a"]
		for _, body := range []string{
			"events {\n retention = 5\n }",
			"events {\n enabled = false\n }",
			"events {\n buffer = 8\n }",
			"cache {\n entries = 10\n }",
			"cache {\n entries = 10\n max_age = \"30s\"\n }",
		} {
			d := digests(parse(t, "backend \"a\" {\n plugin = \"builtin:memory\"\n "+body+"\n}\n", "a.hcl"))["a"]
			require.NotEqual(t, base, d, "%s rebuilds the backend", body)
		}
		cached := parse(t, "backend \"a\" {\n plugin = \"builtin:memory\"\n cache {\n entries = 10\n }\n}\n", "a.hcl")
		aged := parse(t, "backend \"a\" {\n plugin = \"builtin:memory\"\n cache {\n entries = 10\n max_age = \"30s\"\n }\n}\n", "a.hcl")
		require.Equal(t, 30*time.Second, aged.Backends[0].Config.Cache.MaxAge)
		require.NotEqual(t, digests(cached)["a"], digests(aged)["a"], "max_age rebuilds the backend")
	})

	t.Run("options", func(t *testing.T) {
		src := `
backend "a" {
  plugin  = "builtin:memory"
  options = { metric_ttl_seconds = 60, alert_ttl_seconds = 60 }
}
backend "b" {
  plugin = "builtin:memory"
}
routes {
  metrics = "a"
  alerts = "a"
  agent_states = "b"
}
`
		one, two := digests(parse(t, src, "d.hcl")), digests(parse(t, src, "d.hcl"))
		require.Equal(t, one, two)
		require.NotEqual(t, one["a"], one["b"])
		// Layout, option order and routes do not define a backend.
		same := digests(parse(t, `
backend "a" {
    plugin = "builtin:memory"
    options = {
      alert_ttl_seconds = "60"
      metric_ttl_seconds = 60
    }
}
backend "b" { plugin = "builtin:memory" }
routes {
  metrics = "b"
  alerts = "b"
  agent_states = "a"
}
`, "other.hcl"))
		require.Equal(t, one, same)
		changed := digests(parse(t, strings.Replace(src, "alert_ttl_seconds = 60", "alert_ttl_seconds = 61", 1), "d.hcl"))
		require.NotEqual(t, one["a"], changed["a"])
		require.Equal(t, one["b"], changed["b"])
	})

	t.Run("plugin bytes", func(t *testing.T) {
		dir := t.TempDir()
		plugin := filepath.Join(dir, "plugin.wasm")
		agent, err := os.ReadFile(filepath.Join(plugins, "agentstate.wasm"))
		require.NoError(t, err)
		memory, err := host.BuiltinWASM("memory")
		require.NoError(t, err)
		src := `backend "p" { plugin = "plugin.wasm" }`
		name := filepath.Join(dir, "p.hcl")

		require.NoError(t, os.WriteFile(plugin, agent, 0o600))
		first := parse(t, src, name).Backends[0]
		require.Equal(t, first.Digest, parse(t, src, name).Backends[0].Digest)
		require.NoError(t, os.WriteFile(plugin, memory, 0o600))
		second := parse(t, src, name).Backends[0]
		require.Equal(t, agent, first.Config.WASM, "host.Open gets the bytes that were checked")
		require.Equal(t, memory, second.Config.WASM)
		first.Config.WASM, second.Config.WASM = nil, nil
		require.Equal(t, first.Config, second.Config, "only the module changed")
		require.NotEqual(t, first.Digest, second.Digest)
	})

	t.Run("secret", func(t *testing.T) {
		src := `
backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs        = ["127.0.0.1:6379"]
    key_prefix   = "r:"
    password_env = "CONFIG_TEST_REDIS_PASSWORD"
  }
}
`
		t.Setenv("CONFIG_TEST_REDIS_PASSWORD", "one")
		one := parse(t, src, "s.hcl").Backends[0]
		require.Equal(t, "one", one.Config.Redis.Password)
		require.Equal(t, one.Digest, parse(t, src, "s.hcl").Backends[0].Digest)
		t.Setenv("CONFIG_TEST_REDIS_PASSWORD", "two")
		two := parse(t, src, "s.hcl").Backends[0]
		require.Equal(t, "two", two.Config.Redis.Password)
		require.NotEqual(t, one.Digest, two.Digest)
		require.NotContains(t, two.Digest, "two")
	})
}

// TestCheckDoesNotConnect checks that a redis block is parsed and
// checked without any connection to Redis, even with scripts and idle
// connections asked for.
func TestCheckDoesNotConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = parseChecked([]byte(`
backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs          = ["`+ln.Addr().String()+`"]
    key_prefix     = "r:"
    scripts        = true
    min_idle_conns = 4
  }
}
backend "u" {
  plugin = "builtin:redis"
  redis {
    url        = "redis://`+ln.Addr().String()+`/0?min_idle_conns=4"
    key_prefix = "u:"
    scripts    = true
  }
}
routes {
  metrics      = "r"
  alerts       = "r"
  agent_states = "u"
}
`), "r.hcl")
	require.NoError(t, err)
	// Any dial Parse or Check started would be accepted within this bound.
	require.NoError(t, ln.(*net.TCPListener).SetDeadline(time.Now().Add(200*time.Millisecond)))
	conn, err := ln.Accept()
	if conn != nil {
		conn.Close()
	}
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "Parse or Check connected to Redis")
}

// FuzzParse checks that Parse never panics and that every error it
// returns is an *Error whose diagnostics all point into the file. Parse
// runs no plugin (Check does), so each input costs the parse alone.
func FuzzParse(f *testing.F) {
	dir := setClusterEnv(f, f.Setenv)
	for _, name := range []string{"memory.hcl", "memory.json", "redis-fallback.hcl", "redis-cluster.hcl"} {
		src, err := os.ReadFile(filepath.Join(examples, name))
		require.NoError(f, err)
		f.Add(src, strings.HasSuffix(name, ".json"))
	}
	f.Add([]byte(`backend "p" { plugin = "`+filepath.Join(mustAbs(f, plugins), "agentstate.wasm")+`" }`), false)
	f.Add([]byte(`{"backend": {"m": {"plugin": "builtin:memory", "options": {"a": 1.5}}}, "routes": {"metrics": "m"}}`), true)
	f.Fuzz(func(t *testing.T, src []byte, json bool) {
		filename := filepath.Join(dir, "fuzz.hcl")
		if json {
			filename = filepath.Join(dir, "fuzz.json")
		}
		file, err := config.Parse(src, filename)
		if err == nil {
			require.NotEmpty(t, file.Backends)
			for _, b := range file.Backends {
				require.Equal(t, b.Name, b.Config.Name)
				require.Empty(t, b.Digest, "a digest covers the plugin module, which Parse does not read")
			}
			for _, r := range []string{file.Routes.Metrics, file.Routes.Alerts, file.Routes.AgentStates} {
				_, ok := file.Backend(r)
				require.True(t, ok, "route to %q", r)
			}
			return
		}
		var cerr *config.Error
		require.ErrorAs(t, err, &cerr)
		require.NotEmpty(t, cerr.Diagnostics)
		for _, d := range cerr.Diagnostics {
			require.Equal(t, hcl.DiagError, d.Severity)
			require.NotNil(t, d.Subject, "%s", d.Summary)
			require.Equal(t, filename, d.Subject.Filename)
			require.GreaterOrEqual(t, d.Subject.Start.Line, 1)
			require.GreaterOrEqual(t, d.Subject.Start.Column, 1)
		}
	})
}

func mustAbs(t testing.TB, p string) string {
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	return abs
}

// TestReadmeExample keeps the configuration shown in README.md valid.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "```hcl\n")
	require.True(t, ok, "README.md has an hcl example")
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	f, err := parseChecked([]byte(example), filepath.Join(t.TempDir(), "readme.hcl"))
	require.NoError(t, err)
	require.Equal(t, "memory", f.Routes.Metrics)
	require.Equal(t, "redis", f.Routes.AgentStates)
}

// TestDaemonBounds: max_event_streams and max_connections are read at
// the top level, in HCL and JSON; absent, they are 0, for the defaults.
func TestDaemonBounds(t *testing.T) {
	mem := `backend "m" { plugin = "builtin:memory" }` + "\n"
	f, err := config.Parse([]byte("max_event_streams = 64\nmax_connections = 128\n"+mem), "streams.hcl")
	require.NoError(t, err)
	require.Equal(t, 64, f.MaxEventStreams)
	require.Equal(t, 128, f.MaxConnections)
	f, err = config.Parse([]byte(`{"max_event_streams": 1, "backend": {"m": {"plugin": "builtin:memory"}}}`), "streams.json")
	require.NoError(t, err)
	require.Equal(t, 1, f.MaxEventStreams)
	f, err = config.Parse([]byte(mem), "streams.hcl")
	require.NoError(t, err)
	require.Zero(t, f.MaxEventStreams)
	require.Zero(t, f.MaxConnections)
	require.Zero(t, config.Default().MaxEventStreams)
}
