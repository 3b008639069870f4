// Command redis is the Redis storage backend. The host owns the connection
// (single node, Sentinel or Cluster) and prefixes every key with the
// backend's namespace; this plugin owns the policy: how records map to
// Redis structures, TTLs, filters, status transitions, optimistic
// concurrency and pagination.
//
// Every request it sends is one EvalMany of library.lua, one call per
// record touched, pipelined in one round trip: a single operation is one
// round trip, and so is a whole batch. On a single node a put is one call
// that also indexes its record, and the calls of a batch, or of an
// operation of several calls, are packed into one (sendPacked). Queries take a round trip to list
// an index and one to read the records of each page chunk.
//
// # Key layout
//
// Keys are shown without the namespace the host adds. A {tag} is an
// agent or alert ID with '}' and 0x01 escaped (see appendTag), so that
// every key of one agent, and every key of one alert, is in one hash slot.
// Identifiers cannot contain NUL (abi.CheckID), so NUL separates parts.
//
//	m:{agent}<name>\0<ts>  string: a metric sample, value f64 LE + labels;
//	                       <ts> is 16 hex digits of the Unix nanoseconds
//	                       with the sign bit flipped (sorts like the time)
//	mi:{agent}             zset, scores 0: members <name>\0<ts>, the
//	                       agent's samples in (name, timestamp) order
//	mx:{agent}             zset: the agent's expiring samples (same
//	                       members), scored by their expiry in ms
//	a:{alert}              hash: g agent, s severity, t status, m message,
//	                       l labels, c created_at ns, u updated_at ns,
//	                       x expiry in Unix ms (-1: none), as e of a state
//	s:{agent}              hash: v version, u updated_at ns, d document,
//	                       e expiry in Unix ms (-1: none), written with the
//	                       record so that a get is one HMGET (a record
//	                       written before e was kept is read by script)
//	{idx}:m, {idx}:a, {idx}:s
//	                       global indexes (lex zsets of agent IDs with
//	                       metrics, alert IDs, agent IDs with a state), each
//	                       with an expiry-bound zset (":x") and a touch hash
//	                       (":t"); see library.lua
//
// Record expiry is the Redis key's own (SET PXAT, or PEXPIREAT in the
// script that writes the record), truncated to the millisecond before it
// is written and read back with PEXPIRETIME, so put, get and query report
// the same instant. Index entries of expired or deleted records are never
// returned, are trimmed when a query meets them, and are swept by writers
// once their expiry has passed (mx, {idx}:*:x); per-agent indexes expire
// with their last sample.
//
// # Options
//
// metric_ttl_seconds, alert_ttl_seconds and agent_state_ttl_seconds are
// the kinds' default TTLs in whole seconds (0 or absent: none), as for
// the memory backend. fallback says what happens when Redis cannot be
// reached: "fail" (the default) answers UNAVAILABLE; "buffer" keeps
// writes in the host's kv store and replays them in order when Redis
// returns (see fallback.go); a buffer left in kv is replayed with "fail"
// too. fallback_buffer_entries bounds that buffer
// (default 10000 writes). Any other option, or a malformed value, is
// INVALID.
//
// # Query costs
//
// A metric query with an agent reads that agent's index only, and with a
// name too only the name's (and time range's) part of it. Without an
// agent it visits every agent with metrics in ID order. Alert queries
// list every alert in ID order and filter in the plugin, also when they
// name an agent (an alert is found by its ID alone, so its key is tagged
// by it, not by its agent). Agent-state queries read the prefix's range.
// One query call examines at most scanBudget index entries and then
// answers what it found with a cursor.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o redis.wasm .
package main

