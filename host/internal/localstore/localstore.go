// Package localstore is the host side of the kv capability (abi.CapabilityKV):
// an ordered key-value store with revisions and expiry, shared by every
// instance of one backend: in memory (New), or in memory and on disk
// (Open), where a write is durable once Sync returns.
//
// An expired entry is invisible to every operation from the instant it
// expires, but its memory is reclaimed later: by the next write or delete
// that meets it, or by the background sweeper, which visits a bounded batch
// of entries per tick and resumes where it stopped, like Redis active
// expiry. Readers never take the write lock to remove what they skip.
package localstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/storage-host/storage-host/abi"
)

// sweepBatch bounds the entries one sweeper tick visits, and so how long a
// tick holds the write lock.
const sweepBatch = 256

// degree is the B-tree degree: a node holds up to 2*degree-1 entries.
const degree = 32

// EntryOverhead is what an entry costs the quota beyond its key and value
// bytes, so that a flood of empty entries is paid for too: the entry in
// its B-tree node is 64 bytes on 64-bit platforms (two slice headers,
// revision, expiry), in nodes two-thirds full for keys inserted in
// random order and half full for keys inserted in order, and its buffer
// is rounded up to a size class. Measured, a million entries of 11-byte
// keys and empty values, heap after two collections: 109 bytes an entry
// beyond key and value in random order, 139 in order, with a data
// directory or without.
const EntryOverhead = 144

// Quota bounds a Store. A zero field is no bound.
type Quota struct {
	// MaxBytes caps the bytes the store holds: every entry's key and value
	// buffers plus EntryOverhead, expired entries not yet reclaimed
	// included. A put or restore that would go past it is LIMIT.
	MaxBytes uint64
	// MaxEntries caps the entries the store holds, expired entries not yet
	// reclaimed included. A put or restore of a new key past it is LIMIT.
	MaxEntries int
	// MaxScanBytes caps the entries one scan returns by their size (key,
	// value and the fields around them): a scan stops before the entry
	// that would take it past, and answers that entry's key as next. It
	// always returns at least one entry, so every scan makes progress.
	MaxScanBytes int
}

// entry is one key and its state. Entries are stored by value in the tree;
// key bytes never change once stored, value bytes change only under the
// write lock.
type entry struct {
	key   []byte
	value []byte
	rev   uint64
	exp   int64 // Unix nanoseconds; 0 never expires, as on the wire
}

func (en *entry) expired(now int64) bool { return en.exp != 0 && now >= en.exp }

// size is what the entry costs the quota. The key and value share one
// buffer, or the value has a buffer of its own reused from an earlier
// value: either way cap(value) is what the value holds.
func (en *entry) size() uint64 {
	return uint64(len(en.key)) + uint64(cap(en.value)) + EntryOverhead
}

// scanSize bounds the encoded size of the entry in a scan response: key and
// value with their length prefixes, revision and expiry.
func (en *entry) scanSize() int { return len(en.key) + len(en.value) + 4*binary.MaxVarintLen64 }

func (en *entry) encode(e *abi.Encoder, withKey bool) {
	kv := abi.KVEntry{Key: en.key, Revision: en.rev, ExpiresAt: expTime(en.exp), Value: en.value}
	kv.Encode(e, withKey)
}

func less(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// expNanos turns a request's expiry into the stored form; the zero time is 0.
func expNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func expTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Store is an ordered in-memory key-value store with revisions and expiry.
// Its methods are safe for concurrent use. Create one with New.
type Store struct {
	now   func() time.Time
	quota Quota
	// lostCommit: what Open found of a commit its file dropped (LostCommit).
	lostCommit string

	mu        sync.RWMutex
	tree      *btree.BTreeG[entry]
	rev       uint64  // last revision given; guarded by mu
	bytes     uint64  // the entries' sizes (entry.size), summed; guarded by mu
	sweepFrom []byte  // key the next sweep starts at, nil for the first; guarded by mu
	dead      []entry // sweep scratch; guarded by mu

	stop      chan struct{} // nil without a sweeper
	done      chan struct{}
	closeOnce sync.Once

	// Stores opened on a directory (Open) only.
	j    *journal
	dir  string
	refs int // guarded by disks
}

// New returns a Store whose expiry follows now (the host clock; tests pass a
// fake clock; nil means time.Now). sweepEvery > 0 starts a background
// sweeper that removes expired entries incrementally (at most sweepBatch
// entries visited per tick, resuming where it stopped, like Redis active
// expiry) so memory of expired entries is reclaimed; 0 disables it, and
// expired entries are then reclaimed only by writes that meet them.
// The store holds at most what q allows. Call Close to stop the sweeper.
func New(now func() time.Time, sweepEvery time.Duration, q Quota) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{now: now, quota: q, tree: btree.NewG(degree, less)}
	if sweepEvery > 0 {
		s.startSweeper(sweepEvery)
	}
	return s
}

