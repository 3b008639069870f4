package redisbridge

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Redis runs one command at a time, so a command whose cost is not
// bounded by its own size stalls every client of the server: the other
// backends, the host's event appender, other hosts. The default allowlist
// therefore holds commands whose work is bounded by their arguments or by
// the elements they name, and the checks below bound the arguments that
// size the work or the memory:
//
//   - counts (SRANDMEMBER, ZRANDMEMBER and HRANDFIELD, whose negative count
//     repeats elements without limit; SPOP, LPOP, RPOP, ZPOPMIN, ZPOPMAX,
//     LMPOP, ZMPOP, the SCAN family's COUNT, LPOS, the streams' COUNT) are
//     at most maxCount, and the reads that would otherwise walk a whole
//     collection must give theirs: XRANGE, XREVRANGE, XREAD and XREADGROUP
//     a COUNT, LPOS a MAXLEN;
//   - index ranges (LRANGE, ZRANGE, ZREVRANGE, ZRANGESTORE) name at most
//     maxCount elements, so a range whose end is counted from the other
//     side than its start (0 -1) is refused; score and lex ranges need a
//     LIMIT of at most maxCount, from an offset of at most maxOffset (each
//     LIMIT given: Redis obeys the last);
//   - offsets that make Redis allocate (SETRANGE, SETBIT, BITFIELD) add
//     up, over one request, to at most maxGrowth bytes;
//   - a negative count of SRANDMEMBER, ZRANDMEMBER or HRANDFIELD (which
//     repeats elements) is at least -maxRepeats;
//   - a SCAN family MATCH pattern has at most maxPattern bytes, and at
//     most maxPatternTail bytes from its first '*' on: Redis matches a glob in time about the element's
//     length times the pattern's past a '*' ("*aaa…ab" against a long
//     member), so a long pattern and long members stall it for minutes;
//   - a stream consumer or group name a command may make has at most
//     maxName bytes, and XPENDING's IDLE, a walk of the whole pending
//     list, is refused, and so is XINFO STREAM FULL, which answers every
//     group's pending entries;
//   - a request's stream reads answer at most maxCount entries together
//     (streamEntries).
//
// Commands whose cost grows with the product or the sum of whole
// collections (LCS, SINTER, SUNION, SDIFF and their STORE and CARD forms,
// ZUNION, ZINTER, ZDIFF and theirs) are off the default allowlist, as are
// the reads of a whole hash or set, which take no bound (HGETALL, HKEYS,
// HVALS, SMEMBERS: eight SMEMBERS of a set of a million members in one
// request held another client's PING 5.9 s; HSCAN and SSCAN read them a
// bounded page at a time), and
// so are the sorted-set range removals (ZREMRANGEBYSCORE, ZREMRANGEBYLEX,
// ZREMRANGEBYRANK): Redis removes a range member by member in its main
// thread, whatever lazyfree says, and a score or lex range has no LIMIT
// (one ZREMRANGEBYRANK 0 -1 of 2.1 million members held another client's
// PING 3.3 s). An operator may add them with Config.AllowCommands, bounded
// as above (a rank range like an index range; score and lex ranges are
// not bounded: allowing them trusts the backend with the server's time).

// maxRepeats bounds how many times one request's reads may name the same
// key, and one read the same other argument: Redis builds every reply
// whole in the client's output buffer, so a read of a value repeated is
// that value repeated in Redis's memory, whatever the bridge then reads
// of it (one MGET naming a 1 MiB value 400 times, a 3 KB request, made
// Redis allocate 410 MB). The writes that walk or read their key
// (searchingWrites: LREM of a long list is a scan of it, XREADGROUP of a
// pending list a read of it) count with the reads, searchWeight each:
// each repeat is the key's size again in Redis's time, with no reply to
// bound it. The writes that answer what their key holds, and holds still
// (echoingWrites: GETEX, LMOVE, RPOPLPUSH, XCLAIM), count as reads. Reads
// and searches of distinct keys cost at most what the
// plugin stored, a few times.
const maxRepeats = 8

