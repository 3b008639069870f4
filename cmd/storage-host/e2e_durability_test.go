package main_test

import (
	"context"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// The durability harness: writers put agent states and metrics through
// the daemon's HTTP API while Redis, the daemon and its configuration are
// killed, restarted and reloaded under them, and every write the daemon
// acknowledged (200) must be readable afterwards with its final value.

// Its shape: writers, the agent states and metric timestamps each writer
// cycles over (so that keys are overwritten and "final value" means
// something), and how long the end may take.
const (
	durWriters     = 12
	durStates      = 4  // agent states per writer
	durSamples     = 40 // metric samples per writer
	durDrainWithin = 20 * time.Second
)

// durKey is one record the writers write: an agent state (sample < 0) or
// one metric sample of its agent.
type durKey struct {
	agent  string
	sample int
}

// durKeyLog is what is known of one key: the value of the last write
// acknowledged, and the values of the writes after it whose outcome is
// unknown (refused, or cut off). Each key has one writer, which writes it
// one request at a time, so its final value is the last acknowledged one
// or one of those.
type durKeyLog struct {
	acked bool
	last  int
	maybe []int
}

// durLoad is the writers and what they were told.
type durLoad struct {
	t    *testing.T
	base time.Time // the timestamp of sample 0
	url  atomic.Pointer[string]
	stop chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	keys map[durKey]*durKeyLog

	acks, unknown atomic.Int64
	outage        atomic.Bool  // Redis is down
	outageAcks    atomic.Int64 // acknowledged while Redis was down
	ackedNow      chan struct{}
}

// startDurLoad starts the writers on the daemon at url.
func startDurLoad(t *testing.T, url string) *durLoad {
	l := &durLoad{t: t, base: time.Now().UTC().Truncate(time.Second).Add(-time.Hour), stop: make(chan struct{}),
		keys: make(map[durKey]*durKeyLog), ackedNow: make(chan struct{}, 1)}
	l.url.Store(&url)
	for w := range durWriters {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.write(w)
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *durLoad) write(w int) {
	client := &http.Client{Timeout: time.Minute}
	for n := 1; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		url := *l.url.Load()
		var (
			k                  durKey
			method, path, body string
		)
		if n%2 == 0 {
			k = durKey{agent: fmt.Sprintf("dur-%d-%d", w, n/2%durStates), sample: -1}
			method, path, body = "PUT", "/v1/agents/"+k.agent+"/state", fmt.Sprintf(`{"w":%d,"n":%d}`, w, n)
		} else {
			k = durKey{agent: fmt.Sprintf("dur-%d", w), sample: n / 2 % durSamples}
			method, path = "POST", "/v1/metrics"
			body = fmt.Sprintf(`{"agent_id":%q,"name":"load","value":%d,"timestamp":%q,"labels":{"w":"%d"}}`,
				k.agent, n, l.ts(k.sample).Format(time.RFC3339Nano), w)
		}
		r, err := send(client, method, url+path, body, "Content-Type", "application/json")
		ok := err == nil && r.code == http.StatusOK
		l.record(k, n, ok)
		if ok {
			select {
			case l.ackedNow <- struct{}{}:
			default:
			}
			time.Sleep(2 * time.Millisecond) // a pace, not a wait
		} else {
			time.Sleep(10 * time.Millisecond) // the daemon is down, or its buffer full
		}
	}
}

func (l *durLoad) ts(sample int) time.Time { return l.base.Add(time.Duration(sample) * time.Second) }

func (l *durLoad) record(k durKey, n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kl := l.keys[k]
	if kl == nil {
		kl = &durKeyLog{}
		l.keys[k] = kl
	}
	if ok {
		kl.acked, kl.last, kl.maybe = true, n, kl.maybe[:0]
		l.acks.Add(1)
		if l.outage.Load() {
			l.outageAcks.Add(1)
		}
		return
	}
	kl.maybe = append(kl.maybe, n)
	l.unknown.Add(1)
}

// waitAcks waits until the writers have had n more writes acknowledged.
func (l *durLoad) waitAcks(n int64, what string) {
	l.t.Helper()
	want := l.acks.Load() + n
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for l.acks.Load() < want {
		select {
		case <-l.ackedNow:
		case <-deadline.C:
			l.t.Fatalf("%s: %d of %d more writes acknowledged after %s", what, l.acks.Load()-(want-n), n, waitTimeout)
		}
	}
}

// halt stops the writers and waits for them.
func (l *durLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// acked returns the keys with an acknowledged write and what they may
// hold: the last acknowledged value first.
func (l *durLoad) acked() map[durKey][]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[durKey][]int, len(l.keys))
	for k, kl := range l.keys {
		if kl.acked {
			out[k] = append([]int{kl.last}, kl.maybe...)
		}
	}
	return out
}

