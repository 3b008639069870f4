package host_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
	"github.com/storage-host/storage-host/host/storetest"
)

// openSharing opens a built-in backend with cfg that sends every single
// record operation through the shared-batch path.
func openSharing(t *testing.T, cfg host.Config) *host.Store {
	t.Helper()
	st, err := host.Open(t.Context(), cfg, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	host.ShareEveryCall(st)
	return st
}

// redisConfig is the built-in Redis backend on the test Redis, under a
// key prefix of the test's own.
func redisConfig(t *testing.T) host.Config {
	addr := redistest.Addr(t)
	return host.Config{Plugin: "builtin:redis", Redis: &redisbridge.Config{
		Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true,
	}}
}

// postgresConfig is the built-in PostgreSQL backend in a schema of the
// test's own.
func postgresConfig(t *testing.T) host.Config {
	return host.Config{Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{
		URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_"),
	}}
}

// holdSlots takes every shared slot of st; releaseAt(n) waits until n
// single operations are queued, then frees the slots, so that those travel
// in shared batches however the callers happen to be scheduled (callers
// that only compute, with the CPUs busy elsewhere, may otherwise never
// overlap).
func holdSlots(t *testing.T, st *host.Store) (releaseAt func(n int)) {
	release := host.HoldSharedSlots(st)
	return func(n int) {
		redistest.WaitFor(t, 30*time.Second, time.Millisecond, func() bool { return host.SharedQueued(st) >= n },
			"fewer than %d calls queued", n)
		release()
	}
}

// onMemoryAndRedis runs f on the built-in memory and Redis backends, each
// of two instances.
func onMemoryAndRedis(t *testing.T, f func(t *testing.T, st *host.Store)) {
	onMemoryAndRedisWith(t, host.Limits{}, f)
}

// onMemoryAndRedisWith is onMemoryAndRedis with limits (zero fields: the
// defaults).
func onMemoryAndRedisWith(t *testing.T, limits host.Limits, f func(t *testing.T, st *host.Store)) {
	backends := map[string]func(t *testing.T) host.Config{
		"memory": func(*testing.T) host.Config { return host.Config{} },
		"redis":  redisConfig,
	}
	for name, config := range backends {
		t.Run(name, func(t *testing.T) {
			if name != "memory" && testing.Short() {
				t.Skip("runs against a real Redis; skipped with -short")
			}
			cfg := config(t)
			cfg.Instances = 2
			cfg.Limits = limits
			st, err := host.Open(t.Context(), cfg, host.WithCompilationCache(benchCache))
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close(context.Background()) })
			host.ReadThroughPlugin(st) // the built-in plugins' gets would not queue
			f(t, st)
		})
	}
}

// TestSharedBatchesKeepTheContract runs the conformance suite with every
// single record operation sent as a batch item, as calls that find every
// slot taken travel: each built-in backend must answer it exactly as it
// answers the operation alone.
func TestSharedBatchesKeepTheContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *host.Store { return openSharing(t, host.Config{}) })
	})
	if testing.Short() {
		return
	}
	t.Run("redis", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *host.Store { return openSharing(t, redisConfig(t)) })
	})
	t.Run("redis fallback=buffer", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *host.Store {
			cfg := redisConfig(t)
			cfg.Options = map[string]string{"fallback": "buffer"}
			return openSharing(t, cfg)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *host.Store { return openSharing(t, postgresConfig(t)) })
	})
}