// repeats counts the keys one request's reads and searching writes name,
// and the elements (a hash's fields, a stream's entries) its reads of one
// element each name. A write that moves a value from one key to another
// (movingWrites) may make the two one for the count: a chain of RENAMEs
// or LMOVEs carries one value through distinct keys, and each read of
// it, or LMOVE out of a list a move filled, is that value again in the
// reply.
type repeats struct {
	first [maxRepeats][]byte // the first names: none can be repeated too often yet
	n     int
	count map[string]int // past them, every name's count, by its class (root)

	parent map[string]string // a moved key's class: the key it was joined to, towards the root
	filled map[string]bool   // the classes a move put a value in, by root

	// The elements of the first command that reads elements are checked
	// alone (most requests have one); from a second, every element is
	// counted across the request, by its key's class.
	elemKey   []byte
	elemFirst [][]byte
	elemCmds  int
	elems     map[string]map[string]int
}

// searchWeight is what a searching write counts for against maxRepeats:
// one request may search a key twice, or search it once and read it four
// times.
const searchWeight = maxRepeats / 2

// counting switches r to counting in its map.
func (r *repeats) counting() {
	if r.count != nil {
		return
	}
	r.count = make(map[string]int, 4*maxRepeats)
	for _, k := range r.first[:r.n] {
		r.count[string(k)]++
	}
}

// root returns the class of key: itself, unless a move joined it to others.
func (r *repeats) root(key string) string {
	for {
		p, ok := r.parent[key]
		if !ok {
			return key
		}
		if gp, ok := r.parent[p]; ok {
			r.parent[key] = gp // halve the path
		}
		key = p
	}
}

// add counts weight more names of class k, and says whether that passes
// maxRepeats.
func (r *repeats) add(k string, weight int) bool {
	r.count[k] += weight
	return r.count[k] > maxRepeats
}

// join makes the classes of a and b one, their counts added up.
func (r *repeats) join(a, b string) {
	a, b = r.root(a), r.root(b)
	if a == b {
		return
	}
	if len(r.elems[a]) > len(r.elems[b]) {
		a, b = b, a
	}
	r.parent[a] = b
	r.count[b] += r.count[a]
	delete(r.count, a)
	r.filled[b] = r.filled[b] || r.filled[a]
	delete(r.filled, a)
	if from := r.elems[a]; from != nil {
		into := r.elems[b]
		if into == nil {
			into = map[string]int{}
			r.elems[b] = into
		}
		for el, n := range from {
			into[el] += n
		}
		delete(r.elems, a)
	}
}

// move counts the moving write in (movingWrites), from in[1] to in[2]. A
// whole key moved (RENAME) joins the two keys' classes. An element moved
// (LMOVE, RPOPLPUSH, SMOVE) joins them only when it leaves a key a move
// of the request filled, which carries a value on; and an LMOVE or
// RPOPLPUSH, which answers the element, counts as a read of its source
// then, or when it moves a list onto itself: 20 LMOVEs from distinct
// queues into one list are 20 elements, one LMOVE after another along a
// chain of lists one element 20 times.
func (r *repeats) move(in [][]byte, whole, echoes bool) error {
	r.counting()
	if r.parent == nil {
		r.parent, r.filled = map[string]string{}, map[string]bool{}
	}
	src, dst := string(in[1]), string(in[2])
	carried := r.filled[r.root(src)]
	if echoes && (src == dst || carried) && r.add(r.root(src), 1) {
		return fmt.Errorf("%s moves out of key %s, more than %d times in one request, what the request moved there", strings.ToUpper(string(in[0])), shown(in[1]), maxRepeats)
	}
	if whole || carried {
		r.join(src, dst)
	}
	r.filled[r.root(dst)] = true
	return nil
}

