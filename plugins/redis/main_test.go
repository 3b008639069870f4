package main

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// The conformance suite (host/storetest, redis_test.go) checks the plugin
// end to end against a real Redis; these tests pin the encodings it
// relies on.

func TestTagIsOneHashTag(t *testing.T) {
	ids := []string{"a", "}", "}}", "{", "{}", "a}b", "\x01", "\x01]", "]", "x\x01}y", "ünï}"}
	seen := map[string]string{}
	for _, id := range ids {
		tag := string(appendTag(nil, id))
		if tag == "" || strings.Contains(tag, "}") {
			t.Fatalf("tag of %q is %q: empty, or ends the hash tag early", id, tag)
		}
		if other, dup := seen[tag]; dup {
			t.Fatalf("%q and %q share the tag %q", id, other, tag)
		}
		seen[tag] = id
		// The hash tag Redis takes from a key is the whole escaped ID.
		key := "ns:" + stateKeyPrefix + tag + "}rest}{x}"
		open := strings.IndexByte(key, '{')
		end := strings.IndexByte(key[open+1:], '}')
		if got := key[open+1 : open+1+end]; got != tag {
			t.Fatalf("key %q hashes by %q, want %q", key, got, tag)
		}
	}
}

func TestMembersSortLikeNameThenTime(t *testing.T) {
	times := []time.Time{
		time.Unix(0, math.MinInt64+1), time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), time.Unix(0, -1),
		time.Unix(0, 1), time.Date(2024, 3, 1, 12, 0, 0, 500, time.UTC), time.Date(2024, 3, 1, 12, 0, 0, 501, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 999999999, time.UTC), time.Unix(0, math.MaxInt64),
	}
	names := []string{"cpu", "cpu.load", "cpu2", "m", "ü"}
	var members [][]byte
	for _, n := range names {
		for _, ts := range times {
			m := appendMember(nil, n, ts)
			name, got, ok := parseMember(m)
			if !ok || name != n || !got.Equal(ts) {
				t.Fatalf("member %q parses as %q %v %v, want %q %v", m, name, got, ok, n, ts)
			}
			members = append(members, m)
		}
	}
	if !slices.IsSortedFunc(members, bytes.Compare) {
		t.Fatal("members do not sort by name, then timestamp")
	}
	for _, bad := range []string{"", "cpu", "cpu\x000123", "cpu\x00zzzzzzzzzzzzzzzz", "cpu" + strings.Repeat("0", 17)} {
		if _, _, ok := parseMember([]byte(bad)); ok {
			t.Fatalf("parseMember(%q) accepted a malformed member", bad)
		}
	}
}

func TestCursor(t *testing.T) {
	c := makeCursor('m', 42, "agent\x00}", "name\x00ts")
	a, b, err := openCursor(c, 'm', 42)
	if err != nil || a != "agent\x00}" || b != "name\x00ts" {
		t.Fatalf("openCursor = %q, %q, %v", a, b, err)
	}
	for _, bad := range [][]byte{
		makeCursor('a', 42, "x", ""), // another kind
		makeCursor('m', 43, "x", ""), // another query
		c[:10], []byte("garbage"), nil,
		append(c[:10:10], 0xff), // a length past the end
	} {
		if _, _, err := openCursor(bad, 'm', 42); !errorsIsInvalid(err) {
			t.Fatalf("openCursor(%q) = %v, want invalid", bad, err)
		}
	}
}

func errorsIsInvalid(err error) bool {
	ae, ok := err.(*abi.Error)
	return ok && ae.Status == abi.StatusInvalid
}

