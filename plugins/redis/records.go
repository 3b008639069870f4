package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// item is one record operation: a single-record request, or one item of a
// batch. prepare adds its calls to the request being built, finish reads
// their replies; a batch prepares every item, sends once and finishes
// every item, so a batch costs one round trip.
type item struct {
	// The request, then the result (sdk.BatchOp): a single operation's
	// too. A restore's record is moved to Metric, Alert or State
	// (setRestore).
	sdk.BatchOp
	// first and n are the item's calls in the request.
	first, n int
	now      time.Time
	// served is set when the fallback buffer answered the item (see
	// fallback_serve.go): it has no calls, its result or error is final.
	served bool
	// floor, when not 0, is the least version an agent-state put may
	// give: the replay of a buffered put passes the provisional version
	// it answered plus one.
	floor uint64
	// replay is set for the replay of a buffered write: a put, delete or
	// status change of an agent state or an alert then leaves alone a
	// record written after now, the time the write was acknowledged
	// (errSuperseded), and a put or delete of a metric sample is fenced
	// by its replay attempt (backend.newAttempt, errFenced).
	replay bool
	// indexed is set when the item's index entry waits in b.deferIx: the
	// index call's error, if Redis refuses it, is the item's too.
	indexed bool
	// An OpRestore: the kind of its record (in Metric, Alert or State)
	// and its mode.
	restoreKind abi.RecordKind
	mode        abi.RestoreMode
}

// allowedFrom[s] lists, as digits, the statuses an alert may move to s
// from (abi.AlertStatus.CanTransition): the script checks the current
// status against it, so the transition policy stays in Go.
var allowedFrom [abi.AlertResolved + 1]string

func init() {
	for to := abi.AlertFiring; to <= abi.AlertResolved; to++ {
		for from := abi.AlertFiring; from <= abi.AlertResolved; from++ {
			if from.CanTransition(to) {
				allowedFrom[to] += strconv.Itoa(int(from))
			}
		}
	}
}

// Fields read back by "rd".
var (
	alertFields = [...]string{"g", "s", "t", "m", "l", "c", "u"}
	stateFields = [...]string{"v", "u", "d"}
)

// prepare adds the item's calls to b.rq. The item was validated.
func (b *backend) prepare(it *item) {
	it.first = b.rq.ncalls()
	adds := 0
	if b.deferIx != nil {
		adds = b.deferIx.adds
	}
	b.addCalls(it)
	it.n = b.rq.ncalls() - it.first
	it.indexed = b.deferIx != nil && b.deferIx.adds != adds
}