// read counts the keys of the read command in, whose arguments as built
// are args (its keys the prefixed ones, args.go), each weight times (1 for
// a read, searchWeight for a searching write), and the elements or other
// arguments it repeats, and says which passes maxRepeats.
func (r *repeats) read(in [][]byte, args []any, weight int) error {
	others := 0
	for i, a := range args[1:] {
		if k, ok := a.(*byteArg); !ok || !k.owned {
			others++
			continue
		}
		name := in[i+1]
		if r.count == nil {
			if weight == 1 && r.n < maxRepeats {
				r.first[r.n] = name
				r.n++
				continue
			}
			r.counting()
		}
		if r.add(r.root(string(name)), weight) {
			return fmt.Errorf("key %s is read more than %d times, or searched more than %d, in one request", shown(name), maxRepeats, maxRepeats/searchWeight)
		}
	}
	if elems := elementsRead(in); elems != nil {
		return r.readElements(in, elems)
	}
	if others <= maxRepeats {
		return nil
	}
	// A long read: its other arguments, each at most maxRepeats times.
	seen := make(map[string]int, others)
	for i, a := range args[1:] {
		if k, ok := a.(*byteArg); ok && k.owned {
			continue
		}
		if seen[string(in[i+1])]++; seen[string(in[i+1])] > maxRepeats {
			return fmt.Errorf("%s names %s more than %d times", strings.ToUpper(string(in[0])), shown(in[i+1]), maxRepeats)
		}
	}
	return nil
}

// readElements counts the elements elems of in[1] that the read in
// answers one each: each at most maxRepeats times a request (eight
// HMGETs of one hash, each naming a field eight times, answered it 64
// times).
func (r *repeats) readElements(in [][]byte, elems [][]byte) error {
	tooMany := func(el []byte) error {
		return fmt.Errorf("%s names %s of key %s more than %d times in one request", strings.ToUpper(string(in[0])), shown(el), shown(in[1]), maxRepeats)
	}
	r.elemCmds++
	if r.elemCmds == 1 {
		r.elemKey, r.elemFirst = in[1], elems
		if len(elems) <= maxRepeats {
			return nil
		}
		seen := make(map[string]int, len(elems))
		for _, el := range elems {
			if seen[string(el)]++; seen[string(el)] > maxRepeats {
				return tooMany(el)
			}
		}
		return nil
	}
	if r.elems == nil {
		r.counting()
		if r.parent == nil {
			r.parent, r.filled = map[string]string{}, map[string]bool{}
		}
		r.elems = map[string]map[string]int{}
		first := map[string]int{}
		for _, el := range r.elemFirst {
			first[string(el)]++
		}
		r.elems[r.root(string(r.elemKey))] = first
	}
	key := r.root(string(in[1]))
	m := r.elems[key]
	if m == nil {
		m = map[string]int{}
		r.elems[key] = m
	}
	for _, el := range elems {
		if m[string(el)]++; m[string(el)] > maxRepeats {
			return tooMany(el)
		}
	}
	return nil
}

// elementsRead returns the elements of its key that the read in answers
// one each, as the key holds them: HMGET's fields; XCLAIM's entry IDs,
// every argument after its minimum idle time but its options, as
// milliseconds-sequence (Redis reads 1-1, 01-1 and +1-01 as one entry).
// Nil for any other command.
func elementsRead(in [][]byte) [][]byte {
	switch {
	case len(in) > 2 && bytes.EqualFold(in[0], []byte("hmget")):
		return in[2:]
	case len(in) > 5 && bytes.EqualFold(in[0], []byte("xclaim")):
		var out [][]byte
		for i := 5; i < len(in); i++ {
			switch strings.ToLower(string(in[i])) {
			case "idle", "time", "retrycount", "lastid":
				i++ // and its value
			case "force", "justid":
			default:
				out = append(out, entryID(in[i]))
			}
		}
		return out
	}
	return nil
}

// entryID returns the stream entry ID b names, as milliseconds-sequence,
// or b itself when it is not one.
func entryID(b []byte) []byte {
	ms, seq, _ := bytes.Cut(bytes.TrimLeft(b, " +"), []byte("-"))
	m, err := strconv.ParseUint(string(ms), 10, 64)
	if err != nil {
		return b
	}
	var n uint64
	if len(seq) > 0 {
		if n, err = strconv.ParseUint(string(bytes.TrimLeft(seq, "+")), 10, 64); err != nil {
			return b
		}
	}
	return strconv.AppendUint(append(strconv.AppendUint(nil, m, 10), '-'), n, 10)
}

// costly are the commands off the default allowlist for their cost; the
// scripts' ACL user is denied those the backend is not allowed.
var costly = []string{"lcs", "sinter", "sunion", "sdiff", "sinterstore", "sunionstore", "sdiffstore", "sintercard",
	"zunion", "zinter", "zdiff", "zunionstore", "zinterstore", "zdiffstore", "zintercard",
	"zremrangebyscore", "zremrangebylex", "zremrangebyrank",
	"hgetall", "hkeys", "hvals", "smembers"}

