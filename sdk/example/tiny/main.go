// Command tiny is the smallest useful storage-host plugin: agent states
// only, kept in the host's kv store. README.md shows it; a host test builds
// it and runs the conformance suite against it.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o tiny.wasm .
package main

import (
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
	st.Version = rev
	return st, err
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	e, err := s.kv.Get([]byte(id))
	if err != nil {
		return abi.AgentState{}, err // sdk.ErrNotFound when missing
	}
	var st abi.AgentState
	st.Decode(abi.NewDecoder(e.Value))
	st.Version = e.Revision
	return st, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	return s.kv.Delete([]byte(r.AgentID), abi.Condition{})
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "tiny", Version: "0.1.0",
		AgentStates:  &states{},
		Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityKV},
	})
}

func main() {}
