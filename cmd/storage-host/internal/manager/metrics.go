package manager

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storage-host/storage-host/abi"
)

// metrics is the manager's Prometheus collector and the host.Observer of
// every backend it opens. Pool and Redis figures are read from the
// backends being served at each scrape.
type metrics struct {
	m *Manager

	// retiredDropped counts, by backend name, the events dropped by the
	// backends a reload replaced or removed, most of them as the backend
	// closed (events queued for a log that would not take them): the
	// counter goes on from them rather than losing what they dropped last.
	retiredMu      sync.Mutex
	retiredDropped map[string]uint64

	calls   *prometheus.HistogramVec
	traps   *prometheus.CounterVec
	reloads *prometheus.CounterVec

	open                                              *prometheus.Desc
	instances, inUse, maxInstances                    *prometheus.Desc
	redisHits, redisMisses, redisTimeouts, redisConns *prometheus.Desc
	eventsPublished, eventsDropped, subscribers       *prometheus.Desc
	eventsRefused                                     *prometheus.Desc
	subscribersDropped, expiriesWatched               *prometheus.Desc
	expiriesUnwatched                                 *prometheus.Desc
	cacheHits, cacheMisses, cacheInvalidations        *prometheus.Desc
	cacheEntries                                      *prometheus.Desc
	bufferedWrites, tickFailures                      *prometheus.Desc
	sharedBatches, sharedCalls                        *prometheus.Desc
	kvReads, kvReadFaults                             *prometheus.Desc
	redisReads, redisReadFaults                       *prometheus.Desc
	pgReads, pgReadFaults                             *prometheus.Desc

	redis *redisInfo // the Redis servers' own figures
}

func newMetrics(m *Manager) *metrics {
	backend := []string{"backend"}
	return &metrics{
		m:     m,
		redis: newRedisInfo(),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "storage_host_plugin_call_duration_seconds",
			Help:    "Time a plugin spent on one call (pool wait excluded), by backend and ABI operation.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1},
		}, []string{"backend", "op"}),
		traps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_host_plugin_traps_total",
			Help: "Plugin instances discarded because a call trapped, overran a limit or was interrupted.",
		}, backend),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_host_reloads_total",
			Help: "Configuration reloads, by result (ok, failed).",
		}, []string{"result"}),
		open:          prometheus.NewDesc("storage_host_backend_open", "1 when the backend is open, 0 while it waits to open again after failing to.", backend, nil),
		instances:     prometheus.NewDesc("storage_host_pool_instances", "Plugin instances alive.", backend, nil),
		inUse:         prometheus.NewDesc("storage_host_pool_instances_in_use", "Plugin instances serving a call.", backend, nil),
		maxInstances:  prometheus.NewDesc("storage_host_pool_instances_max", "Most plugin instances the backend may run.", backend, nil),
		redisHits:     prometheus.NewDesc("storage_host_redis_pool_hits_total", "Times a free Redis connection was found in the pool.", backend, nil),
		redisMisses:   prometheus.NewDesc("storage_host_redis_pool_misses_total", "Times no free Redis connection was in the pool.", backend, nil),
		redisTimeouts: prometheus.NewDesc("storage_host_redis_pool_timeouts_total", "Times waiting for a Redis connection timed out.", backend, nil),
		redisConns:    prometheus.NewDesc("storage_host_redis_pool_connections", "Redis connections, by state (total, idle, stale_closed).", []string{"backend", "state"}, nil),

		eventsPublished:    prometheus.NewDesc("storage_host_events_published_total", "Events appended to the backend's event log by this host.", backend, nil),
		eventsDropped:      prometheus.NewDesc("storage_host_events_dropped_total", "Events dropped: the append queue was full or the log refused them.", backend, nil),
		eventsRefused:      prometheus.NewDesc("storage_host_events_refused_total", "Of the dropped events, those the log refused for good (an error reply of Redis's, not an outage).", backend, nil),
		subscribers:        prometheus.NewDesc("storage_host_event_subscribers", "Event subscriptions open on this host.", backend, nil),
		subscribersDropped: prometheus.NewDesc("storage_host_event_subscribers_disconnected_total", "Subscriptions ended because their buffer filled (slow subscribers).", backend, nil),
		expiriesWatched:    prometheus.NewDesc("storage_host_expiries_watched", "Records written by this host whose expiry it will publish as an event.", backend, nil),
		expiriesUnwatched:  prometheus.NewDesc("storage_host_expiries_unwatched_total", "Writes with an expiry past the watch's bound: their expiry publishes no event.", backend, nil),
		cacheHits:          prometheus.NewDesc("storage_host_cache_hits_total", "Agent-state and alert reads served by the read cache.", backend, nil),
		cacheMisses:        prometheus.NewDesc("storage_host_cache_misses_total", "Agent-state and alert reads the read cache sent to the backend.", backend, nil),
		cacheInvalidations: prometheus.NewDesc("storage_host_cache_invalidations_total", "Read-cache entries dropped by events of writes (on any host).", backend, nil),
		cacheEntries:       prometheus.NewDesc("storage_host_cache_entries", "Records in the read cache.", backend, nil),
		bufferedWrites:     prometheus.NewDesc("storage_host_buffered_writes", "Writes the backend acknowledged into its fallback buffer that have not yet reached its store.", backend, nil),
		tickFailures:       prometheus.NewDesc("storage_host_tick_failures_total", "Ticks (the host's background calls into a plugin) that failed.", backend, nil),
		sharedBatches:      prometheus.NewDesc("storage_host_shared_batches_total", "Batches that carried the single operations of callers who found every slot taken (one call or batch runs per CPU).", backend, nil),
		sharedCalls:        prometheus.NewDesc("storage_host_shared_calls_total", "Single operations carried by shared batches.", backend, nil),
		kvReads:            prometheus.NewDesc("storage_host_kv_reads_total", "Gets answered from the backend's kv store without entering its plugin, as the plugin declared (ABI 1.8 kv reads).", backend, nil),
		kvReadFaults:       prometheus.NewDesc("storage_host_kv_read_faults_total", "Declared kv reads whose entry did not hold the record; the plugin served them.", backend, nil),
		redisReads:         prometheus.NewDesc("storage_host_redis_reads_total", "Gets answered with a Redis read of the host's own without entering the backend's plugin, as the plugin declared (ABI 1.9 redis reads).", backend, nil),
		redisReadFaults:    prometheus.NewDesc("storage_host_redis_read_faults_total", "Declared redis reads whose hash did not hold the record in the declared layout; the plugin served them.", backend, nil),
		pgReads:            prometheus.NewDesc("storage_host_pg_reads_total", "Gets answered with a statement the host ran itself without entering the backend's plugin, as the plugin declared (ABI 1.9 postgres reads).", backend, nil),
		pgReadFaults:       prometheus.NewDesc("storage_host_pg_read_faults_total", "Declared postgres reads whose answer was not the row of the record; the plugin served them.", backend, nil),
	}
}

