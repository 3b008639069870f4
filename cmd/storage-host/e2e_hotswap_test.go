package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestHotSwap is the acceptance test of hot swapping: agents keep
// writing and reading their state over keep-alive connections while an
// operator moves agent states from memory to Redis and back, then to a
// plugin file, and then replaces that file with another plugin. No
// request may fail, and no read may return anything but the reader's
// last write; the one exception is a read that lands on a freshly
// swapped-in backend before its writer's next write, at most once per
// agent per swap: 404, or, when the new backend is another plugin on the
// old one's data directory (the same backend name), the old plugin's
// record as the new one reads it.
func TestHotSwap(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		// Most of it is the daemon compiling the Redis plugin under the
		// agents' load: 15 to 20 seconds on two busy cores.
		t.Skip("-short: the hot swap under load takes 15 seconds or more")
	}
	redisAddr := redistest.Addr(t)
	prefix := redistest.Prefix(t, redisAddr)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })

	// Each phase: at least this long, and this many round trips by every
	// agent.
	const phase, perPhase = 600 * time.Millisecond, 20

	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	// The plugin's directory is watched only once a backend names it.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "plugins"), 0o700))
	pluginFile := filepath.Join(dir, "plugins", "agentstates.wasm")
	memoryWASM, err := host.BuiltinWASM("memory")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pluginFile, memoryWASM, 0o600))
	agentstateWASM, err := os.ReadFile(repoFile("testdata", "plugins", "agentstate.wasm"))
	require.NoError(t, err)

	const (
		aux = "backend \"aux\" {\n  plugin = \"builtin:memory\"\n}\n"
		mem = "backend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n"
		// A relative plugin path is relative to the configuration file.
		wasm = "backend \"wasm\" {\n  plugin = \"plugins/agentstates.wasm\"\n}\n"
	)
	redisBackend := fmt.Sprintf("backend \"redis\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs      = [%q]\n    key_prefix = %q\n    scripts    = true\n  }\n}\n", redisAddr, prefix)
	config := func(agentStates string, backend string) []byte {
		return fmt.Appendf(nil, "%s%sroutes {\n  metrics      = \"aux\"\n  alerts       = \"aux\"\n  agent_states = %q\n}\n", aux, backend, agentStates)
	}
	require.NoError(t, os.WriteFile(cfg, config("mem", mem), 0o600))

	d := startDaemon(t, nil, "-config", cfg)
	require.Regexp(t, `^storage-host: serving metrics→aux, alerts→aux, agent_states→mem \(data: \S+\) on `+regexp.QuoteMeta(d.url)+`$`, d.serving)
	d.waitWatching(1)

	// The agents.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	agents := make([]*agent, 8)
	for i := range agents {
		a := newAgent(fmt.Sprintf("hotswap-%d", i), d.url)
		agents[i] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.run(stop)
		}()
	}
	stopped := false
	stopAgents := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAgents()
	// noFailures stops the agents and reports their failed requests, if
	// any.
	failed := func() (n int64) {
		for _, a := range agents {
			n += a.failed.Load()
		}
		return n
	}
	noFailures := func() {
		t.Helper()
		stopAgents()
		for _, a := range agents {
			require.Zero(t, a.failed.Load(), "agent %s: failed requests, the first ones: %q", a.id, a.failures)
		}
	}

	// load lets the agents run for a phase, each completing at least
	// perPhase more round trips, and stops at the first failure.
	load := func(what string) {
		t.Helper()
		until := time.Now().Add(phase)
		base := make([]int64, len(agents))
		for i, a := range agents {
			base[i] = a.rounds.Load()
		}
		redistest.WaitFor(t, waitTimeout, 5*time.Millisecond, func() bool {
			if failed() > 0 {
				return true
			}
			for i, a := range agents {
				if a.rounds.Load() < base[i]+perPhase {
					return false
				}
			}
			return time.Now().After(until)
		}, "agents made no progress %s", what)
		if failed() > 0 {
			noFailures()
		}
	}

	// swap applies an edit and waits for the reload it triggers; the
	// window from edit to log line bounds when routes changed.
	var swaps []swapWindow
	swap := func(edit func(), want string) {
		t.Helper()
		n := d.logCount(reloaded)
		w := swapWindow{edited: time.Now()}
		edit()
		line := d.waitLog(reloaded, n+1)[n]
		w.applied = time.Now()
		swaps = append(swaps, w)
		require.Regexp(t, `trigger="file change" `+regexp.QuoteMeta(want)+`$`, line)
	}
	calls := func(backend string) float64 {
		return d.metric(`storage_host_plugin_call_duration_seconds_count{backend="` + backend + `",op="put_agent_state"}`)
	}
	// redisStates reads each agent's state document from Redis directly.
	redisStates := func() map[string]string {
		t.Helper()
		out := make(map[string]string, len(agents))
		for _, a := range agents {
			doc, err := rdb.HGet(context.Background(), prefix+"s:{"+a.id+"}", "d").Result()
			require.NoError(t, err, "agent %s has no state in Redis under %s", a.id, prefix)
			out[a.id] = doc
		}
		return out
	}

	load("on the memory backend")
	require.Positive(t, calls("mem"))

	// 1. Agent states move to Redis.
	swap(func() { replaceFile(t, cfg, config("redis", redisBackend)) },
		`added=["redis"] replaced=[] removed=["mem"] kept=["aux"]`)
	// The records written through mem stay there: the reload says so.
	d.waitLog(regexp.MustCompile(`record kinds routed to another backend: .*rerouted=\["agent_states: mem → redis"\]`), 1)
	load("after the swap to Redis")
	require.Positive(t, calls("redis"))
	for id, doc := range redisStates() {
		var s agentDoc
		require.NoError(t, json.Unmarshal([]byte(doc), &s), "agent %s: %s", id, doc)
		require.Equal(t, id, s.Agent, "Redis holds the agent's own document")
		require.Positive(t, s.N)
	}

	// 2. And back to memory: a new, empty memory backend. Redis sees no
	// more writes once every agent has moved on past its last call there.
	swap(func() { replaceFile(t, cfg, config("mem", mem)) },
		`added=["mem"] replaced=[] removed=["redis"] kept=["aux"]`)
	load("after the swap back to memory")
	left := redisStates()
	load("on memory again")
	require.Equal(t, left, redisStates(), "no agent state is written to Redis any more")

	// 3. To a plugin file: here still the memory plugin, which can query.
	swap(func() { replaceFile(t, cfg, config("wasm", wasm)) },
		`added=["wasm"] replaced=[] removed=["mem"] kept=["aux"]`)
	d.waitWatching(2) // the plugin's directory too, now that a backend names it
	load("on the plugin file")
	require.Positive(t, calls("wasm"))
	r := call(t, "GET", d.url+"/v1/agent-states?prefix=hotswap-", "")
	require.Equal(t, http.StatusOK, r.code, "the memory plugin queries: %s", r.body)

	// 4. The plugin file is replaced under its backend by another plugin,
	// which cannot query.
	swap(func() { replaceFile(t, pluginFile, agentstateWASM) },
		`added=[] replaced=["wasm"] removed=[] kept=["aux"]`)
	d.waitLog(regexp.MustCompile(`storage-host\.plugin\.wasm: agentstate configured`), 1)
	load("on the replaced plugin")
	r = call(t, "GET", d.url+"/v1/agent-states?prefix=hotswap-", "")
	require.Equal(t, http.StatusNotImplemented, r.code, "the new plugin serves: %s", r.body)
	require.Contains(t, string(r.body), "backend wasm does not support querying agent states (query_agent_states): plugin agentstate does not advertise the query feature")

	// Every request succeeded, and the daemon ended no agent's
	// connection. (The count of dials is no measure of that: net/http may
	// dial a second connection for a request sent while the one before
	// is being handed back to the idle pool.)
	noFailures()
	var rounds int64
	for _, a := range agents {
		require.Zero(t, a.ended.Load(), "agent %s: connections the daemon ended while it swapped backends (of %d dialled)", a.id, a.dials.Load())
		rounds += a.rounds.Load()
	}

	// A miss (404, or the old plugin's record) is a read that reached the
	// new backend of a swap after its write reached the old one: the
	// write started before the swap was applied and the read ended after
	// the edit; one per agent per swap.
	notFound := 0
	for _, a := range agents {
		perSwap := make([]int, len(swaps))
		for _, nf := range a.notFound {
			i := nf.during(swaps)
			require.GreaterOrEqual(t, i, 0, "agent %s: round %d read 404 outside any swap %s", a.id, nf.round, nf.answer)
			perSwap[i]++
			require.LessOrEqual(t, perSwap[i], 1, "agent %s: more than one miss in swap %d", a.id, i+1)
			if nf.answer != "" {
				require.Equal(t, len(swaps)-1, i, "agent %s: round %d read %s in swap %d; only the last swap changes the plugin over its data", a.id, nf.round, nf.answer, i+1)
			}
		}
		notFound += len(a.notFound)
	}

	require.Equal(t, float64(len(swaps)), d.metric(`storage_host_reloads_total{result="ok"}`))
	require.Zero(t, d.metric(`storage_host_reloads_total{result="failed"}`))
	require.NotContains(t, d.log.String(), "[ERROR]")
	require.NotContains(t, d.log.String(), "closed with calls in flight", "retired backends drained")
	t.Logf("%d agents, %d round trips, %d swaps, %d reads of a fresh backend (404 or the old plugin's record)", len(agents), rounds, len(swaps), notFound)
	d.stop()
}