func (b *backend) addCalls(it *item) {
	r := &b.rq
	switch it.Op {
	case abi.OpPutMetric:
		m := &it.Metric
		r.call(opMput)
		r.sampleKey(m.AgentID, m.Name, m.Timestamp)
		r.tagKey(metricIndex, m.AgentID)
		r.tagKey(metricExpiry, m.AgentID)
		if it.replay {
			r.tagKey(b.fb.fence, m.AgentID) // fenced by the attempt (newAttempt)
		}
		start := r.mark()
		var bound span
		r.arena, bound = appendTTL(r.arena, &it.TTL, b.metricTTL, it.now)
		r.endArg(start)
		start = r.mark()
		r.arena = appendMember(r.arena, m.Name, m.Timestamp)
		r.endArg(start)
		start = r.mark()
		r.arena = appendMetricValue(r.arena, m)
		r.endArg(start)
		if it.replay {
			r.argInt(b.fb.token)
		}
		b.index(ixMetrics, m.AgentID, bound)

	case abi.OpGetMetric:
		r.call(opRd)
		r.sampleKey(it.Metric.AgentID, it.Metric.Name, it.Metric.Timestamp)

	case abi.OpDeleteMetric:
		m := &it.Metric
		r.call(opMdel)
		r.sampleKey(m.AgentID, m.Name, m.Timestamp)
		r.tagKey(metricIndex, m.AgentID)
		r.tagKey(metricExpiry, m.AgentID)
		if it.replay {
			r.tagKey(b.fb.fence, m.AgentID) // fenced by the attempt (newAttempt)
		}
		start := r.mark()
		r.arena = appendMember(r.arena, m.Name, m.Timestamp)
		r.endArg(start)
		if it.replay {
			r.argInt(b.fb.token)
		}

	case abi.OpPutAlert:
		a := &it.Alert
		r.call(opAput)
		r.tagKey(alertKeyPrefix, a.ID)
		start := r.mark()
		var bound span
		r.arena, bound = appendTTL(r.arena, &it.TTL, b.alertTTL, it.now)
		r.endArg(start)
		r.argInt(int64(a.Status))
		r.argStr(allowedFrom[a.Status])
		r.argInt(it.now.UnixNano())
		created := a.CreatedAt
		if created.IsZero() {
			created = it.now
		}
		r.argInt(created.UnixNano())
		r.argStr(a.AgentID)
		r.argInt(int64(a.Severity))
		r.argStr(a.Message)
		start = r.mark()
		r.arena = appendLabels(r.arena, a.Labels)
		r.endArg(start)
		if it.replay {
			r.argStr("1")
		}
		b.index(ixAlerts, a.ID, bound)

	case abi.OpGetAlert:
		r.call(opRd)
		r.tagKey(alertKeyPrefix, it.Alert.ID)
		for _, f := range alertFields {
			r.argStr(f)
		}

	case abi.OpDeleteAlert:
		// A replayed delete leaves its index entry to the readers, who
		// trim it if the alert is gone: the library leaves alone an alert
		// written after the delete was acknowledged, and the index call,
		// in the {idx} slot, cannot see whether it did; unindexed, a record
		// written through another host while this one buffered would be
		// missing from every listing, backup and migration (an entry
		// whose last full write was over indexGrace ago: an alert's, or
		// a state's rewritten without expiry, which does not touch it).
		r.call(opDel)
		r.tagKey(alertKeyPrefix, it.Alert.ID)
		r.argInt(it.now.UnixNano())
		if it.replay {
			r.argStr("1")
			b.dropPending(ixAlerts, it.Alert.ID)
		} else {
			b.unindex(ixAlerts, it.Alert.ID)
		}

	case abi.OpSetAlertStatus:
		r.call(opAstat)
		r.tagKey(alertKeyPrefix, it.Alert.ID)
		r.argInt(int64(it.Status))
		r.argStr(allowedFrom[it.Status])
		r.argInt(it.now.UnixNano())
		if it.replay {
			r.argStr("1")
		}

	case abi.OpPutAgentState:
		s := &it.State
		r.call(opSput)
		r.tagKey(stateKeyPrefix, s.AgentID)
		start := r.mark()
		var bound span
		r.arena, bound = appendTTL(r.arena, &it.TTL, b.stateTTL, it.now)
		r.endArg(start)
		appendCondition(r, it.Condition)
		r.argInt(it.now.UnixNano())
		r.arg(s.State)
		if it.floor > 0 {
			r.argInt(int64(it.floor))
		}
		b.index(ixStates, s.AgentID, bound)

	case abi.OpGetAgentState:
		r.call(opRd)
		r.tagKey(stateKeyPrefix, it.State.AgentID)
		for _, f := range stateFields {
			r.argStr(f)
		}

	case abi.OpDeleteAgentState:
		r.call(opSdel)
		r.tagKey(stateKeyPrefix, it.State.AgentID)
		appendCondition(r, it.Condition)
		r.argInt(it.now.UnixNano())
		if it.replay {
			r.argStr("1")
		}
		// A conditional delete may fail and leave the state, and so may
		// a replayed one (see OpDeleteAlert): their index entry is
		// left to the readers, who trim it if the state is gone.
		switch {
		case it.Condition.Mode != abi.Unconditional:
		case it.replay:
			b.dropPending(ixStates, it.State.AgentID)
		default:
			b.unindex(ixStates, it.State.AgentID)
		}

	case abi.OpRestore:
		b.addRestore(it)

	default:
		it.Err = abi.Errorf(abi.StatusUnsupported, "%s cannot be pipelined", it.Op)
	}
}

// Restore modes as the library takes them.
var restoreModes = [...]string{abi.RestoreFail: "f", abi.RestoreSkip: "s", abi.RestoreOverwrite: "o"}

