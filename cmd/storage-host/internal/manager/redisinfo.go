package manager

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storage-host/storage-host/host/redisbridge"
)

// redisInfo turns what each Redis-backed backend's servers say of
// themselves (INFO, SLOWLOG LEN: host.Store.RedisInfo, cached a second)
// into metrics named as redis_exporter names them, labelled by backend and
// node address (every master and replica of a cluster).
type redisInfo struct {
	up, info, uptime                       *prometheus.Desc
	clients, blocked, rejected             *prometheus.Desc
	memUsed, memMax                        *prometheus.Desc
	evicted, expired                       *prometheus.Desc
	commands, ops                          *prometheus.Desc
	hits, misses                           *prometheus.Desc
	slaves, replOffset, slaveOffset, slLag *prometheus.Desc
	masterLink, loading, slowlog           *prometheus.Desc
	dbKeys, dbExpiring                     *prometheus.Desc
}

// infoField maps a numeric INFO field to a metric.
type infoField struct {
	desc  func(*redisInfo) *prometheus.Desc
	field string
	kind  prometheus.ValueType
}

var infoFields = []infoField{
	{func(r *redisInfo) *prometheus.Desc { return r.uptime }, "uptime_in_seconds", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.clients }, "connected_clients", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.blocked }, "blocked_clients", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.rejected }, "rejected_connections", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.memUsed }, "used_memory", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.memMax }, "maxmemory", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.evicted }, "evicted_keys", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.expired }, "expired_keys", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.commands }, "total_commands_processed", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.ops }, "instantaneous_ops_per_sec", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.hits }, "keyspace_hits", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.misses }, "keyspace_misses", prometheus.CounterValue},
	{func(r *redisInfo) *prometheus.Desc { return r.slaves }, "connected_slaves", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.replOffset }, "master_repl_offset", prometheus.GaugeValue},
	{func(r *redisInfo) *prometheus.Desc { return r.loading }, "loading", prometheus.GaugeValue},
}

func newRedisInfo() *redisInfo {
	node := []string{"backend", "addr"}
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), node...), extra...), nil)
	}
	slave := []string{"slave_ip", "slave_port", "slave_state"}
	return &redisInfo{
		up:          d("redis_up", "Whether the node answered INFO at the last reading (1) or not (0)."),
		info:        d("redis_instance_info", "Always 1; the node's role, version and mode in labels.", "role", "redis_version", "redis_mode"),
		uptime:      d("redis_uptime_in_seconds", "Seconds since the node started."),
		clients:     d("redis_connected_clients", "Client connections, replicas' excluded."),
		blocked:     d("redis_blocked_clients", "Clients waiting in a blocking command."),
		rejected:    d("redis_rejected_connections_total", "Connections refused because of maxclients."),
		memUsed:     d("redis_memory_used_bytes", "Memory the node's allocator holds (used_memory)."),
		memMax:      d("redis_memory_max_bytes", "maxmemory; 0 when unbounded."),
		evicted:     d("redis_evicted_keys_total", "Keys evicted because of maxmemory."),
		expired:     d("redis_expired_keys_total", "Keys deleted because their TTL passed."),
		commands:    d("redis_commands_processed_total", "Commands the node has processed."),
		ops:         d("redis_instantaneous_ops_per_sec", "Commands per second, as the node samples them."),
		hits:        d("redis_keyspace_hits_total", "Key lookups that found their key."),
		misses:      d("redis_keyspace_misses_total", "Key lookups that did not find their key."),
		slaves:      d("redis_connected_slaves", "Replicas connected to the node."),
		replOffset:  d("redis_master_repl_offset", "The node's replication offset; a replica's lag in bytes is this minus its redis_connected_slave_offset_bytes."),
		slaveOffset: d("redis_connected_slave_offset_bytes", "Replication offset a connected replica has acknowledged.", slave...),
		slLag:       d("redis_connected_slave_lag_seconds", "Seconds since a connected replica last acknowledged.", slave...),
		masterLink:  d("redis_master_link_up", "On a replica: whether its link to its master is up."),
		loading:     d("redis_loading_dump_file", "Whether the node is loading its dataset (and answering LOADING)."),
		slowlog:     d("redis_slowlog_length", "Entries in the node's slow log."),
		dbKeys:      d("redis_db_keys", "Keys in a database.", "db"),
		dbExpiring:  d("redis_db_keys_expiring", "Keys with a TTL in a database.", "db"),
	}
}

func (r *redisInfo) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{r.up, r.info, r.uptime, r.clients, r.blocked, r.rejected, r.memUsed, r.memMax,
		r.evicted, r.expired, r.commands, r.ops, r.hits, r.misses, r.slaves, r.replOffset, r.slaveOffset, r.slLag,
		r.masterLink, r.loading, r.slowlog, r.dbKeys, r.dbExpiring} {
		ch <- d
	}
}

// collect reads every Redis-backed backend at once, so a scrape waits at
// most redisbridge.InfoTimeout for them all.
func (r *redisInfo) collect(ch chan<- prometheus.Metric, bs []*backend) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, b := range bs {
		if b.def.Config.Redis == nil || b.store == nil {
			continue
		}
		wg.Go(func() {
			for _, n := range b.store.RedisInfo(ctx) {
				r.node(ch, b.def.Name, n)
			}
		})
	}
	wg.Wait()
}

// node sends one node's metrics.
func (r *redisInfo) node(ch chan<- prometheus.Metric, backend string, n redisbridge.NodeInfo) {
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{backend, n.Addr}, extra...)...)
	}
	if n.Fields == nil {
		gauge(r.up, 0)
		return
	}
	gauge(r.up, 1)
	f := n.Fields
	gauge(r.info, 1, f["role"], f["redis_version"], f["redis_mode"])
	for _, x := range infoFields {
		if v, err := strconv.ParseFloat(f[x.field], 64); err == nil {
			ch <- prometheus.MustNewConstMetric(x.desc(r), x.kind, v, backend, n.Addr)
		}
	}
	if f["role"] == "slave" {
		gauge(r.masterLink, boolFloat(f["master_link_status"] == "up"))
	}
	if n.SlowlogLen >= 0 {
		gauge(r.slowlog, float64(n.SlowlogLen))
	}
	for k, v := range f {
		switch {
		case len(k) > 5 && strings.HasPrefix(k, "slave") && k[5] >= '0' && k[5] <= '9':
			// slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0
			kv := infoPairs(v)
			labels := []string{kv["ip"], kv["port"], kv["state"]}
			if off, err := strconv.ParseFloat(kv["offset"], 64); err == nil {
				gauge(r.slaveOffset, off, labels...)
			}
			if lag, err := strconv.ParseFloat(kv["lag"], 64); err == nil {
				gauge(r.slLag, lag, labels...)
			}
		case strings.HasPrefix(k, "db") && strings.Contains(v, "keys="):
			// db0:keys=12,expires=3,avg_ttl=0
			kv := infoPairs(v)
			if keys, err := strconv.ParseFloat(kv["keys"], 64); err == nil {
				gauge(r.dbKeys, keys, k)
			}
			if exp, err := strconv.ParseFloat(kv["expires"], 64); err == nil {
				gauge(r.dbExpiring, exp, k)
			}
		}
	}
}

// infoPairs splits INFO's "a=1,b=2" values.
func infoPairs(v string) map[string]string {
	m := map[string]string{}
	for p := range strings.SplitSeq(v, ",") {
		if k, x, ok := strings.Cut(p, "="); ok {
			m[k] = x
		}
	}
	return m
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
