package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
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
	f, err := loadChecked(cfg)
	require.NoError(t, err)
	require.Equal(t, []string{cfg, plugin, password, token}, f.Files)
	require.Empty(t, config.Default().Files)
}

// TestOffline: Offline names secrets without reading them; an inline
// secret, which the file holds, is still checked, and so is everything
// else.
func TestOffline(t *testing.T) {
	t.Setenv("CONFIG_TEST_UNSET", "")
	src := []byte(`backend "m" { plugin = "builtin:memory" }
auth {
  token "env" {
    secret_env = "CONFIG_TEST_UNSET"
    scopes     = ["*:read"]
  }
  token "file" {
    secret_file = "no/such/token"
    scopes      = ["*:read"]
  }
}
`)
	f, err := config.Parse(src, "offline.hcl")
	require.NoError(t, err)
	require.Error(t, f.Check(t.Context()), "online, the secrets are read")
	require.NoError(t, f.Check(t.Context(), config.Offline()))
	require.False(t, f.Checked(), "an offline check is a report, not a file to serve")
	require.Len(t, f.Auth.Tokens, 2)
	for _, tok := range f.Auth.Tokens {
		require.Empty(t, tok.Secret, "offline, no secret is read")
	}
	require.Contains(t, f.Files, filepath.Join(absDir(t), "no", "such", "token"), "the secret file is still followed")

	_, err = config.Parse([]byte(`backend "m" { plugin = "builtin:memory" }
auth {
  token "short" {
    secret = "0123"
    scopes = ["*:read"]
  }
}
`), "offline.hcl")
	require.ErrorContains(t, err, "offline.hcl:4:14: Token secret too short", "an inline secret is the file's: Parse checks it")
}

func absDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}
