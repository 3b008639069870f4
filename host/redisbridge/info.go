package redisbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
)

// The server's own figures (INFO, SLOWLOG LEN) are read on the host's
// connection of the configured rights (Client), never the scripts user's:
// that one is confined to data commands, and INFO and SLOWLOG are not.
// Every node is read: the master of a single node or Sentinel setup, every
// master and replica of a cluster. Readings are cached for InfoMaxAge, so
// however often metrics are scraped or readiness probed, each node sees at
// most one INFO and one SLOWLOG LEN a second from each bridge, each bound
// by InfoTimeout.

// InfoMaxAge is how long ServerInfo's reading is reused.
const InfoMaxAge = time.Second

// InfoTimeout bounds one reading of every node's INFO.
const InfoTimeout = time.Second

// NodeInfo is what one Redis server says of itself.
type NodeInfo struct {
	// Addr is the node's host:port.
	Addr string
	// Fields are INFO's fields by name, from every default section
	// (server, clients, memory, stats, replication, keyspace, ...); nil
	// when Err is set.
	Fields map[string]string
	// SlowlogLen is SLOWLOG LEN's answer, or -1 when the configured user
	// may not run it.
	SlowlogLen int64
	// Err is why the node could not be read (unreachable, LOADING is not
	// one: Redis answers INFO while loading).
	Err error
}

// infoCache holds a bridge's last reading.
type infoCache struct {
	mu    sync.Mutex // held while reading, so concurrent callers share one reading
	at    time.Time
	nodes []NodeInfo
	// evicted is each master's evicted_keys at the last reading, for
	// noteEvicted; logged is whether the eviction policy was last logged
	// as set.
	evicted map[string]int64
	logged  bool

	master atomic.Pointer[string] // a Sentinel setup's master, as last dialled
}

// ServerInfo returns every node's INFO, read at most InfoMaxAge ago. A
// node that cannot be read has Err set; so does a single placeholder
// entry when not even a cluster's nodes are known.
func (b *Bridge) ServerInfo(ctx context.Context) []NodeInfo {
	c := &b.info
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes != nil && time.Since(c.at) < InfoMaxAge {
		return c.nodes
	}
	ctx, cancel := context.WithTimeout(ctx, InfoTimeout)
	defer cancel()
	c.nodes, c.at = b.readInfo(ctx), time.Now()
	b.noteEviction(c.nodes)
	b.noteEvicted(c.nodes)
	b.noteFull(c.nodes)
	b.noteScripts(c.nodes)
	return c.nodes
}

// noteEviction keeps, from a reading of nodes, why a master the backend
// writes to would evict keys, or nil when none would; a reading without
// every node's figures leaves what it knew.
// The change is logged (Config.Logger) as it is seen: a Redis set to evict
// while the backend runs drops keys from its first write past maxmemory,
// before any reading can stop the backend's writes.
func (b *Bridge) noteEviction(nodes []NodeInfo) {
	for _, n := range nodes {
		if reason := evicts(n.Fields); reason != "" {
			why := fmt.Sprintf("redis %s: %s", n.Addr, reason)
			b.evicting.Store(&why)
			if !b.info.logged {
				b.info.logged = true
				b.log.Error("Redis is set to evict keys: the backend's writes are refused (or buffered) and it is not ready until maxmemory-policy is noeviction again; records Redis evicts are lost (README.md, \"Where the data lives, and what survives what\")", "reason", why)
			}
			return
		}
	}
	for _, n := range nodes {
		if n.Fields == nil {
			return
		}
	}
	b.evicting.Store(nil)
	if b.info.logged {
		b.info.logged = false
		b.log.Info("Redis no longer evicts keys: the backend's writes are taken again")
	}
}

// noteEvicted logs, from a reading of nodes, the keys a master evicted
// since the reading before (its evicted_keys, which counts every database
// and prefix of the server): the backend's records may be among them, and
// nothing else tells, since Redis publishes no event of an eviction to
// the backend. A master's first reading only sets where it counts from;
// a count lower than the last (a restart, CONFIG RESETSTAT) counts from
// zero.
func (b *Bridge) noteEvicted(nodes []NodeInfo) {
	c := &b.info
	for _, n := range nodes {
		if n.Fields == nil || n.Fields["role"] == "slave" {
			continue
		}
		now := infoInt(n.Fields, "evicted_keys")
		before, seen := c.evicted[n.Addr]
		if c.evicted == nil {
			c.evicted = map[string]int64{}
		}
		c.evicted[n.Addr] = now
		if seen && now < before {
			before = 0
		}
		if seen && now > before {
			b.log.Error("Redis evicted keys: the backend's records among them are lost, without an event", "redis", n.Addr, "evicted", now-before, "maxmemory_policy", n.Fields["maxmemory_policy"])
		}
	}
}

