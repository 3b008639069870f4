package localstore

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// fakeClock is a host clock the test moves by hand; the sweeper reads it
// from its own goroutine.
type fakeClock struct{ ns atomic.Int64 }

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(epoch.UnixNano())
	return c
}

// countingClock returns a fake clock a microsecond past the Unix epoch,
// below every revision: a store on it counts revisions from 1, as long as
// it is not advanced past the revisions given, for tests of the counter.
func countingClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(int64(time.Microsecond))
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newStore(t *testing.T, c *fakeClock, sweepEvery time.Duration) *Store {
	t.Helper()
	s := New(c.Now, sweepEvery, Quota{})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// do runs req and returns the response body, or the error status. It fails
// the test on a malformed response.
func do(t testing.TB, s *Store, req *abi.KVRequest) (*abi.Decoder, abi.Status) {
	t.Helper()
	var e abi.Encoder
	s.Do(req, &e)
	body, err := abi.ParseResponse(e.Bytes())
	if err != nil {
		var ae *abi.Error
		require.True(t, errors.As(err, &ae), "error %v is not an *abi.Error", err)
		require.NotEqual(t, abi.StatusOK, ae.Status)
		return nil, ae.Status
	}
	return abi.NewDecoder(body), abi.StatusOK
}

type putOpt func(*abi.KVRequest)

func expiresAt(t time.Time) putOpt { return func(r *abi.KVRequest) { r.ExpiresAt = t } }
func keepTTL(r *abi.KVRequest)     { r.KeepTTL = true }
func ifVersion(v uint64) putOpt {
	return func(r *abi.KVRequest) { r.Condition = abi.Condition{Mode: abi.IfVersion, Version: v} }
}
func ifAbsent(r *abi.KVRequest)            { r.Condition = abi.Condition{Mode: abi.IfAbsent} }
func withCondition(c abi.Condition) putOpt { return func(r *abi.KVRequest) { r.Condition = c } }

// put returns the revision and expiry the store answered, or the status.
func put(t testing.TB, s *Store, key, value string, opts ...putOpt) (uint64, time.Time, abi.Status) {
	t.Helper()
	req := &abi.KVRequest{Op: abi.KVPut, Key: []byte(key), Value: []byte(value)}
	for _, o := range opts {
		o(req)
	}
	d, st := do(t, s, req)
	if st != abi.StatusOK {
		return 0, time.Time{}, st
	}
	rev, exp := d.Uvarint(), d.Time()
	require.NoError(t, d.Finish())
	return rev, exp, st
}

// mustPut puts and requires success.
func mustPut(t testing.TB, s *Store, key, value string, opts ...putOpt) uint64 {
	t.Helper()
	rev, _, st := put(t, s, key, value, opts...)
	require.Equal(t, abi.StatusOK, st, "put %q", key)
	return rev
}

func get(t testing.TB, s *Store, key string) (abi.KVEntry, abi.Status) {
	t.Helper()
	d, st := do(t, s, &abi.KVRequest{Op: abi.KVGet, Key: []byte(key)})
	var en abi.KVEntry
	if st != abi.StatusOK {
		return en, st
	}
	en.Decode(d, false)
	require.NoError(t, d.Finish())
	return en, st
}

func del(t testing.TB, s *Store, key string, opts ...putOpt) abi.Status {
	t.Helper()
	req := &abi.KVRequest{Op: abi.KVDelete, Key: []byte(key)}
	for _, o := range opts {
		o(req)
	}
	d, st := do(t, s, req)
	if st == abi.StatusOK {
		require.NoError(t, d.Finish(), "delete answers an empty body")
	}
	return st
}

// scan returns the keys and values of one page, and next.
func scan(t testing.TB, s *Store, start, end string, limit uint32) ([]abi.KVEntry, string) {
	t.Helper()
	d, st := do(t, s, &abi.KVRequest{Op: abi.KVScan, Key: []byte(start), End: []byte(end), Limit: limit})
	require.Equal(t, abi.StatusOK, st)
	n := d.Count(1)
	ens := make([]abi.KVEntry, n)
	for i := range ens {
		ens[i].Decode(d, true)
	}
	next := d.BytesField()
	require.NoError(t, d.Finish())
	return ens, string(next)
}

func keys(ens []abi.KVEntry) []string {
	ks := make([]string, len(ens))
	for i, en := range ens {
		ks[i] = string(en.Key)
	}
	return ks
}

func TestGetPutDelete(t *testing.T) {
	s := newStore(t, countingClock(), 0)

	_, st := get(t, s, "a")
	assert.Equal(t, abi.StatusNotFound, st)

	rev, exp, st := put(t, s, "a", "one")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, uint64(1), rev, "revisions start at 1")
	assert.True(t, exp.IsZero())

	en, st := get(t, s, "a")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, "one", string(en.Value))
	assert.Equal(t, uint64(1), en.Revision)
	assert.True(t, en.ExpiresAt.IsZero())
	assert.Nil(t, en.Key, "get answers without the key")

	assert.Equal(t, uint64(2), mustPut(t, s, "a", "two"))
	en, _ = get(t, s, "a")
	assert.Equal(t, "two", string(en.Value))
	assert.Equal(t, uint64(2), en.Revision)

	// Values of any size, including empty, round-trip; updates that grow or
	// shrink the value past the old buffer must not corrupt the key.
	for _, v := range []string{"", "x", string(make([]byte, 4096)), "y", ""} {
		mustPut(t, s, "a", v)
		en, st = get(t, s, "a")
		require.Equal(t, abi.StatusOK, st)
		assert.Equal(t, v, string(en.Value))
	}
	ens, _ := scan(t, s, "", "", 0)
	assert.Equal(t, []string{"a"}, keys(ens))

	assert.Equal(t, abi.StatusOK, del(t, s, "a"))
	_, st = get(t, s, "a")
	assert.Equal(t, abi.StatusNotFound, st)
	assert.Equal(t, abi.StatusNotFound, del(t, s, "a"))
	assert.Equal(t, 0, s.Len())
}