import (
	"bytes"
	_ "embed"
	"strconv"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

//go:embed library.lua
var librarySource string

// library is the script of every request: library.lua without its comment
// lines and indentation, since the source crosses into the host with every
// request (Redis runs it by its SHA-1 digest, so this is the text it
// compiles).
var library = compactLua(librarySource)

// compactLua drops the lines of src that are blank or only a comment, and
// the indentation of the others. It only needs to be right for
// library.lua, whose strings never start a line.
func compactLua(src string) []byte {
	out := make([]byte, 0, len(src)/2)
	for len(src) > 0 {
		line := src
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = ""
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

// Index timing, in milliseconds, passed to the library's ix operations.
const (
	// indexGrace is how long after its last write an index entry whose
	// record is missing is left alone: the record and index calls of one
	// write may run in either order on a cluster, so within it a missing
	// record may be one about to be written. It is far longer than the
	// calls of one request can be apart.
	indexGrace = 60_000
	// sweepSlack is how long after its expiry bound an entry is swept,
	// covering clock differences between cluster nodes.
	sweepSlack = 60_000
)

func main() {}

func init() {
	b := &backend{fb: &fallback{max: defaultBufferEntries}} // fallback=fail until configured
	sdk.Register(sdk.Plugin{
		Name:        "redis",
		Version:     "1.0.0",
		Metrics:     (*metrics)(b),
		Alerts:      (*alerts)(b),
		AgentStates: (*states)(b),
		TTL:         true,
		Concurrency: true,
		Restorer:    b,
		// kv is the fallback buffer's (fallback=buffer); the host grants
		// it by default.
		Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV, abi.CapabilityRedis,
			abi.CapabilityRedisScripts}, // every request runs library.lua
		Configure: b.configure,
		// Ticks replay the fallback buffer (fallback_replay.go).
		Tick: b.tick,
		// A get is one HMGET of the record's hash (getState, getAlert),
		// whose fields are in the layout the ABI names: the host may
		// make it itself, but while the fallback buffer's queue holds
		// writes (q/ entries), which gets must see.
		RedisReads: []abi.RedisRead{
			{Kind: abi.KindAlert, KeyPrefix: []byte(alertKeyPrefix), KeySuffix: []byte("}"), Guard: kvQueue},
			{Kind: abi.KindAgentState, KeyPrefix: []byte(stateKeyPrefix), KeySuffix: []byte("}"), Guard: kvQueue},
		},
	})
}

type backend struct {
	redis sdk.Redis
	rq    request
	one   item   // the item of a single-record operation
	items []item // the items of a batch
	// A batch's results and the spans of their bodies in body.
	out    []abi.BatchResult
	bodies []span
	body   abi.Encoder
	enc    abi.Encoder // scratch: record values, cursor hashes
	// Default TTLs per kind, from the options; 0 = never expire.
	metricTTL, alertTTL, stateTTL time.Duration
	// fb is the fallback buffer. With fallback=fail it acknowledges no
	// write, but a buffer left in kv by fallback=buffer is still replayed
	// and honoured until it is empty (see fallback.go).
	fb *fallback
	// deferIx, while a batch or a replayed chunk is prepared, collects
	// its index entries (deferredIndex); nil otherwise.
	deferIx *deferredIndex
	// getCmd is the command of a single get (hmget).
	getCmd [1][][]byte
	// joinIx is set while a single put is prepared to index its record
	// in its own call (index); split once Redis answered such a call
	// CROSSSLOT (a cluster), after which every index call goes apart.
	joinIx, split bool
	// packs is set once a packed call of keys of more than one hash tag
	// ran (sendPacked); unpacked holds the replies of packed calls.
	packs    bool
	unpacked []abi.Reply
	bix      deferredIndex // the index entries of a batch's writes
}

type (
	metrics backend
	alerts  backend
	states  backend
)

func (b *backend) configure(o abi.Options) error {
	mode, entries := "fail", uint64(defaultBufferEntries)
	for name, v := range o {
		var dst *time.Duration
		switch name {
		case "fallback":
			if v != "fail" && v != "buffer" {
				return abi.Errorf(abi.StatusInvalid, "option fallback: %q is neither fail nor buffer", v)
			}
			mode = v
			continue
		case "fallback_buffer_entries":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return abi.Errorf(abi.StatusInvalid, "option fallback_buffer_entries: %q is not a positive whole number", v)
			}
			entries = n
			continue
		case "metric_ttl_seconds":
			dst = &b.metricTTL
		case "alert_ttl_seconds":
			dst = &b.alertTTL
		case "agent_state_ttl_seconds":
			dst = &b.stateTTL
		default:
			return abi.Errorf(abi.StatusInvalid, "unknown option %q", name)
		}
		ttl, _, err := o.TTL(name)
		if err != nil {
			return err
		}
		*dst = ttl
	}
	b.fb = &fallback{max: entries, accept: mode == "buffer"}
	// A look at the queue, which an earlier configuration may have left
	// holding writes: with fallback=fail requests look again only while
	// it does (fallbackBegin).
	if err := b.fb.readMeta(time.Time{}); err != nil {
		sdk.Logf(abi.LevelWarn, "fallback buffer: %v", err)
	}
	return nil
}

// --- TTL ---

// appendTTL appends the library's expiry spec for a write at now under
// ttl with the kind default def. It returns where, in dst, the spec holds
// the expiry the global index keeps as the record's bound: an empty span
// when it is unknown or never ("inf"). Expiries are truncated to the
// millisecond here, before they are written, so that what put answers is
// what Redis keeps.
func appendTTL(dst []byte, ttl *abi.TTL, def time.Duration, now time.Time) ([]byte, span) {
	switch ttl.Mode {
	case abi.TTLKeep:
		// The expiry of an existing record is Redis's; a new one gets the
		// default, as abi.TTL.ExpiresAt does.
		dst = append(dst, 'k')
		if def > 0 {
			dst = strconv.AppendInt(dst, now.Add(def).UnixMilli(), 10)
		}
		return dst, span{}
	case abi.TTLPersist:
		return append(dst, 'p'), span{}
	}
	at := ttl.ExpiresAt(now, def, time.Time{}, false)
	if at.IsZero() {
		return append(dst, 'p'), span{}
	}
	start := len(dst)
	dst = strconv.AppendInt(dst, at.UnixMilli(), 10)
	return dst, span{start, len(dst)}
}

// msTime converts an expiry in Unix milliseconds (-1: none) to a time.
func msTime(ms int64) time.Time {
	if ms < 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// --- keys ---

// Key and global index names.
const (
	metricKeyPrefix = "m:{"
	metricIndex     = "mi:{"
	metricExpiry    = "mx:{"
	alertKeyPrefix  = "a:{"
	stateKeyPrefix  = "s:{"
)

// Global index kinds, and their keys: L, X, T (see library.lua).
const (
	ixMetrics = iota
	ixAlerts
	ixStates
)

var ixKeys = [3][3]string{
	ixMetrics: {"{idx}:m", "{idx}:m:x", "{idx}:m:t"},
	ixAlerts:  {"{idx}:a", "{idx}:a:x", "{idx}:a:t"},
	ixStates:  {"{idx}:s", "{idx}:s:x", "{idx}:s:t"},
}

// appendTag appends id escaped for a hash tag: 0x01 becomes 0x01 0x01 and
// '}' becomes 0x01 ']'. The escape is injective, never holds '}' (which
// would end the tag early) and is never empty (an empty tag would hash the
// whole key), so a key "x:{" + tag + "}..." hashes by the ID alone.
func appendTag(dst []byte, id string) []byte {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case 0x01:
			dst = append(dst, 0x01, 0x01)
		case '}':
			dst = append(dst, 0x01, ']')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// tsHexLen is the width of a timestamp in metric members.
const tsHexLen = 16

// appendTS appends the fixed-width, order-preserving form of ts.
func appendTS(dst []byte, ts time.Time) []byte {
	const digits = "0123456789abcdef"
	u := uint64(ts.UnixNano()) ^ 1<<63
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[u>>uint(shift)&0xf])
	}
	return dst
}

// appendMember appends a metric's member in its agent's indexes.
func appendMember(dst []byte, name string, ts time.Time) []byte {
	dst = append(dst, name...)
	dst = append(dst, 0)
	return appendTS(dst, ts)
}

// parseMember is the inverse of appendMember.
func parseMember(m []byte) (name string, ts time.Time, ok bool) {
	i := len(m) - tsHexLen - 1
	if i < 0 || m[i] != 0 {
		return "", time.Time{}, false
	}
	var u uint64
	for _, c := range m[i+1:] {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | uint64(c-'a'+10)
		default:
			return "", time.Time{}, false
		}
	}
	return string(m[:i]), time.Unix(0, int64(u^1<<63)).UTC(), true
}