// noteFull keeps, from a reading of nodes, why a master is past its
// maxmemory with noeviction, or nil when none is; a reading without every
// node's figures leaves what it knew.
func (b *Bridge) noteFull(nodes []NodeInfo) {
	for _, n := range nodes {
		if n.Fields == nil {
			return
		}
	}
	for _, n := range nodes {
		if reason := pastMaxmemory(n.Fields); reason != "" {
			why := fmt.Sprintf("redis %s: %s", n.Addr, reason)
			b.full.Store(&why)
			return
		}
	}
	b.full.Store(nil)
}

// noteScripts keeps, from a reading of nodes, why a master's script cache
// is past the bridge's bound, or nil when none is; a reading without every
// node's figures leaves what it knew.
func (b *Bridge) noteScripts(nodes []NodeInfo) {
	if b.scripts == nil {
		return
	}
	for _, n := range nodes {
		if n.Fields == nil {
			return
		}
	}
	for _, n := range nodes {
		// Redis 7 names the figure used_memory_scripts_eval, 6
		// used_memory_scripts (Lua's functions included).
		used := infoInt(n.Fields, "used_memory_scripts_eval")
		if _, ok := n.Fields["used_memory_scripts_eval"]; !ok {
			used = infoInt(n.Fields, "used_memory_scripts")
		}
		if bound := b.scriptCacheBytes.Load(); n.Fields["role"] != "slave" && used > bound {
			why := fmt.Sprintf("redis %s: its script cache holds %d bytes, past the %d a script may be added to (Redis keeps every script it is sent until SCRIPT FLUSH)", n.Addr, used, bound)
			b.scriptsFull.Store(&why)
			return
		}
	}
	b.scriptsFull.Store(nil)
}

// watchEviction reads the servers' figures every InfoMaxAge until the
// bridge closes, so that Do refuses writes within a second of Redis
// being set to evict, and takes them again as soon after it no longer is.
func (b *Bridge) watchEviction() {
	defer close(b.watched)
	t := time.NewTicker(InfoMaxAge)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.closing
		cancel()
	}()
	for {
		b.ServerInfo(ctx)
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
	}
}

func (b *Bridge) readInfo(ctx context.Context) []NodeInfo {
	cc, ok := b.infoClient.(*redis.ClusterClient)
	if !ok {
		n := readNode(ctx, b.infoClient, "")
		n.Addr = b.addr() // after the reading: a Sentinel setup's client may have dialled a new master
		return []NodeInfo{n}
	}
	var (
		mu    sync.Mutex
		nodes []NodeInfo
	)
	err := cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		ni := readNode(ctx, n, n.Options().Addr)
		mu.Lock()
		nodes = append(nodes, ni)
		mu.Unlock()
		return nil
	})
	if len(nodes) == 0 && err != nil {
		return []NodeInfo{{Addr: strings.Join(cc.Options().Addrs, ","), SlowlogLen: -1, Err: err}}
	}
	return nodes
}

// readNode reads one node's INFO and SLOWLOG LEN.
func readNode(ctx context.Context, c redis.UniversalClient, addr string) NodeInfo {
	ni := NodeInfo{Addr: addr, SlowlogLen: -1}
	text, err := c.Info(ctx).Result()
	if err != nil {
		ni.Err = err
		return ni
	}
	ni.Fields = parseInfo(text)
	if n, err := c.Do(ctx, "slowlog", "len").Int64(); err == nil {
		ni.SlowlogLen = n
	}
	return ni
}

// parseInfo splits INFO's "name:value" lines; section headers and blank
// lines are skipped.
func parseInfo(text string) map[string]string {
	m := make(map[string]string, 256)
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// addr names the node of a single-node or Sentinel client: the configured
// address, or the master a Sentinel setup last dialled.
func (b *Bridge) addr() string {
	o := b.infoClient.(*redis.Client).Options()
	if b.masterName == "" {
		return o.Addr
	}
	if a := b.info.master.Load(); a != nil {
		return *a
	}
	return "sentinel master " + b.masterName
}

// masterDials is the hook of a Sentinel setup's host client that remembers
// the address of the master it last connected to.
type masterDials struct{ c *infoCache }

func (h masterDials) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			a := conn.RemoteAddr().String()
			h.c.master.Store(&a)
		}
		return conn, err
	}
}