const (
	maxCount  = 10_000    // elements a count, a LIMIT or an index range may name
	maxOffset = 1_000_000 // a LIMIT's offset: Redis walks past each skipped element
	maxGrowth = 16 << 20  // bytes the offsets of one request's commands may make Redis allocate

	// maxGrowthPerSecond bounds the same across a backend's requests: one
	// SETRANGE at a 16 MiB offset is a request of 40 bytes, and a plugin
	// sending 200 of them a tick filled a Redis to its 2 GB maxmemory in
	// 5.5 s, after which other backends' writes were refused OOM.
	maxGrowthPerSecond = 16 << 20

	// maxPatternTail bounds a MATCH pattern from its first '*' on, so
	// that matching costs Redis at most this many times reading the
	// element; maxPattern bounds the whole pattern, since before its
	// first '*' Redis reads the whole of a [...] class for each byte of
	// the element it compares (a class of 1 MiB made one HSCAN of 5 000
	// fields hold Redis 8.3 s).
	maxPatternTail = 64
	maxPattern     = 256

	// maxName bounds a stream's consumer and group names where a command
	// makes one: XPENDING's extended form and XINFO STREAM FULL repeat a
	// consumer's name in each pending entry they answer, so one
	// XPENDING of 10 000 entries claimed by a consumer named by 20 000
	// bytes made Redis build a 200 MB reply from 2 MB it held, and eight
	// in a request of 800 bytes took it past its maxmemory six times.
	maxName = 256
)

// check is a command's argument bound: it returns how many bytes the
// command may make Redis allocate beyond its arguments, or why it is
// refused.
type check func(in [][]byte) (int64, error)

var checks = map[string]check{
	"srandmember": randomCount, "zrandmember": randomCount, "hrandfield": randomCount,
	"spop": countAt(2), "lpop": countAt(2), "rpop": countAt(2),
	"zpopmin": countAt(2), "zpopmax": countAt(2),
	"lmpop": options(2, "COUNT"), "zmpop": options(2, "COUNT"),
	"hscan": scan, "sscan": scan, "zscan": scan,
	"xrange": needs(4, "COUNT", options(4, "COUNT")), "xrevrange": needs(4, "COUNT", options(4, "COUNT")),
	"xread": streamRead(false), "xreadgroup": streamRead(true),
	"xclaim": naming(nil, 2, 3), "xautoclaim": naming(options(6, "COUNT"), 2, 3),
	"xgroup": xgroup, "xinfo": xinfo, "xpending": xpending,
	"geosearch": options(2, "COUNT"), "geosearchstore": options(3, "COUNT"),
	"lpos":      lpos,
	"lrange":    indexRange(2),
	"zrevrange": indexRange(2), "zremrangebyrank": indexRange(2),
	"zrange": zrange(2), "zrangestore": zrange(3),
	"zrangebyscore": limited(4), "zrevrangebyscore": limited(4),
	"zrangebylex": limited(4), "zrevrangebylex": limited(4),
	"setrange": setrange, "setbit": setbit, "bitfield": bitfield,
}

func init() {
	for name, f := range checks {
		commands[name].check = f
	}
	for name, f := range streamEntries {
		commands[name].entries = f
	}
}

// streamEntries counts, for the stream reads, the entries a command may
// answer at most, so that a request's stream reads answer at most
// maxCount together. A stream keeps a field's name once for up to a
// hundred entries (stream-node-max-entries) and answers it with each:
// one XRANGE of 10 000 entries with a 1 300-byte field name built a 13 MB
// reply out of 0.3 MB stored, and the eight reads of one key a request
// may make, over a few such streams, would take Redis gigabytes past its
// maxmemory (repeats bounds how often a key is read, not this). The
// checks have bounded each count already.
var streamEntries = map[string]func(in [][]byte) int64{
	"xrange": lastCount(4, 0), "xrevrange": lastCount(4, 0),
	"xread": streamsRead(false), "xreadgroup": streamsRead(true),
	"xautoclaim": lastCount(6, 100),                                               // Redis's default
	"xclaim":     func(in [][]byte) int64 { return int64(len(elementsRead(in))) }, // its IDs
	"xpending": func(in [][]byte) int64 {
		if len(in) > 5 {
			n, _ := parseInt(in[5])
			return max(n, 0)
		}
		return 0 // the summary: one line per consumer
	},
	"xinfo": func(in [][]byte) int64 { return 1 }, // STREAM (not FULL, refused): its first and last entries
}