// PluginCall implements host.Observer.
func (x *metrics) PluginCall(backend string, op abi.Op, took time.Duration, _ error, trapped bool) {
	x.calls.WithLabelValues(backend, op.String()).Observe(took.Seconds())
	if trapped {
		x.traps.WithLabelValues(backend).Inc()
	}
}

func (x *metrics) reloaded(ok bool) {
	if x == nil {
		return
	}
	if ok {
		x.reloads.WithLabelValues("ok").Inc()
	} else {
		x.reloads.WithLabelValues("failed").Inc()
	}
}

// Describe implements prometheus.Collector.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	x.calls.Describe(ch)
	x.traps.Describe(ch)
	x.reloads.Describe(ch)
	for _, d := range []*prometheus.Desc{x.open, x.instances, x.inUse, x.maxInstances, x.redisHits, x.redisMisses, x.redisTimeouts, x.redisConns,
		x.eventsPublished, x.eventsDropped, x.eventsRefused, x.subscribers, x.subscribersDropped, x.expiriesWatched, x.expiriesUnwatched,
		x.cacheHits, x.cacheMisses, x.cacheInvalidations, x.cacheEntries, x.bufferedWrites, x.tickFailures, x.sharedBatches, x.sharedCalls, x.kvReads, x.kvReadFaults, x.redisReads, x.redisReadFaults, x.pgReads, x.pgReadFaults} {
		ch <- d
	}
	x.redis.describe(ch)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// retired counts what b, replaced or removed by a reload and now closed,
// dropped.
func (x *metrics) retired(b *backend) {
	n := b.store.Stats().Events.Dropped
	if n == 0 {
		return
	}
	x.retiredMu.Lock()
	defer x.retiredMu.Unlock()
	if x.retiredDropped == nil {
		x.retiredDropped = map[string]uint64{}
	}
	x.retiredDropped[b.def.Name] += n
}