func (s *Store) startSweeper(every time.Duration) {
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	go s.sweepLoop(every)
}

// Close stops the sweeper and waits for it to return; an in-memory Store
// stays usable. A Store opened on a directory drops one reference, and
// the last one writes what is pending and closes the file: its writes
// then fail. Safe to call twice for an in-memory Store; a Store from
// Open takes one Close per Open.
func (s *Store) Close() error {
	if s.j == nil {
		s.stopSweeper()
		return nil
	}
	disks.Lock()
	defer disks.Unlock()
	s.refs--
	if s.refs > 0 {
		return nil
	}
	delete(disks.open, s.dir)
	s.stopSweeper()
	return s.j.close()
}

func (s *Store) stopSweeper() {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
	})
}

// Durable reports whether the Store keeps its entries on disk (Open).
func (s *Store) Durable() bool { return s.j != nil }

// Sync waits until every write applied before it is on disk; it returns
// at once for an in-memory Store, or when nothing is waiting. An error
// means a write may not be durable: the disk failed (the Store then takes
// no writes until a commit succeeds again) or ctx ended first.
func (s *Store) Sync(ctx context.Context) error {
	if s.j == nil {
		return nil
	}
	return s.j.sync(ctx)
}

// Err returns why the Store refuses writes now (its file failed a
// commit, not yet retried with success; or it is closed), or nil.
func (s *Store) Err() error {
	if s.j == nil {
		return nil
	}
	return s.j.failure()
}

// ReportCommits has report called when the Store's commits to its file
// start failing (with Err's error), when that error changes, and when a
// commit succeeds again (nil), from the goroutine that commits: what the
// store answers callers meanwhile (ErrUnavailable, an outcome unknown)
// tells them, not an operator. A later call replaces report; a Store in
// memory never calls it.
func (s *Store) ReportCommits(report func(failing error)) {
	if s.j == nil {
		return
	}
	s.j.mu.Lock()
	s.j.report = report
	s.j.mu.Unlock()
}

// Len returns the number of stored entries, including expired entries not
// yet reclaimed; it is what the store holds in memory, not what a scan sees.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Len()
}

// Bytes returns what the stored entries cost the quota (Quota.MaxBytes),
// expired entries not yet reclaimed included.
func (s *Store) Bytes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bytes
}

// insert stores en in place of old (which is in the tree when replaced is
// true), keeping the byte count.
func (s *Store) insert(en entry, old *entry, replaced bool) {
	if replaced {
		s.bytes -= old.size()
	}
	s.tree.ReplaceOrInsert(en)
	s.bytes += en.size()
}

// journalPut and journalDelete carry a write applied to the tree to the
// file, for a Store opened on a directory; the caller holds the write lock.
func (s *Store) journalPut(en *entry) {
	if s.j != nil {
		s.j.put(en.key, en.rev, en.exp, en.value, s.rev)
	}
}

func (s *Store) journalDelete(key []byte) {
	if s.j != nil {
		s.j.del(key, s.rev)
	}
}

// refuseWrite returns why a write cannot be taken now, or "": a Store
// whose file failed or that is closed takes none, nor one whose journal
// holds its bound of writes not yet on disk (journalBound). The caller
// holds the write lock.
func (s *Store) refuseWrite() string {
	if s.j == nil {
		return ""
	}
	if err := s.j.failure(); err != nil {
		return err.Error()
	}
	if err := s.j.backlog(s.journalBound()); err != nil {
		return err.Error()
	}
	return ""
}

