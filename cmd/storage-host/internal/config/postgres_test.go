package config_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
)

// A postgres block decodes into host.PostgresConfig, which grants the
// postgres capability; its URL, a secret, is read by Check (from the
// file, the environment or a file of its own), and not at all offline.
func TestPostgresBlock(t *testing.T) {
	block := func(url string) []byte {
		return []byte(`backend "pg" {
  plugin = "builtin:memory"
  postgres {
    ` + url + `
    schema            = "agents"
    max_conns         = 8
    statement_timeout = "5s"
    temp_file_limit_mb = 256
  }
}
`)
	}
	const url = "postgres://admin:s3cret@db.example:5432/fleet?sslmode=verify-full"
	want := host.PostgresConfig{URL: url, Schema: "agents", MaxConns: 8, StatementTimeout: 5 * time.Second, TempFileLimitMB: 256}

	f, err := parseChecked(block(`url = "`+url+`"`), "pg.hcl")
	require.NoError(t, err)
	b, _ := f.Backend("pg")
	require.Equal(t, &want, b.Config.Postgres)

	t.Setenv("CONFIG_TEST_PG_URL", url)
	f, err = config.Parse(block(`url_env = "CONFIG_TEST_PG_URL"`), "pg.hcl")
	require.NoError(t, err)
	b, _ = f.Backend("pg")
	require.Empty(t, b.Config.Postgres.URL, "Parse reads no secret")
	require.NoError(t, f.Check(t.Context(), config.Offline()))
	b, _ = f.Backend("pg")
	require.Empty(t, b.Config.Postgres.URL, "offline, no secret is read")
	require.NoError(t, f.Check(t.Context()))
	b, _ = f.Backend("pg")
	require.Equal(t, &want, b.Config.Postgres)

	dir := t.TempDir()
	secret := filepath.Join(dir, "pg-url")
	require.NoError(t, os.WriteFile(secret, []byte(url+"\n"), 0o600))
	f, err = loadChecked(writeFile(t, dir, "pg.hcl", block(`url_file = "pg-url"`)))
	require.NoError(t, err)
	b, _ = f.Backend("pg")
	require.Equal(t, &want, b.Config.Postgres)
	require.Contains(t, f.Files, secret, "a reload follows the URL's file")

	// The digest follows the block: a reload rebuilds a backend whose
	// PostgreSQL changed.
	g, err := parseChecked([]byte(strings.Replace(string(block(`url = "`+url+`"`)), `"agents"`, `"agents2"`, 1)), "pg.hcl")
	require.NoError(t, err)
	c, _ := g.Backend("pg")
	f, err = parseChecked(block(`url = "`+url+`"`), "pg.hcl")
	require.NoError(t, err)
	b, _ = f.Backend("pg")
	require.NotEqual(t, b.Digest, c.Digest)
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// Each mistake in a postgres block is reported at the attribute that
// holds it (file:line:col), by Parse when the text says it, by Check
// when the secret does.
func TestBadPostgresBlocks(t *testing.T) {
	t.Setenv("CONFIG_TEST_UNSET", "")
	t.Setenv("CONFIG_TEST_BAD_PG_URL", "postgres://a:s3cret@[::1/x")
	pg := func(body string) string {
		return "backend \"p\" {\n  plugin = \"builtin:memory\"\n  postgres {\n" + body + "  }\n}\n"
	}
	const url = "    url = \"postgres://127.0.0.1/x\"\n"
	for _, tc := range []struct {
		name, src, pos, want string
	}{
		{"no url", pg("    schema = \"a\"\n"), "3:3", "One of url, url_env and url_file is required"},
		{"no schema", pg(url), "3:3", `The argument "schema" is required.`},
		{"bad schema", pg(url + "    schema = \"Agents\"\n"), "5:14", `Invalid value for "schema"; schema "Agents": want lower-case letters`},
		{"long schema", pg(url + "    schema = \"" + strings.Repeat("a", 41) + "\"\n"), "5:14", `Invalid value for "schema"`},
		{"two url sources", pg(url + "    url_env = \"X\"\n    schema = \"a\"\n"), "5:15", "Conflicting secret sources; url and url_env are both set"},
		{"max_conns zero", pg(url + "    schema = \"a\"\n    max_conns = 0\n"), "6:17", "max_conns must be a whole number from 1 to"},
		{"temp files zero", pg(url + "    schema = \"a\"\n    temp_file_limit_mb = 0\n"), "6:26", "0 would forbid every temporary file"},
		{"temp files past int32 kB", pg(url + "    schema = \"a\"\n    temp_file_limit_mb = 2097152\n"), "6:26", "temp_file_limit_mb must be a whole number from -1 to 2097151"},
		{"bad timeout", pg(url + "    schema = \"a\"\n    statement_timeout = \"5\"\n"), "6:25", `statement_timeout: "5" is not a duration`},
		{"unknown attribute", pg(url + "    schema = \"a\"\n    password = \"x\"\n"), "6:5", `An argument named "password" is not expected here`},
		{"bad url", pg("    url = \"postgres://a:s3cret@[::1/x\"\n    schema = \"a\"\n"), "4:11", "Invalid postgres block; "},
		{"bad url from env", pg("    url_env = \"CONFIG_TEST_BAD_PG_URL\"\n    schema = \"a\"\n"), "4:15", "Invalid postgres block; "},
		{"unset url env", pg("    url_env = \"CONFIG_TEST_UNSET\"\n    schema = \"a\"\n"), "4:15", "Unset secret; The environment variable CONFIG_TEST_UNSET is unset or empty."},
		{"unreadable url file", pg("    url_file = \"no/such/file\"\n    schema = \"a\"\n"), "4:16", "Unreadable secret file"},
		{"restore on start", "backend \"p\" {\n  plugin = \"builtin:memory\"\n  postgres {\n" + url + "    schema = \"a\"\n  }\n  backup {\n    interval = \"1h\"\n    directory = \"b\"\n    restore_on_start = true\n  }\n}\n", "10:24", "this one keeps them in PostgreSQL"},
		{"shared schema", pg(url+"    schema = \"a\"\n") + "backend \"q\" {\n  plugin = \"builtin:memory\"\n  postgres {\n    url = \"postgres://other@127.0.0.1:5432/x\"\n    schema = \"a\"\n  }\n}\nroutes {\n  metrics = \"p\"\n  alerts = \"p\"\n  agent_states = \"q\"\n}\n", "12:14", `Shared schema; Backend "q"'s schema "a" is backend "p"'s on the same database (127.0.0.1:5432/x, at bad.hcl:5,14-17)`},
		{"shared schema, two names", pg(url+"    schema = \"a\"\n") + "backend \"q\" {\n  plugin = \"builtin:memory\"\n  postgres {\n    url = \"postgres://other@localhost:5432/x\"\n    schema = \"a\"\n  }\n}\nroutes {\n  metrics = \"p\"\n  alerts = \"p\"\n  agent_states = \"q\"\n}\n", "12:14", `Shared schema; Backend "q"'s schema "a" is backend "p"'s on the same database`},
		{"capability without block", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  capabilities = [\"log\", \"clock\", \"kv\", \"postgres\"]\n}\n", "3:41", `Capability "postgres" is granted by a postgres block`},
		{"two postgres blocks", pg(url + "    schema = \"a\"\n")[:len(pg(url+"    schema = \"a\"\n"))-2] + "  postgres {\n  }\n}\n", "7:3", "Duplicate postgres block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseChecked([]byte(tc.src), "bad.hcl")
			require.Error(t, err)
			require.Contains(t, err.Error(), "bad.hcl:"+tc.pos+": ", "src:\n%s", tc.src)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

// A plugin that imports the postgres capability, in a backend without a
// postgres block, is refused by Check with the block to add.
func TestPostgresCapabilityNotGranted(t *testing.T) {
	plugin := postgresPlugin(t)
	_, err := parseChecked([]byte("backend \"p\" {\n  plugin = \""+plugin+"\"\n}\n"), "bad.hcl")
	require.ErrorContains(t, err, `bad.hcl:2:12: Capability not granted; plugin imports capability "postgres", which this backend does not grant (add a postgres block)`)

	f, err := config.Parse([]byte("backend \"p\" {\n  plugin = \""+plugin+"\"\n  postgres {\n    url_env = \"CONFIG_TEST_UNSET\"\n    schema = \"a\"\n  }\n}\n"), "good.hcl")
	require.NoError(t, err)
	require.NoError(t, f.Check(t.Context(), config.Offline(), config.WithPluginCache(&pluginCache)))
}

var pgStates struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// postgresPlugin names a plugin that imports the postgres capability:
// builtin:postgres once it is built in, else sdk/example/pgstates, built
// once per test binary.
func postgresPlugin(t *testing.T) string {
	t.Helper()
	if _, err := host.BuiltinWASM("postgres"); err == nil {
		return "builtin:postgres"
	}
	if testing.Short() {
		t.Skip("builds a Go plugin; skipped with -short")
	}
	pgStates.once.Do(func() {
		dir, err := os.MkdirTemp("", "config-pgstates-")
		if err != nil {
			pgStates.err = err
			return
		}
		pgStates.path = filepath.Join(dir, "pgstates.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", pgStates.path, "./sdk/example/pgstates")
		cmd.Dir = filepath.Join("..", "..", "..", "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		pgStates.out, pgStates.err = cmd.CombinedOutput()
	})
	require.NoError(t, pgStates.err, "%s", pgStates.out)
	return pgStates.path
}

// The shipped example decodes as its comments say; with builtin:postgres
// built in, it checks offline too (without its URL), as CI checks it.
func TestPostgresExample(t *testing.T) {
	f, err := config.Load(filepath.Join(examples, "postgres.hcl"))
	require.NoError(t, err)
	b, ok := f.Backend("pg")
	require.True(t, ok)
	require.Equal(t, "builtin:postgres", b.Config.Plugin)
	require.Equal(t, &host.PostgresConfig{Schema: "agents", MaxConns: 8, StatementTimeout: 5 * time.Second}, b.Config.Postgres)
	require.Equal(t, 100000, b.Config.Events.Retention)
	require.Equal(t, "604800", b.Config.Options["metric_ttl_seconds"])
	if _, err := host.BuiltinWASM("postgres"); err != nil {
		return // builtin:postgres is not in this build: nothing to check it against
	}
	t.Setenv("STORAGE_HOST_POSTGRES_URL", "")
	require.NoError(t, f.Check(t.Context(), config.Offline(), config.WithPluginCache(&pluginCache)))
}

// TestReadmePostgresExample keeps README.md's PostgreSQL quick start
// valid.
func TestReadmePostgresExample(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "cat > pg.hcl <<'HCL'\n")
	require.True(t, ok, "README.md has the PostgreSQL quick start")
	example, _, ok := strings.Cut(rest, "HCL\n")
	require.True(t, ok)
	f, err := config.Parse([]byte(example), "pg.hcl")
	require.NoError(t, err)
	b, _ := f.Backend("pg")
	require.Equal(t, &host.PostgresConfig{Schema: "agents"}, b.Config.Postgres)
}