// swapWindow bounds when a reload switched the routes: after the edit,
// before its log line was seen.
type swapWindow struct{ edited, applied time.Time }

// agent is one client of the hot swap test: it loops PUT then GET of its
// own state over one keep-alive connection, with a counter in the state.
type agent struct {
	id     string
	url    string
	client *http.Client
	rounds atomic.Int64 // completed PUT+GET round trips
	dials  atomic.Int64 // connections opened
	ended  atomic.Int64 // connections the daemon ended (endedConn, endingRoundTripper)
	failed atomic.Int64 // failed requests

	// Written by run only; read once it has returned.
	failures []string // the first few
	notFound []readMiss
}

// readMiss is a GET answered 404, or with another record, after its
// round's PUT succeeded.
type readMiss struct {
	round           int
	putStart, getAt time.Time // the PUT's start, the GET's answer
	answer          string    // "" for a 404, else what the GET answered
}

// during returns the index of the swap whose switch can explain m, or -1.
func (m readMiss) during(swaps []swapWindow) int {
	for i, s := range swaps {
		if m.putStart.Before(s.applied) && m.getAt.After(s.edited) {
			return i
		}
	}
	return -1
}

// agentDoc is the state an agent writes.
type agentDoc struct {
	Agent string `json:"agent"`
	N     int    `json:"n"`
}