// verify reads every acknowledged key through the daemon at url and
// returns how many keys it checked and how many do not hold their final
// value (lost). A read answered from a fallback buffer fails the test:
// the writes must be in the store itself.
func (l *durLoad) verify(url string) (checked, lost int) {
	l.t.Helper()
	for k, allowed := range l.acked() {
		checked++
		var r reply
		var err error
		if k.sample < 0 {
			r, err = send(http.DefaultClient, "GET", url+"/v1/agents/"+k.agent+"/state", "")
		} else {
			r, err = send(http.DefaultClient, "GET", fmt.Sprintf("%s/v1/agents/%s/metrics/load/%s", url, k.agent, l.ts(k.sample).Format(time.RFC3339Nano)), "")
		}
		require.NoError(l.t, err)
		require.Empty(l.t, r.header.Get("Storage-Stale"), "%v: read from a fallback buffer", k)
		got := -1
		if r.code == http.StatusOK {
			var doc struct {
				State struct{ N int } `json:"state"`
				Value float64         `json:"value"`
			}
			require.NoError(l.t, json.Unmarshal(r.body, &doc), "%s", r.body)
			got = doc.State.N
			if k.sample >= 0 {
				got = int(doc.Value)
			}
		}
		if !slices.Contains(allowed, got) {
			lost++
			if lost <= 5 {
				l.t.Errorf("lost: %v holds %d (HTTP %d), its last acknowledged write was %d (then unknown: %v)", k, got, r.code, allowed[0], allowed[1:])
			}
		}
	}
	return checked, lost
}

// durRedis is a daemon on a Redis of the test's own, which keeps on disk
// every write it acknowledged (appendfsync always), so that killing it
// loses nothing of its own.
type durRedis struct {
	t     *testing.T
	redis *redistest.Server
	rdb   *redis.Client
	cfg   string // the configuration file
	data  string // the daemon's data directory
}

const durPrefix = "dur:"

func newDurRedis(t *testing.T, bufferEntries int) *durRedis {
	srv := redistest.NewServer(t, "--appendonly", "yes", "--appendfsync", "always")
	s := &durRedis{t: t, redis: srv, rdb: redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1}),
		cfg: filepath.Join(t.TempDir(), "storage-host.hcl"), data: t.TempDir()}
	t.Cleanup(func() { _ = s.rdb.Close() })
	s.writeConfig(bufferEntries)
	return s
}

// writeConfig writes the daemon's configuration: one Redis backend with
// fallback=buffer, holding at most entries writes.
func (s *durRedis) writeConfig(entries int) {
	replaceFile(s.t, s.cfg, fmt.Appendf(nil, `backend "redis" {
  plugin    = "builtin:redis"
  instances = 16
  options = {
    fallback                = "buffer"
    fallback_buffer_entries = %d
    metric_ttl_seconds      = 86400
    agent_state_ttl_seconds = 86400
  }
  limits {
    call_timeout = "10s"
  }
  redis {
    addrs         = [%q]
    key_prefix    = %q
    scripts       = true
    dial_timeout  = "250ms"
    read_timeout  = "1s"
    write_timeout = "1s"
  }
}
`, entries, s.redis.Addr(), durPrefix))
}

// start starts a daemon on the configuration and data directory.
func (s *durRedis) start() *daemon {
	return startDaemon(s.t, nil, "-config", s.cfg, "-data-dir", s.data, "-watch=false")
}

// reload makes d reload its configuration (SIGHUP) and waits until it has
// for the nth time.
func (s *durRedis) reload(d *daemon, nth int) {
	d.signal(syscall.SIGHUP)
	d.waitLog(regexp.MustCompile(`configuration reloaded: trigger=SIGHUP`), nth)
}

// inRedis reports how many acknowledged keys Redis itself does not hold
// with one of their possible final values.
func (s *durRedis) missing(l *durLoad) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	missing := 0
	for k, allowed := range l.acked() {
		got := -1
		if k.sample < 0 {
			doc, err := s.rdb.HGet(ctx, durPrefix+"s:{"+k.agent+"}", "d").Bytes()
			var v struct{ N int }
			if err == nil && json.Unmarshal(doc, &v) == nil {
				got = v.N
			}
		} else {
			u := uint64(l.ts(k.sample).UnixNano()) ^ 1<<63
			b, err := s.rdb.Get(ctx, fmt.Sprintf("%sm:{%s}load\x00%016x", durPrefix, k.agent, u)).Bytes()
			if err == nil && len(b) >= 8 {
				got = int(math.Float64frombits(bin.LittleEndian.Uint64(b)))
			}
		}
		if !slices.Contains(allowed, got) {
			missing++
		}
	}
	return missing
}

