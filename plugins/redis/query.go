package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/internal/querycost"
	"github.com/storage-host/storage-host/sdk"
)

// Query paging. A page is filled chunk by chunk: list up to a chunk of
// index entries (one round trip), read their records (one round trip),
// keep the matches.
const (
	// scanBudget bounds the index entries one query request examines; a
	// query that meets it answers the matches so far with a cursor, so a
	// very selective filter cannot make one call run unbounded.
	scanBudget = 10 * abi.MaxQueryLimit
	// filteredChunk is the least chunk of a query that filters in the
	// plugin, where a chunk's entries may not all match.
	filteredChunk = 64
	// agentChunk is how many agents a cross-agent metric query lists at
	// once.
	agentChunk = 32
)

// chunkSize is the chunk for need more items.
func chunkSize(need int, filtered bool) int {
	if filtered && need < filteredChunk {
		need = filteredChunk
	}
	return min(max(need, 1), abi.MaxQueryLimit)
}

// --- global indexes ---

// ixEntry is an entry of a global index: a record ID and when a write last
// indexed it (ms on the index's node; "" for never).
type ixEntry struct {
	id, touched string
}

// ixList lists up to count entries of a global index in [lo, hi] (ZRANGE
// BYLEX bounds), one more than count when there are more (the caller
// keeps the first count). It answers the index node's clock in ms, for
// trimming.
func (b *backend) ixList(ix int, lo, hi string, count int) (now int64, ents []ixEntry, more bool, err error) {
	r := &b.rq
	r.reset()
	r.call(opIxrng)
	r.key(ixKeys[ix][0])
	r.key(ixKeys[ix][2])
	r.argStr(lo)
	r.argStr(hi)
	r.argInt(int64(count + 1))
	replies, err := b.send()
	if err != nil {
		return 0, nil, false, err
	}
	a, err := replyArray(&replies[0], 1)
	if err != nil {
		return 0, nil, false, err
	}
	if now, err = replyInt(&a[0]); err != nil {
		return 0, nil, false, err
	}
	a = a[1:]
	n := len(a) / 2
	more = n > count
	n = min(n, count)
	ents = make([]ixEntry, n)
	for i := range ents {
		ents[i] = ixEntry{id: string(a[2*i].Str), touched: string(a[2*i+1].Str)}
	}
	return now, ents, more, nil
}

// stale reports whether an entry whose record is missing may be trimmed:
// no write indexed it within the grace period before now.
func (e *ixEntry) stale(now int64) bool {
	t, ok := parseInt([]byte(e.touched))
	return !ok || t < now-indexGrace
}

// ixTrim removes entries a query found without a record, each only if no
// write touched it since it was listed. Trimming is housekeeping: its
// failure does not fail the query.
func (b *backend) ixTrim(ix int, ents []ixEntry) {
	if len(ents) == 0 {
		return
	}
	r := &b.rq
	r.reset()
	r.call(opIxtrim)
	r.ixKeys(ix)
	for i := range ents {
		r.argStr(ents[i].id)
		r.argStr(ents[i].touched)
	}
	if _, err := b.send(); err != nil {
		sdk.Logf(abi.LevelDebug, "trimming %d index entries: %v", len(ents), err)
	}
}

// lexRange returns the ZRANGE BYLEX bounds of the IDs starting with prefix.
func lexRange(prefix string) (lo, hi string) {
	if prefix == "" {
		return "-", "+"
	}
	lo = "[" + prefix
	if end := prefixEnd(prefix); end != "" {
		return lo, "(" + end
	}
	return lo, "+"
}

// prefixEnd returns the least string above every string with prefix p,
// "" when there is none.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// --- cursors ---

// A cursor is 'R', the kind, the FNV-64a hash of the query without its
// limit and cursor, then where to resume: after the ID in a (states,
// alerts), or after member b of agent a (metrics). A cursor of another
// kind or query is refused; it is not a secret, and a forged one can only
// make a query resume elsewhere in its own results.
const cursorMagic = 'R'

func makeCursor(kind byte, hash uint64, a, b string) []byte {
	c := make([]byte, 0, 12+len(a)+len(b))
	c = append(c, cursorMagic, kind)
	c = binary.BigEndian.AppendUint64(c, hash)
	c = appendUvarint(c, uint64(len(a)))
	c = append(c, a...)
	return append(c, b...)
}

