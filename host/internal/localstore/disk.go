package localstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A Store opened with Open keeps its entries in a bbolt file as well as in
// its B-tree. Reads never touch the file: the tree holds everything, and
// the file is what the tree is rebuilt from at the next Open. Every write
// applied to the tree is appended, in the same critical section, to the
// journal's pending records; a committer goroutine writes what is pending
// in one bbolt transaction (fsynced when it commits) while the next
// writes accumulate, so concurrent writers share an fsync (group commit).
// Sync waits until everything appended before it is on disk: the host
// calls it before a plugin call that used the kv store returns, so a call
// is acknowledged only once whatever it wrote, or could have read, is
// durable.

// ErrInUse is returned by Open for a directory another process holds.
var ErrInUse = errors.New("kv store: data directory in use by another process")

// FileName is the file a Store keeps in its directory.
const FileName = "kv.db"

// MaxKeyLength bounds a key, the same with or without a directory: it is
// what the file format can hold.
const MaxKeyLength = bbolt.MaxKeySize

// fileFormat is the layout of the entries in the file, kept in the meta
// bucket; a file of a later format is refused rather than misread.
const fileFormat = 1

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	metaFormat    = []byte("format")
	metaRevision  = []byte("revision")
)

// lockWait is how long Open waits for another process's lock on the file.
const lockWait = 500 * time.Millisecond

// disks holds the Stores open in this process by directory, so that a
// backend rebuilt on the same directory shares its data with the old one
// instead of waiting for the file lock.
var disks = struct {
	sync.Mutex
	open map[string]*Store
}{open: map[string]*Store{}}

// Open returns the Store kept in dir (created if missing, mode 0700),
// loading what an earlier process left there. Opening a directory this
// process already has open returns the same Store with one more
// reference, and its quota replaced by q; Close drops a reference and
// the last one closes the file. A directory another process holds is
// ErrInUse.
func Open(dir string, now func() time.Time, sweepEvery time.Duration, q Quota) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kv store: %w", err)
	}
	disks.Lock()
	defer disks.Unlock()
	if s, ok := disks.open[abs]; ok {
		s.mu.Lock()
		s.refs++
		s.quota = q
		s.mu.Unlock()
		return s, nil
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("kv store: %w", err)
	}
	path := filepath.Join(abs, FileName)
	lost, err := checkLength(path)
	if err != nil {
		return nil, fmt.Errorf("kv store: open: %w", err)
	}
	s := New(now, 0, q)
	s.lostCommit = lost
	db, err := s.openFile(path)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(path + compactingSuffix) // a compaction a crash cut short
	s.j = newJournal(db, s.rev, func() int64 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return int64(s.quota.MaxBytes)
	})
	s.dir, s.refs = abs, 1
	if sweepEvery > 0 {
		s.startSweeper(sweepEvery)
	}
	disks.open[abs] = s
	return s, nil
}

// ErrDamaged is returned by Open for a file bbolt cannot read (a page
// overwritten, a file mixed from two copies), and by the writes of a
// Store whose file turns out damaged as it commits: bbolt panics on such
// a file, or the read of its mapping faults, which would end the process.
var ErrDamaged = errors.New("kv store: the file is damaged")

// damaged is the error for path, which bbolt panicked or faulted on with p.
func damaged(path string, p any) error {
	return fmt.Errorf("%w: %s (%v); restore it from a backup, or move it aside to start with an empty store", ErrDamaged, path, p)
}

