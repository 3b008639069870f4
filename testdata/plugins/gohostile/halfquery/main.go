// Command halfquery is a test plugin that serves queries of agent states
// but not of alerts. One feature bit covers the queries of every kind a
// plugin serves, so the SDK refuses the registration: Register panics in
// init, and host/gohostile_test.go checks that the host's error says why.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{}

func (states) PutAgentState(*abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{}, sdk.ErrUnsupported
}
func (states) GetAgentState(string) (abi.AgentState, error) {
	return abi.AgentState{}, sdk.ErrNotFound
}
func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }
func (states) QueryAgentStates(*abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	return abi.Page[abi.AgentState]{}, nil
}

type alerts struct{}

func (alerts) PutAlert(*abi.PutAlert) (abi.Alert, error) { return abi.Alert{}, sdk.ErrUnsupported }
func (alerts) GetAlert(string) (abi.Alert, error)        { return abi.Alert{}, sdk.ErrNotFound }
func (alerts) DeleteAlert(string) error                  { return sdk.ErrNotFound }
func (alerts) SetAlertStatus(*abi.SetAlertStatus) (abi.Alert, error) {
	return abi.Alert{}, sdk.ErrNotFound
}

func init() {
	sdk.Register(sdk.Plugin{Name: "halfquery", Version: "1.0.0", AgentStates: states{}, Alerts: alerts{}})
}

func main() {}
