package localstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/storage-host/storage-host/abi"
)

func openStore(t testing.TB, dir string, c *fakeClock) *Store {
	t.Helper()
	s, err := Open(dir, c.Now, 0, Quota{})
	require.NoError(t, err)
	return s
}

// everything returns every live entry of s, in key order.
func everything(t testing.TB, s *Store) []abi.KVEntry {
	t.Helper()
	var all []abi.KVEntry
	start := ""
	for {
		page, next := scan(t, s, start, "", 0)
		all = append(all, page...)
		if next == "" {
			return all
		}
		start = next
	}
}

func TestReopenKeepsEntriesRevisionsAndExpiries(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	s := openStore(t, dir, c)
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2", expiresAt(epoch.Add(time.Hour)))
	mustPut(t, s, "b", "22", keepTTL)                          // value replaced in place
	mustPut(t, s, "c", "3")                                    // deleted below
	mustPut(t, s, "d", "4", expiresAt(epoch.Add(time.Second))) // expires while closed
	_, _, st := restore(t, s, "e", "5", 1000)
	require.Equal(t, abi.StatusOK, st)
	last := mustPut(t, s, "f", "6")
	require.Equal(t, abi.StatusOK, del(t, s, "c"))
	require.Equal(t, abi.StatusOK, del(t, s, "f")) // the highest revision is gone: the counter must still be kept
	before := everything(t, s)
	require.NoError(t, s.Sync(context.Background()))
	require.NoError(t, s.Close())

	c.Advance(2 * time.Second)
	s = openStore(t, dir, c)
	defer s.Close()
	after := everything(t, s)
	var want []abi.KVEntry
	for _, en := range before {
		if string(en.Key) != "d" {
			want = append(want, en)
		}
	}
	assert.Equal(t, want, after)
	assert.Equal(t, 3, s.Len(), "the entry that expired while closed is not loaded")

	// Revisions never repeat across a reopen, even past a deleted key's.
	rev := mustPut(t, s, "g", "7")
	assert.Greater(t, rev, last)
	assert.Greater(t, rev, uint64(1000), "a restored revision moves the counter, across a reopen too")
}

func TestReopenMatchesAfterRandomWrites(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	s := openStore(t, dir, c)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		key := "k" + strconv.Itoa(r.IntN(300))
		switch r.IntN(5) {
		case 0:
			del(t, s, key)
		case 1:
			put(t, s, key, strconv.Itoa(i), expiresAt(epoch.Add(time.Duration(r.IntN(100))*time.Second)))
		case 2:
			put(t, s, key, string(make([]byte, r.IntN(200))), keepTTL)
		default:
			put(t, s, key, strconv.Itoa(i))
		}
		if i%500 == 0 {
			c.Advance(7 * time.Second) // some entries expire, and are met by later writes
		}
	}
	before := everything(t, s)
	require.NoError(t, s.Close())
	s = openStore(t, dir, c)
	defer s.Close()
	assert.Equal(t, before, everything(t, s))
}

func TestOpenTwiceSharesOneStore(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a := openStore(t, dir, c)
	b := openStore(t, filepath.Join(dir, "."), c) // the same directory, spelled otherwise
	require.Same(t, a, b)
	mustPut(t, a, "k", "v")
	require.NoError(t, a.Close())
	// b still holds a reference: the store is open and writable.
	mustPut(t, b, "k2", "v2")
	en, st := get(t, b, "k")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, "v", string(en.Value))
	require.NoError(t, b.Close())
	// Closed for good: writes are refused, and the directory can be opened again.
	_, _, st = put(t, b, "k3", "v3")
	assert.Equal(t, abi.StatusUnavailable, st)
	c2 := openStore(t, dir, c)
	defer c2.Close()
	assert.Len(t, everything(t, c2), 2)
}

func TestOpenRefusesADirectoryHeldElsewhere(t *testing.T) {
	dir := t.TempDir()
	// bbolt's lock is an flock on the open file: a second open file
	// description, as another process would have, is refused.
	db, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	_, err = Open(dir, time.Now, 0, Quota{})
	require.ErrorIs(t, err, ErrInUse)
}

func TestOpenRefusesAnUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(metaFormat, []byte{0, 0, 0, 0, 0, 0, 0, 9})
	}))
	require.NoError(t, db.Close())
	_, err = Open(dir, time.Now, 0, Quota{})
	require.ErrorContains(t, err, "file format")
}

// closedStoreOf2000 writes 2 000 entries of 1 000 bytes to a store in a
// new directory and closes it; it returns the directory, the store's
// clock, its file and the file's bytes.
func closedStoreOf2000(t *testing.T) (dir string, c *fakeClock, path string, whole []byte) {
	dir, c = t.TempDir(), newClock()
	s := openStore(t, dir, c)
	value := strings.Repeat("v", 1000)
	for i := range 2000 {
		mustPut(t, s, fmt.Sprintf("k%04d", i), value)
	}
	require.NoError(t, s.Sync(context.Background()))
	require.NoError(t, s.Close())
	path = filepath.Join(dir, FileName)
	whole, err := os.ReadFile(path)
	require.NoError(t, err)
	return dir, c, path, whole
}

// TestOpenRefusesACutFile: a file cut short (a failed copy, a full disk)
// is refused with its path named and left as it is, never read past its
// end (bbolt would panic or fault on a goroutine of its own, ending the
// process). The whole file opens again, with every entry.
func TestOpenRefusesACutFile(t *testing.T) {
	dir, c, path, whole := closedStoreOf2000(t)
	require.Greater(t, len(whole), 1<<20)
	for _, size := range []int{8192, 65536, 98304, len(whole) / 2} {
		require.NoError(t, os.WriteFile(path, whole[:size], 0o600))
		_, err := Open(dir, c.Now, 0, Quota{})
		require.ErrorContains(t, err, path, "cut to %d bytes", size)
		require.ErrorContains(t, err, "cut short")
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.EqualValues(t, size, info.Size(), "the file is left as it is")
	}
	require.NoError(t, os.WriteFile(path, whole, 0o600))
	s := openStore(t, dir, c)
	defer s.Close()
	require.Equal(t, 2000, s.Len())
}

func TestOpenCreatesAPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir, time.Now, 0, Quota{})
	require.NoError(t, err)
	defer s.Close()
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestKeysOverTheFileLimitAreRefused(t *testing.T) {
	for _, s := range []*Store{New(time.Now, 0, Quota{}), openStore(t, t.TempDir(), newClock())} {
		_, _, st := put(t, s, string(make([]byte, MaxKeyLength+1)), "v")
		assert.Equal(t, abi.StatusLimit, st, "durable: %v", s.Durable())
		_, _, st = put(t, s, string(make([]byte, MaxKeyLength)), "v")
		assert.Equal(t, abi.StatusOK, st, "durable: %v", s.Durable())
		require.NoError(t, s.Close())
	}
}

