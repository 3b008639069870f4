package bench_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// BenchmarkRedis runs each workload through the redis plugin (host.Store
// on builtin:redis) and issued directly with go-redis on the same Redis,
// side by side in one run. The direct side sends exactly the commands the
// plugin sends for the operation (see directRedis): for a get one HMGET,
// for a write EVALSHA of the plugin's own library.lua (the same text, so
// the same SHA-1), with the same keys and arguments, one call per record
// (a single put indexes its record in the same call; a batch adds one
// index call for all its records), pipelined as the bridge pipelines
// them. Each side has a key namespace
// of its own (redistest.Prefix), seeded alike.
//
// Variants: "plugin" is the default pool (Config.Instances unset);
// "direct" sends the plugin's own commands with go-redis (above);
// "plain" is the plainest go-redis code an application would write for
// the same data: GET key (the document's bytes), SET key json EX ttl, and
// a pipeline of 100 SET EX for the bulk put (PutMetric has no plain
// counterpart). Every go-redis client (the bridge's and the benchmark's)
// has go-redis's default pool of 10 connections per CPU, and every
// response is checked.
//
// Metrics: ops/s (wall clock), p50-µs and p99-µs of the per-call latency,
// and the CPU time per op of this process (host-cpu-µs/op: caller, host,
// plugin and go-redis) and of the Redis server (redis-cpu-µs/op, from
// INFO cpu, so only meaningful on an otherwise idle Redis). An op of
// BulkPut100 is a batch of 100 states. At the end it prints a summary
// whose ratio columns are each variant's ops/s over plain's and over
// direct's.
//
//	go test ./cmd/storage-host/internal/bench -run '^$' -bench Redis -benchtime 3s
func BenchmarkRedis(b *testing.B) {
	addrs := []string{redistest.Addr(b)}
	ctx := context.Background()

	pluginDefault := openRedisBench(b, addrs, 0)
	direct := newDirectRedis(b, addrs)
	plain := newPlainRedis(b, addrs)

	seedStates := func(put func(context.Context, int) error) {
		for i := range benchAgents {
			if err := put(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	}
	seedStates(func(ctx context.Context, i int) error { return pluginPutState(ctx, pluginDefault, i) })
	// The plugin has loaded its script by now; the direct side runs it by
	// the same SHA-1 (newDirectRedis checked that the embedded plugin
	// holds this library.lua).
	if ok, err := direct.c.ScriptExists(ctx, direct.sha).Result(); err != nil || !ok[0] {
		b.Fatalf("the plugin's script is not loaded under the direct side's SHA-1 %s (%v)", direct.sha, err)
	}
	seedStates(direct.putState)
	seedStates(plain.putState)

	// Warm the pools: 64 plugin instances and every connection.
	warm := func(op func(context.Context, int) error) {
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				if err := op(ctx, i); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	warm(func(ctx context.Context, i int) error { return pluginGetState(ctx, pluginDefault, i) })
	warm(direct.getState)
	warm(plain.getState)

	workloads := []struct {
		name   string
		plugin func(ctx context.Context, st *host.Store, i int) error
		direct func(d *directRedis, ctx context.Context, i int) error
		plain  func(p *plainRedis, ctx context.Context, i int) error // nil: none
	}{
		{"GetAgentState", pluginGetState, (*directRedis).getState, (*plainRedis).getState},
		{"PutAgentState", pluginPutState, (*directRedis).putState, (*plainRedis).putState},
		{"PutMetric", pluginPutMetric, (*directRedis).putMetric, nil},
		{"BulkPut100", pluginBulkPut100, (*directRedis).bulkPut100, (*plainRedis).bulkPut100},
	}

	sum := make(map[string]latencyResult)
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			for _, callers := range []int{1, 64} {
				b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
					key := w.name + "/" + strconv.Itoa(callers) + "/"
					b.Run("plugin", func(b *testing.B) {
						sum[key+"plugin"] = measureCallers(b, direct.c, callers, func(ctx context.Context, i int) error { return w.plugin(ctx, pluginDefault, i) })
					})
					b.Run("direct", func(b *testing.B) {
						sum[key+"direct"] = measureCallers(b, direct.c, callers, func(ctx context.Context, i int) error { return w.direct(direct, ctx, i) })
					})
					if w.plain != nil {
						b.Run("plain", func(b *testing.B) {
							sum[key+"plain"] = measureCallers(b, direct.c, callers, func(ctx context.Context, i int) error { return w.plain(plain, ctx, i) })
						})
					}
				})
			}
		})
	}

	// The summary: ratios of ops/s over plain's and over direct's.
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-14s %7s %-8s %10s %9s %9s %9s %9s %9s %9s", "workload", "callers", "variant", "ops/s", "p50-µs", "p99-µs", "/plain", "/direct", "host-cpu", "redis-cpu")
	for _, w := range workloads {
		for _, callers := range []int{1, 64} {
			key := w.name + "/" + strconv.Itoa(callers) + "/"
			for _, v := range []string{"plain", "direct", "plugin"} {
				r, ok := sum[key+v]
				if !ok {
					continue
				}
				ratio := func(base string) string {
					if d, ok := sum[key+base]; ok {
						return strconv.FormatFloat(r.opsPerSec/d.opsPerSec, 'f', 2, 64)
					}
					return "-"
				}
				fmt.Fprintf(&t, "\n%-14s %7d %-8s %10.0f %9.1f %9.1f %9s %9s %9.1f %9.1f", w.name, callers, v, r.opsPerSec, r.p50, r.p99, ratio("plain"), ratio("direct"), r.hostCPU, r.redisCPU)
			}
		}
	}
	// Printed, not logged: the testing package cuts a benchmark's log to
	// ten lines.
	if !b.Failed() {
		fmt.Println(t.String())
	}
}

