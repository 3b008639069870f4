// Command staleplugin is a test backend for cmd/storage-host/internal/httpapi: agent states
// kept in the host's kv store, every read answered as stale (abi
// StatusStale, the answer of a Redis backend serving its fallback copy),
// so the HTTP tests can check how stale reads are marked.
//
// Build (TestStaleReads does):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o stale.wasm .
package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{ kv sdk.KV }

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	st := r.State
	st.UpdatedAt = sdk.Now()
	var e abi.Encoder
	st.Encode(&e)
	rev, _, err := s.kv.Put([]byte(st.AgentID), e.Bytes(), st.ExpiresAt, false, abi.Condition{})
	st.Version = rev
	return st, err
}

// GetAgentState answers the stored state, marked stale.
func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	e, err := s.kv.Get([]byte(id))
	if err != nil {
		return abi.AgentState{}, err
	}
	var st abi.AgentState
	st.Decode(abi.NewDecoder(e.Value))
	st.Version = e.Revision
	return st, sdk.ErrStale
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	return s.kv.Delete([]byte(r.AgentID), abi.Condition{})
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "stale", Version: "0.1.0",
		AgentStates:  &states{},
		Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityKV},
	})
}

func main() {}