// TestConcurrentCallsShareBatches has many callers put, read back and
// delete agent states of their own at once on a backend of two
// instances: calls that find both busy travel together, and every caller
// still gets its own answers.
func TestConcurrentCallsShareBatches(t *testing.T) {
	onMemoryAndRedis(t, func(t *testing.T, st *host.Store) {
		ctx := t.Context()
		const callers, rounds = 48, 40
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		releaseAt := holdSlots(t, st)
		for c := range callers {
			wg.Go(func() {
				id := fmt.Sprintf("agent-%d", c)
				var version uint64
				for r := range rounds {
					doc := fmt.Appendf(nil, `{"caller":%d,"round":%d}`, c, r)
					cond := host.IfVersion(version)
					if r == 0 {
						cond = host.IfAbsent()
					}
					put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: doc}, cond)
					if err != nil {
						errs <- fmt.Errorf("%s round %d: put: %w", id, r, err)
						return
					}
					got, err := st.GetAgentState(ctx, id)
					switch {
					case err != nil:
						errs <- fmt.Errorf("%s round %d: get: %w", id, r, err)
						return
					case got.AgentID != id || string(got.State) != string(doc) || got.Version != put.Version || put.Version <= version:
						errs <- fmt.Errorf("%s round %d: put answered version %d after %d, get answered %s %s version %d", id, r, put.Version, version, got.AgentID, got.State, got.Version)
						return
					}
					version = put.Version
				}
				if err := st.DeleteAgentState(ctx, id, host.IfVersion(version)); err != nil {
					errs <- fmt.Errorf("%s: delete: %w", id, err)
					return
				}
				if _, err := st.GetAgentState(ctx, id); !errors.Is(err, host.ErrNotFound) {
					errs <- fmt.Errorf("%s: get after delete: %v", id, err)
				}
			})
		}
		releaseAt(callers)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		s := st.Stats()
		t.Logf("%d shared batches carried %d calls of %d", s.SharedBatches, s.SharedCalls, callers*(2*rounds+2))
		require.Positive(t, s.SharedBatches, "no call found every slot taken")
		require.Greater(t, s.SharedCalls, s.SharedBatches, "no batch carried more than one call")
	})
}