// remove deletes en from the tree, keeping the byte count.
func (s *Store) remove(en entry) {
	if _, ok := s.tree.Delete(en); ok {
		s.bytes -= en.size()
	}
}

// Do executes req and appends a whole response to e: the status byte and,
// for StatusOK, the op's result as abi.KVOp documents it, otherwise an
// error message (abi.AppendError).
func (s *Store) Do(req *abi.KVRequest, e *abi.Encoder) {
	switch req.Op {
	case abi.KVGet:
		s.get(req.Key, e)
	case abi.KVPut:
		s.put(req, e)
	case abi.KVDelete:
		if req.Condition.Mode == abi.IfAbsent {
			abi.AppendError(e, abi.StatusInvalid, "a delete cannot be create-only")
			return
		}
		s.delete(req, e)
	case abi.KVScan:
		s.scan(req, e)
	case abi.KVRestore:
		switch {
		case req.Condition.Mode == abi.IfVersion:
			abi.AppendError(e, abi.StatusInvalid, "a restore is unconditional or create-only")
		case req.Revision == 0:
			abi.AppendError(e, abi.StatusInvalid, "a restored revision is at least 1")
		default:
			s.put(req, e)
		}
	default:
		abi.AppendError(e, abi.StatusInvalid, "unknown kv op "+strconv.Itoa(int(req.Op)))
	}
}

func (s *Store) get(key []byte, e *abi.Encoder) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	en, ok := s.tree.Get(entry{key: key})
	// The clock is read only for entries that can expire.
	if !ok || en.exp != 0 && en.expired(s.now().UnixNano()) {
		abi.AppendError(e, abi.StatusNotFound, "no such key")
		return
	}
	e.U8(uint8(abi.StatusOK))
	en.encode(e, false)
}

// View calls f with the live entry at key, under the store's read lock:
// value is valid only until f returns, and f must not call the Store;
// expires is in UTC, the zero time for never, as the wire decodes it. It
// reports whether there was a live entry (f is not called when not).
func (s *Store) View(key []byte, f func(value []byte, revision uint64, expires time.Time)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	en, ok := s.tree.Get(entry{key: key})
	if !ok || en.exp != 0 && en.expired(s.now().UnixNano()) {
		return false
	}
	var expires time.Time
	if en.exp != 0 {
		expires = time.Unix(0, en.exp).UTC()
	}
	f(en.value, en.rev, expires)
	return true
}

// HasPrefix reports whether the store holds an entry whose key starts
// with prefix, live or expired but not yet reclaimed.
func (s *Store) HasPrefix(prefix []byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	found := false
	s.tree.AscendGreaterOrEqual(entry{key: prefix}, func(en entry) bool {
		found = bytes.HasPrefix(en.key, prefix)
		return false
	})
	return found
}

// lookup finds key for a writer. An expired entry is removed on the spot
// and reported as absent; it is still returned so its buffers can be reused.
func (s *Store) lookup(key []byte, now int64) (old entry, found, live bool) {
	old, found = s.tree.Get(entry{key: key})
	if found && old.expired(now) {
		s.remove(old)
		s.journalDelete(old.key)
		return old, true, false
	}
	return old, found, found
}

// check evaluates c against the current entry; when the write must not
// proceed it returns the status and message to answer, else StatusOK.
func check(c abi.Condition, old *entry, live bool) (abi.Status, string) {
	switch c.Mode {
	case abi.Unconditional:
	case abi.IfVersion:
		if !live {
			return abi.StatusConflict, "no such key"
		}
		if old.rev != c.Version {
			return abi.StatusConflict, "revision is " + strconv.FormatUint(old.rev, 10) +
				", not " + strconv.FormatUint(c.Version, 10)
		}
	case abi.IfAbsent:
		if live {
			return abi.StatusConflict, "key exists"
		}
	default:
		return abi.StatusInvalid, "unknown condition mode " + strconv.Itoa(int(c.Mode))
	}
	return abi.StatusOK, ""
}