// addRestore adds the calls of an OpRestore: the record's own call, which
// checks the mode and writes the record with its fields and absolute
// expiry, then the same index calls a put of the record makes.
func (b *backend) addRestore(it *item) {
	r := &b.rq
	var exp time.Time
	switch it.restoreKind {
	case abi.KindMetric:
		m := &it.Metric
		exp = m.ExpiresAt
		r.call(opMrestore)
		r.sampleKey(m.AgentID, m.Name, m.Timestamp)
		r.tagKey(metricIndex, m.AgentID)
		r.tagKey(metricExpiry, m.AgentID)
	case abi.KindAlert:
		exp = it.Alert.ExpiresAt
		r.call(opArestore)
		r.tagKey(alertKeyPrefix, it.Alert.ID)
	case abi.KindAgentState:
		exp = it.State.ExpiresAt
		r.call(opSrestore)
		r.tagKey(stateKeyPrefix, it.State.AgentID)
	}
	r.argStr(restoreModes[it.mode])
	start := r.mark()
	var bound span
	if exp.IsZero() {
		r.arena = append(r.arena, 'p')
	} else {
		r.arena = strconv.AppendInt(r.arena, exp.UnixMilli(), 10)
		bound = span{start, len(r.arena)}
	}
	r.endArg(start)
	switch it.restoreKind {
	case abi.KindMetric:
		m := &it.Metric
		start = r.mark()
		r.arena = appendMember(r.arena, m.Name, m.Timestamp)
		r.endArg(start)
		start = r.mark()
		r.arena = appendMetricValue(r.arena, m)
		r.endArg(start)
		b.index(ixMetrics, m.AgentID, bound)
	case abi.KindAlert:
		a := &it.Alert
		r.argStr(a.AgentID)
		r.argInt(int64(a.Severity))
		r.argInt(int64(a.Status))
		r.argStr(a.Message)
		start = r.mark()
		r.arena = appendLabels(r.arena, a.Labels)
		r.endArg(start)
		r.argInt(a.CreatedAt.UnixNano())
		r.argInt(a.UpdatedAt.UnixNano())
		b.index(ixAlerts, a.ID, bound)
	case abi.KindAgentState:
		s := &it.State
		start = r.mark()
		r.arena = strconv.AppendUint(r.arena, s.Version, 10)
		r.endArg(start)
		r.argInt(s.UpdatedAt.UnixNano())
		r.arg(s.State)
		b.index(ixStates, s.AgentID, bound)
	}
}

// maxVersion is the largest agent-state version this backend keeps: the
// library computes the next version as a Lua number, exact below 2^53.
const maxVersion = 1<<53 - 2

// setRestore fills it, of op OpRestore, from a decoded and checked r.
// An item whose record has expired by now is served at once: it has
// nothing to write.
func (it *item) setRestore(r *abi.Restore) {
	it.restoreKind, it.mode = r.Kind, r.Mode
	switch r.Kind {
	case abi.KindMetric:
		it.Metric = r.Metric
	case abi.KindAlert:
		it.Alert = r.Alert
	case abi.KindAgentState:
		it.State = r.State
		if r.State.Version > maxVersion {
			it.Err = abi.Errorf(abi.StatusLimit, "agent state %q: version %d is above %d, the largest this backend keeps",
				r.State.AgentID, r.State.Version, uint64(maxVersion))
			return
		}
	}
	if r.Expired(it.now) {
		it.served = true
	}
}

func appendCondition(r *request, c abi.Condition) {
	start := r.mark()
	switch c.Mode {
	case abi.IfAbsent:
		r.arena = append(r.arena, 'a')
	case abi.IfVersion:
		r.arena = strconv.AppendUint(r.arena, c.Version, 10)
	}
	r.endArg(start)
}

// index adds the call that indexes id in a global index, after the
// record's own call: on a single node it then runs after the write. bound
// is where the arena holds the bound of the record's expiry (see
// appendTTL).
//
// A single put on a single node indexes in the record's own call
// (joinIx): the library's +sput, +mput and +aput take the index's keys
// after the record's and its arguments after the record's, one script
// call per write instead of two.
func (b *backend) index(ix int, id string, bound span) {
	r := &b.rq
	if b.deferIx != nil {
		b.deferIx.add(ix, id, r.arena[bound.lo:bound.hi], len(r.calls)-1)
		return
	}
	c := &r.calls[len(r.calls)-1]
	if op := indexingOp(c.op); b.joinIx && op != nil {
		c.op, c.ix = op, ix+1
	} else {
		r.call(opIxadd)
		r.ixKeys(ix)
	}
	r.argInt(sweepSlack)
	r.argStr(id)
	start := r.mark()
	if bound.hi > bound.lo {
		r.arena = append(r.arena, r.arena[bound.lo:bound.hi]...)
	} else {
		r.arena = append(r.arena, "inf"...)
	}
	r.endArg(start)
}

// ixID names one entry of a global index.
type ixID struct {
	ix int
	id string
}

// deferredIndex collects the index calls of a batch or a replayed chunk,
// one entry per record: they are sent after every record call, as one
// index call per index (of at most maxIndexIDs records), instead of one
// call per record. Each entry keeps the greatest bound of its writes and,
// for a record written once, the request's call that wrote it: packed in
// one script call with it, the library lists a record that call rewrote
// without expiry and leaves its bound and write time (library.lua,
// ixaddl), as a single put does.
type deferredIndex struct {
	entries map[ixID]deferredEntry
	order   []ixID
	adds    int // entries added since the value was last read (see prepare)
}