// lastCount answers the value of the last COUNT option from position
// from on (Redis obeys the last), or def when there is none.
func lastCount(from int, def int64) func(in [][]byte) int64 {
	return func(in [][]byte) int64 {
		n := def
		for i := from; i+1 < len(in); i++ {
			if bytes.EqualFold(in[i], []byte("COUNT")) {
				n, _ = parseInt(in[i+1])
			}
		}
		return max(n, 0)
	}
}

// streamsRead answers XREAD's and XREADGROUP's (group) last COUNT, the
// one Redis obeys, times the streams they read.
func streamsRead(group bool) func(in [][]byte) int64 {
	return func(in [][]byte) int64 {
		counts, _, streams := streamOptions(in, group)
		if len(counts) == 0 {
			return 0 // refused by streamRead
		}
		n, _ := parseInt(counts[len(counts)-1])
		return max(n, 0) * int64(streams)
	}
}

// streamOptions walks the options of XREAD and XREADGROUP (group) up to
// STREAMS as Redis reads them, and as streamKeys does: Redis takes them
// in any order, and obeys the last COUNT and the last GROUP. It answers
// every COUNT's value, every GROUP's group and consumer names, and the
// streams read (0 for a command streamKeys refuses).
func streamOptions(in [][]byte, group bool) (counts, names [][]byte, streams int) {
	for i := 1; i < len(in); {
		more := len(in) - i - 1
		switch {
		case bytes.EqualFold(in[i], []byte("COUNT")) && more >= 1:
			counts = append(counts, in[i+1])
			i += 2
		case bytes.EqualFold(in[i], []byte("BLOCK")) && more >= 1:
			i += 2
		case group && bytes.EqualFold(in[i], []byte("GROUP")) && more >= 2:
			names = append(names, in[i+1], in[i+2])
			i += 3
		case group && bytes.EqualFold(in[i], []byte("NOACK")):
			i++
		case bytes.EqualFold(in[i], []byte("STREAMS")) && more >= 1:
			return counts, names, more / 2
		default:
			return counts, names, 0
		}
	}
	return counts, names, 0
}

// bounded applies c's argument bounds to in.
func (c *command) bounded(in [][]byte) (int64, error) {
	if c.check == nil {
		return 0, nil
	}
	n, err := c.check(in)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", strings.ToUpper(c.name), err)
	}
	return n, nil
}

func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// count checks a count argument.
func count(b []byte) error {
	n, ok := parseInt(b)
	if !ok {
		return fmt.Errorf("count %s is not an integer", shown(b))
	}
	if n < -maxCount || n > maxCount { // not abs(n): -(-2⁶³) is -2⁶³
		return fmt.Errorf("count %d is past the bridge's bound of %d", n, maxCount)
	}
	return nil
}

// countAt bounds the optional count at position i.
func countAt(i int) check {
	return func(in [][]byte) (int64, error) {
		if len(in) > i {
			return 0, count(in[i])
		}
		return 0, nil
	}
}

// randomCount bounds SRANDMEMBER, ZRANDMEMBER and HRANDFIELD key
// [count ...]: a count is bounded as any, and a negative one, which lets
// Redis repeat an element, at maxRepeats: Redis builds the reply whole,
// so one element of 10 KiB asked for 10 000 times (-10000) took its
// memory to 101 MB for one command, whatever the bridge then read of it.
func randomCount(in [][]byte) (int64, error) {
	if len(in) <= 2 {
		return 0, nil
	}
	if err := count(in[2]); err != nil {
		return 0, err
	}
	if n, _ := parseInt(in[2]); n < -maxRepeats {
		return 0, fmt.Errorf("count %d repeats an element more than the bridge's bound of %d times", n, maxRepeats)
	}
	return 0, nil
}

