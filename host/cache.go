package host

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// CacheOptions configure a Store's read cache for agent states and alerts.
type CacheOptions struct {
	// Entries is the most records the cache holds (least recently used
	// go first). 0 disables the cache.
	Entries int
	// MaxAge is the longest an entry is served before the record is read
	// from the backend again, whatever the events say. It bounds how long
	// a change that wrote no event is missed: a host that crashed between
	// a write and its event's append, a key deleted by hand.
	// Default: one minute.
	MaxAge time.Duration
	// MaxBytes bounds the bytes of the records the cache holds (least
	// recently used go first); a record larger than a sixteenth of it is
	// not cached. Entries alone does not bound memory: a plugin may
	// answer records of megabytes. Default: 64 MiB.
	MaxBytes int64
}

// defaultCacheMaxAge and defaultCacheMaxBytes are CacheOptions.MaxAge's
// and MaxBytes's defaults.
const (
	defaultCacheMaxAge   = time.Minute
	defaultCacheMaxBytes = 64 << 20
)

// CacheStats counts what a Store's read cache did.
type CacheStats struct {
	Hits, Misses  uint64
	Invalidations uint64 // entries dropped by events (any host's writes)
	Flushes       uint64 // whole-cache drops: the event log could not be read
	Entries       int
	// Enabled is false while the cache is bypassed: its event
	// subscription broke and is being re-established.
	Enabled bool
}

// readCache keeps agent states and alerts this host read, and drops each
// one when an event says its record changed, on this host or any other
// sharing the backend. It observes the backend's event log (an
// events.Observer), so an entry is dropped before any subscriber of this
// host is handed the event: once a write's event has arrived, no read
// returns what the write replaced. This host's own writes drop their
// entry at once.
//
// A fill races with invalidations: a read that started before a write's
// event arrived may return the old record after the event dropped the
// entry. Each fill therefore carries the invalidation count of its key's
// stripe from before the read, and is refused if that count moved. While
// the log cannot be read the cache is flushed and bypassed, since
// invalidations are not arriving; it comes back when they do.
type readCache struct {
	s        *Store
	maxAge   time.Duration
	maxBytes int64
	entries  *lru.Cache[cacheKey, cacheEntry]
	seed     maphash.Seed

	mu      sync.Mutex // orders fills after invalidations
	stripes [256]uint64
	bytes   int64 // the entries' sizes, under mu (entries changes under it)
	enabled atomic.Bool

	hits, misses, invalidations, flushes atomic.Uint64
	warned                               time.Time // when Down last warned; Down's own

	cancel context.CancelFunc
	done   chan struct{}
}

type cacheKey struct {
	kind abi.RecordKind // abi.KindAgentState or abi.KindAlert
	key  string
}

type cacheEntry struct {
	state   AgentState
	alert   Alert
	expires time.Time
}

// newReadCache returns a cache that observes the store's event log: at
// once when the log can be read now (ctx bounds that attempt), else from
// a goroutine that retries, the cache being bypassed until then.
func newReadCache(ctx context.Context, s *Store, opts CacheOptions) *readCache {
	c := &readCache{s: s, maxAge: opts.MaxAge, maxBytes: opts.MaxBytes, seed: maphash.MakeSeed(), done: make(chan struct{})}
	entries, err := lru.NewWithEvict(opts.Entries, func(k cacheKey, e cacheEntry) { c.bytes -= e.size(k) })
	if err != nil { // only for a size <= 0, which the caller excludes
		panic(err)
	}
	c.entries = entries
	if c.maxAge <= 0 {
		c.maxAge = defaultCacheMaxAge
	}
	if c.maxBytes <= 0 {
		c.maxBytes = defaultCacheMaxBytes
	}
	var bg context.Context
	bg, c.cancel = context.WithCancel(context.Background())
	if err := s.bus.Observe(ctx, c); err == nil {
		close(c.done)
	} else {
		go c.observe(bg)
	}
	return c
}

func (c *readCache) stop() {
	c.cancel()
	<-c.done
}

// observe registers the cache with the event log, retrying while the log
// cannot be read (a Redis backend opened while Redis is away); until then
// the cache is bypassed.
func (c *readCache) observe(ctx context.Context) {
	defer close(c.done)
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		err := c.s.bus.Observe(ctx, c)
		if err == nil || errors.Is(err, events.ErrClosed) {
			return
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
	}
}

// Event implements events.Observer.
func (c *readCache) Event(ev *events.Event) {
	if k, _ := abi.ParseRecordKind(ev.Kind); k == abi.KindAgentState || k == abi.KindAlert {
		c.invalidate(cacheKey{k, ev.Key}, ev.Version)
	}
}

