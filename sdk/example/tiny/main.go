// Command tiny is the smallest useful storage-host plugin: agent states
// only, kept in the host's kv store. README.md shows it; a host test builds
// it and runs the conformance suite against it.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o tiny.wasm .
package main

import (
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{ kv sdk.KV } // the host's shared, ordered key-value store

// PutAgentState stores the record in the ABI encoding; its version is the
// kv revision, which changes on every write.
func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	st := r.State
	st.UpdatedAt, st.ExpiresAt = sdk.Now(), time.Time{} // the backend sets these, never the caller
	var e abi.Encoder
	st.Encode(&e)
	rev, _, err := s.kv.Put([]byte(st.AgentID), e.Bytes(), time.Time{}, false, abi.Condition{})
	if err != nil {
		return abi.AgentState{}, fmt.Errorf("agent state %q: %w", st.AgentID, err)
	}
	st.Version = rev
	return st, nil
}

// GetAgentState words its errors for the record, as callers see them
// ("agent state \"a1\": ..."), keeping their status (sdk.ErrNotFound).
func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	e, err := s.kv.Get([]byte(id))
	if err != nil {
		return abi.AgentState{}, fmt.Errorf("agent state %q: %w", id, err)
	}
	var st abi.AgentState
	d := abi.NewDecoder(e.Value)
	st.Decode(d)
	if err := d.Finish(); err != nil {
		return abi.AgentState{}, fmt.Errorf("agent state %q: stored record unreadable: %w", id, err)
	}
	st.Version = e.Revision
	return st, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	if err := s.kv.Delete([]byte(r.AgentID), abi.Condition{}); err != nil {
		return fmt.Errorf("agent state %q: %w", r.AgentID, err)
	}
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "tiny", Version: "0.1.0",
		AgentStates:  &states{},
		Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityKV},
	})
}

func main() {}