func TestInvalid(t *testing.T) {
	s := newStore(t, newClock(), 0)

	_, _, st := put(t, s, "", "v")
	assert.Equal(t, abi.StatusInvalid, st, "empty key")

	_, st = do(t, s, &abi.KVRequest{Op: 0, Key: []byte("a")})
	assert.Equal(t, abi.StatusInvalid, st, "op 0")
	_, st = do(t, s, &abi.KVRequest{Op: 99, Key: []byte("a")})
	assert.Equal(t, abi.StatusInvalid, st, "op 99")

	_, _, st = put(t, s, "a", "v", withCondition(abi.Condition{Mode: 7}))
	assert.Equal(t, abi.StatusInvalid, st, "unknown condition mode")
	assert.Equal(t, abi.StatusInvalid, del(t, s, "a", withCondition(abi.Condition{Mode: 7})))

	_, st = get(t, s, "")
	assert.Equal(t, abi.StatusNotFound, st, "no entry can have the empty key")
	assert.Equal(t, 0, s.Len(), "failed requests write nothing")
}

func TestErrorResponsesCarryMessages(t *testing.T) {
	s := newStore(t, countingClock(), 0)
	mustPut(t, s, "a", "v")
	var e abi.Encoder
	s.Do(&abi.KVRequest{Op: abi.KVPut, Key: []byte("a"), Condition: abi.Condition{Mode: abi.IfVersion, Version: 9}}, &e)
	_, err := abi.ParseResponse(e.Bytes())
	require.ErrorIs(t, err, abi.StatusConflict)
	assert.EqualError(t, err, "conflict: revision is 1, not 9")
}

func TestPutConditions(t *testing.T) {
	s := newStore(t, newClock(), 0)

	_, _, st := put(t, s, "k", "v", ifVersion(1))
	assert.Equal(t, abi.StatusConflict, st, "IfVersion on an absent key")

	r1 := mustPut(t, s, "k", "v1", ifAbsent)
	_, _, st = put(t, s, "k", "v2", ifAbsent)
	assert.Equal(t, abi.StatusConflict, st, "IfAbsent on a present key")

	_, _, st = put(t, s, "k", "v2", ifVersion(r1+1))
	assert.Equal(t, abi.StatusConflict, st, "stale IfVersion")
	en, _ := get(t, s, "k")
	assert.Equal(t, "v1", string(en.Value), "a failed condition writes nothing")

	r2 := mustPut(t, s, "k", "v2", ifVersion(r1))
	assert.Greater(t, r2, r1)
	_, _, st = put(t, s, "k", "v3", ifVersion(r1))
	assert.Equal(t, abi.StatusConflict, st, "the old revision is spent")

	// Delete and re-create: the new entry never reuses a revision, so a CAS
	// holding the old one fails (no ABA).
	require.Equal(t, abi.StatusOK, del(t, s, "k"))
	r3 := mustPut(t, s, "k", "v3", ifAbsent)
	assert.Greater(t, r3, r2)
	_, _, st = put(t, s, "k", "v4", ifVersion(r2))
	assert.Equal(t, abi.StatusConflict, st)
}

