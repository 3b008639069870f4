// Package localstore is the host side of the kv capability (abi.CapabilityKV):
// an ordered in-memory key-value store with revisions and expiry, shared by
// every instance of one backend.
//
// An expired entry is invisible to every operation from the instant it
// expires, but its memory is reclaimed later: by the next write or delete
// that meets it, or by the background sweeper, which visits a bounded batch
// of entries per tick and resumes where it stopped, like Redis active
// expiry. Readers never take the write lock to remove what they skip.
package localstore

import (
	"bytes"
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
	now func() time.Time

	mu        sync.RWMutex
	tree      *btree.BTreeG[entry]
	rev       uint64  // last revision given; guarded by mu
	sweepFrom []byte  // key the next sweep starts at, nil for the first; guarded by mu
	dead      []entry // sweep scratch; guarded by mu

	stop      chan struct{} // nil without a sweeper
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Store whose expiry follows now (the host clock; tests pass a
// fake clock; nil means time.Now). sweepEvery > 0 starts a background
// sweeper that removes expired entries incrementally (at most sweepBatch
// entries visited per tick, resuming where it stopped, like Redis active
// expiry) so memory of expired entries is reclaimed; 0 disables it, and
// expired entries are then reclaimed only by writes that meet them.
// Call Close to stop the sweeper.
func New(now func() time.Time, sweepEvery time.Duration) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{now: now, tree: btree.NewG(degree, less)}
	if sweepEvery > 0 {
		s.stop = make(chan struct{})
		s.done = make(chan struct{})
		go s.sweepLoop(sweepEvery)
	}
	return s
}

// Close stops the sweeper and waits for it to return. The Store stays
// usable. Safe to call twice.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
	})
}

// Len returns the number of stored entries, including expired entries not
// yet reclaimed; it is what the store holds in memory, not what a scan sees.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Len()
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

// lookup finds key for a writer. An expired entry is removed on the spot
// and reported as absent; it is still returned so its buffers can be reused.
func (s *Store) lookup(key []byte, now int64) (old entry, found, live bool) {
	old, found = s.tree.Get(entry{key: key})
	if found && old.expired(now) {
		s.tree.Delete(old)
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
	now := s.now().UnixNano()
	exp := expNanos(req.ExpiresAt)

	s.mu.Lock()
	defer s.mu.Unlock()
	old, found, live := s.lookup(req.Key, now)
	if st, msg := check(req.Condition, &old, live); st != abi.StatusOK {
		abi.AppendError(e, st, msg)
		return
	}
	en := entry{exp: exp}
	if req.Op == abi.KVRestore {
		en.rev = req.Revision
		s.rev = max(s.rev, req.Revision)
	} else {
		if req.KeepTTL && live {
			en.exp = old.exp
		}
		s.rev++
		en.rev = s.rev
	}
	switch {
	case en.expired(now):
		// Expired on arrival: the write succeeds and leaves nothing to see.
		if live {
			s.tree.Delete(old)
		}
	case found && cap(old.value) >= len(req.Value) && cap(old.value) <= 2*len(req.Value)+64:
		// Same key, and the old value's buffer fits without wasting much.
		en.key = old.key
		en.value = append(old.value[:0], req.Value...)
		s.tree.ReplaceOrInsert(en)
	default:
		// Key and value share one allocation.
		buf := make([]byte, len(req.Key)+len(req.Value))
		n := copy(buf, req.Key)
		copy(buf[n:], req.Value)
		en.key, en.value = buf[:n:n], buf[n:]
		s.tree.ReplaceOrInsert(en)
	}
	e.U8(uint8(abi.StatusOK))
	e.Uvarint(en.rev)
	e.Time(expTime(en.exp))
}

func (s *Store) delete(req *abi.KVRequest, e *abi.Encoder) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, _, live := s.lookup(req.Key, now)
	if st, msg := check(req.Condition, &old, live); st != abi.StatusOK {
		abi.AppendError(e, st, msg)
		return
	}
	if !live {
		abi.AppendError(e, abi.StatusNotFound, "no such key")
		return
	}
	s.tree.Delete(old)
	e.U8(uint8(abi.StatusOK))
}

// pages recycles scan scratch, so a scan allocates little beyond its
// response.
var pages = sync.Pool{New: func() any { return new([]entry) }}

func (s *Store) scan(req *abi.KVRequest, e *abi.Encoder) {
	limit := abi.PageLimit(req.Limit)
	pp := pages.Get().(*[]entry)
	page := (*pp)[:0]
	var next []byte

	s.mu.RLock()
	now := s.now().UnixNano()
	visit := func(en entry) bool {
		if en.expired(now) {
			return true
		}
		if len(page) == limit {
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
		s.tree.Delete(en)
	}
	n := len(s.dead)
	clear(s.dead)
	s.dead = s.dead[:0]
	s.sweepFrom = next
	return n
}
