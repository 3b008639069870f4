package main

import (
	"errors"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/internal/querycost"
	"github.com/storage-host/storage-host/sdk"
)

// Batch serves a whole OpBatch (the SDK finds it on the metric store; it
// serves every kind): every record operation of the batch goes into one
// EvalMany, one bridge call and one round trip (on a single node one
// script call, see sendPacked), and each item gets its own result, in
// request order. The index entries of its writes are added
// after the record calls, one index call per index for the whole batch
// (deferredIndex). A query (or ping) inside a batch is served in its
// place: the record operations before it are sent first, so each item
// sees the effects of the items before it.
func (m *metrics) Batch(in []abi.BatchItem) []abi.BatchResult { return (*backend)(m).batch(in) }

// batchDecoder decodes batch items; calls into an instance never overlap.
var batchDecoder abi.Decoder

func (b *backend) batch(in []abi.BatchItem) []abi.BatchResult {
	if cap(b.items) < len(in) {
		b.items = make([]item, len(in))
	}
	items := b.items[:len(in)]
	// The results are encoded before the next call: kept for reuse.
	if cap(b.out) < len(in) {
		b.out, b.bodies = make([]abi.BatchResult, len(in)), make([]span, len(in))
	}
	out, bodies := b.out[:len(in)], b.bodies[:len(in)]
	now := clock()
	b.fallbackBegin(now, true)
	b.body.Reset()
	b.rq.reset()
	b.bix.reset()
	b.deferIx = &b.bix
	defer func() { b.deferIx = nil }()
	seg := 0 // first item of the record operations not yet sent
	for i := range in {
		it := &items[i]
		*it = item{op: in[i].Op, now: now}
		switch in[i].Op {
		case abi.OpQueryMetrics, abi.OpQueryAlerts, abi.OpQueryAgentStates, abi.OpPing:
			b.flush(items[seg:i], out[seg:i], bodies[seg:i])
			seg = i + 1
			start := len(b.body.Bytes())
			it.err = b.serveInBatch(in[i].Op, in[i].Payload)
			b.result(it, &out[i], &bodies[i], start)
			continue
		}
		b.decodeItem(it, in[i].Payload)
		if it.err == nil && !it.served {
			if b.fb.pending && b.fromBuffer(it) {
				continue
			}
			b.prepare(it)
		}
	}
	b.flush(items[seg:], out[seg:], bodies[seg:])
	all := b.body.Bytes()
	for i := range out {
		out[i].Body = all[bodies[i].lo:bodies[i].hi:bodies[i].hi]
	}
	return out
}

// flush sends the calls of items (prepared into b.rq), finishes them and
// encodes their results.
func (b *backend) flush(items []item, out []abi.BatchResult, bodies []span) {
	records := b.rq.ncalls()
	b.bix.flush(&b.rq)
	var replies []abi.Reply
	var err error
	if b.rq.ncalls() > 0 {
		replies, err = b.sendPacked()
	}
	b.rq.reset()
	if isLimit(err) && readsOnly(items) {
		// Reads change nothing: asked again in parts, each within the
		// bound.
		b.readApart(items, out, bodies, err, len(b.body.Bytes()))
		return
	}
	// A refused index call fails the writes it indexed, as the index call
	// of a single write does (finish).
	var ixErr error
	for i := records; i < len(replies) && ixErr == nil; i++ {
		if replies[i].Kind == abi.ReplyError {
			ixErr = replies[i].Err()
		}
	}
	for i := range items {
		it := &items[i]
		if it.err == nil && !it.served {
			if err != nil {
				it.err = failedWith(it, err)
				b.fallBack(it) // in item order, so buffered writes keep it
			} else {
				b.finish(it, replies)
				if it.err == nil && it.indexed && ixErr != nil {
					it.err = ixErr
				}
				if errors.Is(it.err, sdk.ErrUnavailable) {
					// Redis refused its call for a state of its own (out
					// of memory, loading, read-only): as a single write's
					// refusal is, and whether or not its batch was the
					// host's sharing of single calls.
					b.fallBack(it)
				}
			}
		}
		b.result(it, &out[i], &bodies[i], len(b.body.Bytes()))
	}
}