func TestDeleteConditions(t *testing.T) {
	s := newStore(t, newClock(), 0)

	// The condition is checked first, so IfVersion on an absent key is a
	// conflict, like a put; an unconditional delete of an absent key is not
	// found; a create-only delete is meaningless, refused either way.
	assert.Equal(t, abi.StatusConflict, del(t, s, "k", ifVersion(1)))
	assert.Equal(t, abi.StatusInvalid, del(t, s, "k", ifAbsent))
	assert.Equal(t, abi.StatusNotFound, del(t, s, "k"))

	r := mustPut(t, s, "k", "v")
	assert.Equal(t, abi.StatusInvalid, del(t, s, "k", ifAbsent))
	assert.Equal(t, abi.StatusConflict, del(t, s, "k", ifVersion(r+1)))
	_, st := get(t, s, "k")
	require.Equal(t, abi.StatusOK, st, "a failed delete removes nothing")

	assert.Equal(t, abi.StatusOK, del(t, s, "k", ifVersion(r)))
	_, st = get(t, s, "k")
	assert.Equal(t, abi.StatusNotFound, st)
}

func TestRevisionsIncrease(t *testing.T) {
	s := newStore(t, countingClock(), 0)
	var last uint64
	for i := range 200 {
		key := "k" + strconv.Itoa(i%7)
		rev := mustPut(t, s, key, "v")
		require.Equal(t, last+1, rev, "one store-wide counter, one step per successful put")
		last = rev

		// Failed puts and deletes do not spend revisions.
		_, _, st := put(t, s, key, "v", ifAbsent)
		require.Equal(t, abi.StatusConflict, st)
		if i%5 == 0 {
			require.Equal(t, abi.StatusOK, del(t, s, key))
		}
	}
	ens, _ := scan(t, s, "", "", 0)
	seen := map[uint64]bool{}
	for _, en := range ens {
		assert.False(t, seen[en.Revision], "revision %d twice", en.Revision)
		seen[en.Revision] = true
	}
}

func TestValuesAreCopied(t *testing.T) {
	s := newStore(t, newClock(), 0)
	key, val := []byte("key"), []byte("value")
	var e abi.Encoder
	s.Do(&abi.KVRequest{Op: abi.KVPut, Key: key, Value: val}, &e)
	copy(key, "XXX")
	copy(val, "XXXXX")

	en, st := get(t, s, "key")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, "value", string(en.Value))

	// An update that reuses the stored buffer copies too.
	val = []byte("other")
	s.Do(&abi.KVRequest{Op: abi.KVPut, Key: []byte("key"), Value: val}, &e)
	copy(val, "XXXXX")
	en, _ = get(t, s, "key")
	assert.Equal(t, "other", string(en.Value))

	// So does the response: a later update does not change a get's bytes.
	e.Reset()
	s.Do(&abi.KVRequest{Op: abi.KVGet, Key: []byte("key")}, &e)
	resp := e.Bytes()
	mustPut(t, s, "key", "third")
	body, err := abi.ParseResponse(resp)
	require.NoError(t, err)
	en.Decode(abi.NewDecoder(body), false)
	assert.Equal(t, "other", string(en.Value))
}

func TestExpiry(t *testing.T) {
	c := newClock()
	s := newStore(t, c, 0)
	at := epoch.Add(10 * time.Second)

	rev, exp, st := put(t, s, "k", "v", expiresAt(at))
	require.Equal(t, abi.StatusOK, st)
	assert.True(t, at.Equal(exp), "put answers the expiry: %v", exp)
	mustPut(t, s, "other", "v")

	c.Set(at.Add(-time.Nanosecond))
	en, st := get(t, s, "k")
	require.Equal(t, abi.StatusOK, st, "live until the instant it expires")
	assert.Equal(t, rev, en.Revision)
	assert.True(t, at.Equal(en.ExpiresAt))
	ens, _ := scan(t, s, "", "", 0)
	assert.Equal(t, []string{"k", "other"}, keys(ens))

	c.Set(at)
	_, st = get(t, s, "k")
	assert.Equal(t, abi.StatusNotFound, st, "gone exactly at ExpiresAt")
	ens, _ = scan(t, s, "", "", 0)
	assert.Equal(t, []string{"other"}, keys(ens))
	assert.Equal(t, 2, s.Len(), "a read leaves the expired entry to writers and the sweeper")

	// Writes treat it as absent, and reclaim it.
	assert.Equal(t, abi.StatusConflict, del(t, s, "k", ifVersion(rev)))
	assert.Equal(t, 1, s.Len())
	mustPut(t, s, "k", "v", expiresAt(at))
	c.Advance(time.Second)
	assert.Equal(t, abi.StatusNotFound, del(t, s, "k"))
	assert.Equal(t, 1, s.Len())

	_, _, st = put(t, s, "k", "v", expiresAt(c.Now().Add(time.Second)), ifVersion(rev))
	assert.Equal(t, abi.StatusConflict, st)
	r := mustPut(t, s, "k", "fresh", ifAbsent, expiresAt(c.Now().Add(time.Second)))
	en, _ = get(t, s, "k")
	assert.Equal(t, r, en.Revision)
	assert.Equal(t, "fresh", string(en.Value))

	// A put that expires on arrival succeeds and leaves nothing behind.
	rev, _, st = put(t, s, "k", "v", expiresAt(c.Now()))
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, r+1, rev)
	_, st = get(t, s, "k")
	assert.Equal(t, abi.StatusNotFound, st)
	assert.Equal(t, 1, s.Len())
}