func TestLabelsRoundTrip(t *testing.T) {
	for _, l := range []map[string]string{nil, {"a": ""}, {"k": "v", "ü": "✓", "x\x01": "a=b,c{d}\n"}} {
		got, err := decodeLabels(appendLabels(nil, l))
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 0 && got != nil || len(l) > 0 && !mapsEqual(l, got) {
			t.Fatalf("labels %v read back as %v", l, got)
		}
	}
	if _, err := decodeLabels([]byte{2, 1, 'a'}); err == nil {
		t.Fatal("truncated labels decoded")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTTLSpecs(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 123_456_789, time.UTC) // sub-millisecond part
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	for _, tc := range []struct {
		ttl         abi.TTL
		def         time.Duration
		spec, bound string
	}{
		{abi.TTL{}, 0, "p", ""},
		{abi.TTL{}, time.Hour, ms(time.Hour), ms(time.Hour)},
		{abi.TTL{Mode: abi.TTLDuration, Duration: time.Millisecond}, time.Hour, ms(time.Millisecond), ms(time.Millisecond)},
		{abi.TTL{Mode: abi.TTLPersist}, time.Hour, "p", ""},
		{abi.TTL{Mode: abi.TTLKeep}, 0, "k", ""},
		{abi.TTL{Mode: abi.TTLKeep}, time.Hour, "k" + ms(time.Hour), ""},
	} {
		dst, bound := appendTTL([]byte("xx"), &tc.ttl, tc.def, now)
		if string(dst) != "xx"+tc.spec || string(dst[bound.lo:bound.hi]) != tc.bound {
			t.Fatalf("appendTTL(%+v, %v) = %q bound %q, want %q bound %q", tc.ttl, tc.def, dst, dst[bound.lo:bound.hi], "xx"+tc.spec, tc.bound)
		}
	}
	// Truncated, not rounded: an expiry is never later than asked.
	if got := ms(time.Millisecond); got != "1735689600124" {
		t.Fatalf("now+1ms is %s ms", got)
	}
}

func TestAllowedFrom(t *testing.T) {
	want := [...]string{abi.AlertFiring: "13", abi.AlertAcknowledged: "12", abi.AlertResolved: "123"}
	for s := abi.AlertFiring; s <= abi.AlertResolved; s++ {
		if allowedFrom[s] != want[s] {
			t.Fatalf("allowedFrom[%s] = %q, want %q", s, allowedFrom[s], want[s])
		}
	}
}

func TestRequestBuild(t *testing.T) {
	var r request
	r.call(opRd)
	r.tagKey(stateKeyPrefix, "a}")
	r.argStr("v")
	r.call(opIxadd)
	r.ixKeys(ixStates)
	r.argStr("a}")
	calls := r.build()
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	if got := joined(calls[0].Keys); got != "s:{a\x01]}" {
		t.Fatalf("keys %q", got)
	}
	if got := joined(calls[0].Args); got != "rd v" {
		t.Fatalf("args %q", got)
	}
	if got := joined(calls[1].Keys); got != "{idx}:s {idx}:s:x {idx}:s:t" {
		t.Fatalf("keys %q", got)
	}
	if got := joined(calls[1].Args); got != "ixadd a}" {
		t.Fatalf("args %q", got)
	}
}

// TestPutIndexesInItsOwnCall: a single put is one script call that
// writes and indexes its record (+sput with the index's keys after the
// record's and its arguments after the record's), and, once Redis
// answered CROSSSLOT, two calls, the index call apart.
func TestPutIndexesInItsOwnCall(t *testing.T) {
	var b backend
	put := func() []abi.ScriptCall {
		it := item{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "a1", State: []byte("{}")}}, now: time.Unix(1, 0)}
		b.rq.reset()
		b.joinIx = !b.split
		b.prepare(&it)
		b.joinIx = false
		return b.rq.build()
	}
	calls := put()
	if len(calls) != 1 {
		t.Fatalf("%d calls on a single node, want 1", len(calls))
	}
	if got := joined(calls[0].Keys); got != "s:{a1} {idx}:s {idx}:s:x {idx}:s:t" {
		t.Fatalf("keys %q", got)
	}
	if got := joined(calls[0].Args); got != "+sput p  1000000000 {} 60000 a1 inf" {
		t.Fatalf("args %q", got)
	}
	b.split = true
	calls = put()
	if len(calls) != 2 {
		t.Fatalf("%d calls after CROSSSLOT, want 2", len(calls))
	}
	if got := joined(calls[0].Args) + " | " + joined(calls[1].Args); got != "sput p  1000000000 {} | ixadd 60000 a1 inf" {
		t.Fatalf("args %q", got)
	}
}

func joined(parts [][]byte) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = string(p)
	}
	return strings.Join(s, " ")
}

func TestCompactLibrary(t *testing.T) {
	if bytes.Contains(library, []byte("\n--")) || bytes.HasPrefix(library, []byte("--")) {
		t.Fatal("a comment line survived")
	}
	if len(library) > len(librarySource)/2 {
		t.Logf("library: %d bytes of %d", len(library), len(librarySource))
	}
	for _, op := range [][]byte{opRd, opMput, opMdel, opMrange, opMget, opAput, opAstat, opSput, opSdel, opDel, opIxadd, opIxaddl, opIxdel, opIxrng, opIxtrim} {
		if !bytes.Contains(library, []byte("op == '"+string(op)+"'")) {
			t.Fatalf("the library has no operation %q", op)
		}
	}
}

