// Command needsoptions is a test plugin that refuses to be configured
// without its option "dir": the host configures every instance, with the
// options of the backend's block or none, so a configuration without
// them must fail where it is checked (cmd/storage-host/internal/config),
// not only when served.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"fmt"

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

func configure(o abi.Options) error {
	if o["dir"] == "" {
		return fmt.Errorf("option \"dir\" is required: %w", sdk.ErrInvalid)
	}
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{Name: "needsoptions", Version: "1.0.0", AgentStates: states{}, Configure: configure})
}

func main() {}
