package sdk

import "github.com/storage-host/storage-host/abi"

// decodePutAgentState decodes and checks a request to put an agent state
// into r. With view, the agent ID and the state alias req instead of
// being copied (a batch's items, answered within the call).
func (d *dispatcher) decodePutAgentState(req []byte, r *abi.PutAgentState, view bool) error {
	*r = abi.PutAgentState{}
	if view {
		r.DecodeView(d.begin(req))
	} else {
		r.Decode(d.begin(req))
	}
	if err := d.endWrite(&r.TTL, &r.Condition); err != nil {
		return err
	}
	return r.State.Check()
}

func (d *dispatcher) putAgentState(req []byte, e *abi.Encoder) error {
	r := &d.req.putState
	if err := d.decodePutAgentState(req, r, false); err != nil {
		return err
	}
	v, err := d.p.AgentStates.PutAgentState(r)
	ok, err := d.written(err)
	if ok {
		v.Encode(e)
	}
	return err
}

// agentID decodes and checks a request that is an agent ID.
func (d *dispatcher) agentID(req []byte) (string, error) {
	id, err := d.decodeID(req)
	if err != nil {
		return "", err
	}
	return id, abi.CheckID("agent id", id)
}

func (d *dispatcher) getAgentState(req []byte, e *abi.Encoder) error {
	id, err := d.agentID(req)
	if err != nil {
		return err
	}
	v, err := d.p.AgentStates.GetAgentState(id)
	ok, err := read(err)
	if ok {
		v.Encode(e)
	}
	return err
}

// decodeDeleteAgentState decodes and checks a request to delete an agent
// state into r.
func (d *dispatcher) decodeDeleteAgentState(req []byte, r *abi.DeleteAgentState) error {
	*r = abi.DeleteAgentState{}
	r.Decode(d.begin(req))
	if err := d.endWrite(nil, &r.Condition); err != nil {
		return err
	}
	if err := abi.CheckID("agent id", r.AgentID); err != nil {
		return err
	}
	if r.Condition.Mode == abi.IfAbsent {
		return abi.Errorf(abi.StatusInvalid, "delete cannot be create-only")
	}
	return nil
}

func (d *dispatcher) deleteAgentState(req []byte, _ *abi.Encoder) error {
	r := &d.req.deleteState
	if err := d.decodeDeleteAgentState(req, r); err != nil {
		return err
	}
	return d.write(d.p.AgentStates.DeleteAgentState(r))
}

func (d *dispatcher) queryAgentStates(req []byte, e *abi.Encoder) error {
	q := &d.req.stateQuery
	*q = abi.AgentStateQuery{}
	q.Decode(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
	p, err := d.sq.QueryAgentStates(q)
	return encodePage(e, &p, err)
}