// deferredEntry is a deferredIndex's entry for one record.
type deferredEntry struct {
	bound int64 // the greatest bound of its writes; -1: no expiry
	call  int   // the request's call that wrote it; -1: more than one
}

// maxIndexIDs is the most records one index call indexes: a script's
// arguments are unpacked onto the Lua stack, which holds about 8 000.
const maxIndexIDs = 1024

func (d *deferredIndex) reset() {
	clear(d.entries)
	d.order = d.order[:0]
}

// add records that the request's call number call wrote id, indexed in
// index ix with bound (empty: no expiry).
func (d *deferredIndex) add(ix int, id string, bound []byte, call int) {
	if d.entries == nil {
		d.entries = map[ixID]deferredEntry{}
	}
	d.adds++
	v := int64(-1)
	if len(bound) > 0 {
		v, _ = parseInt(bound)
	}
	k := ixID{ix, id}
	cur, ok := d.entries[k]
	switch {
	case !ok:
		d.order = append(d.order, k)
		d.entries[k] = deferredEntry{v, call}
	case cur.bound == -1 || v == -1:
		d.entries[k] = deferredEntry{-1, -1}
	default:
		d.entries[k] = deferredEntry{max(cur.bound, v), -1}
	}
}

// drop forgets id's entry in index ix (its record was deleted after its
// writes).
func (d *deferredIndex) drop(ix int, id string) { delete(d.entries, ixID{ix, id}) }

// flush adds the collected index calls to r, after every record call of
// the batch, one per index and per maxIndexIDs records in order of first
// write, and returns how many it added. Each record carries the number,
// within the script call of '*' that will hold the index call (packs of
// maxPacked calls, see pack), of the call that wrote it, or 0 when that
// call is in another pack or unknown.
func (d *deferredIndex) flush(r *request) int {
	calls, at := 0, 0
	for ix := range ixKeys {
		n := 0
		for _, k := range d.order {
			if k.ix != ix {
				continue
			}
			e, ok := d.entries[k]
			if !ok {
				continue // unindexed by a later delete, or already added
			}
			delete(d.entries, k) // once, if k is in order twice
			if n%maxIndexIDs == 0 {
				at = r.ncalls()
				r.call(opIxaddl)
				r.ixKeys(ix)
				r.argInt(sweepSlack)
				calls++
			}
			n++
			r.argStr(k.id)
			if e.bound < 0 {
				r.argStr("inf")
			} else {
				r.argInt(e.bound)
			}
			pos := 0
			if e.call >= 0 && e.call/maxPacked == at/maxPacked {
				pos = e.call%maxPacked + 1
			}
			r.argInt(int64(pos))
		}
	}
	d.order = d.order[:0]
	return calls
}

// dropPending forgets the index call a write of this batch or chunk left
// pending for id in index ix: the record was deleted after it.
func (b *backend) dropPending(ix int, id string) {
	if b.deferIx != nil {
		b.deferIx.drop(ix, id)
	}
}

// unindex adds the call that unindexes a deleted record.
func (b *backend) unindex(ix int, id string) {
	r := &b.rq
	b.dropPending(ix, id)
	r.call(opIxdel)
	r.ixKeys(ix)
	r.argStr(id)
	r.argInt(indexGrace)
}