// TestDeferredIndexFlush: the index entries of a batch go out as one call
// per index, at most maxIndexIDs records each, in order of first write,
// each record once with the greatest bound of its writes, and none for a
// record deleted after its writes. A record written once carries the
// number of its write's call in the index call's pack; one written twice,
// or whose write is in another pack, carries 0.
func TestDeferredIndexFlush(t *testing.T) {
	var d deferredIndex
	d.add(ixStates, "a", []byte("100"), 0)
	d.add(ixAlerts, "x", nil, 1)
	d.add(ixStates, "b", []byte("50"), 2)
	d.add(ixStates, "a", []byte("200"), 3)
	d.add(ixStates, "c", []byte("10"), 4)
	d.drop(ixStates, "c") // as unindex does
	d.add(ixStates, "d", nil, 5)
	d.add(ixStates, "e", nil, maxPacked+6)
	for i := range maxIndexIDs + 1 {
		d.add(ixMetrics, strconv.Itoa(i), []byte("7"), 7+i)
	}
	var r request
	for range 2*maxPacked + 8 {
		r.call(opSput) // the record calls the numbers above name
	}
	if n := d.flush(&r); n != 4 {
		t.Fatalf("flush added %d calls, want 4 (2 metrics, 1 alerts, 1 states)", n)
	}
	calls := r.build()[2*maxPacked+8:]
	if got := len(calls[0].Args); got != 2+3*maxIndexIDs {
		t.Fatalf("first metrics call has %d args, want %d", got, 2+3*maxIndexIDs)
	}
	// Calls 0 to 511 are two packs; the index calls are in the third.
	if got := joined(calls[1].Args); got != "ixaddl 60000 1024 7 0" {
		t.Fatalf("second metrics call %q", got)
	}
	if got := joined(calls[2].Keys) + " | " + joined(calls[2].Args); got != "{idx}:a {idx}:a:x {idx}:a:t | ixaddl 60000 x inf 0" {
		t.Fatalf("alerts call %q", got)
	}
	if got := joined(calls[3].Args); got != "ixaddl 60000 a 200 0 b 50 0 d inf 0 e inf 0" {
		t.Fatalf("states call %q", got)
	}
	if len(d.entries) != 0 || len(d.order) != 0 {
		t.Fatalf("flush left %d entries, %d in order", len(d.entries), len(d.order))
	}

	// In one pack: the call's number in it, counted from 1.
	d.add(ixStates, "a", nil, 0)
	d.add(ixStates, "b", nil, 1)
	d.add(ixStates, "a", nil, 2)
	r.reset()
	for range 3 {
		r.call(opSput)
	}
	d.flush(&r)
	if got := joined(r.build()[3].Args); got != "ixaddl 60000 a inf 0 b inf 2" {
		t.Fatalf("states call in one pack %q", got)
	}
}

// TestRequestPack: calls pack into script calls of the library's '*',
// maxPacked calls each: the calls' keys in order, then the count of
// calls, each call's count of keys and of arguments, and every call's
// arguments in order; tags reports keys of more than one hash tag.
func TestRequestPack(t *testing.T) {
	var r request
	r.call(opSput)
	r.tagKey(stateKeyPrefix, "a1")
	r.argStr("p")
	r.call(opSput)
	r.tagKey(stateKeyPrefix, "a1")
	r.argStr("k")
	packed, tags := r.pack(r.build())
	if len(packed) != 1 || tags {
		t.Fatalf("%d packed calls, tags %v; want 1, false", len(packed), tags)
	}
	if got := joined(packed[0].Keys) + " | " + joined(packed[0].Args); got != "s:{a1} s:{a1} | * 2 1 2 1 2 sput p sput k" {
		t.Fatalf("packed %q", got)
	}

	r.reset()
	for i := range maxPacked + 1 {
		r.call(opSput)
		r.tagKey(stateKeyPrefix, strconv.Itoa(i))
		r.argStr("p")
	}
	r.call(opIxadd)
	r.ixKeys(ixStates)
	r.argInt(sweepSlack)
	packed, tags = r.pack(r.build())
	if len(packed) != 2 || !tags {
		t.Fatalf("%d packed calls, tags %v; want 2, true", len(packed), tags)
	}
	if n := len(packed[0].Keys); n != maxPacked {
		t.Fatalf("first pack has %d keys, want %d", n, maxPacked)
	}
	if got := joined(packed[1].Keys) + " | " + joined(packed[1].Args); got != fmt.Sprintf("s:{%d} {idx}:s {idx}:s:x {idx}:s:t | * 2 1 2 3 2 sput p ixadd 60000", maxPacked) {
		t.Fatalf("second pack %q", got)
	}
}

// An alert hash whose severity or status is not 1 to 3 is corrupt, not
// wrapped into another value (both are a byte): the plugin's get answers
// what the host's declared read does (host/redisreads.go).
func TestAlertFieldRanges(t *testing.T) {
	bulk := func(s string) abi.Reply { return abi.Reply{Kind: abi.ReplyBulk, Str: []byte(s)} }
	fields := func(severity, status string) []abi.Reply {
		return []abi.Reply{bulk("agent"), bulk(severity), bulk(status), bulk("m"), bulk("\x00"), bulk("1"), bulk("1")}
	}
	var a abi.Alert
	found, err := decodeAlertFields(&a, "x", fields("2", "1"), -1)
	if !found || err != nil || a.Severity != 2 || a.Status != 1 {
		t.Fatalf("a well-formed alert: found %v, %v, %+v", found, err, a)
	}
	for _, f := range [][2]string{{"258", "1"}, {"0", "1"}, {"4", "1"}, {"2", "259"}, {"2", "-254"}, {"2", "0"}} {
		found, err := decodeAlertFields(&a, "x", fields(f[0], f[1]), -1)
		if found || err == nil {
			t.Errorf("severity %s, status %s: found %v, %v; want a corrupt alert", f[0], f[1], found, err)
		}
	}
}
