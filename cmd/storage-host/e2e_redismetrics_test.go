package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	r := call(t, "GET", url+"/metrics", "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// infoField reads one field of c's INFO.
func infoField(t *testing.T, c *redis.Client, name string) string {
	t.Helper()
	text, err := c.Info(context.Background()).Result()
	require.NoError(t, err)
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO has no %s", name)
	return ""
}

// TestRedisServerMetricsAndReadiness: the daemon serves its Redis's own
// figures, named as redis_exporter names them, labelled by backend and
// node, and they follow what happens on the server: lookups that hit and
// miss, commands, evictions. /readyz says which Redis is unhealthy and
// why: out of memory, then unreachable.
func TestRedisServerMetricsAndReadiness(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	cfg := configFile(t, `backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs      = [%q]
    key_prefix = "mon:"
    scripts    = true
  }
}
routes {
  metrics      = "r"
  alerts       = "r"
  agent_states = "r"
}
`, srv.Addr())
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer direct.Close()
	ctx := context.Background()
	node := fmt.Sprintf(`{addr=%q,backend="r"}`, srv.Addr())

	putState(t, d.url, "a1")
	before := scrape(t, d.url)
	require.Equal(t, 1.0, before["redis_up"+node])
	require.Equal(t, 1.0, before[fmt.Sprintf(`redis_instance_info{addr=%q,backend="r",redis_mode="standalone",redis_version=%q,role="master"}`,
		srv.Addr(), infoField(t, direct, "redis_version"))])
	for _, name := range []string{"redis_memory_used_bytes", "redis_connected_clients", "redis_commands_processed_total"} {
		require.Positive(t, before[name+node], name)
	}
	for _, name := range []string{"redis_memory_max_bytes", "redis_evicted_keys_total", "redis_blocked_clients", "redis_connected_slaves",
		"redis_keyspace_misses_total", "redis_instantaneous_ops_per_sec", "redis_slowlog_length", "redis_master_repl_offset", "redis_uptime_in_seconds"} {
		_, ok := before[name+node]
		require.True(t, ok, "%s is served", name)
	}

	const reads = 20
	for range reads {
		require.Equal(t, http.StatusOK, call(t, "GET", d.url+"/v1/agents/a1/state", "").code)
		require.Equal(t, http.StatusNotFound, call(t, "GET", d.url+"/v1/agents/nobody/state", "").code)
	}
	// Figures are read at most once a second: a scrape right away may see
	// the earlier reading.
	var after map[string]float64
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		after = scrape(t, d.url)
		return after["redis_commands_processed_total"+node] > before["redis_commands_processed_total"+node]
	}, "a new reading")
	require.GreaterOrEqual(t, after["redis_keyspace_hits_total"+node]-before["redis_keyspace_hits_total"+node], float64(reads), "a GET of a stored state hits")
	require.GreaterOrEqual(t, after["redis_keyspace_misses_total"+node]-before["redis_keyspace_misses_total"+node], float64(reads), "a GET of a missing state misses")
	require.GreaterOrEqual(t, after["redis_commands_processed_total"+node]-before["redis_commands_processed_total"+node], float64(2*reads))
	require.Positive(t, after[fmt.Sprintf(`redis_db_keys{addr=%q,backend="r",db="db0"}`, srv.Addr())], "the keys of database 0")

	// Evictions: a little room over what is used, and writes beyond it.
	n, err := strconv.Atoi(infoField(t, direct, "used_memory"))
	require.NoError(t, err)
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "allkeys-random").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", strconv.Itoa(n+512<<10)).Err())
	filler := direct.Pipeline()
	for i := range 2000 {
		filler.Set(ctx, fmt.Sprintf("filler:%d", i), strings.Repeat("x", 1024), 0)
	}
	_, err = filler.Exec(ctx)
	require.NoError(t, err)
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		after = scrape(t, d.url)
		return after["redis_evicted_keys_total"+node] > 0
	}, "evictions are counted")
	require.Equal(t, float64(n+512<<10), after["redis_memory_max_bytes"+node])
	// A Redis that evicts drops records it acknowledged: not ready.
	var ready reply
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		ready = call(t, "GET", d.url+"/readyz", "")
		return ready.code == http.StatusServiceUnavailable
	}, "not ready while Redis evicts keys")
	require.Contains(t, string(ready.body), "redis "+srv.Addr()+": maxmemory-policy allkeys-random evicts keys at maxmemory")
	// And its writes are refused, nothing applied: Redis could drop them.
	put := call(t, "PUT", d.url+"/v1/agents/evicted/state", `{"n":1}`)
	require.Equal(t, http.StatusServiceUnavailable, put.code, "%s", put.body)
	require.Contains(t, string(put.body), "maxmemory-policy allkeys-random evicts keys")
	require.Equal(t, http.StatusNotFound, call(t, "GET", d.url+"/v1/agents/evicted/state", "").code, "reads are served")
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		return call(t, "GET", d.url+"/readyz", "").code == http.StatusNoContent
	}, "ready again without maxmemory: nothing is evicted")

	// Out of memory with noeviction: every write is refused.
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "1").Err())
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		ready = call(t, "GET", d.url+"/readyz", "")
		return ready.code == http.StatusServiceUnavailable
	}, "not ready once Redis is out of memory")
	require.Regexp(t, `"backend r: unavailable: redis `+srv.Addr()+`: OOM: used memory \d+ bytes over maxmemory 1`, string(ready.body))
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		return call(t, "GET", d.url+"/readyz", "").code == http.StatusNoContent
	}, "ready again")

	// Loading: a dataset big enough to take a moment to load at a restart.
	for i := range 500 {
		args := make([]any, 0, 4000)
		for k := range 2000 {
			args = append(args, fmt.Sprintf("load:%d:%d", i, k), "0123456789abcdef0123456789abcdef")
		}
		require.NoError(t, direct.MSet(ctx, args...).Err())
	}
	require.NoError(t, direct.Save(ctx).Err())
	srv.Stop()
	seen := make(chan string, 1)
	go func() {
		var last string
		defer func() { seen <- last }()
		for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			r, err := send(http.DefaultClient, "GET", d.url+"/readyz", "")
			if err != nil {
				continue
			}
			if last = string(r.body); strings.Contains(last, "LOADING") || r.code == http.StatusNoContent {
				return
			}
		}
	}()
	srv.Start() // returns once Redis has loaded the dataset
	require.Regexp(t, `"backend r: unavailable: redis `+srv.Addr()+`: LOADING Redis is loading the dataset in memory"`, <-seen)

	srv.Stop()
	ready = call(t, "GET", d.url+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, ready.code)
	require.Contains(t, string(ready.body), `"backend r: unavailable: redis `+srv.Addr()+`: connection refused"`)
	redistest.WaitFor(t, 5*time.Second, 100*time.Millisecond, func() bool {
		return scrape(t, d.url)["redis_up"+node] == 0
	}, "redis_up is 0 while Redis is away")
}