// finish reads the replies of the item's calls and sets its result or error.
func (b *backend) finish(it *item, replies []abi.Reply) {
	rs := replies[it.first : it.first+it.n]
	// The index call of a write only matters when Redis refused it.
	if len(rs) == 2 && rs[1].Kind == abi.ReplyError {
		it.Err = rs[1].Err()
		return
	}
	r := &rs[0]
	switch it.Op {
	case abi.OpPutMetric:
		if it.replay && b.fencedBy(it, r) {
			return
		}
		e, err := replyInt(r)
		it.Metric.ExpiresAt, it.Err = msTime(e), err

	case abi.OpGetMetric:
		it.Err = decodeMetric(&it.Metric, r)

	case abi.OpDeleteMetric:
		if it.replay && b.fencedBy(it, r) {
			return
		}
		n, err := replyInt(r)
		if err == nil && n == 0 {
			err = metricNotFound(&it.Metric)
		}
		it.Err = err

	case abi.OpPutAlert:
		a, err := replyArray(r, 2)
		if err != nil {
			it.Err = err
			return
		}
		switch a[0].Int {
		case 1:
		case 3:
			it.Err = errSuperseded
			return
		default:
			it.Err = transitionConflict(it.Alert.ID, a[1].Str, it.Alert.Status)
			return
		}
		if len(a) < 3 {
			it.Err = badReply(r)
			return
		}
		created, err := nsTime(a[1].Str)
		if err != nil {
			it.Err = err
			return
		}
		e, err := replyInt(&a[2])
		it.Alert.CreatedAt, it.Alert.UpdatedAt, it.Alert.ExpiresAt, it.Err = created, it.now, msTime(e), err

	case abi.OpGetAlert:
		id := it.Alert.ID
		a, err := replyArray(r, 2)
		if err == nil {
			var found bool
			found, err = decodeAlert(&it.Alert, id, &a[0], &a[1])
			if err == nil && !found {
				err = fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
			}
		}
		it.Err = err

	case abi.OpDeleteAlert:
		n, err := replyInt(r)
		switch {
		case err != nil:
		case n == 0:
			err = fmt.Errorf("alert %q: %w", it.Alert.ID, sdk.ErrNotFound)
		case n == 2:
			err = errSuperseded
		}
		it.Err = err

	case abi.OpSetAlertStatus:
		id := it.Alert.ID
		a, err := replyArray(r, 1)
		if err != nil {
			it.Err = err
			return
		}
		switch {
		case a[0].Int < 0:
			it.Err = fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
		case a[0].Int == 0 && len(a) >= 2:
			it.Err = transitionConflict(id, a[1].Str, it.Status)
		case a[0].Int == 3:
			it.Err = errSuperseded
		case len(a) >= 3:
			var found bool
			found, it.Err = decodeAlert(&it.Alert, id, &a[1], &a[2])
			if it.Err == nil && !found {
				it.Err = fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
			}
		default:
			it.Err = badReply(r)
		}

	case abi.OpPutAgentState:
		a, err := replyArray(r, 1)
		if err != nil {
			it.Err = err
			return
		}
		if a[0].Int != 1 || len(a) < 3 {
			switch a[0].Int {
			case 0:
				it.Err = fmt.Errorf("agent state %q: %s: %w", it.State.AgentID, conditionText(it.Condition), sdk.ErrConflict)
			case 3:
				it.Err = errSuperseded
			default:
				it.Err = badReply(r)
			}
			return
		}
		// The version is an integer reply: the library's Lua number, exact
		// below 2^53 (see maxVersion), answers as one without a conversion.
		v, err := replyInt(&a[1])
		if err != nil {
			it.Err = err
			return
		}
		e, err := replyInt(&a[2])
		s := &it.State
		s.Version, s.UpdatedAt, s.ExpiresAt, it.Err = uint64(v), it.now, msTime(e), err

	case abi.OpGetAgentState:
		id := it.State.AgentID
		a, err := replyArray(r, 2)
		if err == nil {
			var found bool
			found, err = decodeState(&it.State, id, &a[0], &a[1], false)
			if err == nil && !found {
				err = fmt.Errorf("agent state %q: %w", id, sdk.ErrNotFound)
			}
		}
		it.Err = err

	case abi.OpDeleteAgentState:
		n, err := replyInt(r)
		switch {
		case err != nil:
		case n < 0:
			err = fmt.Errorf("agent state %q: %w", it.State.AgentID, sdk.ErrNotFound)
		case n == 0:
			err = fmt.Errorf("agent state %q: %s: %w", it.State.AgentID, conditionText(it.Condition), sdk.ErrConflict)
		case n == 2:
			err = errSuperseded
		}
		it.Err = err

	case abi.OpRestore:
		// {1, expiry}: written; {0}: a live record exists; {2}: expired by
		// Redis's clock, nothing written.
		a, err := replyArray(r, 1)
		switch {
		case err != nil:
			it.Err = err
		case a[0].Int == 0 && it.mode == abi.RestoreFail:
			it.Err = fmt.Errorf("restore %s: a live record with its key exists: %w", it.restoreKind, sdk.ErrConflict)
		case a[0].Int == 0 || a[0].Int == 2:
			it.Written = false
		case a[0].Int == 1:
			it.Written = true
		default:
			it.Err = badReply(r)
		}
	}
}

func conditionText(c abi.Condition) string {
	if c.Mode == abi.IfAbsent {
		return "already exists"
	}
	return fmt.Sprintf("version %d is not current", c.Version)
}

func transitionConflict(id string, cur []byte, to abi.AlertStatus) error {
	from := abi.AlertStatus(0)
	if n, ok := parseInt(cur); ok {
		from = abi.AlertStatus(n)
	}
	return fmt.Errorf("alert %q: cannot go from %s to %s: %w", id, from, to, sdk.ErrConflict)
}

func metricNotFound(m *abi.Metric) error {
	return fmt.Errorf("metric %q/%q at %s: %w", m.AgentID, m.Name, m.Timestamp.UTC().Format(time.RFC3339Nano), sdk.ErrNotFound)
}