func openCursor(c []byte, kind byte, hash uint64) (a, b string, err error) {
	bad := abi.Errorf(abi.StatusInvalid, "cursor does not belong to this query")
	if len(c) < 11 || c[0] != cursorMagic || c[1] != kind || binary.BigEndian.Uint64(c[2:10]) != hash {
		return "", "", bad
	}
	n, k := binary.Uvarint(c[10:])
	if k <= 0 || n > uint64(len(c)-10-k) {
		return "", "", bad
	}
	rest := c[10+k:]
	return string(rest[:n]), string(rest[n:]), nil
}

// queryHash hashes an encoded query (without limit and cursor).
func queryHash(encoded []byte) uint64 {
	h := fnv.New64a()
	h.Write(encoded)
	return h.Sum64()
}

// --- agent states and alerts: one global index each ---

// ixQuery is a query of a global index (agent states, alerts) being
// served by walkIndex.
type ixQuery struct {
	ix     int
	what   string   // the records' kind, for messages
	kind   byte     // the cursor's
	prefix string   // the records' key prefix
	fields []string // the record fields read
	hash   uint64
	lo, hi string // where to start, ZRANGE BYLEX bounds
	want   int
	// filtered: take may leave records out of the page, so a chunk
	// lists filteredChunk entries at least. sized: chunks are sized by
	// the records' documents (see QueryAgentStates).
	filtered, sized bool
}

// walkIndex fills page from the global index of q, chunk by chunk. take
// decodes the record of entry id from its two reply fields, charges it to
// the page's byte budget and answers it, whether it exists, whether it
// joins the page, and its document's size; an error querycost.ErrSpent
// ends the page before that record. Entries found without a record are
// trimmed, when stale, as the page is answered.
func walkIndex[T any](b *backend, q *ixQuery, page *abi.Page[T], take func(id string, rs []abi.Reply) (v T, found, keep bool, size int, err error)) error {
	budget := scanBudget
	var trims []ixEntry
	var last string
	lo := q.lo
	// chunk is how many records a round trip reads: sized by the
	// documents seen (q.sized), and at most most, which halves while the
	// replies pass the backend's reply bound (LIMIT). Once they have, a
	// page holds at most what one round trip of most records does: the
	// page and the replies it is built from share the plugin's memory.
	chunk, biggest, most, docs := abi.MaxQueryLimit, 1, abi.MaxQueryLimit, 0
	if q.sized {
		chunk = 1
	}
	for {
		now, ents, more, err := b.ixList(q.ix, lo, q.hi, min(chunkSize(q.want-len(page.Items), q.filtered), chunk, most))
		if err != nil || len(ents) == 0 {
			b.ixTrim(q.ix, trims)
			return err
		}
		r := &b.rq
		r.reset()
		for i := range ents {
			r.call(opRd)
			r.tagKey(q.prefix, ents[i].id)
			for _, f := range q.fields {
				r.argStr(f)
			}
		}
		replies, err := b.send()
		switch {
		case isLimit(err) && len(ents) > 1:
			most = len(ents) / 2 // the same entries, fewer at a time
			continue
		case isLimit(err) && len(page.Items) > 0:
			// One record alone passes the bound: the page ends before
			// it, and the next page starts with it (and answers LIMIT).
			page.Next = makeCursor(q.kind, q.hash, last, "")
			b.ixTrim(q.ix, trims)
			return nil
		case isLimit(err):
			return abi.Errorf(abi.StatusLimit, "%s %q is larger than one read may answer: %s", q.what, ents[0].id, limitMessage(err))
		case err != nil:
			return err
		}
		for i := range ents {
			rs, err := replyArray(&replies[i], 2)
			if err != nil {
				return err
			}
			v, found, keep, size, err := take(ents[i].id, rs)
			if errors.Is(err, querycost.ErrSpent) {
				page.Next = makeCursor(q.kind, q.hash, last, "") // resume at this record
				b.ixTrim(q.ix, trims)
				return nil
			} else if err != nil {
				return err
			}
			if most < abi.MaxQueryLimit && len(page.Items) > 0 && docs+size > most*max(biggest, size) {
				page.Next = makeCursor(q.kind, q.hash, last, "") // resume at this record
				b.ixTrim(q.ix, trims)
				return nil
			}
			docs += size
			biggest = max(biggest, size)
			last = ents[i].id
			if !found {
				if ents[i].stale(now) {
					trims = append(trims, ents[i])
				}
				continue
			}
			if !keep {
				continue
			}
			page.Items = append(page.Items, v)
			if len(page.Items) == q.want {
				if more || i+1 < len(ents) {
					page.Next = makeCursor(q.kind, q.hash, last, "")
				}
				b.ixTrim(q.ix, trims)
				return nil
			}
		}
		if q.sized {
			chunk = max(1, querycost.ScanBudget/biggest)
		}
		budget -= len(ents)
		if !more || budget <= 0 {
			if more {
				page.Next = makeCursor(q.kind, q.hash, last, "")
			}
			b.ixTrim(q.ix, trims)
			return nil
		}
		lo = "(" + last
	}
}

