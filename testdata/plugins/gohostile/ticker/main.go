// Command ticker is a test plugin with a Tick hook (ABI 1.3). Its puts
// are acknowledged into a buffer (answered STALE) and reported by a later
// tick, as a fallback buffer's would be; a put of the agent "release" is
// written at once (OK) and lets the next tick report what is held. Its
// option mode makes the ticks misbehave: "invalid" reports a write with
// an empty agent ID, "fail" fails every tick, "away" fails every tick
// UNAVAILABLE, as a buffer whose store is away would. host/tick_test.go
// checks what the host makes of each.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"errors"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

var (
	mode     string
	held     []abi.AgentState // acknowledged, not yet reported
	released bool
	version  uint64
)

type states struct{}

func (states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	version++
	st := abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: version, UpdatedAt: sdk.Now()}
	if st.AgentID == "release" {
		released = true
		return st, nil
	}
	held = append(held, st)
	return st, sdk.ErrStale
}

func (states) GetAgentState(id string) (abi.AgentState, error) {
	return abi.AgentState{}, sdk.ErrNotFound
}

func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func tick() (abi.TickResult, error) {
	switch mode {
	case "fail":
		return abi.TickResult{}, errors.New("ticker: this tick fails")
	case "away":
		return abi.TickResult{}, abi.Errorf(abi.StatusUnavailable, "ticker: the store is away")
	case "invalid":
		return abi.TickResult{Writes: []abi.TickWrite{{Op: abi.OpPutAgentState, State: abi.AgentState{Version: 1}}}}, nil
	}
	if !released {
		return abi.TickResult{Pending: uint64(len(held))}, nil
	}
	r := abi.TickResult{}
	for _, st := range held {
		version++
		st.Version = version // as the primary store kept it
		r.Writes = append(r.Writes, abi.TickWrite{Op: abi.OpPutAgentState, State: st})
	}
	held = held[:0]
	return r, nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "ticker", Version: "0",
		AgentStates:  states{},
		Capabilities: []abi.Capability{abi.CapabilityClock},
		Configure: func(o abi.Options) error {
			mode = o["mode"]
			return nil
		},
		Tick: tick,
	})
}

func main() {}
