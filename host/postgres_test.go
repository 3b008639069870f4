package host_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
)

var pgStates struct {
	once sync.Once
	wasm []byte
	err  error
}

// pgStatesPlugin builds sdk/example/pgstates once per test binary.
func pgStatesPlugin(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go plugin; skipped with -short")
	}
	pgStates.once.Do(func() {
		dir, err := os.MkdirTemp("", "storage-host-pgstates-")
		if err != nil {
			pgStates.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "pgstates.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./sdk/example/pgstates")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			pgStates.err = fmt.Errorf("build pgstates: %w\n%s", err, b)
			return
		}
		pgStates.wasm, pgStates.err = os.ReadFile(out)
	})
	require.NoError(t, pgStates.err)
	return pgStates.wasm
}

func openPG(t *testing.T, wasm []byte, pg *host.PostgresConfig) (*host.Store, error) {
	t.Helper()
	st, err := host.Open(context.Background(), host.Config{Name: "pg", WASM: wasm, Postgres: pg}, host.WithCompilationCache(pgCache))
	if err == nil {
		t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	}
	return st, err
}

var pgCache = filepath.Join(os.TempDir(), "storage-host-pgstates-cache")

// A plugin on the SDK's Postgres client round-trips agent states through
// a real host and a real PostgreSQL, and what it wrote outlives the store.
func TestPostgresPluginRoundTrip(t *testing.T) {
	wasm := pgStatesPlugin(t)
	cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
	ctx := context.Background()
	st, err := openPG(t, wasm, cfg)
	require.NoError(t, err)
	a, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte("one")})
	require.NoError(t, err)
	require.EqualValues(t, 1, a.Version)
	a, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte("two")})
	require.NoError(t, err)
	require.EqualValues(t, 2, a.Version)
	require.NoError(t, st.Close(ctx))

	again, err := openPG(t, wasm, cfg)
	require.NoError(t, err)
	got, err := again.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	require.Equal(t, "two", string(got.State))
	require.EqualValues(t, 2, got.Version)
	_, err = again.GetAgentState(ctx, "nobody")
	require.ErrorIs(t, err, host.ErrNotFound)
	require.NoError(t, again.Ready(ctx))

	// A response longer than the SDK's 16 KiB buffer comes through the
	// capability's result function.
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i)
	}
	_, err = again.PutAgentState(ctx, host.AgentState{AgentID: "big", State: big})
	require.NoError(t, err)
	got, err = again.GetAgentState(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, big, got.State)
}

// A backend's role gets the default bound on its temporary files when
// the admin may set it (a superuser), and the host says so in its log
// when nobody bounded them.
func TestPostgresTempFilesBoundedByDefault(t *testing.T) {
	wasm := pgStatesPlugin(t)
	ctx := context.Background()
	url := pgtest.URL(t)
	if _, super := pgtest.RoleSetting(t, url, "", "temp_file_limit"); !super {
		t.Skip("the test server's admin is not a superuser")
	}
	open := func(pg *host.PostgresConfig) string {
		var log strings.Builder
		st, err := host.Open(ctx, host.Config{Name: "pg", WASM: wasm, Postgres: pg}, host.WithCompilationCache(pgCache),
			host.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Mutex: &sync.Mutex{}})))
		require.NoError(t, err)
		require.NoError(t, st.Close(ctx))
		return log.String()
	}
	roleSetting := func(schema string) string {
		s, _ := pgtest.RoleSetting(t, url, host.PostgresRole(schema), "temp_file_limit")
		return s
	}

	bounded := &host.PostgresConfig{URL: url, Schema: pgtest.Schema(t, "storagehost_")}
	assert.NotContains(t, open(bounded), "temp_file_limit")
	assert.Equal(t, "temp_file_limit=1048576", roleSetting(bounded.Schema))

	unbounded := &host.PostgresConfig{URL: url, Schema: pgtest.Schema(t, "storagehost_"), TempFileLimitMB: -1}
	assert.Contains(t, open(unbounded), "its temp_file_limit is unbounded")
	assert.Empty(t, roleSetting(unbounded.Schema))
}

func TestPostgresPluginNotGranted(t *testing.T) {
	_, err := openPG(t, pgStatesPlugin(t), nil)
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.Contains(t, err.Error(), "postgres")
}

