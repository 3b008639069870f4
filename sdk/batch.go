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

func (d *dispatcher) decodeOp(o *BatchOp, payload []byte) error {
	if need := o.Op.Requires(); !d.features.Has(need) {
		return abi.Errorf(abi.StatusUnsupported, "%s is not supported by plugin %s", o.Op, d.p.Name)
	}
	dec := d.begin(payload)
	switch o.Op {
	case abi.OpPutMetric:
		var r abi.PutMetric
		r.Decode(dec)
		if err := d.endWrite(&r.TTL, nil); err != nil {
			return err
		}
		o.Metric, o.TTL = r.Metric, r.TTL
		return r.Metric.Check()

	case abi.OpGetMetric, abi.OpDeleteMetric:
		var k abi.MetricKey
		k.Decode(dec)
		if err := d.end(); err != nil {
			return err
		}
		o.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp.UTC()}
		return k.Check()

	case abi.OpPutAlert:
		var r abi.PutAlert
		r.Decode(dec)
		if err := d.endWrite(&r.TTL, nil); err != nil {
			return err
		}
		o.Alert, o.TTL = r.Alert, r.TTL
		return r.Alert.Check()

	case abi.OpGetAlert, abi.OpDeleteAlert:
		o.Alert.ID = dec.String()
		if err := d.end(); err != nil {
			return err
		}
		return abi.CheckID("alert id", o.Alert.ID)

	case abi.OpSetAlertStatus:
		var r abi.SetAlertStatus
		r.Decode(dec)
		if err := d.end(); err != nil {
			return err
		}
		o.Alert.ID, o.Status = r.ID, r.Status
		if err := abi.CheckID("alert id", r.ID); err != nil {
			return err
		}
		if !r.Status.Valid() {
			return abi.Errorf(abi.StatusInvalid, "unknown alert status %d", r.Status)
		}
		return nil

	case abi.OpPutAgentState:
		// The agent ID and the state alias the payload instead of being
		// copied: a Batcher answers within the call.
		var r abi.PutAgentState
		r.DecodeView(dec)
		if err := d.endWrite(&r.TTL, &r.Condition); err != nil {
			return err
		}
		o.State = abi.AgentState{AgentID: r.State.AgentID, State: r.State.State}
		o.TTL, o.Condition = r.TTL, r.Condition
		return r.State.Check()

	case abi.OpGetAgentState:
		o.State.AgentID = dec.String()
		if err := d.end(); err != nil {
			return err
		}
		return abi.CheckID("agent id", o.State.AgentID)

	case abi.OpDeleteAgentState:
		var r abi.DeleteAgentState
		r.Decode(dec)
		if err := d.endWrite(nil, &r.Condition); err != nil {
			return err
		}
		o.State.AgentID, o.Condition = r.AgentID, r.Condition
		if err := abi.CheckID("agent id", r.AgentID); err != nil {
			return err
		}
		if r.Condition.Mode == abi.IfAbsent {
			return abi.Errorf(abi.StatusInvalid, "delete cannot be create-only")
		}
		return nil

	case abi.OpRestore:
		o.Restore.Decode(dec)
		if err := d.end(); err != nil {
			return err
		}
		if err := o.Restore.Check(); err != nil {
			return err
		}
		if need := o.Restore.Requires(); !d.features.Has(need) {
			return abi.Errorf(abi.StatusUnsupported, "plugin %s does not restore %s records (needs %s)", d.p.Name, o.Restore.Kind, need&^d.features)
		}
		return nil
	}
	return abi.Errorf(abi.StatusUnsupported, "unknown op %d", o.Op)
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