var benchState = []byte(`{"step":1,"goal":"benchmark"}`)

var benchLabels = map[string]string{"host": "h1", "region": "eu"}

func benchAgent(i int) string { return "agent-" + strconv.Itoa(i%benchAgents) }

// benchTS is the timestamp of the i-th metric sample: a new one per op.
func benchTS(i int) time.Time { return time.Unix(int64(i)+1, 0) }

func pluginGetState(ctx context.Context, st *host.Store, i int) error {
	s, err := st.GetAgentState(ctx, benchAgent(i))
	if err == nil && s.Version == 0 {
		err = fmt.Errorf("version 0")
	}
	return err
}

func pluginPutState(ctx context.Context, st *host.Store, i int) error {
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: benchAgent(i), State: benchState})
	return err
}

// benchBulk is the batch of pluginBulkPut100: the states of the first 100
// agents.
var benchBulk = func() []host.AgentState {
	bulk := make([]host.AgentState, 100)
	for i := range bulk {
		bulk[i] = host.AgentState{AgentID: benchAgent(i), State: benchState}
	}
	return bulk
}()

// pluginBulkPut100 puts benchBulk in one call, every item checked.
func pluginBulkPut100(ctx context.Context, st *host.Store, _ int) error {
	res, err := st.PutAgentStates(ctx, benchBulk)
	if err != nil {
		return err
	}
	for i := range res {
		if res[i].Err != nil {
			return res[i].Err
		}
	}
	return nil
}

func pluginPutMetric(ctx context.Context, st *host.Store, i int) error {
	_, err := st.PutMetric(ctx, host.Metric{AgentID: benchAgent(i), Name: "cpu", Value: 0.5, Timestamp: benchTS(i), Labels: benchLabels})
	return err
}

