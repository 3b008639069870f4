// Command redishog is a test plugin that attacks the Redis it shares with
// other backends, written from the ABI's description of the redis
// capability. GetAgentState(attack) makes the attack it names and returns
// the host's answer as its error (or nil when the host let it through);
// host/hostile_redis_test.go checks that every attack is refused or
// defused. Every other op answers normally.
//
//   - loop: a script that never returns;
//   - setrange: 26 bytes that would make Redis allocate 512 MiB;
//   - srandmember: a billion replies from one member;
//   - flood: a request of 200 000 commands;
//   - mget: eight reads of the 8 MiB value at "big";
//   - forge: a script that builds the host's event stream key from its
//     prefix (KEYS[1]) and the documented layout, and appends a host event.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"errors"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

var rc sdk.Redis

func b(s string) []byte { return []byte(s) }

type states struct{}

func (states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, Version: 1}, nil
}

func (states) GetAgentState(attack string) (abi.AgentState, error) {
	var err error
	var reply abi.Reply
	switch attack {
	case "loop":
		_, err = rc.Eval(b("while true do end"), [][]byte{b("k")}, nil)
	case "setrange":
		_, err = rc.Do(b("SETRANGE"), b("k"), b("536870911"), b("x"))
	case "srandmember":
		_, err = rc.Do(b("SRANDMEMBER"), b("s"), b("-1000000000"))
	case "flood":
		ping := [][]byte{b("PING")}
		cmds := make([][][]byte, 200_000)
		for i := range cmds {
			cmds[i] = ping
		}
		_, err = rc.Pipeline(cmds)
	case "mget":
		get := [][]byte{b("MGET"), b("big")}
		_, err = rc.Pipeline([][][]byte{get, get, get, get, get, get, get, get})
	case "forge":
		reply, err = rc.Eval(b(`local p = string.sub(KEYS[1], 1, #KEYS[1] - 1)
return redis.call('XADD', '__host__:{' .. p .. '}:events', '*', 'k', 'alerts', 'o', 'put', 'y', 'forged')`),
			[][]byte{b("x")}, nil)
		if err == nil && reply.Kind == abi.ReplyError {
			err = abi.Errorf(abi.StatusInvalid, "redis: %s", reply.Str)
		}
	default:
		return abi.AgentState{}, sdk.ErrNotFound
	}
	if err == nil {
		return abi.AgentState{}, errors.New("the host let it through")
	}
	return abi.AgentState{}, err
}

func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func init() {
	sdk.Register(sdk.Plugin{Name: "redishog", Version: "0", AgentStates: states{}, Capabilities: []abi.Capability{abi.CapabilityRedis}})
}

func main() {}
