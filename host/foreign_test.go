package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/storetest"
)

// The foreign tests load plugins written by hand in WebAssembly text
// (testdata/plugins/*.wat): they prove the ABI can be implemented without
// the Go SDK, and give the host modules that misbehave on purpose.

const foreignDir = "../testdata/plugins"

func foreignPath(name string) string { return filepath.Join(foreignDir, name+".wasm") }

// TestForeignWASMMatchesSource rebuilds every .wat fixture, in
// testdata/plugins and in its hostile/ corpus, and requires the bytes to be
// those committed, so a fixture never drifts from its source.
func TestForeignWASMMatchesSource(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		msg := "wat2wasm not found: apt install wabt to check testdata/plugins/*.wasm against their sources"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, dir := range []string{foreignDir, hostileDir} {
		sources, err := filepath.Glob(filepath.Join(dir, "*.wat"))
		require.NoError(t, err)
		require.NotEmpty(t, sources, dir)
		committed, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
		require.NoError(t, err)
		require.Len(t, committed, len(sources), "every .wasm in %s needs its .wat source", dir)
		for _, src := range sources {
			name := strings.TrimSuffix(filepath.Base(src), ".wat")
			wasm := strings.TrimSuffix(src, ".wat") + ".wasm"
			rel, err := filepath.Rel(foreignDir, wasm)
			require.NoError(t, err)
			rel = filepath.ToSlash(rel) // "trap.wasm", "hostile/loop.wasm"
			t.Run(strings.TrimSuffix(rel, ".wasm"), func(t *testing.T) {
				text, err := os.ReadFile(src)
				require.NoError(t, err)
				first, _, _ := strings.Cut(string(text), "\n")
				require.Contains(t, first, ";; Build: wat2wasm "+name+".wat -o "+name+".wasm",
					"the first line of %s.wat gives its build command, run in its directory", name)

				out := filepath.Join(t.TempDir(), name+".wasm")
				msg, err := exec.Command(wat2wasm, src, "-o", out).CombinedOutput()
				require.NoError(t, err, "%s", msg)
				built, err := os.ReadFile(out)
				require.NoError(t, err)
				want, err := os.ReadFile(wasm)
				require.NoError(t, err)
				require.True(t, bytes.Equal(built, want),
					"testdata/plugins/%s is stale: run testdata/plugins/build.sh and commit it", rel)
			})
		}
	}
}

// foreignClock is a settable clock for host.WithClock.
type foreignClock struct{ ns atomic.Int64 }

func newForeignClock() *foreignClock {
	c := &foreignClock{}
	c.ns.Store(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *foreignClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *foreignClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// foreignLog collects the host's log output; safe for concurrent writers.
type foreignLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *foreignLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *foreignLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *foreignLog) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Trace, Output: l})
}

func openForeign(t *testing.T, name string, cfg host.Config, opts ...host.Option) *host.Store {
	t.Helper()
	ctx := context.Background()
	cfg.Plugin = foreignPath(name)
	st, err := host.Open(ctx, cfg, append([]host.Option{host.WithCompilationCache("")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(ctx)) })
	return st
}

