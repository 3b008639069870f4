package sdk

import (
	"github.com/storage-host/storage-host/abi"
)

// Redis is the client of the host's redis capability: commands run on the
// backend's Redis through the host's connection pool, confined to the
// backend's key namespace (the host prefixes every key). A plugin that
// uses it lists abi.CapabilityRedis in Plugin.Capabilities, and the
// backend's configuration must grant it. A plugin that calls Eval or
// EvalMany lists abi.CapabilityRedisScripts too: a backend whose
// configuration does not grant scripts is then refused at load, instead
// of refusing every script at run time.
//
// Replies alias the client's buffer and are valid until its next call;
// copy what you keep. The zero Redis is ready to use; like KV, one per
// plugin is enough, as calls into an instance never overlap.
type Redis struct {
	enc     abi.Encoder
	dec     abi.Decoder
	replies abi.ReplyBuffer
	req     abi.RedisRequest
	one     [1][][]byte
	calls   [1]abi.ScriptCall
}

func (r *Redis) send() ([]abi.Reply, error) {
	r.enc.Reset()
	r.req.Encode(&r.enc)
	body, err := abi.ParseResponse(redisCall(r.enc.Bytes()))
	if err != nil {
		return nil, err
	}
	r.dec.Reset(body)
	replies := r.replies.Decode(&r.dec)
	if err := r.dec.Finish(); err != nil {
		return nil, abi.Errorf(abi.StatusInternal, "redis response: %v", err)
	}
	return replies, nil
}

// Do runs one command, its name first: Do([]byte("GET"), key). A Redis
// error reply is returned as the reply (Kind ReplyError), not as err; err
// is for a refused command (ErrInvalid) or an unreachable Redis
// (ErrUnavailable). A refused command is the plugin's mistake, not its
// caller's: answered as it is, the caller gets INVALID (HTTP 400), as if
// its own request were wrong; answer it as abi.StatusInternal unless the
// caller's input made the command (a count the caller asked for, say).
func (r *Redis) Do(args ...[]byte) (abi.Reply, error) {
	r.one[0] = args
	r.req = abi.RedisRequest{Mode: abi.RedisPipeline, Commands: r.one[:]}
	replies, err := r.send()
	if err != nil {
		return abi.Reply{}, err
	}
	if len(replies) != 1 {
		return abi.Reply{}, abi.Errorf(abi.StatusInternal, "redis: %d replies to one command", len(replies))
	}
	return replies[0], nil
}

// Pipeline sends every command in one round trip and returns a reply per
// command, in order. The commands are not atomic.
func (r *Redis) Pipeline(commands [][][]byte) ([]abi.Reply, error) {
	r.req = abi.RedisRequest{Mode: abi.RedisPipeline, Commands: commands}
	return r.send()
}

// Transaction runs the commands in MULTI/EXEC and returns a reply per
// command: no other client's command runs between them, but it is not
// all or none. A command that fails while it runs gets its error reply
// and the others still take effect (Redis does not roll back); only a
// transaction Redis discards whole (EXECABORT: a command it could not
// queue) runs none, every reply an error. For a check and a write that
// must hold together, use a script (Eval). On a cluster all their keys
// must share a hash slot.
func (r *Redis) Transaction(commands [][][]byte) ([]abi.Reply, error) {
	r.req = abi.RedisRequest{Mode: abi.RedisTransaction, Commands: commands}
	return r.send()
}

// Eval runs a Lua script with keys (prefixed by the host, like every key)
// and args, and returns its reply. The script must touch only keys passed
// in keys: the host's Redis user is confined to the backend's namespace.
func (r *Redis) Eval(script []byte, keys, args [][]byte) (abi.Reply, error) {
	r.calls[0] = abi.ScriptCall{Keys: keys, Args: args}
	replies, err := r.EvalMany(script, r.calls[:])
	if err != nil {
		return abi.Reply{}, err
	}
	if len(replies) != 1 {
		return abi.Reply{}, abi.Errorf(abi.StatusInternal, "redis: %d replies to one script", len(replies))
	}
	return replies[0], nil
}

// EvalMany runs a Lua script once per call, pipelined in one round trip,
// and returns a reply per call: a bulk write of records that each need a
// script (a conditional write, say) costs one crossing and one round trip.
func (r *Redis) EvalMany(script []byte, calls []abi.ScriptCall) ([]abi.Reply, error) {
	r.req = abi.RedisRequest{Mode: abi.RedisScript, Script: script, Calls: calls}
	return r.send()
}