func TestKeepTTL(t *testing.T) {
	c := newClock()
	s := newStore(t, c, 0)
	first, second := epoch.Add(time.Minute), epoch.Add(time.Hour)

	// A new entry takes the request's expiry.
	_, exp, _ := put(t, s, "k", "v1", keepTTL, expiresAt(first))
	assert.True(t, first.Equal(exp))

	// An existing live entry keeps its own.
	_, exp, _ = put(t, s, "k", "v2", keepTTL, expiresAt(second))
	assert.True(t, first.Equal(exp), "got %v", exp)
	en, _ := get(t, s, "k")
	assert.Equal(t, "v2", string(en.Value))
	assert.True(t, first.Equal(en.ExpiresAt))

	// Without KeepTTL the request's expiry, even none, replaces it.
	_, exp, _ = put(t, s, "k", "v3")
	assert.True(t, exp.IsZero())
	_, exp, _ = put(t, s, "k", "v4", keepTTL, expiresAt(second))
	assert.True(t, exp.IsZero(), "no expiry is kept as no expiry")

	// An expired entry is absent: the request's expiry applies.
	mustPut(t, s, "e", "v", expiresAt(first))
	c.Set(first)
	_, exp, _ = put(t, s, "e", "v", keepTTL, expiresAt(second))
	assert.True(t, second.Equal(exp), "got %v", exp)
}

func TestScanRange(t *testing.T) {
	s := newStore(t, newClock(), 0)
	for _, k := range []string{"b", "a", "ab", "c", "b\x00", "\xff", "B"} {
		mustPut(t, s, k, "v-"+k)
	}
	all := []string{"B", "a", "ab", "b", "b\x00", "c", "\xff"}

	ens, next := scan(t, s, "", "", 0)
	assert.Equal(t, all, keys(ens), "bytewise order")
	assert.Empty(t, next)
	for _, en := range ens {
		assert.Equal(t, "v-"+string(en.Key), string(en.Value))
		assert.NotZero(t, en.Revision)
	}

	ens, next = scan(t, s, "ab", "b\x00", 0)
	assert.Equal(t, []string{"ab", "b"}, keys(ens), "start inclusive, end exclusive")
	assert.Empty(t, next, "the range is exhausted even though keys follow it")

	ens, _ = scan(t, s, "aa", "", 0)
	assert.Equal(t, all[2:], keys(ens), "start need not exist")

	ens, next = scan(t, s, "c", "b", 0)
	assert.Empty(t, ens, "end before start")
	assert.Empty(t, next)

	ens, next = scan(t, s, "a", "", 2)
	assert.Equal(t, []string{"a", "ab"}, keys(ens))
	assert.Equal(t, "b", next)

	ens, next = scan(t, s, "a", "b", 2)
	assert.Equal(t, []string{"a", "ab"}, keys(ens))
	assert.Empty(t, next, "a full page that ends the range has no next")
}

func TestScanLimits(t *testing.T) {
	s := newStore(t, newClock(), 0)
	for i := range abi.MaxQueryLimit + 50 {
		mustPut(t, s, fmt.Sprintf("k%05d", i), "")
	}
	ens, next := scan(t, s, "", "", 0)
	assert.Len(t, ens, abi.DefaultQueryLimit, "limit 0 is the default")
	assert.Equal(t, fmt.Sprintf("k%05d", abi.DefaultQueryLimit), next)

	ens, next = scan(t, s, "", "", 1<<31)
	assert.Len(t, ens, abi.MaxQueryLimit, "limit is capped")
	assert.Equal(t, fmt.Sprintf("k%05d", abi.MaxQueryLimit), next)
}

