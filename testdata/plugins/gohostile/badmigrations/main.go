// Command badmigrations is a test plugin whose PostgreSQL migrations skip
// a version (1, 2, 4): a load refuses them before it reaches a schema,
// and so must an inspection, which reaches none, so that `plugin
// inspect` and `validate` do not pass a plugin `serve` refuses.
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

func init() {
	sdk.Register(sdk.Plugin{
		Name:         "badmigrations",
		Version:      "1.0.0",
		Capabilities: []abi.Capability{abi.CapabilityPostgres},
		Migrations: abi.Migrations{
			{Version: 1, SQL: "CREATE TABLE a (id text PRIMARY KEY)"},
			{Version: 2, SQL: "CREATE TABLE b (id text PRIMARY KEY)"},
			{Version: 4, SQL: "CREATE TABLE c (id text PRIMARY KEY)"},
		},
		AgentStates: states{},
	})
}

func main() {}
