// Command panicky is a test plugin whose GetAgentState panics on demand.
// The SDK recovers a panic in a store and answers StatusInternal, so the
// instance, and the states PutAgentState kept in its memory, live on;
// host/gohostile_test.go checks both.
//
// GetAgentState panics for these agent IDs, and serves every other one:
//
//	panic-nil-map  writes to a nil map
//	panic-index    indexes a slice out of range
//	panic-nil      dereferences a nil pointer
//	panic-<other>  panics with the value "panicky: explicit <other>"
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// states lives in the instance's memory only: a state is readable again
// only from the instance that stored it, which is what lets the test tell
// a surviving instance from a fresh one.
type states struct {
	m       map[string]abi.AgentState
	version uint64
	nilMap  map[string]int // never made
	empty   []int
	nilPtr  *abi.AgentState
}

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	s.version++
	st := abi.AgentState{AgentID: r.State.AgentID, State: append([]byte(nil), r.State.State...), Version: s.version, UpdatedAt: sdk.Now()}
	s.m[st.AgentID] = st
	return st, nil
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	if kind, ok := strings.CutPrefix(id, "panic-"); ok {
		switch kind {
		case "nil-map":
			s.nilMap[id]++
		case "index":
			s.empty[len(id)] = 1
		case "nil":
			return *s.nilPtr, nil
		default:
			panic("panicky: explicit " + kind)
		}
		return abi.AgentState{}, sdk.ErrInvalid // not reached
	}
	st, ok := s.m[id]
	if !ok {
		return abi.AgentState{}, sdk.ErrNotFound
	}
	return st, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	if _, ok := s.m[r.AgentID]; !ok {
		return sdk.ErrNotFound
	}
	delete(s.m, r.AgentID)
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "panicky", Version: "0",
		AgentStates:  &states{m: map[string]abi.AgentState{}},
		Capabilities: []abi.Capability{abi.CapabilityClock},
	})
}

func main() {}