// Down implements events.Observer. It warns at most every cacheWarnGap:
// a plugin can make its PostgreSQL backend's log lose events at every
// read (by deleting them), and each loss is a Down.
func (c *readCache) Down(err error) {
	c.enabled.Store(false)
	c.flush()
	c.flushes.Add(1)
	if time.Since(c.warned) < cacheWarnGap {
		c.s.p.log.Debug("read cache flushed", "error", err)
		return
	}
	c.warned = time.Now()
	c.s.p.log.Warn("read cache flushed, and bypassed until the event log can be read", "error", err)
}

// cacheWarnGap is the least time between two warnings of a flushed cache.
const cacheWarnGap = 10 * time.Second

// Up implements events.Observer.
func (c *readCache) Up() {
	c.flush()
	c.enabled.Store(true)
}

func (c *readCache) stripe(k cacheKey) *uint64 {
	return &c.stripes[maphash.String(c.seed, k.key)%uint64(len(c.stripes))]
}

// invalidate drops k unless the cached record is the version the event
// names (the event of the write that filled it).
func (c *readCache) invalidate(k cacheKey, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.stripe(k)++
	if e, ok := c.entries.Peek(k); ok && version != 0 && e.version(k.kind) == version {
		return
	}
	if c.entries.Remove(k) {
		c.invalidations.Add(1)
	}
}

func (c *readCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.stripes {
		c.stripes[i]++
	}
	c.entries.Purge()
}

// ticket returns what a fill of k must present: the stripe's count now.
func (c *readCache) ticket(k cacheKey) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.stripe(k)
}

// fill caches e for k unless k was invalidated since ticket, until the
// record expires or for maxAge, whichever comes first.
func (c *readCache) fill(k cacheKey, ticket uint64, e cacheEntry) {
	if !c.enabled.Load() {
		return
	}
	if limit := c.s.now().Add(c.maxAge); e.expires.IsZero() || limit.Before(e.expires) {
		e.expires = limit
	}
	size := e.size(k)
	if size > c.maxBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if *c.stripe(k) != ticket {
		return
	}
	c.entries.Remove(k) // its size leaves with it
	c.entries.Add(k, e)
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.entries.RemoveOldest()
	}
}

// size is about the bytes e holds for k: its strings and documents, and
// a fixed part for the rest.
func (e *cacheEntry) size(k cacheKey) int64 {
	n := len(k.key) + 256
	if k.kind == abi.KindAgentState {
		n += len(e.state.AgentID) + len(e.state.State)
	} else {
		a := &e.alert
		n += len(a.ID) + len(a.AgentID) + len(a.Message)
		for name, v := range a.Labels {
			n += len(name) + len(v) + 16
		}
	}
	return int64(n)
}

// get returns the live cached record of k.
func (c *readCache) get(k cacheKey) (cacheEntry, bool) {
	if !c.enabled.Load() {
		return cacheEntry{}, false
	}
	e, ok := c.entries.Get(k)
	if ok && !e.expires.IsZero() && !c.s.now().Before(e.expires) {
		ok = false
	}
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return e, ok
}

func (e *cacheEntry) version(kind abi.RecordKind) uint64 {
	if kind == abi.KindAgentState {
		return e.state.Version
	}
	return uint64(e.alert.UpdatedAt.UnixNano())
}

func (c *readCache) stats() CacheStats {
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Invalidations: c.invalidations.Load(),
		Flushes: c.flushes.Load(), Entries: c.entries.Len(), Enabled: c.enabled.Load(),
	}
}

// The cached forms are copies: callers may change what they are given.

func cloneState(st AgentState) AgentState {
	st.State = bytes.Clone(st.State)
	return st
}

func cloneAlert(a Alert) Alert {
	a.Labels = maps.Clone(a.Labels)
	return a
}

// cachedAgentState serves GetAgentState through the cache.
func (s *Store) cachedAgentState(agentID string, read func() (AgentState, error)) (AgentState, error) {
	k := cacheKey{abi.KindAgentState, agentID}
	if e, ok := s.cache.get(k); ok {
		return cloneState(e.state), nil
	}
	ticket := s.cache.ticket(k)
	st, err := read()
	if err == nil {
		s.cache.fill(k, ticket, cacheEntry{state: cloneState(st), expires: st.ExpiresAt})
	}
	return st, err
}

// cachedAlert serves GetAlert through the cache.
func (s *Store) cachedAlert(id string, read func() (Alert, error)) (Alert, error) {
	k := cacheKey{abi.KindAlert, id}
	if e, ok := s.cache.get(k); ok {
		return cloneAlert(e.alert), nil
	}
	ticket := s.cache.ticket(k)
	a, err := read()
	if err == nil {
		s.cache.fill(k, ticket, cacheEntry{alert: cloneAlert(a), expires: a.ExpiresAt})
	}
	return a, err
}
