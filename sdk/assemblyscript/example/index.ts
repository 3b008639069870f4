// The example plugin: agent states only, kept in the host's kv store, the
// AssemblyScript twin of sdk/example/tiny. Each state is stored in the ABI
// encoding under its agent ID; its version is the kv revision, which
// changes on every write.
//
// Build: npm run build  (writes build/example.wasm)
// Test:  go run ./cmd/storage-host plugin test sdk/assemblyscript/build/example.wasm

import {
  AgentState, AgentStateStore, Condition, DeleteAgentState, Decoder, Encoder, Failure, KV, Plugin,
  PutAgentState, Result, fail, now, ok, register, utf8,
} from "../assembly/index";

// The ABI exports; every plugin's entry file has this line.
export * from "../assembly/exports";

class States extends AgentStateStore {
  put(r: PutAgentState): Result<AgentState> {
    const st = r.state;
    st.updatedAt = now(); // the backend sets these, never the caller
    st.expiresAt = 0;
    st.version = 0;
    const e = new Encoder(64 + st.state.length);
    st.encode(e);
    const w = KV.put(utf8(st.agentID), e.bytes(), 0, false, new Condition());
    if (!w.ok) return fail<AgentState>(w.status, w.message);
    st.version = w.value!.revision;
    return ok(st);
  }

  get(agentID: string): Result<AgentState> {
    const en = KV.get(utf8(agentID));
    if (!en.ok) return fail<AgentState>(en.status, en.message); // NOT_FOUND when missing
    const st = AgentState.decode(new Decoder(en.value!.value));
    st.version = en.value!.revision;
    return ok(st);
  }

  del(r: DeleteAgentState): Failure | null {
    return KV.del(utf8(r.agentID), new Condition());
  }
}

const p = new Plugin("as-example", "0.1.0");
p.agentStates = new States();
p.capabilities = ["clock", "kv"];
register(p);
