package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
)

var pgPlugin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// postgresPlugin names the postgres plugin the daemon's tests run:
// builtin:postgres once it is built in, else sdk/example/pgstates (agent
// states only), built once into a directory of the test binary's own.
// The second result says whether it is the built-in one.
func postgresPlugin(t *testing.T) (plugin string, builtin bool) {
	t.Helper()
	if _, err := host.BuiltinWASM("postgres"); err == nil {
		return "builtin:postgres", true
	}
	pgPlugin.once.Do(func() {
		dir, err := os.MkdirTemp("", "storage-host-e2e-pgstates-")
		if err != nil {
			pgPlugin.err = err
			return
		}
		pgPlugin.path = filepath.Join(dir, "pgstates.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", pgPlugin.path, "./sdk/example/pgstates")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		pgPlugin.out, pgPlugin.err = cmd.CombinedOutput()
	})
	require.NoError(t, pgPlugin.err, "building sdk/example/pgstates:\n%s", pgPlugin.out)
	return pgPlugin.path, false
}

// leftSchemas returns the schemas and roles on the PostgreSQL at url
// whose names start as plugin test's do.
func leftSchemas(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'plugin\_test\_%'
		UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'storagehost\_plugin\_test\_%'`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// TestPluginTestPostgres: `plugin test -postgres URL` runs the suite on a
// postgres plugin, each store on a schema and a role of its own, and
// leaves none of them behind. (The pgstates example keeps agent states
// only, with a default expiry: the run is limited to those rules.)
func TestPluginTestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	plugin, builtin := postgresPlugin(t)
	before := leftSchemas(t, url)
	args := []string{"plugin", "test", "-postgres", url, plugin}
	if !builtin {
		args = []string{"plugin", "test", "-postgres", url, "-run", "AgentStates|Protocol|Closed", plugin}
	}
	stdout, stderr, code := runCommand(t, nil, args...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `(?m)^ok: [1-9][0-9]* rules passed, 0 failed`, stdout)
	require.ElementsMatch(t, before, leftSchemas(t, url), "a schema or role of the suite's stores is left")

	// Without the capability granted, the plugin does not load, and says why.
	_, stderr, code = runCommand(t, nil, "plugin", "test", plugin)
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "postgres")
}

// TestDurabilityPostgresKilled: writers put agent states and metrics
// through the daemon's HTTP API to a PostgreSQL backend; the daemon is
// killed (SIGKILL) under them and started again, twice; then a daemon
// with an empty data directory, which has nothing but PostgreSQL to read
// from, reads every acknowledged write back with its final value. (With
// the pgstates example, which keeps agent states only, metric writes are
// refused and none is acknowledged: the agent states are checked.)
func TestDurabilityPostgresKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: three daemons under load")
	}
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, host.PostgresRole(""))
	plugin, builtin := postgresPlugin(t)
	cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
	replaceFile(t, cfg, fmt.Appendf(nil, `backend "pg" {
  plugin    = %q
  instances = 16
  limits {
    call_timeout = "10s"
  }
  postgres {
    url_env = "DUR_POSTGRES_URL"
    schema  = %q
  }
}
`, plugin, schema))
	env := []string{"DUR_POSTGRES_URL=" + url}
	start := func() *daemon { return startDaemon(t, env, "-config", cfg, "-watch=false") }

	d := start()
	l := startDurLoad(t, d.url)
	for round := range 2 {
		l.waitAcks(300, fmt.Sprintf("before kill %d", round+1))
		require.NoError(t, d.cmd.Process.Kill())
		d.wait()
		d = start()
		l.url.Store(&d.url)
	}
	l.waitAcks(300, "after the last restart")
	l.halt()
	require.NoError(t, d.cmd.Process.Kill())
	d.wait()

	v := start() // a data directory of its own: nothing but PostgreSQL
	checked, lost := l.verify(v.url)
	t.Logf("%s: %d writes acknowledged, %d of unknown outcome (cut by a kill, or refused); %d keys checked through a fresh daemon: %d lost",
		plugin, l.acks.Load(), l.unknown.Load(), checked, lost)
	require.Zero(t, lost, "acknowledged writes lost")
	if builtin {
		metrics := 0
		for k := range l.acked() {
			if k.sample >= 0 {
				metrics++
			}
		}
		require.Positive(t, metrics, "builtin:postgres acknowledged no metric write")
	}
}

// TestPostgresEventsAcrossDaemons: two daemons on one PostgreSQL schema.
// A change made through one reaches the event stream of the other; a
// stream of the first, closed and reopened from its Last-Event-ID, gets
// exactly what it missed, written through the second.
func TestPostgresEventsAcrossDaemons(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, host.PostgresRole(""))
	plugin, _ := postgresPlugin(t)
	cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
	replaceFile(t, cfg, fmt.Appendf(nil, "backend \"shared\" {\n  plugin = %q\n  postgres {\n    url = %q\n    schema = %q\n  }\n}\n", plugin, url, schema))
	a := startDaemon(t, nil, "-config", cfg, "-watch=false")
	b := startDaemon(t, nil, "-config", cfg, "-watch=false")

	onB := openEvents(t, b.url, "?kind=agent_states", "")
	version := putState(t, a.url, "pg-1")
	got := onB.change()
	require.Equal(t, change{ID: got.ID, Kind: "agent_states", Op: "put", Key: "pg-1", AgentID: "pg-1", Version: version, Time: got.Time}, got)
	require.Regexp(t, `^shared=\d+-\d+$`, got.ID)

	onA := openEvents(t, a.url, "?kind=agent_states", "")
	putState(t, b.url, "pg-2")
	last := onA.change()
	require.Equal(t, "pg-2", last.Key)
	require.NoError(t, onA.resp.Body.Close())
	v3 := putState(t, b.url, "pg-3")
	v4 := putState(t, a.url, "pg-4")
	again := openEvents(t, a.url, "?kind=agent_states", last.ID)
	// Events are appended after their writes are answered: writes made
	// through two daemons are in the log in the order their events
	// reached it, which need not be the order of the writes.
	missed := map[string]string{}
	for range 2 {
		c := again.change()
		missed[c.Key] = c.Version
	}
	require.Equal(t, map[string]string{"pg-3": v3, "pg-4": v4}, missed)
}

// TestBackupPostgres: backup and restore open a PostgreSQL backend
// themselves, as they do a Redis one (its records are in PostgreSQL,
// not in a daemon): a backup of it restores into another schema with
// the same records and versions.
func TestBackupPostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	plugin, builtin := postgresPlugin(t)
	if !builtin {
		t.Skip("a backup lists records: the pgstates example serves no queries")
	}
	from, to := pgtest.Schema(t, host.PostgresRole("")), pgtest.Schema(t, host.PostgresRole(""))
	cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
	replaceFile(t, cfg, fmt.Appendf(nil, `backend "from" {
  plugin = %[1]q
  postgres {
    url_env = "BK_POSTGRES_URL"
    schema  = %[2]q
  }
}
backend "to" {
  plugin = %[1]q
  postgres {
    url_env = "BK_POSTGRES_URL"
    schema  = %[3]q
  }
}
routes {
  metrics      = "from"
  alerts       = "from"
  agent_states = "from"
}
`, plugin, from, to))
	env := []string{"BK_POSTGRES_URL=" + url}
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Plugin: plugin, Postgres: &host.PostgresConfig{URL: url, Schema: from}})
	require.NoError(t, err)
	var want []host.AgentState
	for i := range 20 {
		s, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("a%02d", i), State: []byte(`{"i":` + fmt.Sprint(i) + `}`)})
		require.NoError(t, err)
		want = append(want, s)
	}
	require.NoError(t, st.Close(ctx))

	file := filepath.Join(t.TempDir(), "from.shbk")
	stdout, stderr, code := runCommand(t, env, "backup", "-config", cfg, "-backend", "from", "-o", file)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	require.Contains(t, stdout, "20 agent states")
	stdout, stderr, code = runCommand(t, env, "restore", "-config", cfg, "-backend", "to", file)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)

	got, err := host.Open(ctx, host.Config{Plugin: plugin, Postgres: &host.PostgresConfig{URL: url, Schema: to}})
	require.NoError(t, err)
	defer got.Close(ctx)
	for _, w := range want {
		g, err := got.GetAgentState(ctx, w.AgentID)
		require.NoError(t, err)
		require.Equal(t, w.Version, g.Version, w.AgentID)
		require.Equal(t, string(w.State), string(g.State), w.AgentID)
	}
}
