//go:build !wasip1

package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

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
	del := [2][]string{k, {"sdel", "", "1"}}

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

// TestLibraryReplayLeavesNewerRecordsAlone: the replay of a buffered write
// (sput with a floor, sdel, aput and astat with their replay argument, del
// of an alert with the time it was acknowledged) leaves alone a record
// written after that time, by another host that reached Redis meanwhile,
// and answers so; a replayed write acknowledged after the record's last
// write is made. The host test TestRedisReplayLeavesNewerWritesAlone runs
// the agent-state case end to end (an alert write is buffered only when
// the buffer holds its alert, which two hosts cannot arrange there).
func TestLibraryReplayLeavesNewerRecordsAlone(t *testing.T) {
	addr := redistest.Addr(t)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	prefix := redistest.Prefix(t, addr)
	state, alert := []string{prefix + "s:{a1}"}, []string{prefix + "a:{x1}"}
	field := func(key []string, f string) string {
		t.Helper()
		v, err := rc.HGet(t.Context(), key[0], f).Result()
		if err != nil {
			t.Fatalf("%s %s: %v", key[0], f, err)
		}
		return v
	}
	// The newer writes, at time 2000.
	packedCall(t, rc, [2][]string{state, {"sput", "p", "", "2000", "newer"}},
		[2][]string{alert, {"aput", "p", "1", "0123", "2000", "2000", "a1", "2", "newer", ""}})

	// Replayed writes acknowledged at 1000: left alone.
	r := packedCall(t, rc,
		[2][]string{state, {"sput", "p", "", "1000", "older", "1"}},
		[2][]string{state, {"sdel", "", "1000", "1"}},
		[2][]string{alert, {"aput", "p", "1", "0123", "1000", "1000", "a1", "2", "older", "", "1"}},
		[2][]string{alert, {"astat", "3", "0123", "1000", "1"}},
		[2][]string{alert, {"del", "1000", "1"}})
	want := []string{"[3]", "2", "[3 ]", "[3]", "2"}
	for i, w := range want {
		if got := fmtReply(r[i]); got != w {
			t.Errorf("replayed call %d answered %s, want %s", i, got, w)
		}
	}
	if got := field(state, "d"); got != "newer" {
		t.Errorf("state %q, want the newer", got)
	}
	if got, status := field(alert, "m"), field(alert, "t"); got != "newer" || status != "1" {
		t.Errorf("alert %q in status %s, want the newer, firing", got, status)
	}

	// Acknowledged at 3000, after the newer writes: made.
	r = packedCall(t, rc,
		[2][]string{state, {"sput", "p", "", "3000", "latest", "1"}},
		[2][]string{alert, {"astat", "3", "0123", "3000", "1"}})
	if got := field(state, "d"); got != "latest" {
		t.Errorf("state %q after a later replay, answered %v", got, r[0])
	}
	if got := field(alert, "t"); got != "3" {
		t.Errorf("alert status %s after a later replay, answered %v", got, r[1])
	}
	r = packedCall(t, rc, [2][]string{alert, {"del", "4000", "1"}}, [2][]string{state, {"sdel", "", "4000", "1"}})
	if r[0] != int64(1) || r[1] != int64(1) {
		t.Errorf("later replayed deletes answered %v, %v", r[0], r[1])
	}

	// Deleted at 4000, a record leaves a tombstone: a replayed write
	// acknowledged before it does not bring the record back, one
	// acknowledged after it does.
	for _, key := range [][]string{state, alert} {
		if got := field(key, "u"); got != "4000" {
			t.Errorf("%s: tombstone time %q", key[0], got)
		}
		if ttl := rc.PTTL(t.Context(), key[0]).Val(); ttl <= 0 || ttl > 24*time.Hour {
			t.Errorf("%s: tombstone kept for %v", key[0], ttl)
		}
	}
	r = packedCall(t, rc,
		[2][]string{state, {"sput", "p", "", "3500", "resurrected", "1"}},
		[2][]string{alert, {"aput", "p", "1", "0123", "3500", "3500", "a1", "2", "resurrected", "", "1"}},
		[2][]string{state, {"sdel", "", "3600", "1"}},
		[2][]string{alert, {"astat", "3", "0123", "3600", "1"}})
	if want := []string{"[3]", "[3 ]", "-1", "[-1]"}; fmtReply(r[0]) != want[0] || fmtReply(r[1]) != want[1] || fmtReply(r[2]) != want[2] || fmtReply(r[3]) != want[3] {
		t.Errorf("replays acknowledged before the deletes answered %v, want %v", r, want)
	}
	for _, key := range [][]string{state, alert} {
		if n := rc.HLen(t.Context(), key[0]).Val(); n != 1 {
			t.Errorf("%s: %d fields after older replays, want the tombstone's 1", key[0], n)
		}
	}
	// A write over a tombstone makes a record without the tombstone's
	// expiry (p: none).
	r = packedCall(t, rc,
		[2][]string{state, {"sput", "p", "", "5000", "again", "1"}},
		[2][]string{alert, {"aput", "p", "1", "0123", "5000", "5000", "a1", "2", "again", "", "1"}})
	if got := field(state, "d"); got != "again" {
		t.Errorf("state %q after a later write, answered %v", got, r[0])
	}
	if got := field(alert, "m"); got != "again" {
		t.Errorf("alert %q after a later write, answered %v", got, r[1])
	}
	for _, key := range [][]string{state, alert} {
		if ttl := rc.PTTL(t.Context(), key[0]).Val(); ttl != -1 {
			t.Errorf("%s: expiry %v left by the tombstone", key[0], ttl)
		}
	}
}