func openRedisBench(b *testing.B, addrs []string, instances int) *host.Store {
	b.Helper()
	prefix := redistest.Prefix(b, addrs...)
	st, err := host.Open(context.Background(), host.Config{
		Plugin:    "builtin:redis",
		Instances: instances,
		Redis:     &redisbridge.Config{Addrs: addrs, KeyPrefix: prefix, Scripts: true},
	}, host.WithCompilationCache(benchCache))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// latencyResult is one variant's figures.
type latencyResult struct {
	opsPerSec, p50, p99 float64 // p50, p99 in µs
	hostCPU, redisCPU   float64 // µs per op
	// otherCPU is the CPU the rest of the machine spent per op, in µs
	// (measurePG); -1 where /proc/stat cannot tell.
	otherCPU float64
}

// measureCallers runs b.N calls of op over callers goroutines, each call
// timed, and reports ops/s, p50-µs and p99-µs.
func measureCallers(b *testing.B, rc redis.UniversalClient, callers int, op func(ctx context.Context, i int) error) latencyResult {
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	redis0 := redisCPU(b, rc)
	host0 := hostCPU()
	b.ResetTimer()
	// The label lets a CPU profile of the whole run be cut to one
	// variant: go tool pprof -tagfocus 'bench=GetAgentState/callers=1/plugin'.
	labels := pprof.Labels("bench", strings.TrimPrefix(b.Name(), "BenchmarkRedis/"))
	for range callers {
		wg.Go(func() {
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, labels))
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				err := op(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					b.Error(err)
					next.Store(math.MaxInt32)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := b.Elapsed()
	host1 := hostCPU()
	redis1 := redisCPU(b, rc)
	slices.Sort(lat)
	r := latencyResult{
		opsPerSec: float64(b.N) / elapsed.Seconds(),
		p50:       float64(lat[(len(lat)-1)*50/100]) / 1e3,
		p99:       float64(lat[(len(lat)-1)*99/100]) / 1e3,
		hostCPU:   float64(host1-host0) / 1e3 / float64(b.N),
		redisCPU:  float64(redis1-redis0) / 1e3 / float64(b.N),
	}
	b.ReportMetric(r.opsPerSec, "ops/s")
	b.ReportMetric(r.p50, "p50-µs")
	b.ReportMetric(r.p99, "p99-µs")
	b.ReportMetric(r.hostCPU, "host-cpu-µs/op")
	b.ReportMetric(r.redisCPU, "redis-cpu-µs/op")
	return r
}

// hostCPU is this process's CPU time (user and system) so far.
func hostCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the CPU time every process of this machine spent so far
// (/proc/stat: user, nice, system, irq and softirq, at Linux's fixed 100
// ticks a second), and whether it could be read.
func machineCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, true
}

// redisCPU is the Redis server's CPU time (INFO cpu, user and system) so
// far: every client's work, so it is only meaningful on a quiet Redis.
func redisCPU(b *testing.B, rc redis.UniversalClient) time.Duration {
	info, err := rc.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * 1e9)
}

// directRedis issues, with go-redis, the commands the redis plugin sends
// for each operation (plugins/redis records.go, addCalls): the same
// script, keys (under a namespace of its own) and arguments. A single
// call is one EVALSHA; a write is the record's call and its global-index
// call in one pipeline; a batch is every item's calls in one pipeline.
type directRedis struct {
	c      redis.UniversalClient
	prefix string
	sha    string
}

// newDirectRedis returns a direct client in a namespace of its own.
func newDirectRedis(b *testing.B, addrs []string) *directRedis {
	b.Helper()
	src, err := os.ReadFile("../../../../plugins/redis/library.lua")
	if err != nil {
		b.Fatal(err)
	}
	// The plugin embeds library.lua verbatim (go:embed): the built-in
	// must hold this very text, or the two sides would run different
	// scripts.
	wasm, err := host.BuiltinWASM("redis")
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Contains(wasm, src) {
		b.Fatal("host/builtin/redis.wasm does not embed plugins/redis/library.lua as it is: rebuild the built-in plugins")
	}
	sum := sha1.Sum(compactLua(string(src)))
	prefix := redistest.Prefix(b, addrs...)
	opts := &redis.UniversalOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true}
	c := redis.NewUniversalClient(opts)
	b.Cleanup(func() { c.Close() })
	return &directRedis{c: c, prefix: prefix, sha: hex.EncodeToString(sum[:])}
}