// --- stored values ---

// appendMetricValue appends a metric's stored value: the value as f64
// little-endian, then the labels.
func appendMetricValue(dst []byte, m *abi.Metric) []byte {
	u := math.Float64bits(m.Value)
	dst = append(dst, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
	return appendLabels(dst, m.Labels)
}

// decodeMetricValue sets m's value and labels from its stored value.
func decodeMetricValue(m *abi.Metric, v []byte) error {
	if len(v) < 8 {
		return abi.Errorf(abi.StatusInternal, "corrupt record: metric value of %d bytes", len(v))
	}
	u := uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
		uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
	m.Value = math.Float64frombits(u)
	var err error
	m.Labels, err = decodeLabels(v[8:])
	return err
}

// decodeMetric reads an "rd" reply of a sample into m, whose key fields
// are set.
func decodeMetric(m *abi.Metric, r *abi.Reply) error {
	a, err := replyArray(r, 2)
	if err != nil {
		return err
	}
	e, err := replyInt(&a[1])
	if err != nil {
		return err
	}
	if e == -2 || a[0].Kind != abi.ReplyBulk {
		return metricNotFound(m)
	}
	m.ExpiresAt = msTime(e)
	return decodeMetricValue(m, a[0].Str)
}

// decodeAlert reads an alert's fields (alertFields) and expiry into a.
// found is false when the alert does not exist.
func decodeAlert(a *abi.Alert, id string, fields, exp *abi.Reply) (found bool, err error) {
	e, err := replyInt(exp)
	if err != nil || e == -2 {
		return false, err
	}
	f, err := replyArray(fields, len(alertFields))
	if err != nil {
		return false, err
	}
	return decodeAlertFields(a, id, f, e)
}

// decodeAlertFields is decodeAlert of fields f (alertFields first) and
// the expiry e in Unix ms (-1: none).
func decodeAlertFields(a *abi.Alert, id string, f []abi.Reply, e int64) (found bool, err error) {
	if f[2].Kind != abi.ReplyBulk {
		return false, nil
	}
	sev, ok1 := parseInt(f[1].Str)
	st, ok2 := parseInt(f[2].Str)
	if !ok1 || !ok2 || sev < 1 || sev > 3 || st < 1 || st > 3 {
		// Out of 1..3, a value would wrap into another (Severity and
		// AlertStatus are a byte) or be one no alert has.
		return false, abi.Errorf(abi.StatusInternal, "corrupt alert %q: severity %q, status %q", id, f[1].Str, f[2].Str)
	}
	*a = abi.Alert{ID: id, AgentID: string(f[0].Str), Severity: abi.Severity(sev), Status: abi.AlertStatus(st),
		Message: string(f[3].Str), ExpiresAt: msTime(e)}
	if a.Labels, err = decodeLabels(f[4].Str); err != nil {
		return false, err
	}
	if a.CreatedAt, err = nsTime(f[5].Str); err != nil {
		return false, err
	}
	a.UpdatedAt, err = nsTime(f[6].Str)
	return err == nil, err
}

// decodeState reads a state's fields (stateFields) and expiry into s.
// The document aliases the reply unless copyDoc: a single read is encoded
// before the next Redis call reuses the reply buffer, a query page is not.
// found is false when the state does not exist.
func decodeState(s *abi.AgentState, id string, fields, exp *abi.Reply, copyDoc bool) (found bool, err error) {
	e, err := replyInt(exp)
	if err != nil || e == -2 {
		return false, err
	}
	f, err := replyArray(fields, len(stateFields))
	if err != nil {
		return false, err
	}
	return decodeStateFields(s, id, f, e, copyDoc)
}

// decodeStateFields is decodeState of fields f (stateFields first) and
// the expiry e in Unix ms (-1: none).
func decodeStateFields(s *abi.AgentState, id string, f []abi.Reply, e int64, copyDoc bool) (found bool, err error) {
	if f[0].Kind != abi.ReplyBulk {
		return false, nil
	}
	v, ok := parseInt(f[0].Str)
	if !ok {
		return false, abi.Errorf(abi.StatusInternal, "corrupt agent state %q: version %q", id, f[0].Str)
	}
	*s = abi.AgentState{AgentID: id, Version: uint64(v), ExpiresAt: msTime(e)}
	if len(f[2].Str) > 0 {
		s.State = f[2].Str
		if copyDoc {
			s.State = bytes.Clone(s.State)
		}
	}
	s.UpdatedAt, err = nsTime(f[1].Str)
	return err == nil, err
}

// --- single-record operations ---

// run serves one item through the fallback buffer (fallback_serve.go):
// in one round trip unless the buffer holds writes.
//
// A read served directly with fallback=fail needs no clock (Redis
// expires records itself), so it makes no clock call: each host call is
// a crossing out of the guest and back.
func (b *backend) run(it *item) {
	if f := b.fb; f.accept || f.pending || !isRead(it.Op) {
		it.now = sdk.Now()
	}
	b.runWithFallback(it)
}

// direct serves one item on Redis in one round trip. A put indexes its
// record in the same script call unless Redis refused that once as
// CROSSSLOT (a cluster, where the record and the {idx} keys are in
// different slots; Redis refuses such a call before running it). An
// operation of several calls (a delete and its unindexing) packs them into
// one on a single node (sendPacked).
func (b *backend) direct(it *item) {
	switch {
	case it.Op == abi.OpGetAgentState && b.getState(it),
		it.Op == abi.OpGetAlert && b.getAlert(it):
		return
	}
	for {
		b.rq.reset()
		b.joinIx = !b.split
		b.prepare(it)
		b.joinIx = false
		if it.Err != nil {
			return
		}
		joined := b.rq.calls[it.first].ix > 0
		replies, err := b.sendPacked()
		if err != nil {
			it.Err = readFailed(it, err)
			return
		}
		if joined && crossSlot(&replies[it.first]) {
			b.split = true
			continue
		}
		b.finish(it, replies)
		return
	}
}

// readFailed is failedWith for an item sent alone: a read whose reply
// passed the backend's reply bound is a record too large to read
// (tooLarge).
func readFailed(it *item, err error) error {
	if isRead(it.Op) && isLimit(err) {
		return tooLarge(it, err)
	}
	return failedWith(it, err)
}

// The fields of a single get's HMGET: the record's fields as "rd" reads
// them (stateFields, alertFields), then the expiry its write stored.
var (
	cmdHmget     = []byte("HMGET")
	stateFieldsE = [...][]byte{[]byte("v"), []byte("u"), []byte("d"), []byte("e")}
	alertFieldsE = [...][]byte{[]byte("g"), []byte("s"), []byte("t"), []byte("m"), []byte("l"), []byte("c"), []byte("u"), []byte("x")}
)

// hmget sends one HMGET of the hash prefix + tag(id) + "}" and fields,
// and returns the fields' replies, or nil with it.err set.
func (b *backend) hmget(it *item, prefix, id string, fields [][]byte) []abi.Reply {
	r := &b.rq
	r.reset()
	r.arena = append(r.arena, prefix...)
	r.arena = appendTag(r.arena, id)
	r.arena = append(r.arena, '}')
	cmd := append(b.getCmd[0][:0], cmdHmget, r.arena[:len(r.arena):len(r.arena)])
	cmd = append(cmd, fields...)
	b.getCmd[0] = cmd
	replies, err := b.redis.Pipeline(b.getCmd[:])
	if err != nil {
		it.Err = readFailed(it, err)
		return nil
	}
	if len(replies) != 1 {
		it.Err = abi.Errorf(abi.StatusInternal, "redis: %d replies to one command", len(replies))
		return nil
	}
	f, err := replyArray(&replies[0], len(fields))
	it.Err = err
	return f
}

// storedExpiry reads the expiry a write stored beside its record, in Unix
// ms (-1: none); ok is false when the record has none (written before
// the field was kept).
func storedExpiry(r *abi.Reply) (e int64, ok bool, err error) {
	if r.Kind != abi.ReplyBulk {
		return 0, false, nil
	}
	e, ok = parseInt(r.Str)
	if !ok {
		return 0, false, abi.Errorf(abi.StatusInternal, "corrupt record: expiry %q", r.Str)
	}
	return e, true, nil
}

// getState serves a single agent-state get with one plain HMGET of the
// state's fields and its stored expiry (e), atomic as one command is and
// without a script call, reporting whether it did: a state written
// before e was kept has none, and is read by the library's "rd" instead
// (direct goes on to it).
func (b *backend) getState(it *item) bool {
	id := it.State.AgentID
	f := b.hmget(it, stateKeyPrefix, id, stateFieldsE[:])
	if it.Err != nil {
		return true
	}
	if f[0].Kind != abi.ReplyBulk {
		it.Err = fmt.Errorf("agent state %q: %w", id, sdk.ErrNotFound)
		return true
	}
	e, ok, err := storedExpiry(&f[len(f)-1])
	if err != nil || !ok {
		it.Err = err
		return err != nil
	}
	found, err := decodeStateFields(&it.State, id, f, e, false)
	if err == nil && !found {
		err = fmt.Errorf("agent state %q: %w", id, sdk.ErrNotFound)
	}
	it.Err = err
	return true
}

// getAlert is getState for an alert: one HMGET of its fields and its
// stored expiry (x).
func (b *backend) getAlert(it *item) bool {
	id := it.Alert.ID
	f := b.hmget(it, alertKeyPrefix, id, alertFieldsE[:])
	if it.Err != nil {
		return true
	}
	if f[2].Kind != abi.ReplyBulk {
		it.Err = fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
		return true
	}
	e, ok, err := storedExpiry(&f[len(f)-1])
	if err != nil || !ok {
		it.Err = err
		return err != nil
	}
	found, err := decodeAlertFields(&it.Alert, id, f, e)
	if err == nil && !found {
		err = fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
	}
	it.Err = err
	return true
}

// crossSlot reports whether r is Redis's refusal of a call whose keys
// are in different hash slots.
func crossSlot(r *abi.Reply) bool {
	return r.Kind == abi.ReplyError && bytes.HasPrefix(r.Str, []byte("CROSSSLOT"))
}

// begin returns the backend's single item, reset for op.
func (b *backend) begin(op abi.Op) *item {
	b.one = item{BatchOp: sdk.BatchOp{Op: op}}
	return &b.one
}

func (m *metrics) PutMetric(r *abi.PutMetric) (abi.Metric, error) {
	b := (*backend)(m)
	it := b.begin(abi.OpPutMetric)
	it.Metric, it.TTL = r.Metric, r.TTL
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.Metric{}, it.Err
	}
	return it.Metric, it.Err // nil, or ErrStale: buffered
}

