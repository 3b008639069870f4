// Command sluggish is a test plugin whose GetAgentState of "spin-<ms>"
// computes for that many milliseconds before it answers: a slow call
// rather than a stuck one, for loading as a trusted plugin (no
// interruption checks). It reads the clock every 65 536 turns; that WASI
// call is where the Go runtime can stop its goroutine for a garbage
// collection, which a guest that never calls out would block
// (SECURITY.md, "Trusted plugins"). Every other op answers normally.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// sink is written on every turn, so the loop has an observable effect.
var sink uint64

type states struct{}

func (states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: 1}, nil
}

func (states) GetAgentState(id string) (abi.AgentState, error) {
	ms, err := strconv.Atoi(strings.TrimPrefix(id, "spin-"))
	if err != nil {
		return abi.AgentState{AgentID: id, State: []byte(`{}`), Version: 1}, nil
	}
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	x := sink | 1
	for i := uint64(1); ; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		sink = x
		if i%(1<<16) == 0 && time.Now().After(end) {
			return abi.AgentState{AgentID: id, State: []byte(`{}`), Version: 1}, nil
		}
	}
}

func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func init() {
	sdk.Register(sdk.Plugin{Name: "sluggish", Version: "0", AgentStates: states{}})
}

func main() {}