// put serves KVPut, and KVRestore, which gives the entry req.Revision
// instead of the next revision and moves the counter up to it.
func (s *Store) put(req *abi.KVRequest, e *abi.Encoder) {
	if len(req.Key) == 0 {
		abi.AppendError(e, abi.StatusInvalid, "empty key")
		return
	}
	if len(req.Key) > MaxKeyLength {
		abi.AppendError(e, abi.StatusLimit, "key of "+strconv.Itoa(len(req.Key))+" bytes is over the limit of "+strconv.Itoa(MaxKeyLength))
		return
	}
	now := s.now().UnixNano()
	exp := expNanos(req.ExpiresAt)

	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.refuseWrite(); msg != "" {
		abi.AppendError(e, abi.StatusUnavailable, msg)
		return
	}
	old, found, live := s.lookup(req.Key, now)
	if st, msg := check(req.Condition, &old, live); st != abi.StatusOK {
		abi.AppendError(e, st, msg)
		return
	}
	en := entry{exp: exp}
	if req.Op != abi.KVRestore && req.KeepTTL && live {
		en.exp = old.exp
	}
	gone := en.expired(now) // expired on arrival: nothing will be stored
	// Same key, and the old value's buffer fits without wasting much: reuse
	// it; else key and value share one new allocation.
	reuse := found && cap(old.value) >= len(req.Value) && cap(old.value) <= 2*len(req.Value)+64
	if !gone {
		if msg := s.admit(req, &old, live, reuse, now); msg != "" {
			abi.AppendError(e, abi.StatusLimit, msg)
			return
		}
	}
	if req.Op == abi.KVRestore {
		en.rev = req.Revision
		s.rev = max(s.rev, req.Revision)
	} else {
		s.rev = nextRevision(s.rev, now)
		en.rev = s.rev
	}
	switch {
	case gone:
		// The write succeeds and leaves nothing to see.
		if live {
			s.remove(old)
			s.journalDelete(old.key)
		}
	case reuse:
		en.key = old.key
		en.value = append(old.value[:0], req.Value...)
		s.insert(en, &old, live)
		s.journalPut(&en)
	default:
		buf := make([]byte, len(req.Key)+len(req.Value))
		n := copy(buf, req.Key)
		copy(buf[n:], req.Value)
		en.key, en.value = buf[:n:n], buf[n:]
		s.insert(en, &old, live)
		s.journalPut(&en)
	}
	e.U8(uint8(abi.StatusOK))
	e.Uvarint(en.rev)
	e.Time(expTime(en.exp))
}

// nextRevision is the revision after last at now (Unix ns): the next
// number, or the clock in microseconds when that is greater. A count from
// 1 would give a key that starts over in a fresh store (a memory backend
// rebuilt or restored, a route or a data_dir moved to another store) the
// revisions, and so the versions, its old store gave other values, and a
// stale If-Match would then succeed (an outside drill: 3 of 3 runs, on
// five paths). With the clock a fresh store starts past anything a store
// of this host gave before, as long as the clock moved on; microseconds
// stay exact in a JSON number (below 2^53) until the year 2255.
func nextRevision(last uint64, now int64) uint64 {
	return max(last+1, uint64(max(now, 0)/1000))
}

// admit checks that storing req in place of old (in the tree when live)
// keeps the store within its quota, and returns why not, or "". Over the
// quota it first reclaims a bounded batch of expired entries, which still
// count until reclaimed.
func (s *Store) admit(req *abi.KVRequest, old *entry, live, reuse bool, now int64) string {
	size := uint64(len(req.Key)) + uint64(len(req.Value)) + EntryOverhead
	if reuse {
		size = uint64(len(old.key)) + uint64(cap(old.value)) + EntryOverhead
	}
	over := func() string {
		kept := s.bytes
		if live {
			kept -= old.size()
		}
		if q := s.quota.MaxBytes; q > 0 && kept+size > q {
			return "kv quota: the store would hold " + strconv.FormatUint(kept+size, 10) +
				" bytes, over its limit of " + strconv.FormatUint(q, 10)
		}
		if q := s.quota.MaxEntries; q > 0 && !live && s.tree.Len() >= q {
			return "kv quota: the store holds " + strconv.Itoa(s.tree.Len()) +
				" entries, its limit"
		}
		return ""
	}
	msg := over()
	if msg != "" && s.sweepLocked(now) > 0 {
		msg = over()
	}
	return msg
}