// --- requests ---

// The library's operations.
var (
	opRd     = []byte("rd")
	opMput   = []byte("mput")
	opMdel   = []byte("mdel")
	opMrange = []byte("mrange")
	opMget   = []byte("mget")
	opAput   = []byte("aput")
	opAstat  = []byte("astat")
	opSput   = []byte("sput")
	opSdel   = []byte("sdel")
	opDel    = []byte("del")
	opIxadd  = []byte("ixadd")
	opIxaddl = []byte("ixaddl")
	opIxdel  = []byte("ixdel")
	opIxrng  = []byte("ixrange")
	opIxtrim = []byte("ixtrim")

	opMrestore = []byte("mrestore")
	opArestore = []byte("arestore")
	opSrestore = []byte("srestore")

	// The puts that index their record in the same call (see index).
	opMputIx = []byte("+mput")
	opAputIx = []byte("+aput")
	opSputIx = []byte("+sput")
)

// indexingOp returns the operation that writes like op and indexes its
// record in the same call, or nil when op has none.
func indexingOp(op []byte) []byte {
	switch string(op) {
	case "mput":
		return opMputIx
	case "aput":
		return opAputIx
	case "sput":
		return opSputIx
	}
	return nil
}

// ixKeyViews are ixKeys as the byte slices of a script call.
var ixKeyViews = func() (v [len(ixKeys)][len(ixKeys[0])][]byte) {
	for ix := range ixKeys {
		for i, k := range ixKeys[ix] {
			v[ix][i] = []byte(k)
		}
	}
	return v
}()

