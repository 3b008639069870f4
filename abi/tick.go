package abi

// MaxTickWrites bounds the writes one TickResult reports; a plugin with
// more to report says so with More and reports them in the next tick.
const MaxTickWrites = 4096

// TickRequest is the body of an OpTick request since ABI 1.7: resumed
// bool. A host sends a plugin built for an older minor an empty body.
type TickRequest struct {
	// Resumed is set on the ticks a host sends a backend it has opened
	// until one of them succeeds: what the last tick before them reported
	// may have been reported to a host that stopped before it published
	// the events (a crash), so a plugin that forgets reported writes only
	// at the tick after MUST report them again (section 10.11 of the
	// specification).
	Resumed bool
}

// Encode appends r.
func (r *TickRequest) Encode(e *Encoder) { e.Bool(r.Resumed) }

// Decode reads what Encode wrote.
func (r *TickRequest) Decode(d *Decoder) { r.Resumed = d.Bool() }

// TickResult is the body of an OpTick response (ABI 1.3): more bool,
// pending uvarint, count uvarint, then TickWrite each.
type TickResult struct {
	// More asks the host to tick again at once: the plugin has work left
	// that it can do now (a replay that stopped at its per-tick budget).
	More bool
	// Pending is how many writes the plugin holds that have not yet
	// taken effect in its primary store (a fallback buffer's length),
	// for the host's statistics; 0 when it holds none.
	Pending uint64
	// Writes are the writes that took effect during this tick and that
	// the plugin answered StatusStale when they were made (buffered), in
	// the order they took effect. The host publishes for each the event
	// it publishes for a write answered OK.
	Writes []TickWrite
}

// TickWrite is one write that took effect during a tick: op uvarint (the
// write's op), then what that op's event needs:
//
//	put_metric          Metric, as stored
//	delete_metric       MetricKey
//	put_alert           Alert, as stored
//	set_alert_status    Alert, as stored
//	delete_alert        id string, agent_id string ("" when unknown)
//	put_agent_state     AgentState, as stored (its version the store's;
//	                    its State may be left empty: events do not carry it)
//	delete_agent_state  agent_id string
//
// Any other op is malformed.
type TickWrite struct {
	Op     Op
	Metric Metric     // put_metric; delete_metric: AgentID, Name, Timestamp
	Alert  Alert      // put_alert, set_alert_status; delete_alert: ID, AgentID
	State  AgentState // put_agent_state; delete_agent_state: AgentID
}

// Encode appends w.
func (w *TickWrite) Encode(e *Encoder) {
	e.Uvarint(uint64(w.Op))
	switch w.Op {
	case OpPutMetric:
		w.Metric.Encode(e)
	case OpDeleteMetric:
		k := w.Metric.Key()
		k.Encode(e)
	case OpPutAlert, OpSetAlertStatus:
		w.Alert.Encode(e)
	case OpDeleteAlert:
		e.String(w.Alert.ID)
		e.String(w.Alert.AgentID)
	case OpPutAgentState:
		w.State.Encode(e)
	case OpDeleteAgentState:
		e.String(w.State.AgentID)
	}
}

// Decode reads what Encode wrote.
func (w *TickWrite) Decode(d *Decoder) {
	*w = TickWrite{Op: Op(d.Uint32())}
	switch w.Op {
	case OpPutMetric:
		w.Metric.Decode(d)
	case OpDeleteMetric:
		var k MetricKey
		k.Decode(d)
		w.Metric = Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp}
	case OpPutAlert, OpSetAlertStatus:
		w.Alert.Decode(d)
	case OpDeleteAlert:
		w.Alert.ID = d.String()
		w.Alert.AgentID = d.String()
	case OpPutAgentState:
		w.State.Decode(d)
	case OpDeleteAgentState:
		w.State.AgentID = d.String()
	default:
		d.fail(ErrMalformed)
	}
}

// Encode appends r.
func (r *TickResult) Encode(e *Encoder) {
	e.Bool(r.More)
	e.Uvarint(r.Pending)
	e.Uvarint(uint64(len(r.Writes)))
	for i := range r.Writes {
		r.Writes[i].Encode(e)
	}
}

// Decode reads what Encode wrote. More than MaxTickWrites writes is
// malformed.
func (r *TickResult) Decode(d *Decoder) {
	r.More = d.Bool()
	r.Pending = d.Uvarint()
	n := d.Count(2)
	if n > MaxTickWrites {
		d.fail(ErrMalformed)
		n = 0
	}
	r.Writes = prealloc[TickWrite](n)
	for i := 0; i < n && d.err == nil; i++ {
		var w TickWrite
		w.Decode(d)
		r.Writes = append(r.Writes, w)
	}
}