// needs is c for a command that must give option name (any case) from
// position from on: a stream read without COUNT reads the whole stream.
func needs(from int, name string, c check) check {
	return func(in [][]byte) (int64, error) {
		for i := from; i+1 < len(in); i++ {
			if bytes.EqualFold(in[i], []byte(name)) {
				return c(in)
			}
		}
		return 0, fmt.Errorf("%s is required (1 to %d): without it the whole stream is read", name, maxCount)
	}
}

// streamRead bounds XREAD [COUNT n] [BLOCK ms] STREAMS … and XREADGROUP
// GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS … (group), their options
// read as Redis reads them (streamOptions): one COUNT at least, each 1 to
// maxCount (without one, or with 0 or less, the whole stream is read);
// each GROUP's group and consumer names at most maxName bytes.
func streamRead(group bool) check {
	return func(in [][]byte) (int64, error) {
		counts, names, _ := streamOptions(in, group)
		if len(counts) == 0 {
			return 0, fmt.Errorf("COUNT is required (1 to %d): without it the whole stream is read", maxCount)
		}
		for _, c := range counts {
			if n, ok := parseInt(c); ok && n < 1 {
				return 0, fmt.Errorf("COUNT %d reads without limit; give 1 to %d", n, maxCount)
			}
			if err := count(c); err != nil {
				return 0, err
			}
		}
		for _, name := range names {
			if err := nameBound(name); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}
}

// options bounds the value after each of names (any case) from position
// from on; an option not given is not required (see needs). Every argument
// is looked at, so an option Redis reads is never missed; a key or value
// that reads like an option can only make the check stricter.
func options(from int, names ...string) check {
	return func(in [][]byte) (int64, error) {
		for i := from; i < len(in); i++ {
			for _, name := range names {
				if bytes.EqualFold(in[i], []byte(name)) && i+1 < len(in) {
					if err := count(in[i+1]); err != nil {
						return 0, err
					}
				}
			}
		}
		return 0, nil
	}
}

// scan bounds HSCAN, SSCAN and ZSCAN key cursor [MATCH pattern] [COUNT
// count]: each COUNT, and each MATCH pattern from its first '*' on (a
// pattern without one, or ending in its only one, is matched in time of
// its length). Every argument is looked at, as options does: Redis obeys
// the last MATCH.
func scan(in [][]byte) (int64, error) {
	if _, err := options(3, "COUNT")(in); err != nil {
		return 0, err
	}
	for i := 3; i+1 < len(in); i++ {
		if !bytes.EqualFold(in[i], []byte("MATCH")) {
			continue
		}
		p := in[i+1]
		if len(p) > maxPattern {
			return 0, fmt.Errorf("MATCH pattern of %d bytes is past the bridge's bound of %d", len(p), maxPattern)
		}
		if star := bytes.IndexByte(p, '*'); star >= 0 && len(p)-star > maxPatternTail {
			return 0, fmt.Errorf("MATCH pattern of %d bytes after its first '*' is past the bridge's bound of %d", len(p)-star, maxPatternTail)
		}
	}
	return 0, nil
}

// xinfo refuses XINFO STREAM key FULL: besides COUNT entries it answers
// up to COUNT pending entries of every group and of every consumer, each
// naming its consumer, however many groups the stream has (eight of one
// stream of 320 groups, a request of 300 bytes, took a Redis of 256 MB
// maxmemory to 1.1 GB and another client's PING 2.9 s). XINFO GROUPS,
// XINFO CONSUMERS and XPENDING answer the same in bounded pieces.
func xinfo(in [][]byte) (int64, error) {
	if len(in) > 3 && bytes.EqualFold(in[1], []byte("STREAM")) && slices.ContainsFunc(in[3:], func(a []byte) bool { return bytes.EqualFold(a, []byte("FULL")) }) {
		return 0, fmt.Errorf("STREAM … FULL is refused: it answers every group's pending entries, whatever its COUNT; read them with XINFO GROUPS, XINFO CONSUMERS and XPENDING")
	}
	return 0, nil
}

// xpending bounds the count of the extended form: key group start end
// count [consumer]. IDLE is refused: Redis then walks the group's whole
// pending list for entries idle long enough, whatever the count (94 ms
// of its one thread for one XPENDING of a list of 1.3 million entries
// that answered nothing); each entry answered says how long it has been
// idle.
func xpending(in [][]byte) (int64, error) {
	if len(in) > 3 && bytes.EqualFold(in[3], []byte("IDLE")) { // where Redis reads it
		return 0, fmt.Errorf("IDLE is refused: Redis walks the whole pending list for it, whatever the count; leave it out and read each entry's idle time from the reply")
	}
	if len(in) > 5 {
		return 0, count(in[5])
	}
	return 0, nil
}

// naming is c (nil: no other bound) for a command that may make a
// stream's consumer or group: the names at positions at have at most
// maxName bytes.
func naming(c check, at ...int) check {
	return func(in [][]byte) (int64, error) {
		for _, i := range at {
			if i < len(in) {
				if err := nameBound(in[i]); err != nil {
					return 0, err
				}
			}
		}
		if c == nil {
			return 0, nil
		}
		return c(in)
	}
}

// nameBound refuses a stream consumer or group name of more than maxName
// bytes.
func nameBound(name []byte) error {
	if len(name) > maxName {
		return fmt.Errorf("a consumer or group name of %d bytes is past the bridge's bound of %d (Redis repeats a consumer's name in each pending entry it answers)", len(name), maxName)
	}
	return nil
}

// xgroup bounds the names XGROUP CREATE key group … and CREATECONSUMER
// key group consumer make (naming); the other subcommands make none, and
// DESTROY and DELCONSUMER must reach a name made long before the bound.
func xgroup(in [][]byte) (int64, error) {
	if len(in) > 1 && (bytes.EqualFold(in[1], []byte("CREATE")) || bytes.EqualFold(in[1], []byte("CREATECONSUMER"))) {
		return naming(nil, 3, 4)(in)
	}
	return 0, nil
}

// lpos needs its scan bounded: a MAXLEN (Redis obeys the last) of 1 to
// maxCount, and any COUNT within maxCount.
func lpos(in [][]byte) (int64, error) {
	maxlen := int64(0)
	for i := 3; i+1 < len(in); i++ {
		switch {
		case bytes.EqualFold(in[i], []byte("COUNT")):
			if err := count(in[i+1]); err != nil {
				return 0, err
			}
		case bytes.EqualFold(in[i], []byte("MAXLEN")):
			if err := count(in[i+1]); err != nil {
				return 0, err
			}
			maxlen, _ = parseInt(in[i+1])
		}
	}
	if maxlen < 1 {
		// Without it LPOS compares every element until its matches are
		// found: a list of 5 million, searched for what it does not hold,
		// held other clients most of a second.
		return 0, fmt.Errorf("MAXLEN of 1 to %d is required: without it the whole list may be searched", maxCount)
	}
	return 0, nil
}

// rangeWidth checks an index range start..stop: at most maxCount
// elements, whatever the collection's length. Widths are compared, never
// computed: stop - start + 1 overflows for indices near ±2⁶³, which Redis
// clamps to the collection.
func rangeWidth(start, stop []byte) error {
	a, ok1 := parseInt(start)
	b, ok2 := parseInt(stop)
	if !ok1 || !ok2 {
		return fmt.Errorf("range %s %s is not two integers", shown(start), shown(stop))
	}
	var wide bool
	switch {
	case (a >= 0) == (b >= 0):
		// b - a, as unsigned, is exact when b >= a (one sign).
		wide = b >= a && uint64(b)-uint64(a) >= maxCount
	case a < 0: // from near the end to a fixed index: at most b+1
		wide = b >= maxCount
	default: // from a fixed index to near the end: as long as the collection
		return fmt.Errorf("range %d %d counts its end from the end: its width depends on the collection; give both indices one sign, at most %d apart", a, b, maxCount)
	}
	if wide {
		return fmt.Errorf("range %d %d names more than %d elements, the bridge's bound", a, b, maxCount)
	}
	return nil
}

// indexRange bounds the index range at positions i, i+1.
func indexRange(i int) check {
	return func(in [][]byte) (int64, error) { return 0, rangeWidth(in[i], in[i+1]) }
}

// limitOf finds every LIMIT offset count after position from and bounds
// each (Redis obeys the last one given); a missing LIMIT is refused.
func limitOf(in [][]byte, from int) error {
	found := false
	for i := from; i < len(in); i++ {
		if !bytes.EqualFold(in[i], []byte("LIMIT")) {
			continue
		}
		if i+2 >= len(in) {
			return fmt.Errorf("LIMIT needs an offset and a count")
		}
		off, ok := parseInt(in[i+1])
		if !ok || off < 0 || off > maxOffset {
			return fmt.Errorf("LIMIT offset %s is not between 0 and %d", shown(in[i+1]), maxOffset)
		}
		n, ok := parseInt(in[i+2])
		if !ok || n < 0 || n > maxCount {
			return fmt.Errorf("LIMIT count %s is not between 0 and %d", shown(in[i+2]), maxCount)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("a score or lex range needs LIMIT offset count, count at most %d", maxCount)
	}
	return nil
}

// limited requires a bounded LIMIT from position from on.
func limited(from int) check {
	return func(in [][]byte) (int64, error) { return 0, limitOf(in, from) }
}

// zrange checks ZRANGE (min at i) and ZRANGESTORE (min at i = 3): a score
// or lex range needs a LIMIT, an index range a bounded width.
func zrange(i int) check {
	return func(in [][]byte) (int64, error) {
		for _, a := range in[i+2:] {
			if bytes.EqualFold(a, []byte("BYSCORE")) || bytes.EqualFold(a, []byte("BYLEX")) {
				return 0, limitOf(in, i+2)
			}
		}
		return 0, rangeWidth(in[i], in[i+1])
	}
}

// offset parses a non-negative offset.
func offset(b []byte) (int64, error) {
	n, ok := parseInt(b)
	if !ok || n < 0 {
		return 0, fmt.Errorf("offset %s is not a non-negative integer", shown(b))
	}
	return n, nil
}

// setrange: the string grows to offset + len(value) bytes.
func setrange(in [][]byte) (int64, error) {
	off, err := offset(in[2])
	if err != nil {
		return 0, err
	}
	if off > maxGrowth {
		return 0, fmt.Errorf("offset %d is past the bridge's bound of %d bytes", off, maxGrowth)
	}
	return off + int64(len(in[3])), nil
}

// setbit: the string grows to offset/8 + 1 bytes.
func setbit(in [][]byte) (int64, error) {
	off, err := offset(in[2])
	if err != nil {
		return 0, err
	}
	if off/8 > maxGrowth {
		return 0, fmt.Errorf("bit offset %d is past the bridge's bound of %d bytes", off, maxGrowth)
	}
	return off/8 + 1, nil
}

// bitfield: each SET or INCRBY grows the string to its bit offset plus
// the field's width; GET reads past the end as zeros and allocates nothing.
func bitfield(in [][]byte) (int64, error) {
	var grow int64
	for i := 2; i < len(in); {
		op := strings.ToUpper(string(in[i]))
		switch op {
		case "GET", "SET", "INCRBY":
			if i+2 >= len(in) {
				return 0, fmt.Errorf("%s needs a type and an offset", op)
			}
			t := in[i+1]
			width, ok := parseInt(t[min(1, len(t)):])
			if len(t) < 2 || !ok || width < 1 || width > 64 {
				return 0, fmt.Errorf("type %s is not i1..i64 or u1..u63", shown(t))
			}
			o := in[i+2]
			mult := int64(1)
			if len(o) > 0 && o[0] == '#' {
				o, mult = o[1:], width
			}
			off, err := offset(o)
			if err != nil {
				return 0, err
			}
			if op != "GET" && (off > 8*maxGrowth || off*mult > 8*maxGrowth) {
				return 0, fmt.Errorf("bit offset %s is past the bridge's bound of %d bytes", shown(in[i+2]), maxGrowth)
			}
			if op != "GET" {
				grow = max(grow, (off*mult+width+7)/8)
				i++ // the value or increment
			}
			i += 3
		case "OVERFLOW":
			i += 2
		default:
			return 0, fmt.Errorf("unknown subcommand %s", shown(in[i]))
		}
	}
	return grow, nil
}