func (s *states) QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	b := (*backend)(s)
	var page abi.Page[abi.AgentState]
	key := *q
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	ixq := ixQuery{ix: ixStates, what: "agent state", kind: 's', prefix: stateKeyPrefix, fields: stateFields[:], hash: queryHash(b.enc.Bytes()),
		want: abi.PageLimit(q.Limit)}

	ixq.lo, ixq.hi = lexRange(q.AgentIDPrefix)
	if len(q.Cursor) > 0 {
		last, _, err := openCursor(q.Cursor, 's', ixq.hash)
		if err != nil {
			return page, err
		}
		if !strings.HasPrefix(last, q.AgentIDPrefix) {
			return page, abi.Errorf(abi.StatusInvalid, "cursor does not belong to this query")
		}
		ixq.lo = "(" + last
	}
	// The page stops at querycost.ScanBudget bytes of documents (one
	// document at least), so large states page instead of running the
	// plugin out of memory. Documents may be megabytes each, and a round
	// trip's replies and the page built from them share the plugin's
	// memory: the first round trip reads one state, later ones as many as
	// fit the byte budget at the size of the biggest document seen.
	ixq.sized = true
	meter := querycost.NewMeter(querycost.Weights{})
	err := walkIndex(b, &ixq, &page, func(id string, rs []abi.Reply) (st abi.AgentState, found, keep bool, size int, err error) {
		found, err = decodeState(&st, id, &rs[0], &rs[1], false)
		if err != nil || !found {
			return st, found, found, 0, err
		}
		// Spent is the only error without matchers.
		if err := meter.Charge(len(st.State), nil); err != nil {
			return st, found, false, 0, err
		}
		size = len(st.State)
		st.State = bytes.Clone(st.State) // the next round trip reuses the reply
		return st, true, true, size, nil
	})
	return page, err
}

func (a *alerts) QueryAlerts(q *abi.AlertQuery) (abi.Page[abi.Alert], error) {
	b := (*backend)(a)
	var page abi.Page[abi.Alert]
	w, err := querycost.Check(q.Labels)
	if err != nil {
		return page, err
	}
	lf, err := abi.CompileMatchers(q.Labels)
	if err != nil {
		return page, err
	}
	meter := querycost.NewMeter(w)
	key := *q
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	ixq := ixQuery{ix: ixAlerts, what: "alert", kind: 'a', prefix: alertKeyPrefix, fields: alertFields[:], hash: queryHash(b.enc.Bytes()),
		lo: "-", hi: "+", want: abi.PageLimit(q.Limit)}

	if len(q.Cursor) > 0 {
		last, _, err := openCursor(q.Cursor, 'a', ixq.hash)
		if err != nil {
			return page, err
		}
		ixq.lo = "(" + last
	}
	ixq.filtered = q.AgentID != "" || len(q.Severities) > 0 || len(q.Statuses) > 0 || len(q.Labels) > 0 ||
		!q.From.IsZero() || !q.To.IsZero()
	err = walkIndex(b, &ixq, &page, func(id string, rs []abi.Reply) (al abi.Alert, found, keep bool, size int, err error) {
		found, err = decodeAlert(&al, id, &rs[0], &rs[1])
		if err != nil || !found {
			return al, found, false, 0, err
		}
		size = fieldsSize(&rs[0])
		if err := meter.Charge(size, al.Labels); err != nil {
			return al, found, false, 0, err
		}
		return al, true, q.Match(&al, &lf), size, nil
	})
	return page, err
}