// TestSharedCallGivenUpIsAnswered checks what a queued caller that gives
// up gets: its context's error, which for a write whose batch may have
// been sent also matches ErrOutcomeUnknown; the calls beside it are
// unharmed.
func TestSharedCallGivenUpIsAnswered(t *testing.T) {
	st, err := host.Open(t.Context(), host.Config{Instances: 1}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ctx := context.Background()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "quick", State: []byte(`{}`)})
	require.NoError(t, err, "the instance exists before the short calls")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Keep the one instance busy so that the calls below queue.
	for c := range 4 {
		wg.Go(func() {
			id := fmt.Sprintf("busy-%d", c)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{}`)}); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
			}
		})
	}
	unknown, failed := 0, 0
	for i := range 400 {
		short, cancel := context.WithTimeout(ctx, time.Duration(i%20)*time.Microsecond)
		_, err := st.PutAgentState(short, host.AgentState{AgentID: "quick", State: []byte(`{}`)})
		cancel()
		if err != nil {
			failed++
			require.ErrorIs(t, err, context.DeadlineExceeded, "a write given up must say why")
			if errors.Is(err, host.ErrOutcomeUnknown) {
				unknown++
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d of 400 short writes gave up, %d of them after their batch was taken", failed, unknown)
	_, err = st.GetAgentState(ctx, "quick")
	require.NoError(t, err)
}

// TestSharedLargeReadsAreAnswered has callers read records so large that a
// batch of them passes what one call may answer: each read still gets its
// record (a read its batch could not answer runs again alone), and a write
// queued with them is not failed by their answers (writes and reads go in
// batches of their own).
func TestSharedLargeReadsAreAnswered(t *testing.T) {
	// What is checked is the answers, not their time: the call timeout is
	// long enough for batches of megabytes on a machine running every
	// package's tests at once (the default 5 s was passed there).
	onMemoryAndRedisWith(t, host.Limits{CallTimeout: time.Minute}, func(t *testing.T, st *host.Store) {
		ctx := t.Context()
		const records, callers = 6, 12
		doc := make([]byte, 3<<20)
		for i := range doc {
			doc[i] = 'a' + byte(i%26)
		}
		for i := range records {
			copy(doc, fmt.Sprintf(`"%d"`, i))
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprint("big-", i), State: doc})
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		releaseAt := holdSlots(t, st)
		for c := range callers {
			wg.Go(func() {
				for r := range 4 {
					id := fmt.Sprint("big-", (c+r)%records)
					got, err := st.GetAgentState(ctx, id)
					if err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
					if len(got.State) != len(doc) || string(got.State[:3]) != fmt.Sprintf(`"%d"`, (c+r)%records) {
						t.Errorf("%s: got %d bytes starting %q", id, len(got.State), got.State[:3])
					}
				}
			})
		}
		// A write queued with them is answered as alone: once, and
		// not failed by the reads' answers.
		wg.Go(func() {
			if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: "writer", State: []byte(`{}`)}, host.IfAbsent()); err != nil {
				t.Errorf("a write beside large reads: %v", err)
			}
		})
		releaseAt(callers + 1)
		wg.Wait()
		s := st.Stats()
		t.Logf("%d shared batches carried %d calls", s.SharedBatches, s.SharedCalls)
	})
}

// TestSharedHostileAnswersRefused has callers share batches with a plugin
// that answers chosen requests with another record: each wrong answer is
// refused to its own caller, and the honest callers beside it in the same
// batches get their own records.
func TestSharedHostileAnswersRefused(t *testing.T) {
	st, _ := openWrongkey(t, host.Config{Instances: 1})
	ctx := context.Background()
	for c := range 8 {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprint("honest-", c), State: fmt.Appendf(nil, "%d", c)})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	releaseAt := holdSlots(t, st)
	for c := range 16 {
		wg.Go(func() {
			for range 50 {
				if c%2 == 1 {
					_, err := st.GetAgentState(ctx, "wrong")
					if !errors.Is(err, host.ErrInternal) {
						t.Errorf("a wrong answer reached its caller: %v", err)
						return
					}
					continue
				}
				id := fmt.Sprint("honest-", c/2)
				got, err := st.GetAgentState(ctx, id)
				if err != nil || got.AgentID != id || string(got.State) != fmt.Sprint(c/2) {
					t.Errorf("%s: got %q %q, %v", id, got.AgentID, got.State, err)
					return
				}
			}
		})
	}
	releaseAt(16)
	wg.Wait()
	s := st.Stats()
	t.Logf("%d shared batches carried %d calls", s.SharedBatches, s.SharedCalls)
	require.Greater(t, s.SharedCalls, s.SharedBatches, "no batch carried more than one call")
}

// TestSharedPostgresWritesTakeRowsInOneOrder has many callers write a few
// hot agent states at once on PostgreSQL, whose plugin sends a batch as
// one transaction: two shared batches running at once must not each wait
// for a row the other holds (PostgreSQL would break the deadlock only
// after a second, every caller of both batches waiting). The test runs in
// a database of its own, whose deadlock count it reads.
func TestSharedPostgresWritesTakeRowsInOneOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	admin := pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	db, schema := "storagehost_order_"+hex.EncodeToString(suffix[:]), "t_"+hex.EncodeToString(suffix[:])
	_, err = conn.Exec(ctx, "CREATE DATABASE "+db)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		require.NoError(t, err)
		_, err = conn.Exec(context.Background(), "DROP ROLE IF EXISTS storagehost_"+schema)
		require.NoError(t, err)
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + db
	st, err := host.Open(ctx, host.Config{
		Plugin:   "builtin:postgres",
		Postgres: &host.PostgresConfig{URL: u.String(), Schema: schema},
	}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)

	var wg sync.WaitGroup
	releaseAt := holdSlots(t, st)
	for c := range 64 {
		wg.Go(func() {
			for i := range 60 {
				id := fmt.Sprint("hot-", (c*7+i)%6)
				if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{}`)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	releaseAt(64)
	wg.Wait()
	shared := st.Stats()
	require.NoError(t, st.Close(ctx))
	require.Greater(t, shared.SharedCalls, shared.SharedBatches, "no batch carried more than one call")
	// A session reports its deadlocks when it ends at the latest.
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool {
		var n int
		return conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n) == nil && n == 0
	}, "sessions of %s still open", db)
	var deadlocks int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = $1", db).Scan(&deadlocks))
	require.Zero(t, deadlocks, "shared batches deadlocked")
}

