package main

import (
	"errors"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// Batch serves a whole OpBatch (the SDK finds it on the metric store; it
// serves every kind): the statements of every record operation go in one
// request of the postgres capability, in one round trip, run in order on
// one connection, so each item sees the effects of the items before it;
// the failure of one neither stops nor undoes the others (send). A query
// (or ping) inside a batch is served in its place: the statements before
// it are sent first.
func (m *metrics) Batch(in []abi.BatchItem) []abi.BatchResult { return (*backend)(m).batch(in) }

// batchDecoder decodes batch items; calls into an instance never overlap.
var batchDecoder abi.Decoder

func (b *backend) batch(in []abi.BatchItem) []abi.BatchResult {
	if cap(b.items) < len(in) {
		b.items = make([]item, len(in))
	}
	items := b.items[:len(in)]
	out := make([]abi.BatchResult, len(in))
	bodies := make([][2]int, len(in))
	now := sdk.Now()
	b.body.Reset()
	b.reset()
	seg := 0 // first item whose statement is not yet sent
	for i := range in {
		it := &items[i]
		*it = item{op: in[i].Op, now: now, stmt: -1}
		switch in[i].Op {
		case abi.OpQueryMetrics, abi.OpQueryAlerts, abi.OpQueryAgentStates, abi.OpPing:
			b.flush(items[seg:i], out[seg:i], bodies[seg:i])
			seg = i + 1
			start := len(b.body.Bytes())
			it.err = b.serveInBatch(in[i].Op, in[i].Payload)
			b.result(it, &out[i], &bodies[i], start)
			continue
		}
		decodeItem(it, in[i].Payload)
		b.prepare(it)
	}
	b.flush(items[seg:], out[seg:], bodies[seg:])
	all := b.body.Bytes()
	for i := range out {
		lo, hi := bodies[i][0], bodies[i][1]
		out[i].Body = all[lo:hi:hi]
	}
	// The items are encoded: none of them is to keep a response of the
	// postgres client's (a got state aliases it) or the request reachable
	// after the call, when b.items is kept for the next batch.
	clear(items)
	return out
}

// flush sends the statements prepared for items and encodes their results.
func (b *backend) flush(items []item, out []abi.BatchResult, bodies [][2]int) {
	b.run(items)
	for i := range items {
		b.result(&items[i], &out[i], &bodies[i], len(b.body.Bytes()))
	}
}

// result encodes the item's response body into b.body from start (a
// query's page is already there) and sets its status.
func (b *backend) result(it *item, out *abi.BatchResult, body *[2]int, start int) {
	if it.err != nil {
		var msg string
		out.Status, msg = statusOf(it.err)
		b.body.Raw([]byte(msg))
	} else {
		out.Status = abi.StatusOK
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
	*body = [2]int{start, len(b.body.Bytes())}
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
func decodeItem(it *item, payload []byte) {
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
		// The agent ID and the state alias the payload instead of being
		// copied: the payload (the SDK's request) lasts as long as the
		// batch call, and the item's record is encoded into the response
		// before the call returns.
		var r abi.PutAgentState
		r.DecodeView(d)
		if it.err = endDecode(d); it.err != nil {
			return
		}
		if it.err = r.TTL.Check(); it.err != nil {
			return
		}
		it.err = r.State.Check()
		it.state = abi.AgentState{AgentID: r.State.AgentID, State: r.State.State}
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
		it.err = r.Check()
		it.restore = r

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
		return endDecode(d)
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