func (s *Store) delete(req *abi.KVRequest, e *abi.Encoder) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.refuseWrite(); msg != "" {
		abi.AppendError(e, abi.StatusUnavailable, msg)
		return
	}
	old, _, live := s.lookup(req.Key, now)
	if st, msg := check(req.Condition, &old, live); st != abi.StatusOK {
		abi.AppendError(e, st, msg)
		return
	}
	if !live {
		abi.AppendError(e, abi.StatusNotFound, "no such key")
		return
	}
	s.remove(old)
	s.journalDelete(old.key)
	e.U8(uint8(abi.StatusOK))
}

// MaxScanSkips is how many expired entries, not yet reclaimed, one scan
// steps over before it stops early with a cursor (next) at the next one:
// the work of a scan is bounded whatever expired entries lie in its range.
const MaxScanSkips = 4096

// pages recycles scan scratch, so a scan allocates little beyond its
// response.
var pages = sync.Pool{New: func() any { return new([]entry) }}

func (s *Store) scan(req *abi.KVRequest, e *abi.Encoder) {
	limit := abi.PageLimit(req.Limit)
	pp := pages.Get().(*[]entry)
	page := (*pp)[:0]
	var next []byte

	budget := s.quota.MaxScanBytes
	size := 0

	skipped := 0

	s.mu.RLock()
	now := s.now().UnixNano()
	visit := func(en entry) bool {
		if en.expired(now) {
			// Expired entries not yet reclaimed cost a visit each: past
			// MaxScanSkips the scan stops, with what it has (maybe
			// nothing), to resume at this one.
			if skipped++; skipped > MaxScanSkips {
				next = en.key
				return false
			}
			return true
		}
		// The response is bounded while it is gathered: by count, and by
		// size past the first entry.
		size += en.scanSize()
		if len(page) == limit || budget > 0 && size > budget && len(page) > 0 {
			next = en.key
			return false
		}
		page = append(page, en)
		return true
	}
	if start := (entry{key: req.Key}); len(req.End) == 0 {
		s.tree.AscendGreaterOrEqual(start, visit)
	} else {
		s.tree.AscendRange(start, entry{key: req.End}, visit)
	}
	// Values may be rewritten in place once the lock is released.
	e.U8(uint8(abi.StatusOK))
	e.Uvarint(uint64(len(page)))
	for i := range page {
		page[i].encode(e, true)
	}
	e.BytesField(next)
	s.mu.RUnlock()

	clear(page)
	*pp = page[:0]
	pages.Put(pp)
}

func (s *Store) sweepLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep visits up to sweepBatch entries from where the previous sweep
// stopped, wrapping to the first key after the last, removes the expired
// ones and returns how many it removed.
func (s *Store) sweep() int {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked(now)
}

// sweepLocked is sweep, with the write lock held.
func (s *Store) sweepLocked(now int64) int {
	visited := 0
	var next []byte
	s.tree.AscendGreaterOrEqual(entry{key: s.sweepFrom}, func(en entry) bool {
		if visited == sweepBatch {
			next = en.key
			return false
		}
		visited++
		if en.expired(now) {
			s.dead = append(s.dead, en)
		}
		return true
	})
	for _, en := range s.dead {
		s.remove(en)
		s.journalDelete(en.key)
	}
	n := len(s.dead)
	clear(s.dead)
	s.dead = s.dead[:0]
	s.sweepFrom = next
	return n
}

// LostCommit describes the commit Open found its file had dropped: the
// header page of the file's last commit was damaged, so it opened at the
// commit before. "" when there was none, and for a Store in memory.
func (s *Store) LostCommit() string { return s.lostCommit }