// TestSharedBatchRefusedAsAWhole loads the hand-written agentstate plugin
// patched to advertise batches it then refuses as a whole (UNSUPPORTED, as
// it answers any op it does not serve): concurrent callers' operations that
// met such a refusal ran nowhere, and each runs alone instead.
func TestSharedBatchRefusedAsAWhole(t *testing.T) {
	wasm, err := os.ReadFile(foreignPath("agentstate"))
	require.NoError(t, err)
	// The metadata's features byte, after the version string: agent
	// states (4) becomes agent states and batch (4 | 16).
	before, after := []byte("\x051.0.0\x04\x03\x03log"), []byte("\x051.0.0\x14\x03\x03log")
	require.Equal(t, 1, bytes.Count(wasm, before), "agentstate.wasm's metadata moved")
	wasm = bytes.Replace(wasm, before, after, 1)
	st, err := host.Open(t.Context(), host.Config{WASM: wasm, Instances: 1}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.True(t, st.Metadata().Features.Has(abi.FeatureBatch))
	_, err = st.PutAgentStates(t.Context(), []host.AgentState{{AgentID: "x", State: []byte(`{}`)}})
	require.ErrorIs(t, err, host.ErrUnsupported, "the patched plugin refuses batches")

	ctx := t.Context()
	var wg sync.WaitGroup
	releaseAt := holdSlots(t, st)
	for c := range 32 {
		wg.Go(func() {
			id := fmt.Sprint("agent-", c)
			for r := range 200 {
				doc := fmt.Appendf(nil, `{"round":%d}`, r)
				if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: doc}); err != nil {
					t.Errorf("%s: put: %v", id, err)
					return
				}
				got, err := st.GetAgentState(ctx, id)
				if err != nil || string(got.State) != string(doc) {
					t.Errorf("%s: get: %s, %v", id, got.State, err)
					return
				}
			}
		})
	}
	releaseAt(32)
	wg.Wait()
	s := st.Stats()
	t.Logf("%d shared batches refused, carrying %d calls", s.SharedBatches, s.SharedCalls)
	require.Positive(t, s.SharedBatches, "no call found the slot taken")
}

// TestSharedBatchBudgets: a shared batch of n calls may make n times the
// host calls Limits allows one call. The memory backend gets the fewest
// host calls per call with which a put and a get succeed alone; many
// callers' puts and gets then travel in batches and must succeed too.
func TestSharedBatchBudgets(t *testing.T) {
	ctx := t.Context()
	open := func(maxHostCalls uint32) *host.Store {
		st, err := host.Open(ctx, host.Config{Instances: 2, Limits: host.Limits{MaxHostCalls: maxHostCalls}}, host.WithCompilationCache(benchCache))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		host.ReadThroughPlugin(st) // its gets would not queue, nor make host calls
		return st
	}
	var st *host.Store
	var least uint32
	for n := uint32(1); n <= 64 && st == nil; n++ {
		s := open(n)
		if _, err := s.PutAgentState(ctx, host.AgentState{AgentID: "probe", State: []byte(`{}`)}); err != nil {
			continue
		}
		if _, err := s.GetAgentState(ctx, "probe"); err != nil {
			continue
		}
		st, least = s, n
	}
	require.NotNil(t, st, "no budget up to 64 host calls serves a put and a get")
	t.Logf("a put and a get each make at most %d host calls", least)

	var wg sync.WaitGroup
	const callers = 16
	releaseAt := holdSlots(t, st)
	for c := range callers {
		wg.Go(func() {
			id := fmt.Sprint("agent-", c)
			if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{}`)}); err != nil {
				t.Errorf("%s: put: %v", id, err)
			}
		})
	}
	releaseAt(callers)
	wg.Wait()
	releaseAt = holdSlots(t, st)
	for c := range callers {
		wg.Go(func() {
			id := fmt.Sprint("agent-", c)
			if _, err := st.GetAgentState(ctx, id); err != nil {
				t.Errorf("%s: get: %v", id, err)
			}
		})
	}
	releaseAt(callers)
	wg.Wait()
	s := st.Stats()
	require.Greater(t, s.SharedCalls, s.SharedBatches, "no batch carried more than one call")
	require.Zero(t, s.Traps, "a shared batch ran out of host calls")
}