// TestLibraryReplayFencesMetricSamples: a replayed put or delete of a
// metric sample carries its replay attempt's number to the agent's fence;
// a copy from an earlier attempt than one that wrote the agent's samples
// (a reply lost, the copy delivered late) changes nothing, even over a
// sample written directly since; the same or a later attempt writes.
func TestLibraryReplayFencesMetricSamples(t *testing.T) {
	addr := redistest.Addr(t)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	prefix := redistest.Prefix(t, addr)
	sample := prefix + "m:{a1}:cpu:1"
	keys := []string{sample, prefix + "mi:{a1}", prefix + "mx:{a1}"}
	fenced := append(keys[:3:3], prefix+"rf:b1:{a1}")
	value := func() string {
		t.Helper()
		v, err := rc.Get(t.Context(), sample).Result()
		if errors.Is(err, redis.Nil) {
			return "(none)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Attempt 5 replays a put; then a direct put, as after the replay
	// settled.
	if r := packedCall(t, rc, [2][]string{fenced, {"mput", "p", "cpu:1", "replayed", "5"}}); fmtReply(r[0]) != "-1" {
		t.Fatalf("replayed put answered %v", r[0])
	}
	packedCall(t, rc, [2][]string{keys, {"mput", "p", "cpu:1", "direct"}})
	// Attempt 4's copies, delivered late: left out.
	r := packedCall(t, rc,
		[2][]string{fenced, {"mput", "p", "cpu:1", "late", "4"}},
		[2][]string{fenced, {"mdel", "cpu:1", "4"}})
	if fmtReply(r[0]) != "[3 5]" || fmtReply(r[1]) != "[3 5]" {
		t.Errorf("an earlier attempt's copies answered %v, %v; want [3 5] (fenced at 5) for both", r[0], r[1])
	}
	if got := value(); got != "direct" {
		t.Errorf("sample %q after an earlier attempt's late copies, want the direct write", got)
	}
	// The same attempt, and a later one, write.
	packedCall(t, rc, [2][]string{fenced, {"mput", "p", "cpu:1", "same", "5"}})
	if got := value(); got != "same" {
		t.Errorf("sample %q after its attempt's own put", got)
	}
	if r := packedCall(t, rc, [2][]string{fenced, {"mdel", "cpu:1", "6"}}); fmtReply(r[0]) != "1" {
		t.Errorf("a later attempt's delete answered %v", r[0])
	}
	if got := value(); got != "(none)" {
		t.Errorf("sample %q after a later attempt's delete", got)
	}
	if ttl := rc.PTTL(t.Context(), fenced[3]).Val(); ttl <= 0 || ttl > 24*time.Hour {
		t.Errorf("fence kept for %v, want a day at most", ttl)
	}
}

// fmtReply formats a script reply for a comparison.
func fmtReply(r any) string { return strings.TrimSpace(fmt.Sprint(r)) }
