package localstore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

func newQuotaStore(t *testing.T, c *fakeClock, q Quota) *Store {
	t.Helper()
	s := New(c.Now, 0, q)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// counted recomputes what the entries in the tree cost the quota.
func counted(s *Store) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n uint64
	s.tree.Ascend(func(en entry) bool {
		n += en.size()
		return true
	})
	return n
}

func TestQuotaBytes(t *testing.T) {
	const size = 1 + 100 + EntryOverhead // a key of 1 byte, a value of 100
	v := strings.Repeat("v", 100)
	s := newQuotaStore(t, newClock(), Quota{MaxBytes: 3 * size})
	for _, k := range []string{"a", "b", "c"} {
		mustPut(t, s, k, v)
	}
	require.Equal(t, uint64(3*size), s.Bytes())
	last := mustPut(t, s, "a", strings.Repeat("w", 100))

	// Refused with LIMIT, and nothing changes: no entry, no revision.
	_, _, st := put(t, s, "d", "")
	require.Equal(t, abi.StatusLimit, st, "a new entry past the quota")
	_, _, st = put(t, s, "a", v+"more")
	require.Equal(t, abi.StatusLimit, st, "a larger value past the quota")
	_, _, st = restore(t, s, "d", "", 1)
	require.Equal(t, abi.StatusLimit, st, "a restore past the quota")
	en, st := get(t, s, "a")
	require.Equal(t, abi.StatusOK, st)
	assert.Equal(t, strings.Repeat("w", 100), string(en.Value), "a refused put leaves the entry")
	_, st = get(t, s, "d")
	assert.Equal(t, abi.StatusNotFound, st)
	assert.Equal(t, uint64(3*size), s.Bytes())

	// Room made by a delete or a smaller value is usable again.
	require.Equal(t, abi.StatusOK, del(t, s, "b"))
	assert.Equal(t, last+1, mustPut(t, s, "d", v), "a refused put takes no revision")
	mustPut(t, s, "c", "")
	_, _, st = put(t, s, "a", v+strings.Repeat("w", 100))
	require.Equal(t, abi.StatusOK, st, "room made by a smaller value")
	assert.Equal(t, counted(s), s.Bytes())
}

func TestQuotaEntries(t *testing.T) {
	s := newQuotaStore(t, countingClock(), Quota{MaxEntries: 2})
	mustPut(t, s, "a", "")
	mustPut(t, s, "b", "")
	_, _, st := put(t, s, "c", "")
	require.Equal(t, abi.StatusLimit, st, "a new key past the quota")
	mustPut(t, s, "a", "replaced", ifVersion(1))
	require.Equal(t, abi.StatusOK, del(t, s, "a"))
	mustPut(t, s, "c", "")
	assert.Equal(t, 2, s.Len())
}

// Expired entries count until reclaimed; a put that finds the store full
// reclaims a batch of them first.
func TestQuotaReclaimsExpired(t *testing.T) {
	c := newClock()
	s := newQuotaStore(t, c, Quota{MaxEntries: 2, MaxBytes: 1 << 20})
	mustPut(t, s, "a", "", expiresAt(c.Now().Add(time.Second)))
	mustPut(t, s, "b", "", expiresAt(c.Now().Add(time.Second)))
	_, _, st := put(t, s, "c", "")
	require.Equal(t, abi.StatusLimit, st)
	c.Advance(time.Second)
	mustPut(t, s, "c", "")
	assert.Equal(t, 1, s.Len(), "both expired entries were reclaimed")
	assert.Equal(t, counted(s), s.Bytes())
}

// The byte count follows every way an entry comes and goes: puts reusing
// a buffer or not, deletes, expiry met by a writer or by the sweeper,
// restores and refusals.
func TestQuotaCountFollowsEveryChange(t *testing.T) {
	c := newClock()
	s := newQuotaStore(t, c, Quota{MaxBytes: 64 << 10, MaxEntries: 200})
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		k := fmt.Sprintf("k%03d", r.IntN(300))
		v := strings.Repeat("v", r.IntN(600))
		switch r.IntN(10) {
		case 0, 1:
			del(t, s, k)
		case 2:
			put(t, s, k, v, expiresAt(c.Now().Add(time.Duration(r.IntN(5))*time.Millisecond)))
		case 3:
			restore(t, s, k, v, uint64(i+1))
		case 4:
			// Most expired entries are met by a writer, some by the sweeper.
			c.Advance(time.Millisecond)
			if r.IntN(8) == 0 {
				s.sweep()
			}
		default:
			put(t, s, k, v)
		}
		require.Equal(t, counted(s), s.Bytes(), "step %d", i)
		require.LessOrEqual(t, s.Bytes(), uint64(64<<10))
		require.LessOrEqual(t, s.Len(), 200)
	}
}

// A scan stops at its byte budget, past its first entry, and resumes from
// the next key it answers: paging through sees every entry once.
func TestScanBytes(t *testing.T) {
	s := newQuotaStore(t, newClock(), Quota{MaxScanBytes: 1000})
	var want []string
	for i := range 50 {
		k := fmt.Sprintf("k%02d", i)
		mustPut(t, s, k, strings.Repeat("v", 300))
		want = append(want, k)
	}
	mustPut(t, s, "z", strings.Repeat("v", 5000))
	want = append(want, "z")

	var got []string
	start := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100, "pagination does not terminate")
		ens, next := scan(t, s, start, "", abi.MaxQueryLimit)
		require.NotEmpty(t, ens, "every scan makes progress")
		size := 0
		for i := range ens {
			size += len(ens[i].Key) + len(ens[i].Value)
		}
		if len(ens) > 1 {
			require.LessOrEqual(t, size, 1000, "a page of more than one entry stays within the budget")
		}
		got = append(got, keys(ens)...)
		if next == "" {
			break
		}
		start = next
	}
	assert.Equal(t, want, got)
}

// A Store reopened on its directory counts what it loaded against its
// quota: the entries and bytes an earlier process left there.
func TestQuotaCountsWhatReopenLoaded(t *testing.T) {
	const size = 1 + 100 + EntryOverhead
	v := strings.Repeat("v", 100)
	dir := t.TempDir()
	c := newClock()
	q := Quota{MaxEntries: 3, MaxBytes: 3 * size}
	s, err := Open(dir, c.Now, 0, q)
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		mustPut(t, s, k, v)
	}
	require.NoError(t, s.Sync(t.Context()))
	require.NoError(t, s.Close())

	s, err = Open(dir, c.Now, 0, q)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	assert.Equal(t, 3, s.Len())
	assert.Equal(t, uint64(3*size), s.Bytes())
	_, _, st := put(t, s, "d", "")
	require.Equal(t, abi.StatusLimit, st, "a new key past the quota, after a reopen")
	_, _, st = put(t, s, "a", v+"more")
	require.Equal(t, abi.StatusLimit, st, "a larger value past the quota, after a reopen")
	mustPut(t, s, "a", strings.Repeat("w", 100))
	assert.Equal(t, counted(s), s.Bytes())
}