// openFile opens the bbolt file at path and loads its entries into s. A
// damaged file is refused with ErrDamaged and its lock released, so that
// the file, left as it is, can be opened again once it is restored.
func (s *Store) openFile(path string) (db *bbolt.DB, err error) {
	var file *os.File // bbolt's, to release its lock should bbolt panic
	defer func() {
		if p := recover(); p != nil {
			if db == nil || closeSafely(db) != nil {
				_ = file.Close() // the lock is the file's: released with it
			}
			db, err = nil, damaged(path, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	opts := boltOptions()
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	db, err = bbolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("kv store: open %s: %w", path, err)
	}
	if err := s.load(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("kv store: load %s: %w", path, err)
	}
	return db, nil
}

// boltOptions are the options every kv.db is opened with.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout: lockWait,
		// The freelist is rebuilt by scanning at open instead of being
		// written at every commit: one page less per commit.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// closeSafely closes db; closing a database whose file is damaged may
// panic too, which it returns as ErrDamaged.
func closeSafely(db *bbolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(db.Path(), p)
		}
	}()
	return db.Close()
}

// load fills the empty tree from db, dropping the entries that expired
// while the file was closed (from the file too).
func (s *Store) load(db *bbolt.DB) error {
	now := s.now().UnixNano()
	return db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if f := meta.Get(metaFormat); f == nil {
			if err := meta.Put(metaFormat, binary.BigEndian.AppendUint64(nil, fileFormat)); err != nil {
				return err
			}
		} else if len(f) != 8 || binary.BigEndian.Uint64(f) != fileFormat {
			return fmt.Errorf("file format %x is not %d: written by another version of the host", f, fileFormat)
		}
		if r := meta.Get(metaRevision); len(r) == 8 {
			s.rev = binary.BigEndian.Uint64(r)
		}
		entries, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		var expired [][]byte
		err = entries.ForEach(func(k, v []byte) error {
			rev, exp, value, err := decodeStored(v)
			if err != nil {
				return fmt.Errorf("entry %q: %w", k, err)
			}
			s.rev = max(s.rev, rev)
			en := entry{rev: rev, exp: exp}
			if en.expired(now) {
				expired = append(expired, k)
				return nil
			}
			buf := make([]byte, len(k)+len(value))
			n := copy(buf, k)
			copy(buf[n:], value)
			en.key, en.value = buf[:n:n], buf[n:]
			s.insert(en, nil, false)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := entries.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendStored encodes what the file keeps of an entry under its key.
func appendStored(dst []byte, rev uint64, exp int64, value []byte) []byte {
	dst = binary.AppendUvarint(dst, rev)
	dst = binary.AppendVarint(dst, exp)
	return append(dst, value...)
}

func decodeStored(b []byte) (rev uint64, exp int64, value []byte, err error) {
	rev, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, errors.New("bad revision")
	}
	exp, m := binary.Varint(b[n:])
	if m <= 0 {
		return 0, 0, nil, errors.New("bad expiry")
	}
	return rev, exp, b[n+m:], nil
}

// record is one write waiting for the file: a put of its stored form, or
// a delete when stored is nil. Both are copies, owned by the journal.
type record struct {
	key, stored []byte
}

// journal carries a Store's writes to its file, in the order they were
// applied, one transaction per batch.
type journal struct {
	db     *bbolt.DB
	update func(func(*bbolt.Tx) error) error // db.Update, or a test's failing disk; under mu
	disk   func(func(*bbolt.Tx) error) error // db.Update, once FailCommits replaced update

	mu      sync.Mutex
	pending []record
	// unsynced is the bytes of the records not on disk yet: pending, and
	// the batch being committed. The store refuses writes past its bound
	// (Store.refuseWrite).
	unsynced uint64
	rev      uint64        // the store's revision counter at the last append
	err      error         // why the last commit failed, until one succeeds; the store takes no writes meanwhile
	report   func(error)   // Store.ReportCommits
	moved    chan struct{} // closed, and replaced, when synced moves or err is set
	closed   bool

	appended atomic.Uint64 // records appended; written under mu
	synced   atomic.Uint64 // records on disk

	kick    chan struct{} // wakes the committer for a waiter; capacity 1
	stop    chan struct{}
	stopped chan struct{}
	commits atomic.Uint64

	// compacted is the file's size when it was last opened or compacted,
	// or its live part when it was found mostly live (maybeCompact); the
	// committer's alone.
	compacted   int64
	compactions atomic.Uint64
	path        string // the file's
	// quotaBytes returns the store's byte quota (0 for none), read by
	// the committer, which holds no lock of the journal's meanwhile.
	quotaBytes func() int64
}

func newJournal(db *bbolt.DB, rev uint64, quotaBytes func() int64) *journal {
	j := &journal{
		db: db, update: db.Update, rev: rev, compacted: fileSize(db), path: db.Path(), quotaBytes: quotaBytes,
		moved:   make(chan struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go j.run()
	return j
}

// failure returns why the journal takes no writes now, or nil.
func (j *journal) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.err != nil:
		return j.err
	case j.closed:
		return errors.New("kv store: closed")
	}
	return nil
}

// put records a put of key; the caller holds the store's write lock.
func (j *journal) put(key []byte, rev uint64, exp int64, value []byte, storeRev uint64) {
	j.add(record{key: clone(key), stored: appendStored(make([]byte, 0, len(value)+2*binary.MaxVarintLen64), rev, exp, value)}, storeRev)
}

// del records a delete of key; the caller holds the store's write lock.
func (j *journal) del(key []byte, storeRev uint64) {
	j.add(record{key: clone(key)}, storeRev)
}

func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

func (j *journal) add(r record, storeRev uint64) {
	j.mu.Lock()
	j.pending = append(j.pending, r)
	j.rev = storeRev
	j.appended.Add(1)
	j.unsynced += r.size()
	j.mu.Unlock()
}

// size is what a record holds in memory until it is committed.
func (r *record) size() uint64 { return uint64(len(r.key)) + uint64(len(r.stored)) }

// minJournalBytes is the least journalBound allows, whatever the quota,
// so that a small store still takes a burst of writes between commits;
// unquotedJournalBytes is the bound of a store without a byte quota.
const (
	minJournalBytes      = 4 << 20
	unquotedJournalBytes = 256 << 20
)

// journalBound is the bytes of writes the journal may hold before they
// are on disk: the store's byte quota, at least minJournalBytes. A write
// to a store holding that much is refused (UNAVAILABLE) until a commit
// frees it, and the committer starts once half of it waits, so a loop
// of large writes cannot hold more than the quota again in memory, while
// the disk falls behind. The caller holds the store's lock.
func (s *Store) journalBound() uint64 {
	if s.quota.MaxBytes == 0 {
		return unquotedJournalBytes
	}
	return max(s.quota.MaxBytes, minJournalBytes)
}

// backlog returns why the journal takes no write now because it holds
// bound bytes not yet on disk, or nil; past half of it, it starts the
// committer.
func (j *journal) backlog(bound uint64) error {
	j.mu.Lock()
	unsynced := j.unsynced
	j.mu.Unlock()
	if unsynced < bound/2 {
		return nil
	}
	select {
	case j.kick <- struct{}{}:
	default:
	}
	if unsynced < bound {
		return nil
	}
	return fmt.Errorf("kv store: %d bytes of writes wait for the disk, the most it holds (the kv quota); retry", unsynced)
}

// flushEvery is how long a write nobody waits for (the sweeper's) may
// stay pending.
const flushEvery = 100 * time.Millisecond

// run commits what is pending, one batch at a time, until stop; then
// commits what is left and returns.
func (j *journal) run() {
	defer close(j.stopped)
	// A damaged file faults when bbolt reads its mapping: a panic commit
	// recovers, not the end of the process.
	debug.SetPanicOnFault(true)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	var batch []record
	for {
		select {
		case <-j.kick:
		case <-t.C:
		case <-j.stop:
			j.commit(&batch)
			return
		}
		j.commit(&batch)
	}
}

// keptBatch is the most records a commit's scratch array keeps room for
// between commits.
const keptBatch = 4096

// commit writes what is pending in one transaction. batch is scratch
// reused between commits, kept while it is at most keptBatch records.
//
// A commit that fails (a full disk, an I/O error) leaves its records
// pending, ahead of any that follow, and the store refuses writes
// (UNAVAILABLE) until a later commit, tried at every tick, succeeds: the
// disk may have room again. The writes of the failed commit were applied
// in memory and their callers told the outcome is unknown; they reach
// the file with that later commit, or are lost with the process.
func (j *journal) commit(batch *[]record) {
	j.mu.Lock()
	*batch, j.pending = j.pending, (*batch)[:0]
	seq, rev, update := j.appended.Load(), j.rev, j.update
	j.mu.Unlock()
	if len(*batch) == 0 {
		return
	}
	var size int64
	err := j.safely(update, func(tx *bbolt.Tx) error {
		size = tx.Size()
		entries := tx.Bucket(bucketEntries)
		for _, r := range *batch {
			var err error
			if r.stored == nil {
				err = entries.Delete(r.key)
			} else {
				err = entries.Put(r.key, r.stored)
			}
			if err != nil {
				return fmt.Errorf("key %q: %w", r.key, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(metaRevision, binary.BigEndian.AppendUint64(nil, rev))
	})
	j.commits.Add(1)
	j.mu.Lock()
	was, report := j.err, j.report
	if err != nil {
		j.err = fmt.Errorf("kv store: write to disk failed; writes are refused until a commit, tried every %v, succeeds: %w", flushEvery, err)
		j.pending = append(*batch, j.pending...)
		*batch = nil // its array is pending's now
	} else {
		for i := range *batch {
			j.unsynced -= (*batch)[i].size()
		}
		clear(*batch)
		if cap(*batch) > keptBatch {
			// A burst's array, 48 bytes a record, would be kept for as
			// long as the store lives: a million puts of empty values
			// left 55 MB the quota does not count.
			*batch = nil
		}
		j.err = nil
		j.synced.Store(seq)
	}
	close(j.moved)
	j.moved = make(chan struct{})
	tested := j.disk != nil
	now := j.err
	j.mu.Unlock()
	if report != nil && failureText(was) != failureText(now) {
		report(now)
	}
	if err == nil && !tested {
		j.maybeCompact(size)
	}
}

// compactSlack is how much a file must grow past twice its size when it
// was last compacted (or opened), and past the store's quota, before the
// committer looks at how much of it is free; a variable for tests.
var compactSlack int64 = 64 << 20

// maybeCompact compacts the file, of size bytes after the last commit,
// when it has grown past twice its last compacted size, and past the
// store's byte quota, by compactSlack, and over half of it is free
// pages. bbolt never shrinks its file, and reuses a free run of pages
// only for a value that fits in it: a
// plugin writing each value a little larger than the last, and deleting
// it, with a small one kept between (within its quota all along) took
// the file to 158 MB with 1.25 MB live under a 32 MiB quota in 24 s, and
// on. Compacted, the file stays within about its quota (or twice its
// data), the slack, and one commit's growth. A compaction writes the live
// data, at most the quota, once, after writes of at least the slack and
// what the quota leaves free: its cost is bounded by what made it.
func (j *journal) maybeCompact(size int64) {
	if size < max(2*j.compacted, j.quotaBytes())+compactSlack {
		return
	}
	stats := j.db.Stats()
	free := int64(stats.FreePageN+stats.PendingPageN) * int64(j.db.Info().PageSize)
	if 2*free < size {
		// Mostly live: look again once the file is twice what is live
		// (and past the quota) by the slack, when half of it is free. Its
		// own size would let a file of live data grow to twice as much
		// free before a compaction (an outside check: 48 MiB under a
		// 16 MiB quota, past the bound above).
		j.compacted = size - free
		return
	}
	if err := j.compact(); err != nil {
		j.compacted = size // not again before it doubles
		j.mu.Lock()
		if j.err == nil && j.db == nil {
			j.err = fmt.Errorf("kv store: %w", err)
		}
		j.mu.Unlock()
		return
	}
	j.compacted = fileSize(j.db)
	j.compactions.Add(1)
}

// compact copies the file's data into a new file and puts that in its
// place. A crash leaves the old file or the new one, whole; a failure
// before the swap leaves the old one in use, and after it, when the file
// cannot be opened again, j.db nil and an error, which makes the store
// refuse writes.
func (j *journal) compact() error {
	path := j.path
	tmp := path + compactingSuffix
	_ = os.Remove(tmp) // a crash's leftover
	dst, err := bbolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return err
	}
	if err := bbolt.Compact(dst, j.db, compactTxBytes); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil { // each of Compact's commits is synced
		_ = os.Remove(tmp)
		return err
	}
	if err := closeSafely(j.db); err != nil {
		return err
	}
	swapErr := os.Rename(tmp, path)
	if swapErr == nil {
		swapErr = syncDir(filepath.Dir(path))
	}
	db, err := bbolt.Open(path, 0o600, boltOptions())
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.db = nil
		return fmt.Errorf("opening %s again after compacting it: %w", path, err)
	}
	j.db, j.update = db, db.Update
	return swapErr
}

// compactingSuffix names, after the file's name, the copy a compaction
// writes.
const compactingSuffix = ".compacting"

// compactTxBytes bounds one transaction of a compaction's copy.
const compactTxBytes = 16 << 20

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileSize returns db's file size, 0 when it cannot be read.
func fileSize(db *bbolt.DB) int64 {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// FailCommits makes every commit of a durable store fail with err while
// it is not nil, as a full disk would: the callers' tests use it to see
// how a failed commit is answered. A store without a journal ignores it.
func (s *Store) FailCommits(err func() error) {
	if s.j == nil {
		return
	}
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	if s.j.disk == nil {
		s.j.disk = s.j.update
	}
	disk := s.j.disk
	s.j.update = func(fn func(*bbolt.Tx) error) error {
		if e := err(); e != nil {
			return e
		}
		return disk(fn)
	}
}

// failureText is err's text, "" for none: two failed commits for one reason
// are reported once (ReportCommits).
func failureText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// safely runs update(fn), turning a panic of bbolt's on a damaged file
// (its transaction rolled back) into ErrDamaged: the commit fails as on a
// failing disk, and the store refuses writes while the file stays so.
func (j *journal) safely(update func(func(*bbolt.Tx) error) error, fn func(*bbolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(j.path, p)
		}
	}()
	return update(fn)
}

// sync waits until every record appended before it is on disk.
func (j *journal) sync(ctx context.Context) error {
	want := j.appended.Load()
	if j.synced.Load() >= want {
		return nil
	}
	// A call whose time ran out before it came to wait (on a Redis that
	// did not answer, say) is told so, not that the disk was slow.
	waited := "waiting for the disk"
	if ctx.Err() != nil {
		waited = "the call's time ran out before its writes were synced"
	}
	// The committer starts when someone waits, not at every write: the
	// several writes of one call then go to disk in one commit.
	select {
	case j.kick <- struct{}{}:
	default:
	}
	for {
		j.mu.Lock()
		if j.err != nil {
			err := j.err
			j.mu.Unlock()
			return err
		}
		if j.synced.Load() >= want {
			j.mu.Unlock()
			return nil
		}
		moved := j.moved
		j.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("kv store: %s: %w", waited, ctx.Err())
		}
	}
}

// close commits what is pending and closes the file.
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.stop)
	<-j.stopped
	err := j.failure()
	if err != nil && j.err == nil {
		err = nil // only closed
	}
	if j.db == nil { // a compaction could not open the file again
		return err
	}
	if cerr := closeSafely(j.db); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Unsynced returns how many writes are applied but not yet on disk; 0 for
// an in-memory Store.
func (s *Store) Unsynced() uint64 {
	if s.j == nil {
		return 0
	}
	// synced is read first: appended only grows, so the difference is
	// never negative.
	synced := s.j.synced.Load()
	return s.j.appended.Load() - synced
}