// request builds the calls of one EvalMany in a reusable arena: every key
// and argument is a span of arena, turned into slices only when the
// request is sent, so that the arena may grow while it is built.
type request struct {
	arena []byte
	spans []span
	calls []callSpan
	views [][]byte
	sc    []abi.ScriptCall
	// Packed calls (pack): their counts, views and calls.
	nums   []byte
	pviews [][]byte
	pspans []span
	packed []abi.ScriptCall
}

type span struct{ lo, hi int }

// callSpan is one call of the library's operation op: parts
// spans[first:first+n], the first keys of them keys, the rest arguments
// after op. ix, when not 0, is 1 + the global index whose keys follow
// the call's own (an indexing put, see index).
type callSpan struct {
	op             []byte
	first, keys, n int
	ix             int
}

func (r *request) reset() {
	r.arena, r.spans, r.calls = r.arena[:0], r.spans[:0], r.calls[:0]
}

// ncalls is the number of calls so far.
func (r *request) ncalls() int { return len(r.calls) }

// call starts a call of the library's operation op; add its keys, then
// its other arguments.
func (r *request) call(op []byte) {
	r.calls = append(r.calls, callSpan{op: op, first: len(r.spans)})
}

// mark returns where the next part starts in the arena.
func (r *request) mark() int { return len(r.arena) }

// endKey ends a key started at mark start.
func (r *request) endKey(start int) {
	r.spans = append(r.spans, span{start, len(r.arena)})
	c := &r.calls[len(r.calls)-1]
	c.keys++
	c.n++
}

// endArg ends an argument started at mark start.
func (r *request) endArg(start int) {
	r.spans = append(r.spans, span{start, len(r.arena)})
	r.calls[len(r.calls)-1].n++
}

func (r *request) key(s string) {
	start := r.mark()
	r.arena = append(r.arena, s...)
	r.endKey(start)
}

// tagKey adds the key prefix + tag(id) + "}".
func (r *request) tagKey(prefix, id string) {
	start := r.mark()
	r.arena = append(r.arena, prefix...)
	r.arena = appendTag(r.arena, id)
	r.arena = append(r.arena, '}')
	r.endKey(start)
}

// sampleKey adds the key of a metric sample.
func (r *request) sampleKey(agent, name string, ts time.Time) {
	start := r.mark()
	r.arena = append(r.arena, metricKeyPrefix...)
	r.arena = appendTag(r.arena, agent)
	r.arena = append(r.arena, '}')
	r.arena = appendMember(r.arena, name, ts)
	r.endKey(start)
}

// sampleKeyMember adds the key of the sample of agent at member.
func (r *request) sampleKeyMember(agent, member string) {
	start := r.mark()
	r.arena = append(r.arena, metricKeyPrefix...)
	r.arena = appendTag(r.arena, agent)
	r.arena = append(r.arena, '}')
	r.arena = append(r.arena, member...)
	r.endKey(start)
}

// ixKeys adds the three keys of a global index.
func (r *request) ixKeys(ix int) {
	for _, k := range ixKeys[ix] {
		r.key(k)
	}
}

func (r *request) arg(b []byte) {
	start := r.mark()
	r.arena = append(r.arena, b...)
	r.endArg(start)
}

func (r *request) argStr(s string) {
	start := r.mark()
	r.arena = append(r.arena, s...)
	r.endArg(start)
}

func (r *request) argInt(v int64) {
	start := r.mark()
	r.arena = strconv.AppendInt(r.arena, v, 10)
	r.endArg(start)
}