// pageThrough scans [start, end) page by page and returns every key seen.
func pageThrough(t *testing.T, s *Store, start, end string, limit uint32) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000, "pagination does not terminate")
		ens, next := scan(t, s, start, end, limit)
		got = append(got, keys(ens)...)
		if next == "" {
			return got
		}
		require.Len(t, ens, int(limit), "only the last page may be short")
		start = next
	}
}

func TestScanPagination(t *testing.T) {
	s := newStore(t, newClock(), 0)
	var want []string
	for i := range 1000 {
		k := fmt.Sprintf("key/%04d", i)
		mustPut(t, s, k, k)
		want = append(want, k)
	}
	for _, limit := range []uint32{1, 7, 100, 999, 1000} {
		assert.Equal(t, want, pageThrough(t, s, "", "", limit), "limit %d", limit)
	}
	assert.Equal(t, want[100:250], pageThrough(t, s, "key/0100", "key/0250", 33))
}

func TestScanSkipsExpired(t *testing.T) {
	c := newClock()
	s := newStore(t, c, 0)
	soon := epoch.Add(time.Second)
	var live []string
	for i := range 300 {
		k := fmt.Sprintf("k%03d", i)
		// Runs of expired entries of varying length between live ones,
		// including at both ends of the key space.
		if i%3 == 0 || (i/10)%4 == 1 || i < 5 || i >= 290 {
			mustPut(t, s, k, "", expiresAt(soon))
			continue
		}
		mustPut(t, s, k, "")
		live = append(live, k)
	}
	c.Set(soon)

	for _, limit := range []uint32{1, 2, 5, 64, 1000} {
		assert.Equal(t, live, pageThrough(t, s, "", "", limit), "limit %d", limit)
	}
	// next is always a live key, never an expired one.
	_, next := scan(t, s, "", "", 1)
	assert.Equal(t, live[1], next)
	// From inside a run of expired keys (k009 through k019), the page and
	// next are the first two live keys after it.
	ens, next := scan(t, s, "k009", "", 1)
	assert.Equal(t, []string{"k020"}, keys(ens))
	assert.Equal(t, "k022", next)
}

func TestSweepIsIncremental(t *testing.T) {
	c := newClock()
	s := newStore(t, c, 0) // no sweeper: drive sweep by hand
	soon := epoch.Add(time.Second)
	const n = 3*sweepBatch + 17
	live := 0
	for i := range n {
		k := fmt.Sprintf("k%05d", i)
		if i%4 == 0 {
			mustPut(t, s, k, "", expiresAt(soon.Add(time.Hour)))
			live++
			continue
		}
		mustPut(t, s, k, "", expiresAt(soon))
	}
	assert.Zero(t, s.sweep(), "nothing has expired yet")
	c.Set(soon)

	// Each tick visits at most sweepBatch entries, resuming after the last,
	// so the expired entries go in a few ticks, not one.
	removed, ticks := 0, 0
	for s.Len() > live {
		r := s.sweep()
		require.LessOrEqual(t, r, sweepBatch)
		removed += r
		ticks++
		require.Less(t, ticks, 100)
	}
	assert.Equal(t, n-live, removed)
	assert.Greater(t, ticks, 1)
	ens, _ := scan(t, s, "", "", 1000)
	assert.Len(t, ens, live, "live entries survive sweeping")
}

func TestSweeperReclaims(t *testing.T) {
	c := newClock()
	s := newStore(t, c, time.Millisecond)
	soon := epoch.Add(time.Second)
	const n = 10 * sweepBatch
	for i := range n {
		mustPut(t, s, fmt.Sprintf("k%05d", i), "v", expiresAt(soon))
	}
	mustPut(t, s, "keep", "v")
	require.Equal(t, n+1, s.Len())

	c.Set(soon)
	require.Eventually(t, func() bool { return s.Len() == 1 }, 10*time.Second, time.Millisecond)
	en, st := get(t, s, "keep")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, "v", string(en.Value))

	s.Close()
	s.Close() // twice is fine
	mustPut(t, s, "after", "close")
	_, st = get(t, s, "after")
	assert.Equal(t, abi.StatusOK, st, "Close stops only the sweeper")
}