func TestConcurrentWritersShareCommits(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	defer s.Close()
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var e abi.Encoder
				s.Do(&abi.KVRequest{Op: abi.KVPut, Key: fmt.Appendf(nil, "w%d/%d", w, i), Value: []byte("v")}, &e)
				if err := s.Sync(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	commits := s.j.commits.Load()
	t.Logf("%d synced writes in %d commits", writers*each, commits)
	assert.Less(t, commits, uint64(writers*each), "writers waiting at once share a commit")
	assert.Equal(t, writers*each, s.Len())
}

func TestSyncGivesUpWithItsContext(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	defer s.Close()
	mustPut(t, s, "k", "v")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Sync(ctx)
	// Either the commit was already done, or the wait gave up.
	if err != nil {
		assert.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, s.Sync(context.Background()))
}

// A commit that fails (a full disk) makes the store refuse writes and
// its Sync fail, until a later commit, tried at the next tick, succeeds:
// then it takes writes again, without a restart, and what was applied
// before the failure reaches the file.
func TestFailedCommitRecovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, newClock())
	mustPut(t, s, "k1", "v1")
	require.NoError(t, s.Sync(context.Background()))

	var full atomic.Bool
	full.Store(true)
	s.j.mu.Lock()
	update := s.j.update
	s.j.update = func(fn func(*bbolt.Tx) error) error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return update(fn)
	}
	s.j.mu.Unlock()
	mustPut(t, s, "k2", "v2")
	err := s.Sync(context.Background())
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, s.Err(), syscall.ENOSPC)
	_, _, st := put(t, s, "k3", "v3")
	assert.Equal(t, abi.StatusUnavailable, st, "refused while the disk fails")
	// Retried at the ticks, and failing still.
	tried := s.j.commits.Load()
	require.Eventually(t, func() bool { return s.j.commits.Load() >= tried+2 }, 5*time.Second, 10*time.Millisecond, "retried at the ticks")
	require.Error(t, s.Err(), "still failing")

	full.Store(false)
	require.Eventually(t, func() bool { return s.Err() == nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, s.Sync(context.Background()))
	mustPut(t, s, "k4", "v4")
	require.NoError(t, s.Sync(context.Background()))
	require.NoError(t, s.Close())

	s = openStore(t, dir, newClock())
	defer s.Close()
	for _, k := range []string{"k1", "k2", "k4"} {
		_, st := get(t, s, k)
		assert.Equal(t, abi.StatusOK, st, k)
	}
	_, st = get(t, s, "k3")
	assert.Equal(t, abi.StatusNotFound, st, "the refused write")
}

// crashChild is the process TestAcknowledgedWritesSurviveSIGKILL kills:
// it writes keys one after another, syncs each, and prints the number of
// every key once Sync returned — what the host would acknowledge.
func crashChild(dir string) {
	s, err := Open(dir, time.Now, 0, Quota{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		var e abi.Encoder
		s.Do(&abi.KVRequest{Op: abi.KVPut, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}, &e)
		if _, err := abi.ParseResponse(e.Bytes()); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		if err := s.Sync(context.Background()); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// TestMain runs the crash test's child when asked to, else the tests,
// failing the binary if a goroutine outlives them.
func TestMain(m *testing.M) {
	if dir := os.Getenv("LOCALSTORE_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LOCALSTORE_CRASH_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(stdout)
		acked := -1
		for lines.Scan() && acked < 200*(round+1) {
			n, err := strconv.Atoi(lines.Text())
			require.NoError(t, err, "child: %s", lines.Text())
			acked = n
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		require.GreaterOrEqual(t, acked, 0)

		s := openStore(t, dir, newClock())
		for i := 0; i <= acked; i++ {
			en, st := get(t, s, "k"+strconv.Itoa(i))
			require.Equal(t, abi.StatusOK, st, "round %d: acknowledged key k%d lost by SIGKILL (%d acknowledged)", round, i, acked+1)
			require.Equal(t, strconv.Itoa(i), string(en.Value))
		}
		require.NoError(t, s.Close())
	}
}

// BenchmarkSyncedPut is a put that waits for the disk, by concurrent
// writers: in memory (Sync returns at once) and on disk, where writers
// waiting at once share a commit.
func BenchmarkSyncedPut(b *testing.B) {
	val := make([]byte, 100)
	for _, disk := range []bool{false, true} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("disk=%v/writers=%d", disk, writers), func(b *testing.B) {
				s := New(nil, 0, Quota{})
				if disk {
					var err error
					if s, err = Open(b.TempDir(), nil, 0, Quota{}); err != nil {
						b.Fatal(err)
					}
				}
				b.Cleanup(func() { _ = s.Close() })
				b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
				var n atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					var e abi.Encoder
					req := abi.KVRequest{Op: abi.KVPut, Value: val}
					for pb.Next() {
						req.Key = fmt.Appendf(req.Key[:0], "bench/%08d", n.Add(1)%10000)
						e.Reset()
						s.Do(&req, &e)
						if err := s.Sync(context.Background()); err != nil {
							b.Error(err)
							return
						}
					}
				})
				if disk {
					b.ReportMetric(float64(b.N)/float64(s.j.commits.Load()), "puts/commit")
				}
			})
		}
	}
}