func newAgent(id, base string) *agent {
	a := &agent{id: id, url: base + "/v1/agents/" + id + "/state"}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	a.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: endingRoundTripper{a: a, rt: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				a.dials.Add(1)
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &endedConn{Conn: c, a: a}, nil
			},
			MaxIdleConnsPerHost: 1,
		}},
	}
	return a
}

// endingRoundTripper counts the answers by which the daemon ends the
// connection ("Connection: close").
type endingRoundTripper struct {
	a  *agent
	rt http.RoundTripper
}

func (t endingRoundTripper) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t endingRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err == nil && resp.Close {
		t.a.ended.Add(1)
	}
	return resp, err
}

// endedConn counts, once, a connection of the agent that the daemon
// ended without saying so in an answer (endingRoundTripper): a read that
// meets the end of the stream or an error. The
// client's own closing of a connection (one it does not keep idle, or
// the agent's at its end) makes reads fail with net.ErrClosed, which is
// not counted.
type endedConn struct {
	net.Conn
	a    *agent
	once sync.Once
}

func (c *endedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.once.Do(func() { c.a.ended.Add(1) })
	}
	return n, err
}

func (a *agent) fail(format string, args ...any) {
	a.failed.Add(1)
	if len(a.failures) < 5 {
		a.failures = append(a.failures, fmt.Sprintf(format, args...))
	}
}

// state decodes the state of an agent state response.
func (a *agent) state(body []byte) (agentDoc, error) {
	var r struct {
		AgentID string   `json:"agent_id"`
		State   agentDoc `json:"state"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return agentDoc{}, err
	}
	if r.AgentID != a.id {
		return agentDoc{}, fmt.Errorf("agent_id %q", r.AgentID)
	}
	return r.State, nil
}

func (a *agent) run(stop <-chan struct{}) {
	defer a.client.CloseIdleConnections()
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		doc := agentDoc{Agent: a.id, N: n}
		body, _ := json.Marshal(doc)
		putStart := time.Now()
		r, err := send(a.client, "PUT", a.url, string(body), "Content-Type", "application/json")
		if err != nil {
			a.fail("round %d: PUT: %v", n, err)
			continue
		}
		if r.code != http.StatusOK {
			a.fail("round %d: PUT: %d %s", n, r.code, r.body)
			continue
		}
		if got, err := a.state(r.body); err != nil || got != doc {
			a.fail("round %d: PUT answered %s (%v)", n, r.body, err)
			continue
		}
		r, err = send(a.client, "GET", a.url, "")
		getAt := time.Now()
		switch {
		case err != nil:
			a.fail("round %d: GET: %v", n, err)
			continue
		case r.code == http.StatusNotFound:
			a.notFound = append(a.notFound, readMiss{round: n, putStart: putStart, getAt: getAt})
		case r.code != http.StatusOK:
			a.fail("round %d: GET: %d %s", n, r.code, r.body)
			continue
		default:
			if got, err := a.state(r.body); err != nil || got != doc {
				// Another plugin's record, read from the data directory
				// the new plugin took over: a miss like a 404, checked
				// the same way.
				a.notFound = append(a.notFound, readMiss{round: n, putStart: putStart, getAt: getAt,
					answer: fmt.Sprintf("%s, not the last write %s (%v)", strings.TrimSpace(string(r.body)), body, err)})
			}
		}
		a.rounds.Add(1)
	}
}
