// The example plugin: agent states kept in the host's kv store, with
// TTLs, conditional writes and prefix queries; the AssemblyScript
// counterpart of sdk/example/tiny. Each state is stored in the ABI
// encoding under its agent ID; its version is the kv revision, which
// changes on every write, and its expiry is the kv entry's, so the kv
// store applies both atomically with the write.
//
// Build: npm run build  (writes build/example.wasm)
// Test:  go run ./cmd/storage-host plugin test sdk/assemblyscript/build/example.wasm

import {
  AgentState, AgentStateQuery, AgentStateStore, DeleteAgentState, Decoder, Encoder, Failure, KV, Options, Plugin,
  Page, PutAgentState, Restore, Restored, Restorer, RestoreMode, Result, Status, TTLMode, fail, now, ok, pageLimit,
  register, utf8,
} from "../assembly/index";

// The ABI exports; every plugin's entry file has this line.
export * from "../assembly/exports";

/** The default TTL of agent states, in nanoseconds (0: none), from the
 *  agent_state_ttl_seconds option. */
let defaultTTL: i64 = 0;

class States extends AgentStateStore {
  put(r: PutAgentState): Result<AgentState> {
    const st = r.state;
    const t = now();
    st.updatedAt = t; // the backend sets these, never the caller
    st.expiresAt = 0;
    st.version = 0;
    const e = new Encoder(64 + st.state.length);
    st.encode(e);
    // keep: the kv store keeps a live entry's expiry in the same step;
    // a new entry gets the default, as for mode 0.
    const keep = r.ttl.mode == TTLMode.Keep;
    const w = KV.put(utf8(st.agentID), e.bytes(), r.ttl.expiresAt(t, defaultTTL, 0, false), keep, r.condition);
    if (!w.ok) return fail<AgentState>(w.status, w.message); // CONFLICT when the condition fails
    st.version = w.value!.revision;
    st.expiresAt = w.value!.expiresAt;
    return ok(st);
  }

  get(agentID: string): Result<AgentState> {
    const en = KV.get(utf8(agentID));
    if (!en.ok) return fail<AgentState>(en.status, en.message); // NOT_FOUND when missing
    const st = AgentState.decode(new Decoder(en.value!.value));
    st.version = en.value!.revision;
    st.expiresAt = en.value!.expiresAt;
    return ok(st);
  }

  del(r: DeleteAgentState): Failure | null {
    return KV.del(utf8(r.agentID), r.condition);
  }

  servesQueries(): bool {
    return true;
  }

  // Agent states by ID prefix, in ID order: a kv scan of the keys from
  // the prefix to the first key past it. The cursor is "s" then the key
  // to resume from, which has to lie in the query's range.
  query(q: AgentStateQuery): Result<Page<AgentState>> {
    const prefix = utf8(q.agentIDPrefix);
    let start = prefix;
    if (q.cursor.length > 0) {
      const c = q.cursor;
      if (c[0] != 0x73 || c.length < 2 || !hasPrefix(c.subarray(1), prefix)) {
        return fail<Page<AgentState>>(Status.Invalid, "a cursor this backend did not issue for this query");
      }
      start = c.slice(1);
    }
    const r = KV.scan(start, prefixEnd(prefix), <u32>pageLimit(q.limit));
    if (!r.ok) return fail<Page<AgentState>>(r.status, r.message);
    const scan = r.value!;
    const p = new Page<AgentState>();
    for (let i = 0; i < scan.entries.length; i++) {
      const en = scan.entries[i];
      const st = AgentState.decode(new Decoder(en.value));
      st.version = en.revision;
      st.expiresAt = en.expiresAt;
      p.items.push(st);
    }
    if (scan.next.length > 0) {
      const next = new Uint8Array(scan.next.length + 1);
      next[0] = 0x73;
      next.set(scan.next, 1);
      p.next = next;
    }
    return ok(p);
  }
}

function hasPrefix(b: Uint8Array, prefix: Uint8Array): bool {
  if (b.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[i] != prefix[i]) return false;
  return true;
}

/** The first key after every key with this prefix; empty (unbounded)
 *  when there is none. */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] == 0xff) n--;
  if (n == 0) return new Uint8Array(0);
  const end = prefix.slice(0, n);
  end[n - 1]++;
  return end;
}

// Restores write a state exactly as given: its version becomes the kv
// revision (the kv store's restore keeps it, and later writes go above
// it), its expiry the kv entry's. Only agent states reach here: the SDK
// refuses the kinds this plugin does not store.
class StateRestorer extends Restorer {
  restore(r: Restore): Result<Restored> {
    const st = r.state!;
    const exp = st.expiresAt;
    if (exp != 0 && exp <= now()) return ok(new Restored(false)); // expired: nothing to restore
    const rec = new AgentState();
    rec.agentID = st.agentID;
    rec.state = st.state;
    rec.updatedAt = st.updatedAt;
    const e = new Encoder(64 + rec.state.length);
    rec.encode(e);
    const w = KV.restore(utf8(st.agentID), e.bytes(), st.version, exp, r.mode != RestoreMode.Overwrite);
    if (w.ok) return ok(new Restored(true));
    if (w.status == Status.Conflict && r.mode == RestoreMode.Skip) return ok(new Restored(false));
    if (w.status == Status.Conflict) return fail<Restored>(Status.Conflict, "restore: a live agent state " + st.agentID + " exists");
    return fail<Restored>(w.status, w.message);
  }
}

class Example extends Plugin {
  configure(o: Options): Failure | null {
    for (let i = 0; i < o.names.length; i++) {
      const name = o.names[i];
      if (name != "agent_state_ttl_seconds") return new Failure(Status.Invalid, "unknown option " + name);
      const v = o.values[i];
      let secs: i64 = 0;
      for (let k = 0; k < v.length; k++) {
        const c = v.charCodeAt(k);
        if (c < 48 || c > 57 || k >= 12) return new Failure(Status.Invalid, name + ": want a whole number of seconds, got " + v);
        secs = secs * 10 + <i64>(c - 48);
      }
      if (v.length == 0) return new Failure(Status.Invalid, name + ": empty");
      defaultTTL = secs * 1000000000;
    }
    return null;
  }
}

const p = new Example("as-example", "0.1.0");
p.agentStates = new States();
p.ttl = true;
p.concurrency = true;
p.restorer = new StateRestorer();
p.capabilities = ["clock", "kv"];
register(p);