// TestHammer runs compare-and-swap increments of one counter from many
// goroutines, while scanners walk expiring keys the sweeper is removing.
// Run it with -race. The CAS puts are the only writes, so the counter's
// final revision is its first plus the number of successful CAS.
func TestHammer(t *testing.T) {
	c := newClock()
	s := newStore(t, c, time.Millisecond)
	const (
		writers  = 16
		attempts = 300
	)
	for i := range 2000 {
		mustPut(t, s, fmt.Sprintf("tmp%04d", i), "x", expiresAt(epoch.Add(time.Duration(i)*time.Millisecond)))
	}
	rev0 := mustPut(t, s, "counter", "0")

	// Goroutines other than the test's report with assert, never require.
	var successes, conflicts atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			var e abi.Encoder
			var en abi.KVEntry
			for range attempts {
				e.Reset()
				s.Do(&abi.KVRequest{Op: abi.KVGet, Key: []byte("counter")}, &e)
				body, err := abi.ParseResponse(e.Bytes())
				if !assert.NoError(t, err) {
					return
				}
				en.Decode(abi.NewDecoder(body), false)
				n, err := strconv.Atoi(string(en.Value))
				if !assert.NoError(t, err) {
					return
				}
				e.Reset()
				s.Do(&abi.KVRequest{
					Op: abi.KVPut, Key: []byte("counter"), Value: []byte(strconv.Itoa(n + 1)),
					Condition: abi.Condition{Mode: abi.IfVersion, Version: en.Revision},
				}, &e)
				switch st := abi.Status(e.Bytes()[0]); st {
				case abi.StatusOK:
					successes.Add(1)
				case abi.StatusConflict:
					conflicts.Add(1)
				default:
					assert.Fail(t, "unexpected status", "%v", st)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		var e abi.Encoder
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Advance(time.Millisecond)
			e.Reset()
			s.Do(&abi.KVRequest{Op: abi.KVScan, Key: []byte("tmp"), Limit: 50}, &e)
			if !assert.Equal(t, byte(abi.StatusOK), e.Bytes()[0]) {
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	churn.Wait()

	en, st := get(t, s, "counter")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, strconv.FormatInt(successes.Load(), 10), string(en.Value), "no lost update")
	// One revision per successful CAS at least; more where the clock,
	// which the churn advances, passed the counter.
	assert.GreaterOrEqual(t, en.Revision, rev0+uint64(successes.Load()), "one revision per successful CAS")
	assert.Equal(t, int64(writers*attempts), successes.Load()+conflicts.Load())
	assert.Positive(t, successes.Load())
	t.Logf("%d successes, %d conflicts, %d entries left", successes.Load(), conflicts.Load(), s.Len())
}

func TestGetDoesNotAllocate(t *testing.T) {
	s := newStore(t, newClock(), 0)
	mustPut(t, s, "k", "value", expiresAt(epoch.Add(time.Hour)))
	req := &abi.KVRequest{Op: abi.KVGet, Key: []byte("k")}
	var e abi.Encoder
	s.Do(req, &e)         // grow the buffer once
	allocs := math.Inf(1) // the fewest of five rounds: every goroutine's allocations count
	for range 5 {
		allocs = min(allocs, testing.AllocsPerRun(1000, func() {
			e.Reset()
			s.Do(req, &e)
		}))
	}
	assert.Zero(t, allocs)
}

func benchStore(b *testing.B, n int) (*Store, [][]byte) {
	s := New(nil, 0, Quota{})
	b.Cleanup(func() { _ = s.Close() })
	ks := make([][]byte, n)
	val := make([]byte, 100)
	var e abi.Encoder
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "bench/key/%08d", i)
		e.Reset()
		s.Do(&abi.KVRequest{Op: abi.KVPut, Key: ks[i], Value: val}, &e)
	}
	return s, ks
}

const benchKeys = 100_000

// BenchmarkGet looks keys up in a prime stride, so successive lookups do not
// walk the tree in order. With 1000 keys the tree sits in cache; with 100k
// it does not, and the time is mostly cache misses on key bytes.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1000, benchKeys} {
		s, ks := benchStore(b, n)
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			var e abi.Encoder
			req := abi.KVRequest{Op: abi.KVGet}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req.Key = ks[i%len(ks)]
				i += 7919
				e.Reset()
				s.Do(&req, &e)
			}
		})
		b.Run("keys="+strconv.Itoa(n)+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var e abi.Encoder
				req := abi.KVRequest{Op: abi.KVGet}
				i := 0
				for pb.Next() {
					req.Key = ks[i%len(ks)]
					i += 7919
					e.Reset()
					s.Do(&req, &e)
				}
			})
		})
	}
}

