package sdk

import "github.com/storage-host/storage-host/abi"

func (d *dispatcher) putAgentState(req []byte, e *abi.Encoder) error {
	r := &d.req.putState
	*r = abi.PutAgentState{}
	r.Decode(d.begin(req))
	if err := d.endWrite(&r.TTL, &r.Condition); err != nil {
		return err
	}
	if err := r.State.Check(); err != nil {
		return err
	}
	v, err := d.p.AgentStates.PutAgentState(r)
	ok, err := d.written(err)
	if ok {
		v.Encode(e)
	}
	return err
}

func (d *dispatcher) getAgentState(req []byte, e *abi.Encoder) error {
	id, err := d.decodeID(req)
	if err != nil {
		return err
	}
	if err := abi.CheckID("agent id", id); err != nil {
		return err
	}
	v, err := d.p.AgentStates.GetAgentState(id)
	ok, err := read(err)
	if ok {
		v.Encode(e)
	}
	return err
}

func (d *dispatcher) deleteAgentState(req []byte, _ *abi.Encoder) error {
	r := &d.req.deleteState
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