// build turns the spans into the calls of an EvalMany, each call's
// arguments led by its operation. The slices alias the arena, valid until
// the next reset.
func (r *request) build() []abi.ScriptCall {
	r.views = r.views[:0]
	for _, c := range r.calls {
		for _, s := range r.spans[c.first : c.first+c.keys] {
			r.views = append(r.views, r.arena[s.lo:s.hi:s.hi])
		}
		if c.ix > 0 {
			r.views = append(r.views, ixKeyViews[c.ix-1][:]...)
		}
		r.views = append(r.views, c.op)
		for _, s := range r.spans[c.first+c.keys : c.first+c.n] {
			r.views = append(r.views, r.arena[s.lo:s.hi:s.hi])
		}
	}
	r.sc = r.sc[:0]
	at := 0
	for _, c := range r.calls {
		keys := c.keys
		if c.ix > 0 {
			keys += len(ixKeyViews[0])
		}
		end := at + keys + c.n - c.keys + 1
		r.sc = append(r.sc, abi.ScriptCall{
			Keys: r.views[at : at+keys : at+keys],
			Args: r.views[at+keys : end : end],
		})
		at = end
	}
	return r.sc
}

// send runs the request built in b.rq and returns one reply per call.
// The replies alias the Redis client's buffer: valid until its next call.
func (b *backend) send() ([]abi.Reply, error) {
	return b.eval(b.rq.build())
}

// eval runs calls, one reply per call.
func (b *backend) eval(calls []abi.ScriptCall) ([]abi.Reply, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	replies, err := evalMany(&b.redis, library, calls)
	if err != nil {
		return nil, err
	}
	if len(replies) != len(calls) {
		return nil, abi.Errorf(abi.StatusInternal, "redis: %d replies to %d calls", len(replies), len(calls))
	}
	return replies, nil
}

// evalMany runs script calls through the host's redis capability; the
// guest-path benchmarks answer from a recording instead.
var evalMany = (*sdk.Redis).EvalMany

// clock is the host's clock, which a batch reads once for all its items;
// the guest-path benchmarks read a fixed time.
var clock = sdk.Now

// sendPacked is send for the calls of writes: on a single node, where one
// script may touch keys of every slot, the calls go as one script call
// of the library's '*' per maxPacked calls instead of one each (each
// script call costs Redis the library's run and the call's own set-up),
// and their replies are unpacked, one per call as send answers them.
//
// A cluster refuses such a call as CROSSSLOT before running any of it;
// the calls are then sent one by one, and never packed again (split). A
// request of more than maxPacked calls is packed only once a packed call
// with keys of two hash tags ran (packs): had a later pack of it run
// where an earlier one was refused, its calls would run before the
// earlier ones they follow.
func (b *backend) sendPacked() ([]abi.Reply, error) {
	calls := b.rq.build()
	if len(calls) < 2 || b.split || (len(calls) > maxPacked && !b.packs) {
		return b.eval(calls)
	}
	packed, tags := b.rq.pack(calls)
	replies, err := b.eval(packed)
	if err != nil {
		return nil, err
	}
	if crossSlot(&replies[0]) {
		b.split = true
		return b.eval(calls)
	}
	b.packs = b.packs || tags
	b.unpacked = b.unpacked[:0]
	for i := range packed {
		n := min(maxPacked, len(calls)-i*maxPacked)
		r := &replies[i]
		switch {
		case r.Kind == abi.ReplyArray && len(r.Array) == n:
			b.unpacked = append(b.unpacked, r.Array...)
		case r.Kind == abi.ReplyError:
			// Refused as a whole (out of memory, say): so is each call.
			for range n {
				b.unpacked = append(b.unpacked, *r)
			}
		default:
			return nil, abi.Errorf(abi.StatusInternal, "redis: packed calls answered %s", badReply(r))
		}
	}
	return b.unpacked, nil
}

// maxPacked is the most calls one packed script call carries: Redis runs
// one script at a time, and a few hundred writes keep it under a
// millisecond or two.
const maxPacked = 256

// opPack is the library's operation that runs many calls (see library.lua).
var opPack = []byte("*")