func BenchmarkPut(b *testing.B) {
	val := make([]byte, 100)
	b.Run("overwrite", func(b *testing.B) {
		s, ks := benchStore(b, benchKeys)
		var e abi.Encoder
		req := abi.KVRequest{Op: abi.KVPut, Value: val}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req.Key = ks[i%len(ks)]
			i += 7919
			e.Reset()
			s.Do(&req, &e)
		}
	})
	b.Run("cas", func(b *testing.B) {
		s, ks := benchStore(b, benchKeys)
		var e abi.Encoder
		req := abi.KVRequest{Op: abi.KVPut, Value: val, Condition: abi.Condition{Mode: abi.IfVersion}}
		b.ReportAllocs()
		// Each key's revision is tracked so every CAS succeeds.
		revs := make([]uint64, len(ks))
		for j := range revs {
			revs[j] = uint64(j + 1)
		}
		i := 0
		for b.Loop() {
			j := i % len(ks)
			i += 7919
			req.Key, req.Condition.Version = ks[j], revs[j]
			e.Reset()
			s.Do(&req, &e)
			if e.Bytes()[0] != 0 {
				b.Fatalf("cas failed: %q", e.Bytes())
			}
			d := abi.NewDecoder(e.Bytes()[1:])
			revs[j] = d.Uvarint()
		}
	})
	b.Run("insert", func(b *testing.B) {
		s := New(nil, 0, Quota{})
		b.Cleanup(func() { _ = s.Close() })
		var e abi.Encoder
		req := abi.KVRequest{Op: abi.KVPut, Value: val}
		key := make([]byte, 0, 32)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			key = fmt.Appendf(key[:0], "bench/key/%016x", uint64(i)*0x9E3779B97F4A7C15)
			i++
			req.Key = key
			e.Reset()
			s.Do(&req, &e)
		}
	})
}

// restore runs a KVRestore and returns the revision and expiry answered,
// or the status.
func restore(t testing.TB, s *Store, key, value string, rev uint64, opts ...putOpt) (uint64, time.Time, abi.Status) {
	t.Helper()
	req := &abi.KVRequest{Op: abi.KVRestore, Key: []byte(key), Value: []byte(value), Revision: rev}
	for _, o := range opts {
		o(req)
	}
	d, st := do(t, s, req)
	if st != abi.StatusOK {
		return 0, time.Time{}, st
	}
	gotRev, exp := d.Uvarint(), d.Time()
	require.NoError(t, d.Finish())
	return gotRev, exp, st
}

func TestRestore(t *testing.T) {
	c := countingClock()
	s := newStore(t, c, 0)
	at := epoch.Add(time.Hour)

	rev, exp, st := restore(t, s, "a", "one", 500, expiresAt(at))
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, uint64(500), rev, "the entry gets exactly the revision asked for")
	assert.True(t, at.Equal(exp), "expiry %v, want %v", exp, at)
	en, st := get(t, s, "a")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, abi.KVEntry{Revision: 500, ExpiresAt: at, Value: []byte("one")},
		abi.KVEntry{Revision: en.Revision, ExpiresAt: en.ExpiresAt.UTC(), Value: en.Value})

	// The counter moved to the restored revision: the next write of any
	// key gets a larger one, and IfVersion with the restored one holds.
	assert.Equal(t, uint64(501), mustPut(t, s, "b", "x"))
	assert.Equal(t, uint64(502), mustPut(t, s, "a", "two", ifVersion(500)))

	// A restore below the counter keeps the counter where it is; the key
	// gets the lower revision, one another key had (b had 501, a had 502).
	rev, _, st = restore(t, s, "a", "three", 501)
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, uint64(501), rev)
	en, _ = get(t, s, "a")
	assert.Equal(t, uint64(501), en.Revision)
	assert.True(t, en.ExpiresAt.IsZero(), "an unconditional restore replaces the expiry too")
	assert.Equal(t, uint64(503), mustPut(t, s, "c", "x"), "later writes stay above every revision given")

	// if_absent: a live entry is CONFLICT and unchanged; an expired one is
	// absent.
	_, _, st = restore(t, s, "a", "four", 9, ifAbsent)
	assert.Equal(t, abi.StatusConflict, st)
	en, _ = get(t, s, "a")
	assert.Equal(t, "three", string(en.Value))
	assert.Equal(t, uint64(501), en.Revision)
	mustPut(t, s, "d", "short", expiresAt(c.Now().Add(time.Microsecond)))
	c.Advance(time.Microsecond)
	rev, _, st = restore(t, s, "d", "back", 7, ifAbsent)
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, uint64(7), rev)
	assert.Equal(t, uint64(505), mustPut(t, s, "e", "x"), "a restore below the counter does not move it")

	// A revision too large for the counter to pass is still exact.
	rev, _, st = restore(t, s, "f", "x", math.MaxUint64-1)
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, uint64(math.MaxUint64-1), rev)
	assert.Equal(t, uint64(math.MaxUint64), mustPut(t, s, "g", "x"))
}