func (m *metrics) GetMetric(k *abi.MetricKey) (abi.Metric, error) {
	b := (*backend)(m)
	it := b.begin(abi.OpGetMetric)
	it.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp.UTC()}
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.Metric{}, it.Err
	}
	return it.Metric, it.Err
}

func (m *metrics) DeleteMetric(k *abi.MetricKey) error {
	b := (*backend)(m)
	it := b.begin(abi.OpDeleteMetric)
	it.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp}
	b.run(it)
	return it.Err
}

func (a *alerts) PutAlert(r *abi.PutAlert) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpPutAlert)
	it.Alert, it.TTL = r.Alert, r.TTL
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.Alert{}, it.Err
	}
	return it.Alert, it.Err // nil, or ErrStale: buffered
}

func (a *alerts) GetAlert(id string) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpGetAlert)
	it.Alert.ID = id
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.Alert{}, it.Err
	}
	return it.Alert, it.Err
}

func (a *alerts) DeleteAlert(id string) error {
	b := (*backend)(a)
	it := b.begin(abi.OpDeleteAlert)
	it.Alert.ID = id
	b.run(it)
	return it.Err
}

// SetAlertStatus moves an alert to a new status, keeping its expiry; the
// transition is checked and applied in one script.
func (a *alerts) SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpSetAlertStatus)
	it.Alert.ID, it.Status = r.ID, r.Status
	b.run(it)
	if it.Err != nil {
		return abi.Alert{}, it.Err
	}
	return it.Alert, nil
}

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	b := (*backend)(s)
	it := b.begin(abi.OpPutAgentState)
	it.State = abi.AgentState{AgentID: r.State.AgentID, State: r.State.State}
	it.TTL, it.Condition = r.TTL, r.Condition
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.AgentState{}, it.Err
	}
	return it.State, it.Err // nil, or ErrStale: buffered
}

func (s *states) GetAgentState(agentID string) (abi.AgentState, error) {
	b := (*backend)(s)
	it := b.begin(abi.OpGetAgentState)
	it.State.AgentID = agentID
	b.run(it)
	if it.Err != nil && !errors.Is(it.Err, sdk.ErrStale) {
		return abi.AgentState{}, it.Err
	}
	return it.State, it.Err
}

// Restore writes a record exactly as given (abi.OpRestore), in one script
// call that checks the mode and writes the record, its fields and its
// absolute expiry, and the index calls a put makes. While Redis cannot be
// reached it is UNAVAILABLE: a restore is never buffered.
func (b *backend) Restore(r *abi.Restore) (bool, error) {
	it := b.begin(abi.OpRestore)
	it.now = sdk.Now()
	it.setRestore(r)
	if it.Err != nil || it.served {
		return false, it.Err
	}
	b.run(it)
	return it.Written, it.Err
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	b := (*backend)(s)
	it := b.begin(abi.OpDeleteAgentState)
	it.State.AgentID, it.Condition = r.AgentID, r.Condition
	b.run(it)
	return it.Err
}