// pending reports whether the item still has calls to send.
func (it *item) pending() bool { return it.err == nil && !it.served }

// readsOnly reports whether every item with calls to send is a read.
func readsOnly(items []item) bool {
	for i := range items {
		if items[i].pending() && !isRead(items[i].op) {
			return false
		}
	}
	return true
}

// readApart serves the reads of items, whose replies together passed the
// backend's reply bound (limit, the bridge's LIMIT), in two halves sent
// one after the other, each halved again while its replies pass the
// bound: a record whose reply alone passes it answers LIMIT (tooLarge),
// and the others their records. Each part's results are encoded before
// the next part is sent, which reuses the reply buffer their documents
// alias. Once the records read apart hold querycost.ScanBudget bytes of
// the batch's answer (from start), the reads left answer LIMIT without
// being sent: the answer must fit in the plugin's memory too, and a
// caller reads them in another batch.
func (b *backend) readApart(items []item, out []abi.BatchResult, bodies []span, limit error, start int) {
	n := 0
	for i := range items {
		if items[i].pending() {
			n++
		}
	}
	if n == 1 {
		for i := range items {
			if items[i].pending() {
				items[i].err = tooLarge(&items[i], limit)
			}
			b.result(&items[i], &out[i], &bodies[i], len(b.body.Bytes()))
		}
		return
	}
	half := len(items) / 2
	for _, p := range [2][2]int{{0, half}, {half, len(items)}} {
		part, pout, pbodies := items[p[0]:p[1]], out[p[0]:p[1]], bodies[p[0]:p[1]]
		if held := len(b.body.Bytes()) - start; held >= querycost.ScanBudget {
			for i := range part {
				if part[i].pending() {
					part[i].err = abi.Errorf(abi.StatusLimit, "%s: the batch's answer holds %d bytes of records, its bound; read it in another batch",
						part[i].record(), held)
				}
				b.result(&part[i], &pout[i], &pbodies[i], len(b.body.Bytes()))
			}
			continue
		}
		b.rq.reset()
		for i := range part {
			if part[i].pending() {
				b.prepare(&part[i])
			}
		}
		var replies []abi.Reply
		var err error
		if b.rq.ncalls() > 0 {
			replies, err = b.sendPacked()
		}
		b.rq.reset()
		if isLimit(err) {
			b.readApart(part, pout, pbodies, err, start)
			continue
		}
		for i := range part {
			it := &part[i]
			if it.pending() {
				if err != nil {
					it.err = failedWith(it, err)
					b.fallBack(it)
				} else {
					b.finish(it, replies)
				}
			}
			b.result(it, &pout[i], &pbodies[i], len(b.body.Bytes()))
		}
	}
}

// result encodes the item's response body into b.body from start (a query's page
// is already there) and sets its status: a read served from the fallback
// buffer is STALE, with its record.
func (b *backend) result(it *item, out *abi.BatchResult, body *span, start int) {
	if it.err != nil && !errors.Is(it.err, sdk.ErrStale) {
		var msg string
		out.Status, msg = statusOf(it.err)
		b.body.Raw([]byte(msg))
	} else {
		out.Status = abi.StatusOK
		if it.err != nil {
			out.Status = abi.StatusStale
		}
		switch it.op {
		case abi.OpPutMetric, abi.OpGetMetric:
			it.metric.Encode(&b.body)
		case abi.OpPutAlert, abi.OpGetAlert, abi.OpSetAlertStatus:
			it.alert.Encode(&b.body)
		case abi.OpPutAgentState, abi.OpGetAgentState:
			it.state.Encode(&b.body)
		case abi.OpRestore:
			b.body.Bool(it.written)
		}
	}
	*body = span{start, len(b.body.Bytes())}
}

// statusOf maps an error to a status and message, as the SDK does for a
// single request.
func statusOf(err error) (abi.Status, string) {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Status, ae.Message
	}
	var s abi.Status
	if errors.As(err, &s) {
		return s, strings.TrimSuffix(err.Error(), ": "+s.String())
	}
	return abi.StatusInternal, err.Error()
}

func endDecode(d *abi.Decoder) error {
	if err := d.Finish(); err != nil {
		return abi.Errorf(abi.StatusInvalid, "decode request: %v", err)
	}
	return nil
}