// fieldsSize is the bytes of the fields in r, an array reply.
func fieldsSize(r *abi.Reply) int {
	n := 0
	for i := range r.Array {
		n += len(r.Array[i].Str)
	}
	return n
}

// --- metrics ---

// metricScan is one metric query being served.
type metricScan struct {
	q      *abi.MetricQuery
	lf     abi.LabelFilter
	meter  *querycost.Meter
	hash   uint64
	want   int
	budget int
	// most is the most samples a round trip reads: it halves while
	// their replies pass the backend's reply bound (LIMIT).
	most int
	// filtered: the plugin filters what the member range lets through.
	filtered bool
	// lo and hi bound the members of the query in every agent; loRaw is
	// lo without its '[' ("" for "-").
	lo, hi, loRaw string
	page          abi.Page[abi.Metric]
}

// Results of scanning one agent.
const (
	agentDone   = iota // the agent has no more members in range
	agentFull          // the page is full
	agentBudget        // the scan budget is spent
)

// endOfAgent is a member above every member: a cursor at it resumes after
// the agent.
const endOfAgent = "\xff"

func (m *metrics) QueryMetrics(q *abi.MetricQuery) (abi.Page[abi.Metric], error) {
	b := (*backend)(m)
	w, err := querycost.Check(q.Labels)
	if err != nil {
		return abi.Page[abi.Metric]{}, err
	}
	lf, err := abi.CompileMatchers(q.Labels)
	if err != nil {
		return abi.Page[abi.Metric]{}, err
	}
	key := *q
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	sc := &metricScan{q: q, lf: lf, meter: querycost.NewMeter(w), hash: queryHash(b.enc.Bytes()), want: abi.PageLimit(q.Limit), budget: scanBudget, most: abi.MaxQueryLimit}

	// The member range: a name pins the range, and with a name the time
	// range too; without one the plugin filters by time.
	sc.lo, sc.hi = "-", "+"
	if q.Name != "" {
		from := []byte(q.Name + "\x00")
		if !q.From.IsZero() {
			from = appendTS(from, q.From)
		}
		sc.loRaw = string(from)
		sc.lo = "[" + sc.loRaw
		if !q.To.IsZero() {
			sc.hi = "(" + string(appendMember(nil, q.Name, q.To))
		} else {
			sc.hi = "(" + q.Name + "\x01"
		}
	}
	sc.filtered = len(q.Labels) > 0 || (q.Name == "" && (!q.From.IsZero() || !q.To.IsZero()))

	var agent, after string
	if len(q.Cursor) > 0 {
		if agent, after, err = openCursor(q.Cursor, 'm', sc.hash); err != nil {
			return sc.page, err
		}
		if q.AgentID != "" && agent != q.AgentID {
			return sc.page, abi.Errorf(abi.StatusInvalid, "cursor does not belong to this query")
		}
	}

	if q.AgentID != "" {
		res, last, more, _, err := b.scanAgent(sc, q.AgentID, after)
		if err != nil {
			return sc.page, err
		}
		if (res == agentFull && more) || res == agentBudget {
			sc.page.Next = makeCursor('m', sc.hash, q.AgentID, last)
		}
		return sc.page, nil
	}

	// Across agents, in agent order.
	alo := "-"
	if agent != "" {
		alo = "[" + agent
	}
	var trims []ixEntry
	defer func() { b.ixTrim(ixMetrics, trims) }()
	for {
		now, ents, more, err := b.ixList(ixMetrics, alo, "+", agentChunk)
		if err != nil || len(ents) == 0 {
			return sc.page, err
		}
		for i := range ents {
			id := ents[i].id
			resume := ""
			if id == agent {
				resume = after
			}
			res, last, moreHere, exists, err := b.scanAgent(sc, id, resume)
			if err != nil {
				return sc.page, err
			}
			if !exists && ents[i].stale(now) {
				trims = append(trims, ents[i])
			}
			switch res {
			case agentFull:
				if moreHere || more || i+1 < len(ents) {
					sc.page.Next = makeCursor('m', sc.hash, id, last)
				}
				return sc.page, nil
			case agentBudget:
				sc.page.Next = makeCursor('m', sc.hash, id, last)
				return sc.page, nil
			}
			if sc.budget--; sc.budget <= 0 && (more || i+1 < len(ents)) {
				sc.page.Next = makeCursor('m', sc.hash, id, endOfAgent)
				return sc.page, nil
			}
		}
		if !more {
			return sc.page, nil
		}
		alo = "(" + ents[len(ents)-1].id
	}
}