// finish stops the writers, waits for the daemon d to have replayed its
// buffer into Redis with no request arriving (Redis is polled directly),
// stops d (SIGTERM), and reads every acknowledged key back through a new
// daemon with an empty data directory, hence no buffer: from Redis itself.
// It reports the counts and requires 0 lost.
func (s *durRedis) finish(name string, l *durLoad, d *daemon) {
	t := s.t
	t.Helper()
	l.halt()
	started := time.Now()
	missing := s.missing(l)
	for missing > 0 && time.Since(started) < durDrainWithin {
		time.Sleep(100 * time.Millisecond) // a bounded poll of Redis
		missing = s.missing(l)
	}
	drained := fmt.Sprintf("Redis had them all %s after the writes stopped", time.Since(started).Round(10*time.Millisecond))
	if missing > 0 {
		drained = fmt.Sprintf("Redis still lacked %d of them %s after the writes stopped", missing, durDrainWithin)
		t.Errorf("%s: %d acknowledged keys not in Redis %s after the writes stopped (no request arriving)", name, missing, durDrainWithin)
	}
	d.stop()

	v := startDaemon(t, nil, "-config", s.cfg, "-data-dir", t.TempDir(), "-watch=false")
	checked, lost := l.verify(v.url)
	t.Logf("%s: %d writes acknowledged (%d while Redis was down), %d of unknown outcome; %d keys checked in Redis through a daemon without buffer: %d lost; %s",
		name, l.acks.Load(), l.outageAcks.Load(), l.unknown.Load(), checked, lost, drained)
	require.Positive(t, l.outageAcks.Load(), "no write was acknowledged while Redis was down: the scenario tested nothing")
	require.Zero(t, lost, "%s: acknowledged writes lost", name)
	v.stop()
}

// TestDurabilityRedisOutage: the daemon's Redis backend rides out
// outages, a crash of the daemon itself and reloads with fallback=buffer,
// and loses no acknowledged write.
func TestDurabilityRedisOutage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: four daemons under load through Redis outages")
	}

	// (a) Redis is killed under load; the writes stop while it is down,
	// and it comes back: the daemon replays its buffer with no request
	// arriving.
	t.Run("redis killed", func(t *testing.T) {
		t.Parallel()
		s := newDurRedis(t, 10000)
		d := s.start()
		l := startDurLoad(t, d.url)
		l.waitAcks(300, "before the outage")
		s.redis.Stop()
		l.outage.Store(true)
		l.waitAcks(300, "during the outage")
		// The writes acknowledged during the outage are in the buffer
		// only (finish requires some): no request will replay them.
		l.halt()
		s.redis.Start()
		s.finish("redis killed", l, d)
	})

	// (b) While Redis is down, the daemon is killed (SIGKILL) and
	// restarted on the same data directory: what it had buffered is still
	// there, and replayed once Redis is back.
	t.Run("daemon killed during the outage", func(t *testing.T) {
		t.Parallel()
		s := newDurRedis(t, 10000)
		d := s.start()
		l := startDurLoad(t, d.url)
		l.waitAcks(300, "before the outage")
		s.redis.Stop()
		l.outage.Store(true)
		l.waitAcks(300, "during the outage")
		require.NoError(t, d.cmd.Process.Kill())
		d.wait()
		d = s.start()
		l.url.Store(&d.url)
		l.waitAcks(300, "during the outage, after the restart")
		l.outage.Store(false)
		s.redis.Start()
		l.waitAcks(300, "after the outage")
		s.finish("daemon killed during the outage", l, d)
	})

	// (c) While Redis is down and the buffer is full, a reload raises
	// fallback_buffer_entries, which rebuilds the backend: the buffer
	// survives the rebuild, and takes more writes.
	t.Run("reload during the outage", func(t *testing.T) {
		t.Parallel()
		const small = 400
		s := newDurRedis(t, small)
		d := s.start()
		l := startDurLoad(t, d.url)
		l.waitAcks(300, "before the outage")
		s.redis.Stop()
		l.outage.Store(true)
		l.waitAcks(small/2, "during the outage")
		s.writeConfig(100000)
		s.reload(d, 1)
		// More than the old bound: only the raised one takes them.
		l.waitAcks(2*small, "during the outage, after the reload")
		l.outage.Store(false)
		s.redis.Start()
		l.waitAcks(300, "after the outage")
		s.finish("reload during the outage", l, d)
	})

	// (d) A reload after Redis is back that raises fallback_buffer_entries,
	// while the buffer holds writes: Redis answers but takes no write
	// (CLIENT PAUSE WRITE) until the backend the reload replaced has given
	// up emptying the buffer as it closed. The writes stop before the
	// reload, so that none overwrites what was buffered: only the rebuilt
	// backend can replay it, which it does if it kept the buffer.
	t.Run("reload after the outage", func(t *testing.T) {
		t.Parallel()
		s := newDurRedis(t, 10000)
		d := s.start()
		l := startDurLoad(t, d.url)
		l.waitAcks(300, "before the outage")
		s.redis.Stop()
		l.outage.Store(true)
		l.waitAcks(600, "during the outage")
		l.outage.Store(false)
		s.redis.Start()
		redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool {
			return s.rdb.Do(t.Context(), "CLIENT", "PAUSE", time.Minute.Milliseconds(), "WRITE").Err() == nil
		}, "CLIENT PAUSE is refused")
		l.waitAcks(100, "Redis back, its writes paused")
		buffered := `storage_host_buffered_writes{backend="redis"}`
		redistest.WaitFor(t, waitTimeout, 20*time.Millisecond, func() bool { return d.metric(buffered) > 0 },
			"the buffer holds writes while Redis takes none")
		l.halt()
		s.writeConfig(20000)
		s.reload(d, 1)
		d.waitLog(regexp.MustCompile(`storage-host\.plugin\.redis: closed with buffered writes not yet applied.* pending=[1-9]`), 1)
		require.NoError(t, s.rdb.Do(t.Context(), "CLIENT", "UNPAUSE").Err())
		s.finish("reload after the outage", l, d)
	})
}

