// Command pgstates is a small storage-host plugin on PostgreSQL: agent
// states in one table of the backend's schema, through the host's
// postgres capability (ABI 1.5). It shows the SDK's Postgres client and
// Plugin.Migrations; a host test builds it and runs it on a real
// PostgreSQL.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o pgstates.wasm .
package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{ pg sdk.Postgres }

// PutAgentState upserts the state; its version counts its writes.
func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	st := r.State
	st.UpdatedAt = sdk.Now()
	res, err := s.pg.Exec(`INSERT INTO agent_states (agent_id, state, version, updated_at) VALUES ($1, $2, 1, $3)
		ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, version = agent_states.version + 1, updated_at = excluded.updated_at
		RETURNING version`,
		sdk.Text(st.AgentID), sdk.Bytea(st.State), sdk.Int(st.UpdatedAt.UnixNano()))
	if err != nil {
		return abi.AgentState{}, err
	}
	st.Version = uint64(res.Row(0)[0].Int)
	return st, nil
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	res, err := s.pg.Exec(`SELECT state, version, updated_at FROM agent_states WHERE agent_id = $1`, sdk.Text(id))
	if err != nil {
		return abi.AgentState{}, err
	}
	if res.Rows() == 0 {
		return abi.AgentState{}, sdk.ErrNotFound
	}
	row := res.Row(0)
	return abi.AgentState{AgentID: id, State: append([]byte{}, row[0].Bytes...), Version: uint64(row[1].Int), UpdatedAt: unixNano(row[2].Int)}, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	res, err := s.pg.Exec(`DELETE FROM agent_states WHERE agent_id = $1`, sdk.Text(r.AgentID))
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return sdk.ErrNotFound
	}
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "pgstates", Version: "0.1.0",
		AgentStates:  &states{},
		Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityPostgres},
		Migrations: abi.Migrations{
			{Version: 1, SQL: `CREATE TABLE agent_states (agent_id text PRIMARY KEY, state bytea NOT NULL, version bigint NOT NULL)`},
			{Version: 2, SQL: `ALTER TABLE agent_states ADD COLUMN updated_at bigint NOT NULL DEFAULT 0`},
		},
	})
}

func main() {}
