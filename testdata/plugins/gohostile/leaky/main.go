// Command leaky is a test plugin that leaks: every PutAgentState keeps
// another MiB in a global slice, so an instance under a small
// Limits.MemoryPages would soon be unable to grow its memory. A get of
// "hoard-all" allocates in one call until the memory cannot grow; one of
// "hoard-at-once" asks for a GiB in one allocation, refused while the
// memory is still small.
// host/gohostile_test.go checks that the host replaces such an instance
// before then, and that no call fails.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// hoard is never released: the garbage collector cannot help.
var hoard [][]byte

type states struct{}

func (states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i >> 12) // touch every page, so nothing is lazily shared
	}
	hoard = append(hoard, b)
	return abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: uint64(len(hoard)), UpdatedAt: sdk.Now()}, nil
}

func (states) GetAgentState(id string) (abi.AgentState, error) {
	if id == "hoard-all" {
		// A request far too large for the instance: it allocates until
		// its memory cannot grow, and Go's runtime aborts.
		var all [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			all = append(all, b)
		}
	}
	if id == "hoard-at-once" {
		b := make([]byte, 1<<30)
		b[len(b)-1] = 1
		hoard = append(hoard, b)
	}
	// The hoard's size, so a test can see how much this instance holds.
	return abi.AgentState{AgentID: id, State: []byte("{}"), Version: uint64(len(hoard))}, nil
}

func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func init() {
	sdk.Register(sdk.Plugin{
		Name: "leaky", Version: "0",
		AgentStates:  states{},
		Capabilities: []abi.Capability{abi.CapabilityClock},
	})
}

func main() {}
