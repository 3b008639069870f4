package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/config"
)

// TestFiles: a File lists the files it was read from, absolute and each
// once: itself, the plugins it names by path, the secret files of its
// tokens and Redis passwords. Built-in plugins and environment variables
// are not files.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	wasm, err := host.BuiltinWASM("memory")
	require.NoError(t, err)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	plugin := write("plugins/mine.wasm", string(wasm))
	token := write("secrets/token", "token-secret-0123456789\n")
	password := write("secrets/redis", "redis-password\n")
	t.Setenv("CONFIG_TEST_TOKEN", "env-secret-0123456789")
	cfg := write("app.hcl", `backend "mine" {
  plugin = "plugins/mine.wasm"
}
backend "again" {
  plugin = "`+plugin+`"
}
backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs         = ["127.0.0.1:6379"]
    key_prefix    = "files:"
    password_file = "secrets/redis"
  }
}
routes {
  metrics      = "mine"
  alerts       = "again"
  agent_states = "r"
}
auth {
  token "file" {
    secret_file = "secrets/token"
    scopes      = ["*:read"]
  }
  token "env" {
    secret_env = "CONFIG_TEST_TOKEN"
    scopes     = ["*:read"]
  }
}
`)
	f, err := config.Load(cfg)
	require.NoError(t, err)
	require.Equal(t, []string{cfg, plugin, password, token}, f.Files)
	require.Empty(t, config.Default().Files)
}
