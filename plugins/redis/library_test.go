//go:build !wasip1

package main

import (
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/host/redistest"
)

// packedCall runs calls as one script call of the library's '*', each
// call its keys and its arguments (operation first), on rc.
func packedCall(t testing.TB, rc *redis.Client, calls ...[2][]string) []any {
	t.Helper()
	keys, args := packed(calls)
	r, err := rc.Eval(t.Context(), string(library), keys, args...).Slice()
	if err != nil {
		t.Fatalf("packed call: %v", err)
	}
	if len(r) != len(calls) {
		t.Fatalf("%d replies to %d calls", len(r), len(calls))
	}
	return r
}

// packed returns the keys and arguments of calls as one call of '*'.
func packed(calls [][2][]string) (keys []string, args []any) {
	args = []any{"*", len(calls)}
	for _, c := range calls {
		keys = append(keys, c[0]...)
		args = append(args, len(c[0]), len(c[1]))
	}
	for _, c := range calls {
		for _, a := range c[1] {
			args = append(args, a)
		}
	}
	return keys, args
}

// TestLibraryClockOncePerCall: the library reads the clock once per
// script call, and the versions sput draws from it within one packed
// call still rise: two writes of a key get increasing versions, a
// delete and a re-create of it never repeats one, and a later script
// call starts above all of them.
func TestLibraryClockOncePerCall(t *testing.T) {
	addr := redistest.Addr(t)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	key := redistest.Prefix(t, addr) + "s:{a1}"
	k := []string{key}
	put := [2][]string{k, {"sput", "p", "", "1", "doc"}}
	putAbsent := [2][]string{k, {"sput", "p", "a", "1", "doc"}}
	del := [2][]string{k, {"sdel", ""}}

	version := func(r any) int64 {
		t.Helper()
		a, ok := r.([]any)
		if !ok || len(a) != 3 || a[0] != int64(1) {
			t.Fatalf("sput answered %v", r)
		}
		v, ok := a[1].(int64)
		if !ok {
			t.Fatalf("sput's version %#v is not an integer", a[1])
		}
		return v
	}
	stored := func(want int64) {
		t.Helper()
		got, err := rc.HGet(t.Context(), key, "v").Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != strconv.FormatInt(want, 10) {
			t.Fatalf("stored version %q, answered %d", got, want)
		}
	}
	var last int64
	for round := range 3 {
		r := packedCall(t, rc, put, put, del, putAbsent, del, put, put)
		if r[2] != int64(1) || r[4] != int64(1) {
			t.Fatalf("round %d: deletes answered %v, %v", round, r[2], r[4])
		}
		for _, i := range []int{0, 1, 3, 5, 6} {
			v := version(r[i])
			if v <= last {
				t.Fatalf("round %d, call %d: version %d after %d", round, i, v, last)
			}
			last = v
		}
		stored(last)
	}
	// A single put after them, and an IfVersion put of the version it
	// answers, in a script call each.
	r := packedCall(t, rc, put)
	v := version(r[0])
	if v <= last {
		t.Fatalf("version %d after %d", v, last)
	}
	stored(v)
	r = packedCall(t, rc, [2][]string{k, {"sput", "p", strconv.FormatInt(v, 10), "1", "doc"}},
		[2][]string{k, {"sput", "p", strconv.FormatInt(v, 10), "1", "doc"}})
	if w := version(r[0]); w <= v {
		t.Fatal("an IfVersion put did not raise the version")
	} else {
		stored(w)
	}
	if a, ok := r[1].([]any); !ok || len(a) != 1 || a[0] != int64(0) {
		t.Fatalf("a put of a stale version answered %v", r[1])
	}
}
