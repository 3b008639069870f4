// Command forgetful is a test plugin that keeps agent states in its
// instance's memory (a Go map) rather than in a store: correct while one
// instance serves every request, and losing every acknowledged write when
// the host replaces its instance, which the host may do between any two
// requests (abi/README.md, section 3). The conformance suite's
// NewInstances rules must fail it (cmd/storage-host's
// TestPluginTestFailsAForgetfulPlugin; host's TestRecycleReplacesInstances).
// A get of "slow" keeps its instance busy for 300 ms.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct {
	m    map[string]abi.AgentState
	last uint64
}

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	s.last++
	st := abi.AgentState{AgentID: r.State.AgentID, State: append([]byte(nil), r.State.State...), Version: s.last, UpdatedAt: sdk.Now()}
	s.m[st.AgentID] = st
	return st, nil
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	if id == "slow" {
		time.Sleep(300 * time.Millisecond) // WASI poll_oneoff: the instance stays busy
	}
	st, ok := s.m[id]
	if !ok {
		return abi.AgentState{}, fmt.Errorf("agent state %q: %w", id, sdk.ErrNotFound)
	}
	return st, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	if _, ok := s.m[r.AgentID]; !ok {
		return fmt.Errorf("agent state %q: %w", r.AgentID, sdk.ErrNotFound)
	}
	delete(s.m, r.AgentID)
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "forgetful", Version: "0",
		AgentStates:  &states{m: map[string]abi.AgentState{}},
		Capabilities: []abi.Capability{abi.CapabilityClock},
	})
}

func main() {}
