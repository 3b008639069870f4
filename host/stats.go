package host

import (
	"context"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// Observer is told about every call into a plugin; the daemon turns these
// into metrics. Its methods run on the caller's goroutine, so they must be
// quick and safe for concurrent use.
type Observer interface {
	// PluginCall reports one call into backend's plugin: the operation,
	// how long the guest ran (pool wait excluded), and its error, nil on
	// success. A trap is reported with trapped set.
	PluginCall(backend string, op abi.Op, took time.Duration, err error, trapped bool)
}

// WithObserver sends every plugin call to o. Default: none.
func WithObserver(o Observer) Option { return func(s *settings) { s.observer = o } }

// Stats is a snapshot of a backend's pool and connections.
type Stats struct {
	// Instances is the plugin instances alive now; InUse of them are
	// serving a call. MaxInstances is Config.Instances.
	Instances, InUse, MaxInstances int
	// Traps counts instances discarded because they trapped, overran a
	// limit or were interrupted.
	Traps uint64
	// Retired counts instances closed after a call because their memory
	// had grown more than half way from a new instance's size to
	// Limits.MemoryPages; new ones replace them as calls need.
	Retired uint64
	// Redis is the Redis connection pool's statistics; nil without Redis.
	Redis *RedisPoolStats
	// Events counts the backend's events; zero when they are disabled.
	Events events.Stats
	// ExpiriesWatched is how many records this host wrote with an expiry
	// it will publish (see Store.Subscribe).
	ExpiriesWatched int
	// ExpiriesUnwatched counts the writes with an expiry this host could
	// not watch (past its bound of 262 144): their expiry publishes no
	// event.
	ExpiriesUnwatched uint64
	// Cache counts the read cache's work; zero without a cache.
	Cache CacheStats
	// BufferedWrites is how many writes the backend acknowledged into a
	// buffer of its own (Redis unreachable) that have not yet reached its
	// store: what its plugin's last tick reported (abi.FeatureTick), and
	// the writes acknowledged into the buffer since that tick began: an
	// upper bound, which never reads 0 while one is pending, and may read
	// high by the writes acknowledged while that tick ran, until the next
	// (Close logs the same figure); 0 for a plugin without the feature.
	BufferedWrites uint64
	// Ticks counts the ticks (abi.OpTick) made, and TickFailures those
	// that failed.
	Ticks, TickFailures uint64
	// SharedBatches counts the batches that carried the single operations
	// of callers who found every slot taken (one call or batch runs per
	// CPU at a time), and SharedCalls the operations they carried.
	SharedBatches, SharedCalls uint64
	// KVReads counts the gets answered from the kv store without entering
	// the plugin, as it declared (abi.KVRead); KVReadFaults the entries
	// found not to hold the record it promised, whose gets went to the
	// plugin.
	KVReads, KVReadFaults uint64
	// RedisReads counts the gets answered with a Redis read of the host's
	// own without entering the plugin, as it declared (abi.RedisRead);
	// RedisReadFaults the hashes found not to hold the record it
	// promised, whose gets went to the plugin.
	RedisReads, RedisReadFaults uint64
	// PGReads counts the gets answered with a statement the host ran
	// itself, as the plugin declared (abi.PGRead); PGReadFaults the
	// answers found not to be the row it promised, whose gets went to the
	// plugin.
	PGReads, PGReadFaults uint64
}

// RedisPoolStats is a snapshot of a backend's Redis connection pool.
type RedisPoolStats struct {
	// Hits and Misses count the times a free connection was, or was not,
	// found in the pool; Timeouts the waits for one that timed out.
	Hits, Misses, Timeouts uint64
	// TotalConns and IdleConns are the connections open now, and how many
	// of them are idle.
	TotalConns, IdleConns int
	// StaleConns counts the connections closed as stale.
	StaleConns uint64
}

// Stats returns a snapshot of the backend's pool and connections.
func (s *Store) Stats() Stats {
	p := s.p
	live, idle, size := p.pool.counts()
	st := Stats{Instances: live, InUse: max(live-idle, 0), MaxInstances: size, Traps: p.traps.Load(), Retired: p.pool.retired.Load(),
		KVReads: p.kvServed.Load(), KVReadFaults: p.kvReadFaults.Load(),
		RedisReads: p.redisServed.Load(), RedisReadFaults: p.redisReadFaults.Load(),
		PGReads: p.pgServed.Load(), PGReadFaults: p.pgReadFaults.Load()}
	if s.shared != nil {
		c := s.shared.Stats()
		st.SharedBatches, st.SharedCalls = c.Batches, c.Requests
	}
	if p.redis != nil {
		r := p.redis.PoolStats()
		st.Redis = &RedisPoolStats{
			Hits: uint64(r.Hits), Misses: uint64(r.Misses), Timeouts: uint64(r.Timeouts),
			TotalConns: int(r.TotalConns), IdleConns: int(r.IdleConns), StaleConns: uint64(r.StaleConns),
		}
	}
	if s.bus != nil {
		st.Events, st.ExpiriesWatched = s.bus.Stats(), s.expiry.len()
		st.ExpiriesUnwatched = s.expiry.dropped.Load()
	}
	if s.cache != nil {
		st.Cache = s.cache.stats()
	}
	if s.ticker != nil {
		st.BufferedWrites, st.Ticks, st.TickFailures = s.ticker.bufferedWrites(), s.ticker.ticks.Load(), s.ticker.failures.Load()
	}
	return st
}

// RedisInfo returns what the backend's Redis servers say of themselves
// (INFO and SLOWLOG LEN of every node, read at most a second ago on the
// connection of the configured rights: redisbridge.Bridge.ServerInfo); nil
// for a backend without Redis.
func (s *Store) RedisInfo(ctx context.Context) []redisbridge.NodeInfo {
	if s.p.redis == nil {
		return nil
	}
	return s.p.redis.ServerInfo(ctx)
}