func TestJournalHoldsAtMostTheQuotaOfWritesNotOnDisk(t *testing.T) {
	const quota = 8 << 20
	s, err := Open(t.TempDir(), newClock().Now, 0, Quota{MaxBytes: quota})
	require.NoError(t, err)
	defer s.Close()
	value := strings.Repeat("v", 1<<20)
	var before, m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak, waiting uint64
	statuses := map[abi.Status]int{}
	// The same key rewritten: the store holds one value, but each write
	// waits in the journal until the committer takes it.
	for range 300 {
		_, _, st := put(t, s, "big", value)
		statuses[st]++
		waiting = max(waiting, s.Unsynced())
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
	}
	grown := int64(peak) - int64(before.HeapInuse)
	t.Logf("answers %v; at most %d writes waited for the disk; heap in use grew by %d MiB at most", statuses, waiting, grown>>20)
	require.LessOrEqual(t, waiting, uint64(quota/len(value)+1), "the journal holds the quota of writes, and one more")
	require.Less(t, grown, int64(16*quota), "the heap holds a few times the quota")
	require.Subset(t, []abi.Status{abi.StatusOK, abi.StatusUnavailable}, mapKeys(statuses))
	require.NotZero(t, statuses[abi.StatusOK])
	require.NoError(t, s.Sync(context.Background()))
	_, _, st := put(t, s, "big", "last")
	require.Equal(t, abi.StatusOK, st, "a write is taken again once the journal is on disk")
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestOpenRefusesADamagedFile: a file with pages overwritten (a bad disk,
// a copy of two files mixed) is refused with ErrDamaged and its path
// named, never with a panic of bbolt's (it panics on such pages, at open,
// on the goroutine that opens: the daemon would crash at start). The file
// is left as it is, and its lock released: restored, it opens again.
func TestOpenRefusesADamagedFile(t *testing.T) {
	dir, c, path, whole := closedStoreOf2000(t)
	pages := len(whole) / 4096
	r := rand.New(rand.NewPCG(1, 2))
	refused := 0
	for round := range 24 {
		b := slices.Clone(whole)
		page := 2 + r.IntN(pages-2) // past the two meta pages, which bbolt checksums
		for i := range 16 {
			b[page*4096+i] = byte(r.IntN(256)) // the page's header: its id, type, count
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))
		st, err := Open(dir, c.Now, 0, Quota{})
		if err != nil {
			require.ErrorIs(t, err, ErrDamaged, "round %d, page %d", round, page)
			require.ErrorContains(t, err, path)
			got, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			require.Equal(t, b, got, "the file is left as it is")
			refused++
		} else {
			require.NoError(t, st.Close()) // a page no entry needs, say
		}
		require.NoError(t, os.WriteFile(path, whole, 0o600))
		st = openStore(t, dir, c) // lock released, file whole again
		require.Equal(t, 2000, st.Len())
		require.NoError(t, st.Close())
	}
	require.Positive(t, refused, "some damage must be found")
}

// TestCommitThatPanicsFailsItsWrites: bbolt panics, in the committing
// goroutine, on a page it finds damaged while it writes. The commit fails
// as on a failing disk (writes wait, then are refused, and the store says
// why) instead of the panic ending the process; once commits succeed
// again, so do writes.
func TestCommitThatPanicsFailsItsWrites(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	defer s.Close()
	mustPut(t, s, "k1", "v1")
	require.NoError(t, s.Sync(context.Background()))

	var broken atomic.Bool
	broken.Store(true)
	s.j.mu.Lock()
	update := s.j.update
	s.j.update = func(fn func(*bbolt.Tx) error) error {
		if broken.Load() {
			panic("assertion failed: Page expected to be: 1017, but self identifies as 11936128518282651045")
		}
		return update(fn)
	}
	s.j.mu.Unlock()
	mustPut(t, s, "k2", "v2")
	err := s.Sync(context.Background())
	require.ErrorIs(t, err, ErrDamaged)
	require.ErrorContains(t, err, "self identifies as")
	require.ErrorIs(t, s.Err(), ErrDamaged)
	_, _, st := put(t, s, "k3", "v3")
	assert.Equal(t, abi.StatusUnavailable, st, "refused while commits fail")

	broken.Store(false)
	require.Eventually(t, func() bool { return s.Err() == nil }, 5*time.Second, 10*time.Millisecond)
	mustPut(t, s, "k4", "v4")
	require.NoError(t, s.Sync(context.Background()))
}

// A damaged header page of the file's last commit makes bbolt open the
// file at the commit before, without a word: an acknowledged write is
// gone. Open says so (LostCommit); a damaged header page of the commit
// before, which bbolt does not need, is nothing to say.
func TestOpenNamesALostCommit(t *testing.T) {
	for _, newer := range []bool{true, false} {
		dir := t.TempDir()
		c := newClock()
		s := openStore(t, dir, c)
		for i := range 5 {
			_, _, st := put(t, s, fmt.Sprint("k", i), "v")
			require.Equal(t, abi.StatusOK, st)
		}
		_, _, st := put(t, s, "last", "acknowledged")
		require.Equal(t, abi.StatusOK, st)
		require.NoError(t, s.Close())

		path := filepath.Join(dir, FileName)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		// The meta page with the higher transaction is the last commit's.
		txid := func(page int) uint64 {
			return binary.LittleEndian.Uint64(b[page*4096+pageHeaderBytes+48:])
		}
		last := 0
		if txid(1) > txid(0) {
			last = 1
		}
		damage := last
		if !newer {
			damage = 1 - last
		}
		b[damage*4096+pageHeaderBytes+metaSummed] ^= 0xff // its checksum
		require.NoError(t, os.WriteFile(path, b, 0o600))

		s = openStore(t, dir, c)
		_, st = get(t, s, "last")
		if newer {
			require.Equal(t, abi.StatusNotFound, st, "bbolt opened the file at the commit before")
			require.Contains(t, s.LostCommit(), path)
			require.Contains(t, s.LostCommit(), fmt.Sprintf("transaction %d) is damaged", txid(last)))
		} else {
			require.Equal(t, abi.StatusOK, st)
			require.Empty(t, s.LostCommit(), "the damaged page was the commit before's")
		}
		require.NoError(t, s.Close())
	}
}

// ReportCommits tells whoever watches the store that its commits failed,
// once for each new reason, and that they succeed again: callers only
// see their writes refused, and an operator saw nothing of a disk full.
func TestReportCommitsTellsFailureAndRecovery(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	defer s.Close()
	var mu sync.Mutex
	var reports []error
	s.ReportCommits(func(failing error) {
		mu.Lock()
		reports = append(reports, failing)
		mu.Unlock()
	})
	var fail atomic.Uintptr // an errno, 0 for none
	fail.Store(uintptr(syscall.ENOSPC))
	s.FailCommits(func() error {
		if n := fail.Load(); n != 0 {
			return syscall.Errno(n)
		}
		return nil
	})
	ctx := context.Background()
	mustPut(t, s, "a", "1")
	require.ErrorIs(t, s.Sync(ctx), syscall.ENOSPC)
	require.ErrorIs(t, s.Sync(ctx), syscall.ENOSPC, "still failing: reported once")
	fail.Store(uintptr(syscall.EIO))
	require.Eventually(t, func() bool { return errors.Is(s.Err(), syscall.EIO) }, 10*time.Second, 10*time.Millisecond)
	fail.Store(0)
	require.Eventually(t, func() bool { return s.Sync(ctx) == nil }, 10*time.Second, 10*time.Millisecond)

	// report is called once the commit's waiters are woken: it may come
	// just after Sync returns. Every commit that failed alike came
	// before it, so a fourth report would be there already.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reports) >= 3
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reports, 3, "%v", reports)
	assert.ErrorIs(t, reports[0], syscall.ENOSPC)
	assert.ErrorIs(t, reports[1], syscall.EIO)
	assert.NoError(t, reports[2])
}