// decodeItem decodes and checks a batch item as the SDK does a single
// request; a bad item fails alone.
func (b *backend) decodeItem(it *item, payload []byte) {
	d := &batchDecoder
	d.Reset(payload)
	switch it.op {
	case abi.OpPutMetric:
		var r abi.PutMetric
		r.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = r.TTL.Check(); it.err != nil {
			return
		}
		it.err = r.Metric.Check()
		it.metric, it.ttl = r.Metric, r.TTL

	case abi.OpGetMetric, abi.OpDeleteMetric:
		var k abi.MetricKey
		k.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		it.err = k.Check()
		it.metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp.UTC()}

	case abi.OpPutAlert:
		var r abi.PutAlert
		r.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = r.TTL.Check(); it.err != nil {
			return
		}
		it.err = r.Alert.Check()
		it.alert, it.ttl = r.Alert, r.TTL

	case abi.OpGetAlert, abi.OpDeleteAlert:
		id := d.String()
		if it.err = endDecode(d); it.err != nil {
			return
		}
		it.err = abi.CheckID("alert id", id)
		it.alert.ID = id

	case abi.OpSetAlertStatus:
		var r abi.SetAlertStatus
		r.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = abi.CheckID("alert id", r.ID); it.err != nil {
			return
		}
		if !r.Status.Valid() {
			it.err = abi.Errorf(abi.StatusInvalid, "unknown alert status %d", r.Status)
		}
		it.alert.ID, it.status = r.ID, r.Status

	case abi.OpPutAgentState:
		// The document is written and answered within the call, while
		// the payload holds still: no copy of it.
		var r abi.PutAgentState
		r.DecodeView(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = r.TTL.Check(); it.err != nil {
			return
		}
		it.err = r.State.Check()
		// The agent ID is kept (the fallback buffer may hold it): a copy.
		it.state = abi.AgentState{AgentID: strings.Clone(r.State.AgentID), State: r.State.State}
		it.ttl, it.cond = r.TTL, r.Condition

	case abi.OpGetAgentState:
		id := d.String()
		if it.err = endDecode(d); it.err != nil {
			return
		}
		it.err = abi.CheckID("agent id", id)
		it.state.AgentID = id

	case abi.OpDeleteAgentState:
		var r abi.DeleteAgentState
		r.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = abi.CheckID("agent id", r.AgentID); it.err != nil {
			return
		}
		if r.Condition.Mode == abi.IfAbsent {
			it.err = abi.Errorf(abi.StatusInvalid, "delete cannot be create-only")
		}
		it.state.AgentID, it.cond = r.AgentID, r.Condition

	case abi.OpRestore:
		var r abi.Restore
		r.Decode(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = r.Check(); it.err != nil {
			return
		}
		it.setRestore(&r)

	default:
		it.err = abi.Errorf(abi.StatusUnsupported, "unknown op %d", it.op)
	}
}

// serveInBatch serves a query or a ping inside a batch, encoding its
// result into b.body.
func (b *backend) serveInBatch(op abi.Op, payload []byte) error {
	d := &batchDecoder
	d.Reset(payload)
	switch op {
	case abi.OpPing:
		return nil
	case abi.OpQueryMetrics:
		var q abi.MetricQuery
		q.Decode(d)
		if err := endDecode(d); err != nil {
			return err
		}
		p, err := (*metrics)(b).QueryMetrics(&q)
		if err == nil {
			abi.EncodePage(&b.body, &p)
		}
		return err
	case abi.OpQueryAlerts:
		var q abi.AlertQuery
		q.Decode(d)
		if err := endDecode(d); err != nil {
			return err
		}
		p, err := (*alerts)(b).QueryAlerts(&q)
		if err == nil {
			abi.EncodePage(&b.body, &p)
		}
		return err
	case abi.OpQueryAgentStates:
		var q abi.AgentStateQuery
		q.Decode(d)
		if err := endDecode(d); err != nil {
			return err
		}
		p, err := (*states)(b).QueryAgentStates(&q)
		if err == nil {
			abi.EncodePage(&b.body, &p)
		}
		return err
	}
	return abi.Errorf(abi.StatusUnsupported, "unknown op %d", op)
}