// scanAgent adds the matches of one agent to the page, resuming after
// member after ("" for the start). It answers how it ended, the last
// member examined, whether members in range remain after it, and whether
// the agent's index exists.
func (b *backend) scanAgent(sc *metricScan, agent, after string) (res int, last string, more, exists bool, err error) {
	lo := sc.lo
	if after != "" && after >= sc.loRaw {
		lo = "(" + after
	}
	r := &b.rq
	members := make([]string, 0, 16)
	for {
		chunk := min(chunkSize(sc.want-len(sc.page.Items), sc.filtered), sc.most)
		r.reset()
		r.call(opMrange)
		r.tagKey(metricIndex, agent)
		r.argStr(lo)
		r.argStr(sc.hi)
		r.argInt(int64(chunk + 1))
		replies, err := b.send()
		if err != nil {
			return 0, "", false, false, err
		}
		a, err := replyArray(&replies[0], 1)
		if err != nil {
			return 0, "", false, false, err
		}
		n, _ := replyInt(&a[0])
		exists = n == 1
		a = a[1:]
		more = len(a) > chunk
		members = members[:0]
		for i := range a[:min(len(a), chunk)] {
			members = append(members, string(a[i].Str))
		}
		if len(members) == 0 {
			return agentDone, last, false, exists, nil
		}

		r.reset()
		r.call(opMget)
		r.tagKey(metricIndex, agent)
		r.tagKey(metricExpiry, agent)
		for _, mb := range members {
			r.sampleKeyMember(agent, mb)
		}
		for _, mb := range members {
			r.argStr(mb)
		}
		replies, err = b.send()
		switch {
		case isLimit(err) && len(members) > 1:
			sc.most = len(members) / 2 // the same members, fewer at a time
			continue
		case isLimit(err) && len(sc.page.Items) > 0:
			// One sample alone passes the bound: the page ends before
			// it, and the next page starts with it (and answers LIMIT).
			return agentBudget, last, true, exists, nil
		case isLimit(err):
			name, ts, _ := parseMember([]byte(members[0]))
			return 0, "", false, exists, abi.Errorf(abi.StatusLimit, "metric %q/%q at %s is larger than one read may answer: %s",
				agent, name, ts.UTC().Format(time.RFC3339Nano), limitMessage(err))
		case err != nil:
			return 0, "", false, exists, err
		}
		vals, err := replyArray(&replies[0], 2*len(members))
		if err != nil {
			return 0, "", false, exists, err
		}
		for i, mb := range members {
			prev := last
			last = mb
			e, err := replyInt(&vals[2*i+1])
			if err != nil {
				return 0, "", false, exists, err
			}
			if e == -2 || vals[2*i].Kind != abi.ReplyBulk {
				continue // expired or deleted: trimmed by the script
			}
			name, ts, ok := parseMember([]byte(mb))
			if !ok {
				return 0, "", false, exists, abi.Errorf(abi.StatusInternal, "corrupt metric index of agent %q: member %q", agent, mb)
			}
			rec := abi.Metric{AgentID: agent, Name: name, Timestamp: ts, ExpiresAt: msTime(e)}
			if err := decodeMetricValue(&rec, vals[2*i].Str); err != nil {
				return 0, "", false, exists, err
			}
			if err := sc.meter.Charge(len(vals[2*i].Str), rec.Labels); errors.Is(err, querycost.ErrSpent) {
				return agentBudget, prev, true, exists, nil // resume at this member
			} else if err != nil {
				return 0, "", false, exists, err
			}
			if !sc.q.Match(&rec, &sc.lf) {
				continue
			}
			sc.page.Items = append(sc.page.Items, rec)
			if len(sc.page.Items) == sc.want {
				return agentFull, last, more || i+1 < len(members), exists, nil
			}
		}
		sc.budget -= len(members)
		if !more {
			return agentDone, last, false, exists, nil
		}
		if sc.budget <= 0 {
			return agentBudget, last, true, exists, nil
		}
		lo = "(" + last
	}
}