// pack packs calls into script calls of the library's '*', maxPacked
// calls each, and reports whether their keys have more than one hash tag.
// The slices alias the request's storage, valid until the next pack.
func (r *request) pack(calls []abi.ScriptCall) (packed []abi.ScriptCall, tags bool) {
	// The counts first: the arena must not move once sliced.
	r.nums = r.nums[:0]
	for lo := 0; lo < len(calls); lo += maxPacked {
		hi := min(lo+maxPacked, len(calls))
		r.nums = strconv.AppendInt(r.nums, int64(hi-lo), 10)
		r.nums = append(r.nums, ' ')
		for _, c := range calls[lo:hi] {
			r.nums = strconv.AppendInt(r.nums, int64(len(c.Keys)), 10)
			r.nums = append(r.nums, ' ')
			r.nums = strconv.AppendInt(r.nums, int64(len(c.Args)), 10)
			r.nums = append(r.nums, ' ')
		}
	}
	var first []byte
	r.pviews, r.pspans = r.pviews[:0], r.pspans[:0]
	nums := r.nums
	for lo := 0; lo < len(calls); lo += maxPacked {
		hi := min(lo+maxPacked, len(calls))
		k := len(r.pviews)
		for _, c := range calls[lo:hi] {
			for _, key := range c.Keys {
				t := hashTag(key)
				if first == nil {
					first = t
				} else if !tags && !bytes.Equal(t, first) {
					tags = true
				}
			}
			r.pviews = append(r.pviews, c.Keys...)
		}
		a := len(r.pviews)
		r.pviews = append(r.pviews, opPack)
		for range 1 + 2*(hi-lo) {
			i := bytes.IndexByte(nums, ' ')
			r.pviews = append(r.pviews, nums[:i:i])
			nums = nums[i+1:]
		}
		for _, c := range calls[lo:hi] {
			r.pviews = append(r.pviews, c.Args...)
		}
		r.pspans = append(r.pspans, span{k, a})
	}
	r.packed = r.packed[:0]
	for i, s := range r.pspans {
		end := len(r.pviews)
		if i+1 < len(r.pspans) {
			end = r.pspans[i+1].lo
		}
		r.packed = append(r.packed, abi.ScriptCall{Keys: r.pviews[s.lo:s.hi:s.hi], Args: r.pviews[s.hi:end:end]})
	}
	return r.packed, tags
}

// hashTag returns the hash tag of key as Redis Cluster finds it: what is
// between its first '{' and the first '}' after it, if not empty, else
// the whole key.
func hashTag(key []byte) []byte {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// --- replies ---

// badReply is the error of a reply of an unexpected shape: the error Redis
// answered, or a protocol error.
func badReply(r *abi.Reply) error {
	if r.Kind == abi.ReplyError {
		return r.Err()
	}
	return abi.Errorf(abi.StatusInternal, "redis: unexpected reply of kind %d", r.Kind)
}

// replyInt reads an integer reply.
func replyInt(r *abi.Reply) (int64, error) {
	if r.Kind != abi.ReplyInt {
		return 0, badReply(r)
	}
	return r.Int, nil
}

// replyArray reads an array reply of at least n elements.
func replyArray(r *abi.Reply, n int) ([]abi.Reply, error) {
	if r.Kind != abi.ReplyArray || len(r.Array) < n {
		if r.Kind == abi.ReplyArray {
			return nil, abi.Errorf(abi.StatusInternal, "redis: %d elements in a reply, want %d", len(r.Array), n)
		}
		return nil, badReply(r)
	}
	return r.Array, nil
}

// parseInt parses a decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// nsTime parses Unix nanoseconds stored as a decimal string.
func nsTime(b []byte) (time.Time, error) {
	n, ok := parseInt(b)
	if !ok {
		return time.Time{}, abi.Errorf(abi.StatusInternal, "corrupt record: time %q", b)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}

// --- labels ---

// appendLabels appends labels as stored: count, then name and value each
// as length-prefixed bytes.
func appendLabels(dst []byte, l map[string]string) []byte {
	dst = appendUvarint(dst, uint64(len(l)))
	for k, v := range l {
		dst = appendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = appendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func appendUvarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// labelDecoder decodes stored labels; calls into an instance never
// overlap, so one is enough.
var labelDecoder abi.Decoder

// decodeLabels is the inverse of appendLabels.
func decodeLabels(b []byte) (map[string]string, error) {
	d := &labelDecoder
	d.Reset(b)
	n := d.Count(2)
	var l map[string]string
	if n > 0 {
		l = make(map[string]string, n)
		for i := 0; i < n; i++ {
			k := d.String()
			l[k] = d.String()
		}
	}
	if err := d.Finish(); err != nil {
		return nil, abi.Errorf(abi.StatusInternal, "corrupt record: labels: %v", err)
	}
	return l, nil
}