// compactLua is plugins/redis's: the lines of src that are neither blank
// nor only a comment, without their indentation. The plugin sends this
// text, so Redis knows it by this SHA-1.
func compactLua(src string) []byte {
	var out []byte
	for line := range strings.SplitSeq(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

// tagKey is prefix + kind + "{" + the ID escaped as the plugin's appendTag
// does + "}".
func (d *directRedis) tagKey(kind, id string) string {
	var sb strings.Builder
	sb.WriteString(d.prefix)
	sb.WriteString(kind)
	sb.WriteByte('{')
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case 0x01:
			sb.WriteString("\x01\x01")
		case '}':
			sb.WriteString("\x01]")
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('}')
	return sb.String()
}

// The plugin's index and sweep arguments (plugins/redis main.go).
const (
	directSweepSlack = "60000"
	directNoBound    = "inf" // a record without expiry
)

// ixadd queues the global-index call of writes: "ixadd" slack, then id
// and bound for each record, on the kind's three index keys.
func (d *directRedis) ixadd(ctx context.Context, p redis.Pipeliner, ix string, ids ...string) {
	args := []any{"ixadd", directSweepSlack}
	for _, id := range ids {
		args = append(args, id, directNoBound)
	}
	p.EvalSha(ctx, d.sha, d.ixKeys(ix), args...)
}

// getState is GetAgentState as the plugin sends it: one HMGET of the
// state hash's fields v u d and the expiry e stored beside them, the
// reply decoded as the plugin decodes it.
func (d *directRedis) getState(ctx context.Context, i int) error {
	_, err := d.readState(ctx, benchAgent(i))
	return err
}

// readState is getState of one agent, returning the state; a missing one
// is an error matching host.ErrNotFound.
func (d *directRedis) readState(ctx context.Context, id string) (host.AgentState, error) {
	f, err := d.c.HMGet(ctx, d.tagKey("s:", id), "v", "u", "d", "e").Result()
	if err != nil {
		return host.AgentState{}, err
	}
	if len(f) != 4 || f[0] == nil || f[3] == nil {
		return host.AgentState{}, fmt.Errorf("agent state %q: %w (%v)", id, host.ErrNotFound, f)
	}
	version, err := strconv.ParseUint(f[0].(string), 10, 64)
	if err != nil || version == 0 {
		return host.AgentState{}, fmt.Errorf("version %v", f[0])
	}
	updated, err := strconv.ParseInt(f[1].(string), 10, 64)
	if err != nil {
		return host.AgentState{}, err
	}
	e, err := strconv.ParseInt(f[3].(string), 10, 64)
	if err != nil {
		return host.AgentState{}, err
	}
	s := host.AgentState{AgentID: id, Version: version, UpdatedAt: time.Unix(0, updated).UTC(), State: []byte(f[2].(string))}
	if e >= 0 {
		s.ExpiresAt = time.UnixMilli(e).UTC()
	}
	return s, nil
}

// queuePutState queues PutAgentState without TTL or condition as the
// plugin sends it to a single node: one "+sput" call that writes the
// state hash (ttl "p", no condition, updated_at in ns, document) and
// indexes it, the states index's keys and arguments after the record's.
func (d *directRedis) queuePutState(ctx context.Context, p redis.Pipeliner, id string, now time.Time) *redis.Cmd {
	return d.queuePutDoc(ctx, p, id, now, benchState)
}

// queuePutDoc is queuePutState with doc as the state.
func (d *directRedis) queuePutDoc(ctx context.Context, p redis.Pipeliner, id string, now time.Time, doc []byte) *redis.Cmd {
	keys := append([]string{d.tagKey("s:", id)}, d.ixKeys("{idx}:s")...)
	return p.EvalSha(ctx, d.sha, keys, "+sput", "p", "", strconv.FormatInt(now.UnixNano(), 10), doc, directSweepSlack, id, directNoBound)
}

// ixKeys are the three keys of a global index.
func (d *directRedis) ixKeys(ix string) []string {
	return []string{d.prefix + ix, d.prefix + ix + ":x", d.prefix + ix + ":t"}
}

// queueRecord queues the "sput" of a state write, without its index call.
func (d *directRedis) queueRecord(ctx context.Context, p redis.Pipeliner, id string, now time.Time, doc []byte) *redis.Cmd {
	return p.EvalSha(ctx, d.sha, []string{d.tagKey("s:", id)}, "sput", "p", "", strconv.FormatInt(now.UnixNano(), 10), doc)
}

// putStateReply checks a "sput" reply {1, version, expiry}.
func putStateReply(c *redis.Cmd) error {
	_, _, err := sputReply(c)
	return err
}

// sputReply reads a "sput" reply {1, version, expiry}: the new version
// and the expiry in Unix milliseconds, negative for none.
func sputReply(c *redis.Cmd) (version uint64, expiry int64, err error) {
	v, err := c.Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 3 || v[0].(int64) != 1 {
		return 0, 0, fmt.Errorf("sput replied %v", v)
	}
	n, ok := v[1].(int64)
	if !ok || n <= 0 {
		return 0, 0, fmt.Errorf("sput replied version %#v", v[1])
	}
	version = uint64(n)
	expiry, _ = v[2].(int64)
	return version, expiry, nil
}

// execChecked runs a pipeline and fails on any command's error.
func execChecked(ctx context.Context, p redis.Pipeliner) error {
	cmds, err := p.Exec(ctx)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (d *directRedis) putState(ctx context.Context, i int) error {
	p := d.c.Pipeline()
	c := d.queuePutState(ctx, p, benchAgent(i), time.Now())
	if err := execChecked(ctx, p); err != nil {
		return err
	}
	return putStateReply(c)
}

// putMetric is PutMetric without TTL as the plugin sends it to a single
// node: one "+mput" on the sample's key, the agent's index and expiry
// index (ttl "p", member name\0ts, the value f64 LE + labels), then the
// metrics index's keys, and its arguments for the agent.
func (d *directRedis) putMetric(ctx context.Context, i int) error {
	agent, ts := benchAgent(i), benchTS(i)
	member := appendMetricMember(nil, "cpu", ts)
	value := appendMetricValue(nil, 0.5, benchLabels)
	keys := append([]string{d.tagKey("m:", agent) + string(member), d.tagKey("mi:", agent), d.tagKey("mx:", agent)}, d.ixKeys("{idx}:m")...)
	e, err := d.c.EvalSha(ctx, d.sha, keys, "+mput", "p", member, value, directSweepSlack, agent, directNoBound).Int64()
	if err != nil || e != -1 {
		return fmt.Errorf("mput replied %d, %v", e, err)
	}
	return nil
}

// bulkPut100 is PutAgentStates of agents 0..99: the 100 record calls and
// one index call for all of them in one pipeline, one clock reading for
// the batch.
func (d *directRedis) bulkPut100(ctx context.Context, _ int) error {
	now := time.Now()
	p := d.c.Pipeline()
	var cs [100]*redis.Cmd
	ids := make([]string, len(cs))
	for i := range cs {
		ids[i] = "agent-" + strconv.Itoa(i)
		cs[i] = d.queueRecord(ctx, p, ids[i], now, benchState)
	}
	d.ixadd(ctx, p, "{idx}:s", ids...)
	if err := execChecked(ctx, p); err != nil {
		return err
	}
	for _, c := range cs {
		if err := putStateReply(c); err != nil {
			return err
		}
	}
	return nil
}

// appendMetricMember is the plugin's appendMember: name, NUL, then 16 hex
// digits of the Unix nanoseconds with the sign bit flipped.
func appendMetricMember(dst []byte, name string, ts time.Time) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, name...)
	dst = append(dst, 0)
	u := uint64(ts.UnixNano()) ^ 1<<63
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[u>>uint(shift)&0xf])
	}
	return dst
}