func (masterDials) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (masterDials) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Ready reports whether Redis can take the backend's writes and keep
// them: every node the backend writes to answers PING (Ping), is not
// loading its dataset, does not evict keys (a maxmemory with a policy
// other than noeviction, under which Redis drops records it answered as
// written), and, with noeviction, has room under maxmemory (else it
// answers OOM to every write). The error is UNAVAILABLE and names the
// node: "redis 127.0.0.1:6379: connection refused".
func (b *Bridge) Ready(ctx context.Context) error {
	if err := b.Ping(ctx); err != nil {
		return err
	}
	var errs []error
	_, cluster := b.infoClient.(*redis.ClusterClient)
	for _, n := range b.ServerInfo(ctx) {
		reason := unready(n.Fields)
		if reason == "" && !cluster && n.Fields["role"] == "slave" {
			// The one node the backend writes to (a Cluster's replicas
			// are read beside its masters) was made a replica: Redis
			// refuses every write.
			reason = fmt.Sprintf("READONLY it is a replica of %s:%s: writes are refused", n.Fields["master_host"], n.Fields["master_port"])
		}
		if reason != "" {
			errs = append(errs, fmt.Errorf("redis %s: %s", n.Addr, reason))
		}
	}
	if len(errs) > 0 {
		return abi.Errorf(abi.StatusUnavailable, "%v", errors.Join(errs...))
	}
	return nil
}

// unready says why a node whose INFO is f cannot take writes, or "".
func unready(f map[string]string) string {
	if f == nil || f["role"] == "slave" {
		return ""
	}
	if f["loading"] == "1" {
		return "LOADING Redis is loading the dataset in memory"
	}
	if reason := evicts(f); reason != "" {
		return reason
	}
	return pastMaxmemory(f)
}

// pastMaxmemory says how a master whose INFO is f is past its maxmemory
// with noeviction, so that Redis refuses writes, or "".
func pastMaxmemory(f map[string]string) string {
	if f == nil || f["role"] == "slave" {
		return ""
	}
	limit := infoInt(f, "maxmemory")
	if limit > 0 && f["maxmemory_policy"] == "noeviction" {
		if used := infoInt(f, "used_memory") - infoInt(f, "mem_not_counted_for_evict"); used > limit {
			return fmt.Sprintf("OOM: used memory %d bytes over maxmemory %d with maxmemory-policy noeviction: writes are refused", used, limit)
		}
	}
	return ""
}

// evicts says how a master whose INFO is f would drop keys at its
// maxmemory, or "": with a maxmemory and any policy but noeviction
// (volatile-* ones too, since records carry TTLs), Redis makes room by
// deleting keys, records it answered as written among them.
func evicts(f map[string]string) string {
	policy := f["maxmemory_policy"]
	if f == nil || f["role"] == "slave" || infoInt(f, "maxmemory") <= 0 || policy == "" || policy == "noeviction" {
		return ""
	}
	return fmt.Sprintf("maxmemory-policy %s evicts keys at maxmemory %s bytes: records answered as written can be dropped; set maxmemory-policy noeviction", policy, f["maxmemory"])
}

// Evicting says, for the first node the backend writes to that would
// evict keys, why, naming the node; "" when none would or none answered.
// While one would, Do refuses every request that may write.
func (b *Bridge) Evicting(ctx context.Context) string {
	b.ServerInfo(ctx)
	if why := b.evicting.Load(); why != nil {
		return *why
	}
	return ""
}

// lazyFreeSettings make Redis free what a command removes in a thread of
// its own: a value overwritten or renamed over (server-del), one past its
// expiry (expire), one a script deletes (user-del). Redis frees a value
// in the thread every client waits on otherwise, one allocation at a
// time: a set of two million members, overwritten by a SET or given an
// expiry in the past, held Redis for 1.1 s and 0.5 s.
var lazyFreeSettings = []string{"lazyfree-lazy-server-del", "lazyfree-lazy-expire", "lazyfree-lazy-user-del"}