// TestDurabilityFirstRun: the daemon without a configuration file and
// without -data-dir keeps its records on disk in its default data
// directory (~/.local/share/storage-host here: no $STORAGE_HOST_DATA_DIR,
// no $XDG_DATA_HOME), which its startup line names: killed (SIGKILL) under
// load and restarted the same way, it serves every write it acknowledged.
func TestDurabilityFirstRun(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	env := []string{"STORAGE_HOST_DATA_DIR=", "XDG_DATA_HOME=", "HOME=" + home}
	data := filepath.Join(home, ".local", "share", "storage-host")
	d := startDaemon(t, env)
	require.Contains(t, d.serving, "(data: "+data+")", "the startup line names the default data directory")
	l := startDurLoad(t, d.url)
	l.waitAcks(1000, "before the kill")
	require.NoError(t, d.cmd.Process.Kill())
	d.wait()
	l.halt()
	_, err := os.Stat(filepath.Join(data, "backends"))
	require.NoError(t, err, "the records are in the default data directory")

	d = startDaemon(t, env)
	checked, lost := l.verify(d.url)
	t.Logf("zero-config, SIGKILL: %d writes acknowledged, %d of unknown outcome; %d keys checked after the restart: %d lost",
		l.acks.Load(), l.unknown.Load(), checked, lost)
	require.Positive(t, checked)
	require.Zero(t, lost)
	d.stop()
}

// TestDurabilityLocalReload: a reload that changes a plugin option of a
// builtin:local backend rebuilds it on the same data directory, and keeps
// every record; so does the restart after it.
func TestDurabilityLocalReload(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
	config := func(ttl int) []byte {
		return fmt.Appendf(nil, "backend \"local\" {\n  plugin  = \"builtin:local\"\n  options = { metric_ttl_seconds = %d }\n}\n", ttl)
	}
	require.NoError(t, os.WriteFile(cfg, config(86400), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	l := startDurLoad(t, d.url)
	l.waitAcks(500, "before the reload")
	replaceFile(t, cfg, config(172800))
	d.signal(syscall.SIGHUP)
	d.waitLog(regexp.MustCompile(`configuration reloaded: trigger=SIGHUP added=\[\] replaced=\["local"\]`), 1)
	l.waitAcks(500, "after the reload")
	l.halt()
	checked, lost := l.verify(d.url)
	t.Logf("builtin:local, reload changing an option: %d writes acknowledged, %d of unknown outcome; %d keys checked: %d lost",
		l.acks.Load(), l.unknown.Load(), checked, lost)
	require.Zero(t, lost, "after the reload")

	d.stop()
	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	checked, lost = l.verify(d.url)
	t.Logf("builtin:local, after the restart: %d keys checked: %d lost", checked, lost)
	require.Zero(t, lost, "after the restart")
	d.stop()
}