// appendMetricValue is the plugin's stored value: f64 little-endian, then
// the labels as a uvarint count and uvarint-length-prefixed names and
// values.
func appendMetricValue(dst []byte, v float64, labels map[string]string) []byte {
	u := math.Float64bits(v)
	dst = append(dst, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
	uv := func(n int) {
		for n >= 0x80 {
			dst = append(dst, byte(n)|0x80)
			n >>= 7
		}
		dst = append(dst, byte(n))
	}
	uv(len(labels))
	for k, v := range labels {
		uv(len(k))
		dst = append(dst, k...)
		uv(len(v))
		dst = append(dst, v...)
	}
	return dst
}

// plainRedis is the plainest go-redis code for the benchmark's data: a
// state is a string key holding the JSON document with an expiry.
type plainRedis struct {
	c      redis.UniversalClient
	prefix string
}

// plainTTL is the expiry of every plain SET EX (the Redis benchmark's and
// the plain HTTP server's).
const plainTTL = time.Hour

func newPlainRedis(b *testing.B, addrs []string) *plainRedis {
	b.Helper()
	prefix := redistest.Prefix(b, addrs...)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	b.Cleanup(func() { c.Close() })
	return &plainRedis{c: c, prefix: prefix}
}

func (p *plainRedis) key(i int) string { return p.prefix + "state:" + benchAgent(i) }

func (p *plainRedis) getState(ctx context.Context, i int) error {
	v, err := p.c.Get(ctx, p.key(i)).Bytes()
	if err != nil {
		return err
	}
	if !bytes.Equal(v, benchState) {
		return fmt.Errorf("GET %s: %q", p.key(i), v)
	}
	return nil
}

func (p *plainRedis) putState(ctx context.Context, i int) error {
	if s, err := p.c.Set(ctx, p.key(i), benchState, plainTTL).Result(); err != nil || s != "OK" {
		return fmt.Errorf("SET %s: %q, %w", p.key(i), s, err)
	}
	return nil
}

func (p *plainRedis) bulkPut100(ctx context.Context, _ int) error {
	pipe := p.c.Pipeline()
	var cmds [100]*redis.StatusCmd
	for i := range cmds {
		cmds[i] = pipe.Set(ctx, p.key(i), benchState, plainTTL)
	}
	if err := execChecked(ctx, pipe); err != nil {
		return err
	}
	for _, c := range cmds {
		if c.Val() != "OK" {
			return fmt.Errorf("SET: %q", c.Val())
		}
	}
	return nil
}