// Hosts opening one backend at once migrate its schema once.
func TestPostgresConcurrentOpensMigrateOnce(t *testing.T) {
	wasm := pgStatesPlugin(t)
	cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			st, err := host.Open(context.Background(), host.Config{Name: "pg", WASM: wasm, Postgres: cfg}, host.WithCompilationCache(pgCache))
			if err == nil {
				err = st.Close(context.Background())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	conn, err := pgx.Connect(context.Background(), cfg.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT version FROM "+pgx.Identifier{cfg.Schema, "storagehost_migrations"}.Sanitize()+" ORDER BY version")
	require.NoError(t, err)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, versions)

	// A schema a newer plugin migrated further refuses this one.
	_, err = conn.Exec(context.Background(), "INSERT INTO "+pgx.Identifier{cfg.Schema, "storagehost_migrations"}.Sanitize()+" (version) VALUES (3)")
	require.NoError(t, err)
	_, err = openPG(t, wasm, cfg)
	require.ErrorIs(t, err, host.ErrSchemaNewer)
	require.ErrorIs(t, err, host.ErrIncompatible)
}

// Any role may take any advisory lock, and the keys of the host's are
// known (they name the schema): a session holding the locks of another
// backend's provisioning, migrations and event table, as another
// backend's plugin can, delays that backend's opening by at most
// pgbridge.LockWait each, and does not stop it.
func TestPostgresOpensPastHeldAdvisoryLocks(t *testing.T) {
	// With the default call timeout the lock's wait ends at LockWait; with
	// a call timeout of a second, the statement timeout ends it first.
	for _, timeout := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprintf("call timeout %v", timeout), func(t *testing.T) {
			ctx := context.Background()
			cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
			squatter, err := pgx.Connect(ctx, pgtest.URL(t))
			require.NoError(t, err)
			defer squatter.Close(ctx)
			for _, what := range []string{"provision", "migrate", "events"} {
				_, err := squatter.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", "storage-host "+what+" "+cfg.Schema)
				require.NoError(t, err)
			}
			start := time.Now()
			st, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg,
				Limits: host.Limits{CallTimeout: timeout}}, host.WithCompilationCache(pgCache))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
			t.Logf("opened in %v past three held locks", time.Since(start).Round(time.Millisecond))
			a, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"n":1}`)})
			require.NoError(t, err)
			got, err := st.GetAgentState(ctx, "a1")
			require.NoError(t, err)
			require.Equal(t, a.Version, got.Version)
		})
	}
}

// A table locked in PostgreSQL stalls every write to it: the callers, who
// set no deadline, are all answered within about two call timeouts — the
// queue behind busy instances waits no longer than one call may run —
// not one timeout per batch queued ahead of them.
func TestPostgresStallAnswersWithinTheCallTimeout(t *testing.T) {
	ctx := context.Background()
	cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
	const timeout = time.Second
	st, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg,
		Limits: host.Limits{CallTimeout: timeout}}, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "warm", State: []byte(`{}`)})
	require.NoError(t, err)

	locker, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{cfg.Schema, "agent_states"}.Sanitize()+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	const callers = 24
	took := make(chan time.Duration, callers)
	for i := range callers {
		go func() {
			start := time.Now()
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("a%d", i), State: []byte(`{}`)})
			if err == nil {
				t.Errorf("a write to a locked table succeeded")
			}
			took <- time.Since(start)
		}()
	}
	var longest time.Duration
	for range callers {
		longest = max(longest, <-took)
	}
	t.Logf("%d writes to a locked table answered within %v", callers, longest)
	require.Less(t, longest, 3*timeout+time.Second)
}

// A backend whose schema is dropped under it (or whose database is
// dropped and created again) is not ready, saying why, and its writes are
// refused as not applied: an outside drill saw every PUT answer 504
// outcome_unknown "internal error" (the statement failed 42P01, so
// nothing was applied) and /readyz answer 204 the whole time.
func TestPostgresSchemaDroppedUnderTheBackend(t *testing.T) {
	ctx := context.Background()
	cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
	st, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg, DisableEvents: true}, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, st.Ready(ctx))

	admin, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{cfg.Schema}.Sanitize()+" CASCADE")
	require.NoError(t, err)

	err = st.Ready(ctx)
	require.Error(t, err)
	require.ErrorContains(t, err, "is gone")
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a2", State: []byte(`{}`)})
	require.ErrorIs(t, err, host.ErrUnavailable, "nothing was applied")
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown)
	require.ErrorContains(t, err, "tables are missing")
}

// A backend whose role lost a privilege on its own tables (an operator's
// REVOKE) is not ready, naming it, until it is granted again: an outside
// drill saw 7 037 writes refused 503 while /readyz answered 204.
func TestPostgresPrivilegeRevokedMakesTheBackendUnready(t *testing.T) {
	ctx := context.Background()
	cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
	st, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg}, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Ready(ctx))

	admin, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer admin.Close(ctx)
	role := pgx.Identifier{host.PostgresRole(cfg.Schema)}.Sanitize()
	for _, c := range []struct{ revoke, grant, named string }{
		{"REVOKE UPDATE ON %s.agent_states FROM %s", "GRANT UPDATE ON %s.agent_states TO %s", "UPDATE on table agent_states"},
		{"REVOKE INSERT ON %s.storagehost_events FROM %s", "GRANT INSERT ON %s.storagehost_events TO %s", "INSERT on table storagehost_events"},
		{"REVOKE USAGE ON SCHEMA %s FROM %s", "GRANT USAGE ON SCHEMA %s TO %s", "USAGE on the schema"},
	} {
		schema := pgx.Identifier{cfg.Schema}.Sanitize()
		_, err = admin.Exec(ctx, fmt.Sprintf(c.revoke, schema, role))
		require.NoError(t, err)
		err = st.Ready(ctx)
		require.ErrorContains(t, err, "lacks "+c.named, c.revoke)
		_, err = admin.Exec(ctx, fmt.Sprintf(c.grant, schema, role))
		require.NoError(t, err)
		require.NoError(t, st.Ready(ctx), c.grant)
	}

	// What the role lacked when the backend opened (its plugin's
	// migrations may revoke its own privileges) is not a reason to be
	// unready.
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	// A table of the operator's in the schema, an identity column's
	// sequence (an INSERT needs no privilege on it) are not the backend's
	// to need.
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.operators (n int); CREATE TABLE %[1]s.ids (id int GENERATED ALWAYS AS IDENTITY, n int); ALTER TABLE %[1]s.ids OWNER TO %s; REVOKE USAGE, UPDATE ON SEQUENCE %[1]s.ids_id_seq FROM %[2]s", schema, role))
	require.NoError(t, err)
	require.NoError(t, st.Ready(ctx))
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.audit (n int); ALTER TABLE %[1]s.audit OWNER TO %s; REVOKE UPDATE, DELETE ON %[1]s.audit FROM %[2]s", schema, role))
	require.NoError(t, err)
	require.ErrorContains(t, st.Ready(ctx), "lacks DELETE on table audit", "lost since the backend opened")
	again, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg}, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	defer again.Close(ctx)
	require.NoError(t, again.Ready(ctx), "lacked when the backend opened")
}

// A write PostgreSQL's own rules refuse (here a trigger an operator added
// to the backend's table, raising an exception for one agent) did not
// take effect: the caller is told so, UNAVAILABLE with PostgreSQL's
// message, not that its outcome is unknown; a batch's other items are
// written.
func TestPostgresRefusedWriteIsNotOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg := &host.PostgresConfig{URL: url, Schema: pgtest.Schema(t, "storagehost_")}
	st, err := host.Open(ctx, host.Config{Name: "pg", Plugin: "builtin:postgres", Postgres: cfg}, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{cfg.Schema, "agent_states"}.Sanitize()
	fn := pgx.Identifier{cfg.Schema, "refuse_bad"}.Sanitize()
	_, err = admin.Exec(ctx, `CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.agent_id = 'bad' THEN RAISE EXCEPTION 'agent bad is refused here'; END IF; RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `CREATE TRIGGER refuse_bad BEFORE INSERT OR UPDATE ON `+table+` FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
	require.NoError(t, err)

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "bad", State: []byte(`{}`)})
	require.ErrorIs(t, err, host.ErrUnavailable)
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown)
	require.ErrorContains(t, err, "agent bad is refused here")
	_, err = st.GetAgentState(ctx, "bad")
	require.ErrorIs(t, err, host.ErrNotFound, "nothing of it was written")

	rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "good", State: []byte(`{}`)}, {AgentID: "bad", State: []byte(`{}`)}})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.ErrorIs(t, rs[1].Err, host.ErrUnavailable)
	require.NotErrorIs(t, rs[1].Err, host.ErrOutcomeUnknown)
	_, err = st.GetAgentState(ctx, "good")
	require.NoError(t, err, "the batch's other item was written")
}
