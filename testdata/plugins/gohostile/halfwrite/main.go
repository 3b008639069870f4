// Command halfwrite is a test plugin that fails in the middle of a write:
// PutAgentState stores the state in the host's kv store, then fails as its
// document says:
//
//	"panic"         panics after the kv put (the SDK recovers it and
//	                answers StatusInternal)
//	"exit"          exits after the kv put (a trap: the instance is lost)
//	"spin"          computes after the kv put until the call is stopped
//	"panic-before"  panics before writing anything
//
// and answers every other document normally. GetAgentState panics after
// its kv read for the agent "panic-read". host/gohostile_test.go checks
// that the host tells each failure after the put from one before it.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"os"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{ kv sdk.KV }

// sink is written on every turn of the spin, so the loop has an effect.
var sink uint64

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	doc := string(r.State.State)
	if doc == "panic-before" {
		panic("halfwrite: before the write")
	}
	rev, _, err := s.kv.Put([]byte(r.State.AgentID), r.State.State, time.Time{}, false, abi.Condition{})
	if err != nil {
		return abi.AgentState{}, err
	}
	switch doc {
	case "panic":
		panic("halfwrite: after the write")
	case "exit":
		os.Exit(3)
	case "spin":
		for x := sink | 1; ; {
			x = x*6364136223846793005 + 1442695040888963407
			sink = x
		}
	}
	return abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: rev, UpdatedAt: sdk.Now()}, nil
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	en, err := s.kv.Get([]byte(id))
	if err != nil {
		return abi.AgentState{}, err
	}
	if id == "panic-read" {
		panic("halfwrite: after the read")
	}
	return abi.AgentState{AgentID: id, State: append([]byte(nil), en.Value...), Version: en.Revision, UpdatedAt: sdk.Now()}, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	return s.kv.Delete([]byte(r.AgentID), r.Condition)
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "halfwrite", Version: "0",
		AgentStates:  &states{},
		Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityKV},
	})
}

func main() {}
