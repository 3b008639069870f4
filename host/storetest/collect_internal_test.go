package storetest

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// failures records what collect reports, in place of a *testing.T, so
// that a check that fails can be looked at: FailNow ends collect's
// goroutine, as it ends a test's.
type failures struct{ msgs []string }

func (f *failures) Errorf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}
func (f *failures) FailNow() { runtime.Goexit() }
func (f *failures) Helper()  {}

// collectWith runs collect against pages, a query's answers by cursor,
// and returns the items it collected and what it reported.
func collectWith(limit, n int, query func(cursor []byte) (host.Page[int], error)) ([]int, string) {
	f := &failures{}
	var items []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		items = collect(f, limit, pagesFor(n, limit), query)
	}()
	<-done
	return items, strings.Join(f.msgs, "\n")
}

func TestCollectTakesShortPages(t *testing.T) {
	// 4 items found by a backend that scans 9 entries a page, most of
	// them other rules' records: 40 pages, most empty (ABI section 13.4).
	items, failed := collectWith(9, 4, func(c []byte) (host.Page[int], error) {
		page := 0
		if len(c) > 0 {
			page, _ = strconv.Atoi(string(c))
		}
		p := host.Page[int]{}
		if page%10 == 0 {
			p.Items = []int{page / 10}
		}
		if page < 39 {
			p.Next = []byte(strconv.Itoa(page + 1))
		}
		return p, nil
	})
	require.Empty(t, failed)
	require.Equal(t, []int{0, 1, 2, 3}, items)
}

func TestCollectFailsALoop(t *testing.T) {
	calls := 0
	_, failed := collectWith(9, 4, func(c []byte) (host.Page[int], error) {
		calls++
		return host.Page[int]{Next: []byte{'c', byte('0' + calls%3)}}, nil
	})
	require.Contains(t, failed, "page 4 returned as Next the cursor page 1 returned")
	require.Equal(t, 4, calls, "the first cursor to come back fails the query")
}

func TestCollectFailsAWalkWithoutEnd(t *testing.T) {
	calls := 0
	_, failed := collectWith(9, 4, func(c []byte) (host.Page[int], error) {
		calls++
		return host.Page[int]{Items: []int{1}, Next: []byte(strconv.Itoa(calls))}, nil
	})
	require.Contains(t, failed, "pagination does not end")
	require.Equal(t, pagesFor(4, 9), calls)
}

func TestCollectFailsAnOverfullPage(t *testing.T) {
	_, failed := collectWith(2, 4, func(c []byte) (host.Page[int], error) {
		return host.Page[int]{Items: []int{1, 2, 3}}, nil
	})
	require.Contains(t, failed, "page 1 holds more items than its limit")
}