// Collect implements prometheus.Collector.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	x.calls.Collect(ch)
	x.traps.Collect(ch)
	x.reloads.Collect(ch)
	bs := x.m.backends()
	x.redis.collect(ch, bs)
	x.retiredMu.Lock()
	retired := maps.Clone(x.retiredDropped)
	x.retiredMu.Unlock()
	for name, n := range retired {
		if !slices.ContainsFunc(bs, func(b *backend) bool { return b.def.Name == name }) {
			ch <- prometheus.MustNewConstMetric(x.eventsDropped, prometheus.CounterValue, float64(n), name)
		}
	}
	for _, b := range bs {
		name := b.def.Name
		ch <- prometheus.MustNewConstMetric(x.open, prometheus.GaugeValue, float64(boolInt(b.store != nil)), name)
		if b.store == nil {
			continue
		}
		st := b.store.Stats()
		ch <- prometheus.MustNewConstMetric(x.instances, prometheus.GaugeValue, float64(st.Instances), name)
		ch <- prometheus.MustNewConstMetric(x.inUse, prometheus.GaugeValue, float64(st.InUse), name)
		ch <- prometheus.MustNewConstMetric(x.maxInstances, prometheus.GaugeValue, float64(st.MaxInstances), name)
		ch <- prometheus.MustNewConstMetric(x.eventsPublished, prometheus.CounterValue, float64(st.Events.Published), name)
		ch <- prometheus.MustNewConstMetric(x.eventsDropped, prometheus.CounterValue, float64(st.Events.Dropped+retired[name]), name)
		ch <- prometheus.MustNewConstMetric(x.eventsRefused, prometheus.CounterValue, float64(st.Events.Refused), name)
		ch <- prometheus.MustNewConstMetric(x.subscribers, prometheus.GaugeValue, float64(st.Events.Subscribers), name)
		ch <- prometheus.MustNewConstMetric(x.subscribersDropped, prometheus.CounterValue, float64(st.Events.Disconnected), name)
		ch <- prometheus.MustNewConstMetric(x.expiriesWatched, prometheus.GaugeValue, float64(st.ExpiriesWatched), name)
		ch <- prometheus.MustNewConstMetric(x.expiriesUnwatched, prometheus.CounterValue, float64(st.ExpiriesUnwatched), name)
		if b.store.Metadata().Features.Has(abi.FeatureBatch) {
			ch <- prometheus.MustNewConstMetric(x.sharedBatches, prometheus.CounterValue, float64(st.SharedBatches), name)
			ch <- prometheus.MustNewConstMetric(x.sharedCalls, prometheus.CounterValue, float64(st.SharedCalls), name)
		}
		if len(b.store.Metadata().KVReads) > 0 {
			ch <- prometheus.MustNewConstMetric(x.kvReads, prometheus.CounterValue, float64(st.KVReads), name)
			ch <- prometheus.MustNewConstMetric(x.kvReadFaults, prometheus.CounterValue, float64(st.KVReadFaults), name)
		}
		if len(b.store.Metadata().RedisReads) > 0 {
			ch <- prometheus.MustNewConstMetric(x.redisReads, prometheus.CounterValue, float64(st.RedisReads), name)
			ch <- prometheus.MustNewConstMetric(x.redisReadFaults, prometheus.CounterValue, float64(st.RedisReadFaults), name)
		}
		if len(b.store.Metadata().PGReads) > 0 {
			ch <- prometheus.MustNewConstMetric(x.pgReads, prometheus.CounterValue, float64(st.PGReads), name)
			ch <- prometheus.MustNewConstMetric(x.pgReadFaults, prometheus.CounterValue, float64(st.PGReadFaults), name)
		}
		if b.store.Metadata().Features.Has(abi.FeatureTick) {
			ch <- prometheus.MustNewConstMetric(x.bufferedWrites, prometheus.GaugeValue, float64(st.BufferedWrites), name)
			ch <- prometheus.MustNewConstMetric(x.tickFailures, prometheus.CounterValue, float64(st.TickFailures), name)
		}
		if b.def.Config.Cache.Entries > 0 {
			ch <- prometheus.MustNewConstMetric(x.cacheHits, prometheus.CounterValue, float64(st.Cache.Hits), name)
			ch <- prometheus.MustNewConstMetric(x.cacheMisses, prometheus.CounterValue, float64(st.Cache.Misses), name)
			ch <- prometheus.MustNewConstMetric(x.cacheInvalidations, prometheus.CounterValue, float64(st.Cache.Invalidations), name)
			ch <- prometheus.MustNewConstMetric(x.cacheEntries, prometheus.GaugeValue, float64(st.Cache.Entries), name)
		}
		if r := st.Redis; r != nil {
			ch <- prometheus.MustNewConstMetric(x.redisHits, prometheus.CounterValue, float64(r.Hits), name)
			ch <- prometheus.MustNewConstMetric(x.redisMisses, prometheus.CounterValue, float64(r.Misses), name)
			ch <- prometheus.MustNewConstMetric(x.redisTimeouts, prometheus.CounterValue, float64(r.Timeouts), name)
			ch <- prometheus.MustNewConstMetric(x.redisConns, prometheus.GaugeValue, float64(r.TotalConns), name, "total")
			ch <- prometheus.MustNewConstMetric(x.redisConns, prometheus.GaugeValue, float64(r.IdleConns), name, "idle")
			ch <- prometheus.MustNewConstMetric(x.redisConns, prometheus.GaugeValue, float64(r.StaleConns), name, "stale_closed")
		}
	}
}
