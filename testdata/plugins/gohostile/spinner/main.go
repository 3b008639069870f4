// Command spinner is a test plugin whose GetAgentState never returns: it
// spins in a loop that does work the compiler cannot drop. Only the host's
// interruption (Limits.CallTimeout, or the caller's context) can stop it;
// host/gohostile_test.go checks that it does, in bounded time, and that
// the pool replaces the instance. Every other op answers normally.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// sink is written on every turn, so the loop has an observable effect.
var sink uint64

type states struct{}

func (states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: 1}, nil
}

func (states) GetAgentState(string) (abi.AgentState, error) {
	x := sink | 1
	for {
		x = x*6364136223846793005 + 1442695040888963407
		sink = x
	}
}

func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func init() {
	sdk.Register(sdk.Plugin{Name: "spinner", Version: "0", AgentStates: states{}})
}

func main() {}
