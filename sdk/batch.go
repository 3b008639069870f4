package sdk

import (
	"errors"

	"github.com/storage-host/storage-host/abi"
)

// BatchOp is a record operation of a batch, for a Batcher that serves the
// record operations of a batch together (in one round trip, say). Decode
// fills one from a batch item with the checks the SDK makes of a single
// request of its op; the Batcher writes what the items without Err ask,
// leaves each one's result in it (the record a put stored or a get found,
// Written for a restore) or sets Err, and encodes its answer with Answer.
// Queries and pings are not record operations: ServeBatchItem serves them.
type BatchOp struct {
	Op abi.Op
	// Err is the item's failure: set by Decode when its request does not
	// decode or fails a check (nothing is to be sent for it), or by the
	// Batcher. An error wrapping ErrStale answers the item's record as a
	// single request's does.
	Err error

	// The request, then the result; which are used depends on Op. Metric
	// holds a metric key's fields for a get or a delete, Alert.ID and
	// State.AgentID the IDs. A put's State aliases the item's payload,
	// which lasts as long as the Batch call: copy what is kept after it.
	Metric    abi.Metric
	Alert     abi.Alert
	State     abi.AgentState
	TTL       abi.TTL
	Condition abi.Condition
	Status    abi.AlertStatus // the new status of an OpSetAlertStatus
	Restore   abi.Restore     // an OpRestore's record
	Written   bool            // an OpRestore's result: the record was written
}

// IsRecordOp reports whether a Batcher decodes an item of op into a
// BatchOp: the puts, gets and deletes of every kind, an alert's status
// change and a restore. ServeBatchItem serves the others (queries, pings,
// a tick, an op the SDK does not know) as they are served alone.
func IsRecordOp(op abi.Op) bool {
	switch op {
	case abi.OpPutMetric, abi.OpGetMetric, abi.OpDeleteMetric,
		abi.OpPutAlert, abi.OpGetAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus,
		abi.OpPutAgentState, abi.OpGetAgentState, abi.OpDeleteAgentState,
		abi.OpRestore:
		return true
	}
	return false
}

// Decode sets o to the operation of item, decoded and checked as a single
// request of its op is (the record, the TTL and condition against the
// plugin's features): a bad item gets Err, and fails alone.
func (o *BatchOp) Decode(item abi.BatchItem) {
	*o = BatchOp{Op: item.Op}
	d := registered
	if d == nil {
		o.Err = errors.New("sdk: BatchOp.Decode before Register")
		return
	}
	o.Err = d.decodeOp(o, item.Payload)
}

// decodeOp decodes and checks the request of o.Op with the single
// request's own decoding, and keeps in o what the Batcher needs of it.
func (d *dispatcher) decodeOp(o *BatchOp, payload []byte) error {
	if need := o.Op.Requires(); !d.features.Has(need) {
		return abi.Errorf(abi.StatusUnsupported, "%s is not supported by plugin %s", o.Op, d.p.Name)
	}
	var err error
	switch o.Op {
	case abi.OpPutMetric:
		var r abi.PutMetric
		err = d.decodePutMetric(payload, &r)
		o.Metric, o.TTL = r.Metric, r.TTL
	case abi.OpGetMetric, abi.OpDeleteMetric:
		var k *abi.MetricKey
		if k, err = d.metricKey(payload); k != nil {
			o.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp.UTC()}
		}
	case abi.OpPutAlert:
		var r abi.PutAlert
		err = d.decodePutAlert(payload, &r)
		o.Alert, o.TTL = r.Alert, r.TTL
	case abi.OpGetAlert, abi.OpDeleteAlert:
		o.Alert.ID, err = d.alertID(payload)
	case abi.OpSetAlertStatus:
		var r abi.SetAlertStatus
		err = d.decodeSetAlertStatus(payload, &r)
		o.Alert.ID, o.Status = r.ID, r.Status
	case abi.OpPutAgentState:
		var r abi.PutAgentState
		err = d.decodePutAgentState(payload, &r, true)
		o.State = abi.AgentState{AgentID: r.State.AgentID, State: r.State.State}
		o.TTL, o.Condition = r.TTL, r.Condition
	case abi.OpGetAgentState:
		o.State.AgentID, err = d.agentID(payload)
	case abi.OpDeleteAgentState:
		var r abi.DeleteAgentState
		err = d.decodeDeleteAgentState(payload, &r)
		o.State.AgentID, o.Condition = r.AgentID, r.Condition
	case abi.OpRestore:
		err = d.decodeRestore(payload, &o.Restore)
	default:
		err = abi.Errorf(abi.StatusUnsupported, "unknown op %d", o.Op)
	}
	return err
}

// Answer appends the item's answer to e, as a single request of its op is
// answered (its record, or Err's message), and returns its status.
func (o *BatchOp) Answer(e *abi.Encoder) abi.Status {
	err := o.Err
	if err != nil && o.Op.Writes() && registered != nil {
		err = registered.write(err) // ErrStale from a write needs a Tick hook
	}
	if err != nil && !errors.Is(err, ErrStale) {
		s, msg := statusOf(err)
		e.Raw([]byte(msg))
		return s
	}
	switch o.Op {
	case abi.OpPutMetric, abi.OpGetMetric:
		o.Metric.Encode(e)
	case abi.OpPutAlert, abi.OpGetAlert, abi.OpSetAlertStatus:
		o.Alert.Encode(e)
	case abi.OpPutAgentState, abi.OpGetAgentState:
		o.State.Encode(e)
	case abi.OpRestore:
		e.Bool(o.Written)
	}
	if err != nil {
		return abi.StatusStale
	}
	return abi.StatusOK
}

// ServeBatchItem serves a batch item as the SDK serves a single request of
// its op, through the plugin's stores, appends its answer (its result, or
// the failure's message) to e and returns its status. A Batcher calls it
// for the items it does not decode into a BatchOp (IsRecordOp), queries
// and pings, in their place in the batch.
func ServeBatchItem(item abi.BatchItem, e *abi.Encoder) abi.Status {
	d := registered
	if d == nil {
		e.Raw([]byte("sdk: ServeBatchItem before Register"))
		return abi.StatusInternal
	}
	d.sub.Reset()
	d.handle(item.Op, item.Payload, &d.sub)
	resp := d.sub.Bytes()
	e.Raw(resp[1:])
	return abi.Status(resp[0])
}