// TestForeignAgentState runs the hand-written agentstate plugin through the
// host: metadata, put/get/replace/delete, large documents (which take the
// kv result path and grow guest memory), ID validation, and refusal of
// everything it does not advertise.
func TestForeignAgentState(t *testing.T) {
	ctx := context.Background()
	clock := newForeignClock()
	var log foreignLog
	st := openForeign(t, "agentstate", host.Config{Instances: 2},
		host.WithClock(clock.Now), host.WithLogger(log.logger()))

	t.Run("metadata", func(t *testing.T) {
		md := st.Metadata()
		require.Equal(t, abi.Version{Major: 1, Minor: 0}, md.ABI, "a WAT plugin written for ABI 1.0 loads on a newer 1.x host")
		require.Equal(t, "agentstate", md.Name)
		require.Equal(t, "1.0.0", md.Version)
		require.Equal(t, abi.FeatureAgentStates, md.Features)
		require.Equal(t, []string{"agent_states"}, md.Features.Names())
		require.Equal(t, []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV}, md.Capabilities)
		require.Equal(t, "agentstate", st.Name())
		require.Contains(t, log.String(), "agentstate configured", "configure logs through storagehost_log")
	})

	require.NoError(t, st.Ping(ctx))

	t.Run("put get replace delete", func(t *testing.T) {
		put, err := st.PutAgentState(ctx, host.AgentState{
			AgentID: "a1", State: []byte(`{"step":1}`),
			// Set by the backend: whatever the caller sends is ignored.
			Version: 99, UpdatedAt: time.Unix(5, 0), ExpiresAt: time.Unix(6, 0),
		})
		require.NoError(t, err)
		require.Equal(t, "a1", put.AgentID)
		require.Equal(t, []byte(`{"step":1}`), put.State)
		require.NotZero(t, put.Version)
		require.NotEqual(t, uint64(99), put.Version)
		require.Equal(t, clock.Now(), put.UpdatedAt)
		require.True(t, put.ExpiresAt.IsZero())

		got, err := st.GetAgentState(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, put, got)

		clock.Advance(time.Minute)
		replaced, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"step":2}`)})
		require.NoError(t, err)
		require.Greater(t, replaced.Version, put.Version)
		require.Equal(t, clock.Now(), replaced.UpdatedAt)
		got, err = st.GetAgentState(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, replaced, got)

		other, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a2"})
		require.NoError(t, err)
		require.Nil(t, other.State, "an empty document stays empty")

		require.NoError(t, st.DeleteAgentState(ctx, "a1"))
		_, err = st.GetAgentState(ctx, "a1")
		require.ErrorIs(t, err, host.ErrNotFound)
		require.Contains(t, err.Error(), `agent state "a1": not found`)
		err = st.DeleteAgentState(ctx, "a1")
		require.ErrorIs(t, err, host.ErrNotFound)

		got, err = st.GetAgentState(ctx, "a2")
		require.NoError(t, err, "deleting a1 leaves a2")
		require.Equal(t, other, got)
	})

	t.Run("not found", func(t *testing.T) {
		_, err := st.GetAgentState(ctx, "never-written")
		require.ErrorIs(t, err, host.ErrNotFound)
		require.Contains(t, err.Error(), `"never-written"`)
		require.ErrorIs(t, st.DeleteAgentState(ctx, "never-written"), host.ErrNotFound)
	})

	t.Run("large documents", func(t *testing.T) {
		// Larger than the plugin's first kv buffer, its first memory page
		// and the host's first reserved region; every byte value, NUL
		// included, must survive.
		for _, size := range []int{255, 256, 1000, 70_000, 1 << 20} {
			doc := make([]byte, size)
			for i := range doc {
				doc[i] = byte(i * 7)
			}
			id := fmt.Sprintf("big-%d", size)
			put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: doc})
			require.NoError(t, err)
			require.Equal(t, doc, put.State)
			got, err := st.GetAgentState(ctx, id)
			require.NoError(t, err)
			require.Equal(t, put, got)
		}
	})

	t.Run("instances share the kv store", func(t *testing.T) {
		// With two instances and concurrent callers, a write through one
		// instance is read through the other.
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					id := fmt.Sprintf("shared-%d-%d", g, i)
					put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(id)})
					if !assert.NoError(t, err) {
						return
					}
					got, err := st.GetAgentState(ctx, id)
					assert.NoError(t, err)
					assert.Equal(t, put, got)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("agent ids", func(t *testing.T) {
		for id, msg := range map[string]string{
			"":                       "agent id is empty",
			strings.Repeat("x", 513): "agent id is longer than 512 bytes",
			"a\x00b":                 "agent id contains a NUL byte",
			"\xff":                   "agent id is not valid UTF-8",
			"\xc0\xaf":               "agent id is not valid UTF-8", // overlong "/"
			"\xed\xa0\x80":           "agent id is not valid UTF-8", // surrogate
			"\xf4\x90\x80\x80":       "agent id is not valid UTF-8", // above U+10FFFF
			"\xe2\x82":               "agent id is not valid UTF-8", // truncated
		} {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id})
			require.ErrorIs(t, err, host.ErrInvalid, "put %q", id)
			require.Contains(t, err.Error(), msg, "put %q", id)
			_, err = st.GetAgentState(ctx, id)
			require.ErrorIs(t, err, host.ErrInvalid, "get %q", id)
			require.ErrorIs(t, st.DeleteAgentState(ctx, id), host.ErrInvalid, "delete %q", id)
		}
		for _, id := range []string{strings.Repeat("x", 512), "ägent-ünïcødé-€-😀", "a/b:c d"} {
			put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("ok")})
			require.NoError(t, err, "put %q", id)
			got, err := st.GetAgentState(ctx, id)
			require.NoError(t, err, "get %q", id)
			require.Equal(t, put, got)
		}
	})

	t.Run("unsupported", func(t *testing.T) {
		ts := time.Unix(100, 0)
		errs := map[string]error{}
		_, errs["PutMetric"] = st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "m", Timestamp: ts})
		_, errs["GetMetric"] = st.GetMetric(ctx, host.MetricKey{AgentID: "a", Name: "m", Timestamp: ts})
		errs["DeleteMetric"] = st.DeleteMetric(ctx, host.MetricKey{AgentID: "a", Name: "m", Timestamp: ts})
		_, errs["QueryMetrics"] = st.QueryMetrics(ctx, host.MetricQuery{})
		_, errs["PutAlert"] = st.PutAlert(ctx, host.Alert{ID: "x", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		_, errs["GetAlert"] = st.GetAlert(ctx, "x")
		errs["DeleteAlert"] = st.DeleteAlert(ctx, "x")
		_, errs["SetAlertStatus"] = st.SetAlertStatus(ctx, "x", abi.AlertResolved)
		_, errs["QueryAlerts"] = st.QueryAlerts(ctx, host.AlertQuery{})
		_, errs["QueryAgentStates"] = st.QueryAgentStates(ctx, host.AgentStateQuery{})
		_, errs["PutAgentState WithTTL"] = st.PutAgentState(ctx, host.AgentState{AgentID: "t"}, host.WithTTL(time.Hour))
		_, errs["PutAgentState WithPersist"] = st.PutAgentState(ctx, host.AgentState{AgentID: "t"}, host.WithPersist())
		_, errs["PutAgentState WithKeepTTL"] = st.PutAgentState(ctx, host.AgentState{AgentID: "t"}, host.WithKeepTTL())
		_, errs["PutAgentState IfVersion"] = st.PutAgentState(ctx, host.AgentState{AgentID: "t"}, host.IfVersion(1))
		_, errs["PutAgentState IfAbsent"] = st.PutAgentState(ctx, host.AgentState{AgentID: "t"}, host.IfAbsent())
		errs["DeleteAgentState IfVersion"] = st.DeleteAgentState(ctx, "t", host.IfVersion(1))
		for call, err := range errs {
			require.ErrorIs(t, err, host.ErrUnsupported, call)
		}
		// The refusal says what was asked, in the API's words, and which
		// features the plugin's metadata lacks.
		require.ErrorContains(t, errs["QueryAgentStates"], "does not support querying agent states (query_agent_states): plugin agentstate does not advertise the query feature")
		require.ErrorContains(t, errs["QueryAlerts"], "does not support querying alerts (query_alerts): plugin agentstate does not advertise the alerts and query features")
		require.ErrorContains(t, errs["PutMetric"], "does not support writing metrics (put_metric): plugin agentstate does not advertise the metrics feature")
		_, err := st.GetAgentState(ctx, "t")
		require.ErrorIs(t, err, host.ErrNotFound, "refused writes write nothing")
	})
}

// TestForeignAgentStateConformance runs the conformance suite against the
// hand-written plugin: it must keep the contract for agent states and
// refuse everything else with host.ErrUnsupported, as the Go SDK's plugins
// do. Every Open is a new host and so a new kv store: a namespace of its own.
func TestForeignAgentStateConformance(t *testing.T) {
	cache := t.TempDir()
	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{Plugin: foreignPath("agentstate")},
			host.WithCompilationCache(cache))
		require.NoError(t, err)
		return st
	})
}

// TestForeignAgentStateOptions checks that configure refuses options it
// does not know, naming the option, and that the host reports it at Open.
func TestForeignAgentStateOptions(t *testing.T) {
	_, err := host.Open(context.Background(), host.Config{
		Plugin:  foreignPath("agentstate"),
		Options: map[string]string{"agent_state_ttl_seconds": "60"},
	}, host.WithCompilationCache(""))
	require.ErrorIs(t, err, host.ErrInvalid)
	require.Contains(t, err.Error(), `agentstate takes no options, got "agent_state_ttl_seconds"`)
}

// foreignGuest drives a plugin module through the ABI directly, without the
// host's feature checks, so the plugin's own refusals can be tested. Its
// capabilities: log records lines, clock is fixed, kv must not be called.
type foreignGuest struct {
	t       *testing.T
	mod     api.Module
	reserve api.Function
	call    api.Function
	logs    []string
}

func newForeignGuest(t *testing.T, name string) *foreignGuest {
	t.Helper()
	ctx := context.Background()
	wasm, err := os.ReadFile(foreignPath(name))
	require.NoError(t, err)
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = r.Close(ctx) })
	g := &foreignGuest{t: t}
	_, err = r.NewHostModuleBuilder(abi.CapabilityLog.Module()).NewFunctionBuilder().
		WithFunc(func(_ context.Context, m api.Module, level, ptr, n uint32) {
			b, ok := m.Memory().Read(ptr, n)
			if !ok {
				panic("log message outside memory")
			}
			g.logs = append(g.logs, fmt.Sprintf("%d %s", level, b))
		}).Export(abi.FuncLogWrite).Instantiate(ctx)
	require.NoError(t, err)
	_, err = r.NewHostModuleBuilder(abi.CapabilityClock.Module()).NewFunctionBuilder().
		WithFunc(func() int64 { return 1 }).Export(abi.FuncClockNow).Instantiate(ctx)
	require.NoError(t, err)
	_, err = r.NewHostModuleBuilder(abi.CapabilityKV.Module()).
		NewFunctionBuilder().WithFunc(func(_, _, _, _ uint32) uint32 { panic("kv must not be called") }).Export(abi.FuncKVCall).
		NewFunctionBuilder().WithFunc(func(_, _ uint32) uint32 { panic("kv must not be called") }).Export(abi.FuncKVResult).
		Instantiate(ctx)
	require.NoError(t, err)
	g.mod, err = r.Instantiate(ctx, wasm)
	require.NoError(t, err)
	g.reserve = g.mod.ExportedFunction(abi.ExportReserve)
	g.call = g.mod.ExportedFunction(abi.ExportCall)
	return g
}

// do sends one request and returns the response status and body.
func (g *foreignGuest) do(op abi.Op, req []byte) (abi.Status, string) {
	g.t.Helper()
	ctx := context.Background()
	res, err := g.reserve.Call(ctx, uint64(len(req)))
	require.NoError(g.t, err)
	require.True(g.t, g.mod.Memory().Write(uint32(res[0]), req))
	res, err = g.call.Call(ctx, uint64(op), uint64(len(req)))
	require.NoError(g.t, err, "%s", op)
	resp, ok := g.mod.Memory().Read(abi.UnpackRegion(res[0]))
	require.True(g.t, ok, "response region outside memory")
	require.NotEmpty(g.t, resp)
	return abi.Status(resp[0]), string(resp[1:])
}

func foreignEncode(parts ...func(*abi.Encoder)) []byte {
	var e abi.Encoder
	for _, p := range parts {
		p(&e)
	}
	return e.Bytes()
}

// TestForeignAgentStateGuest checks the agentstate plugin's own decoding
// and refusals: the host would refuse most of these before calling it, but
// a plugin must not depend on that.
func TestForeignAgentStateGuest(t *testing.T) {
	g := newForeignGuest(t, "agentstate")
	state := abi.AgentState{AgentID: "a", State: []byte("{}")}
	put := func(ttl abi.TTL, cond abi.Condition) []byte {
		r := abi.PutAgentState{State: state, TTL: ttl, Condition: cond}
		return foreignEncode(r.Encode)
	}

	type answer struct {
		status abi.Status
		msg    string // a substring of the message
	}
	for _, tc := range []struct {
		name string
		op   abi.Op
		req  []byte
		want answer
	}{
		{"ping", abi.OpPing, nil, answer{abi.StatusOK, ""}},
		{"configure", abi.OpConfigure, foreignEncode(abi.Options{}.Encode), answer{abi.StatusOK, ""}},
		{"configure option", abi.OpConfigure, foreignEncode(abi.Options{"x": "1"}.Encode),
			answer{abi.StatusInvalid, `got "x"`}},
		{"configure truncated", abi.OpConfigure, []byte{0x80}, answer{abi.StatusInvalid, "malformed"}},
		{"configure trailing", abi.OpConfigure, []byte{0, 0}, answer{abi.StatusInvalid, "malformed"}},

		{"put ttl duration", abi.OpPutAgentState, put(abi.TTL{Mode: abi.TTLDuration, Duration: time.Second}, abi.Condition{}),
			answer{abi.StatusUnsupported, "TTLs"}},
		{"put ttl persist", abi.OpPutAgentState, put(abi.TTL{Mode: abi.TTLPersist}, abi.Condition{}),
			answer{abi.StatusUnsupported, "TTLs"}},
		{"put ttl keep", abi.OpPutAgentState, put(abi.TTL{Mode: abi.TTLKeep}, abi.Condition{}),
			answer{abi.StatusUnsupported, "TTLs"}},
		{"put ttl zero duration", abi.OpPutAgentState, put(abi.TTL{Mode: abi.TTLDuration}, abi.Condition{}),
			answer{abi.StatusInvalid, "below 1ms"}},
		{"put ttl unknown mode", abi.OpPutAgentState, foreignEncode(state.Encode, func(e *abi.Encoder) { e.U8(9); e.U8(0) }),
			answer{abi.StatusInvalid, "unknown ttl mode 9"}},
		{"put if version", abi.OpPutAgentState, put(abi.TTL{}, abi.Condition{Mode: abi.IfVersion, Version: 3}),
			answer{abi.StatusUnsupported, "conditional writes"}},
		{"put if absent", abi.OpPutAgentState, put(abi.TTL{}, abi.Condition{Mode: abi.IfAbsent}),
			answer{abi.StatusUnsupported, "conditional writes"}},
		{"put unknown condition", abi.OpPutAgentState, foreignEncode(state.Encode, func(e *abi.Encoder) { e.U8(0); e.U8(7) }),
			answer{abi.StatusInvalid, "malformed"}},
		{"put truncated", abi.OpPutAgentState, put(abi.TTL{}, abi.Condition{})[:8], answer{abi.StatusInvalid, "malformed"}},
		{"put trailing", abi.OpPutAgentState, append(put(abi.TTL{}, abi.Condition{}), 0), answer{abi.StatusInvalid, "malformed"}},
		{"put empty id", abi.OpPutAgentState, foreignEncode((&abi.PutAgentState{}).Encode), answer{abi.StatusInvalid, "agent id is empty"}},

		{"get overlong varint", abi.OpGetAgentState, bytes.Repeat([]byte{0xff}, 11), answer{abi.StatusInvalid, "malformed"}},
		{"get length past end", abi.OpGetAgentState, []byte{5, 'a'}, answer{abi.StatusInvalid, "malformed"}},
		{"get trailing", abi.OpGetAgentState, []byte{1, 'a', 0}, answer{abi.StatusInvalid, "malformed"}},
		{"get bad id", abi.OpGetAgentState, []byte{1, 0}, answer{abi.StatusInvalid, "NUL"}},
		{"delete if version", abi.OpDeleteAgentState,
			foreignEncode((&abi.DeleteAgentState{AgentID: "a", Condition: abi.Condition{Mode: abi.IfVersion, Version: 1}}).Encode),
			answer{abi.StatusUnsupported, "conditional writes"}},
		{"delete truncated", abi.OpDeleteAgentState, []byte{1, 'a'}, answer{abi.StatusInvalid, "malformed"}},

		{"query agent states", abi.OpQueryAgentStates, foreignEncode((&abi.AgentStateQuery{}).Encode),
			answer{abi.StatusUnsupported, "op 33"}},
		{"put metric", abi.OpPutMetric, nil, answer{abi.StatusUnsupported, "op 10"}},
		{"batch", abi.OpBatch, nil, answer{abi.StatusUnsupported, "op 40"}},
		{"unknown op", abi.Op(4_000_000_000), nil, answer{abi.StatusUnsupported, "op 4000000000"}},
	} {
		status, msg := g.do(tc.op, tc.req)
		require.Equal(t, tc.want.status, status, "%s: %s", tc.name, msg)
		require.Contains(t, msg, tc.want.msg, tc.name)
		if tc.want.status == abi.StatusOK {
			require.Empty(t, msg, tc.name)
		}
	}
	require.Equal(t, []string{"3 agentstate configured: agent states live in the host kv store"}, g.logs)
}

// TestForeignTrap checks that an instance that traps is discarded and
// replaced: every Ping traps, every other call is answered by a live
// instance, many more times than the pool holds instances, sequentially
// and concurrently.
func TestForeignTrap(t *testing.T) {
	ctx := context.Background()
	const instances = 3
	var log foreignLog
	st := openForeign(t, "trap", host.Config{Instances: instances}, host.WithLogger(log.logger()))
	require.Equal(t, abi.FeatureAgentStates, st.Metadata().Features)
	require.Empty(t, st.Metadata().Capabilities)

	var traps atomic.Int64
	ping := func() error {
		err := st.Ping(ctx)
		traps.Add(1)
		if !errors.Is(err, host.ErrInternal) {
			return fmt.Errorf("ping: want an internal error, got %v", err)
		}
		if !strings.Contains(err.Error(), "unreachable") {
			return fmt.Errorf("ping: the error does not report the trap: %v", err)
		}
		return nil
	}
	// The plugin itself answers unsupported: proof that a live instance
	// served the call.
	get := func() error {
		_, err := st.GetAgentState(ctx, "a")
		if !errors.Is(err, host.ErrUnsupported) || !strings.Contains(err.Error(), "trap: ping traps") {
			return fmt.Errorf("get: want the plugin's unsupported answer, got %v", err)
		}
		return nil
	}

	for range 4 * instances {
		require.NoError(t, ping())
		require.NoError(t, get())
	}

	var wg sync.WaitGroup
	for g := range 4 * instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				call := get
				if (g+i)%2 == 0 {
					call = ping
				}
				if err := call(); err != nil {
					assert.NoError(t, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// Still serving after all that.
	require.NoError(t, get())
	require.NoError(t, ping())
	require.NoError(t, get())
	require.Equal(t, uint64(traps.Load()), st.Stats().Traps, "every trap discards its instance")
	require.Contains(t, log.String(), "plugin instance discarded")
}

// TestForeignIncompatible checks that modules that are not loadable storage
// plugins fail Open with ErrIncompatible and a message naming the problem.
func TestForeignIncompatible(t *testing.T) {
	for _, tc := range []struct {
		plugin string
		caps   []abi.Capability
		want   []string
	}{
		{"oldabi", nil, []string{"host speaks " + abi.Current.String(), "plugin needs 2.0"}},
		{"noexports", nil, []string{abi.ExportABIVersion}},
		{"badimport", nil, []string{"env.something"}},
		{"envabort", nil, []string{"imports env.abort, which this host does not provide (AssemblyScript: build with --use abort="}},
		{"ungranted", []abi.Capability{abi.CapabilityLog}, []string{`"kv"`, "storagehost_kv.call"}},
		// agentstate imports the clock: granting log and kv is not enough.
		{"agentstate", []abi.Capability{abi.CapabilityLog, abi.CapabilityKV}, []string{`"clock"`}},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			st, err := host.Open(context.Background(),
				host.Config{Plugin: foreignPath(tc.plugin), Capabilities: tc.caps},
				host.WithCompilationCache(""))
			require.ErrorIs(t, err, host.ErrIncompatible)
			require.Nil(t, st)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			t.Log(err)
		})
	}
	// ungranted is itself a valid plugin: it loads when kv is granted.
	st := openForeign(t, "ungranted", host.Config{})
	require.Equal(t, []abi.Capability{abi.CapabilityKV}, st.Metadata().Capabilities)
	require.NoError(t, st.Ping(context.Background()))
}