// FreesInline names, for the first node found so, the lazyFreeSettings
// that are off on the backend's Redis: what a plugin overwrites, lets
// expire, or deletes from a script is freed in Redis's main thread, so
// that a plugin that keeps a collection of millions of members can stall
// every client of the server for a second. "" when they are all on, or
// cannot be read (a user without CONFIG).
func (b *Bridge) FreesInline(ctx context.Context) string {
	return b.firstNode(ctx, func(ctx context.Context, c redis.UniversalClient) string {
		got, err := c.ConfigGet(ctx, "lazyfree-*").Result()
		if err != nil {
			return ""
		}
		var off []string
		for _, name := range lazyFreeSettings {
			if v, ok := got[name]; ok && v != "yes" {
				off = append(off, name+" "+v)
			}
		}
		return strings.Join(off, ", ")
	})
}

// RepliesUnbounded says, for the first node found so, that the backend's
// Redis bounds no client's replies: neither a hard limit of the normal
// clients' output buffers (client-output-buffer-limit normal) nor
// maxmemory-clients. Redis builds a reply whole before it sends any of
// it, and a reply can be many times what Redis stores (a stream stores a
// field's name once for up to a hundred entries, and answers it with
// each: one XRANGE of 10 000 entries read 13 MB out of 0.3 MB stored),
// so the bridge's bound on what it reads back does not bound Redis's
// memory; those settings do, closing the client instead. "" when one is
// set, or they cannot be read.
func (b *Bridge) RepliesUnbounded(ctx context.Context) string {
	return b.firstNode(ctx, func(ctx context.Context, c redis.UniversalClient) string {
		limits, err := c.ConfigGet(ctx, "client-output-buffer-limit").Result()
		if err != nil {
			return ""
		}
		f := strings.Fields(limits["client-output-buffer-limit"])
		i := slices.Index(f, "normal")
		if i < 0 || i+1 >= len(f) || f[i+1] != "0" {
			return ""
		}
		if clients, err := c.ConfigGet(ctx, "maxmemory-clients").Result(); err == nil {
			if v, ok := clients["maxmemory-clients"]; ok && v != "0" {
				return ""
			}
		}
		return "client-output-buffer-limit normal " + strings.Join(f[i+1:min(i+4, len(f))], " ") + ", maxmemory-clients 0"
	})
}

// firstNode runs check on the backend's Redis, or on every master of its
// cluster, and answers the first thing check found, "redis ADDR: " and
// what it answered; "" when it found nothing anywhere.
func (b *Bridge) firstNode(ctx context.Context, check func(context.Context, redis.UniversalClient) string) string {
	found := func(ctx context.Context, c redis.UniversalClient, addr string) string {
		if why := check(ctx, c); why != "" {
			return fmt.Sprintf("redis %s: %s", addr, why)
		}
		return ""
	}
	cc, ok := b.infoClient.(*redis.ClusterClient)
	if !ok {
		return found(ctx, b.infoClient, b.addr())
	}
	var (
		mu    sync.Mutex
		first string
	)
	_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if why := found(ctx, n, n.Options().Addr); why != "" {
			mu.Lock()
			if first == "" {
				first = why
			}
			mu.Unlock()
		}
		return nil
	})
	return first
}

func infoInt(f map[string]string, name string) int64 {
	n, _ := strconv.ParseInt(f[name], 10, 64)
	return n
}

// Ping sends PING to Redis (every master of a cluster) and reports
// UNAVAILABLE, naming the node, if one does not answer.
func (b *Bridge) Ping(ctx context.Context) error {
	var err error
	if c, ok := b.client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var errs []error
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := n.Ping(ctx).Err(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("redis %s: %s", n.Options().Addr, cause(err)))
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("redis %s: %s", strings.Join(c.Options().Addrs, ","), cause(err))
		} else {
			err = errors.Join(errs...)
		}
	} else if err = b.client.Ping(ctx).Err(); err != nil {
		err = fmt.Errorf("redis %s: %s", b.addr(), cause(err))
	}
	if err != nil {
		return abi.Errorf(abi.StatusUnavailable, "%v", err)
	}
	return nil
}

// cause is err's text without what the node's address already says: a
// socket's error is its system call's ("connection refused", "i/o
// timeout"), an error reply is Redis's ("LOADING Redis is loading ...").
func cause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		inner := oe.Err
		var se *os.SyscallError
		if errors.As(inner, &se) {
			inner = se.Err
		}
		return inner.Error()
	}
	return strings.TrimPrefix(err.Error(), "redis: ")
}