func TestRestoreExpiredOnArrival(t *testing.T) {
	c := countingClock()
	s := newStore(t, c, 0)
	mustPut(t, s, "a", "live")
	rev, _, st := restore(t, s, "a", "old", 40, expiresAt(c.Now()))
	require.Equal(t, abi.StatusOK, st, "as a put: the write succeeds and leaves nothing")
	assert.Equal(t, uint64(40), rev)
	_, st = get(t, s, "a")
	assert.Equal(t, abi.StatusNotFound, st)
	assert.Equal(t, uint64(41), mustPut(t, s, "b", "x"), "the counter still moved")
}

func TestRestoreInvalid(t *testing.T) {
	s := newStore(t, countingClock(), 0)
	mustPut(t, s, "a", "v")
	_, _, st := restore(t, s, "a", "x", 1, ifVersion(1))
	assert.Equal(t, abi.StatusInvalid, st, "if_version")
	_, _, st = restore(t, s, "a", "x", 0)
	assert.Equal(t, abi.StatusInvalid, st, "revision 0")
	_, _, st = restore(t, s, "", "x", 3)
	assert.Equal(t, abi.StatusInvalid, st, "empty key")
	_, _, st = restore(t, s, "a", "x", 3, withCondition(abi.Condition{Mode: 7}))
	assert.Equal(t, abi.StatusInvalid, st, "unknown condition mode")
	en, _ := get(t, s, "a")
	assert.Equal(t, "v", string(en.Value))
	assert.Equal(t, uint64(2), mustPut(t, s, "b", "x"), "refused restores leave the counter alone")
}

func TestScanStepsOverABoundedRunOfExpiredEntries(t *testing.T) {
	c := newClock()
	s := newStore(t, c, 0)
	soon := epoch.Add(time.Second)
	for i := range 3 * MaxScanSkips {
		mustPut(t, s, fmt.Sprintf("e%06d", i), "", expiresAt(soon))
	}
	mustPut(t, s, "z", "")
	c.Set(soon)

	// The first page stops after MaxScanSkips expired entries, empty, with
	// a cursor at the next one; following the cursors reaches the live key.
	ens, next := scan(t, s, "", "", 10)
	assert.Empty(t, ens)
	assert.Equal(t, fmt.Sprintf("e%06d", MaxScanSkips), next)
	pages := 0
	var all []string
	for start := ""; ; {
		ens, next := scan(t, s, start, "", 10)
		pages++
		all = append(all, keys(ens)...)
		if next == "" {
			break
		}
		start = next
	}
	assert.Equal(t, []string{"z"}, all)
	assert.Equal(t, 3, pages)
}

// A revision is the next number or the clock in microseconds, whichever
// is greater, so that a key starting over in a fresh store (a memory
// backend rebuilt or restored, a route or data_dir moved to another
// store) never gets a revision its old store gave another value: a stale
// If-Match then succeeded (an outside drill, on five paths).
func TestRevisionsFollowTheClock(t *testing.T) {
	c := newClock()
	old := newStore(t, c, 0)
	first := mustPut(t, old, "k", "v1")
	require.Equal(t, uint64(epoch.UnixMicro()), first, "a fresh store starts at the clock")
	var last uint64
	for range 100 { // faster than the clock: one step each
		last = mustPut(t, old, "k", "v")
	}
	require.Equal(t, first+100, last)

	c.Advance(time.Millisecond)
	fresh := newStore(t, c, 0)
	rev := mustPut(t, fresh, "k", "other")
	require.Greater(t, rev, last, "the fresh store gave a revision the old one gave")
	_, _, st := put(t, fresh, "k", "stale", ifVersion(last))
	require.Equal(t, abi.StatusConflict, st, "a version of the old store matched in the fresh one")

	// Restored from a backup of the old store, then written: past both
	// the restored revision and the clock.
	c.Advance(time.Millisecond)
	restored := newStore(t, c, 0)
	_, _, st = restore(t, restored, "k", "backup", first)
	require.Equal(t, abi.StatusOK, st)
	require.Equal(t, uint64(c.Now().UnixMicro()), mustPut(t, restored, "k", "new"))
}
