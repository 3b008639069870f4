// The host capabilities a plugin imports (abi/README.md, section 6). The
// compiler keeps an import only when a reachable function calls it, so a
// plugin that never uses KV does not import storagehost_kv, and need not
// list "kv" in its capabilities. storagehost_log is always imported: the
// SDK's abort handler logs through it.

import { Decoder, Encoder, WireError, text } from "./wire";
import { Condition, Failure, KVEntry, KVOp, KVRequest, KVScan, PluginEvent, Status } from "./messages";

@external("storagehost_log", "write")
declare function hostLogWrite(level: i32, ptr: usize, len: i32): void;

@external("storagehost_clock", "now")
declare function hostClockNow(): i64;

@external("storagehost_kv", "call")
declare function hostKVCall(reqPtr: usize, reqLen: i32, outPtr: usize, outCap: i32): i32;

@external("storagehost_kv", "result")
declare function hostKVResult(outPtr: usize, outCap: i32): i32;

@external("storagehost_events", "publish")
declare function hostEventsPublish(ptr: usize, len: i32): i32;

/** Log levels of storagehost_log. */
export namespace Level {
  export const Trace: i32 = 1;
  export const Debug: i32 = 2;
  export const Info: i32 = 3;
  export const Warn: i32 = 4;
  export const Error: i32 = 5;
}

/** Writes msg to the host log at level. The host rate-limits the lines. */
export function log(level: i32, msg: string): void {
  if (msg.length == 0) return;
  const b = String.UTF8.encode(msg);
  hostLogWrite(level, changetype<usize>(b), b.byteLength);
}

/** The host clock in Unix nanoseconds. Use it, never WASI's clocks, for
 *  anything that must agree with the host (expiry, timestamps). Needs the
 *  "clock" capability. */
export function now(): i64 {
  return hostClockNow();
}

/** The outcome of an operation: a status, its message when the status is
 *  not OK or STALE, and the value when it is. */
export class Result<T> {
  constructor(public status: Status, public message: string, public value: T | null) {}

  /** Whether the value is there (OK, or STALE: a value maybe behind). */
  get ok(): bool {
    return this.status == Status.OK || this.status == Status.Stale;
  }

  /** The failure of a result that is not ok, for a result of another type. */
  failure(): Failure {
    return new Failure(this.status, this.message);
  }
}

/** A successful result. */
export function ok<T>(v: T): Result<T> {
  return new Result<T>(Status.OK, "", v);
}

/** A read served from a fallback copy that may be behind (ABI 1.1). */
export function stale<T>(v: T): Result<T> {
  return new Result<T>(Status.Stale, "", v);
}

/** A failed result. */
export function fail<T>(status: Status, message: string): Result<T> {
  return new Result<T>(status, message, null);
}

/** A failed result carrying f. */
export function failWith<T>(f: Failure): Result<T> {
  return new Result<T>(f.status, f.message, null);
}

/** Splits a response into its status and body (section 8). */
function parseResponse(resp: Uint8Array): Result<Uint8Array> {
  if (resp.length == 0) return fail<Uint8Array>(Status.Internal, "empty response");
  const s = <i32>resp[0];
  const body = resp.subarray(1);
  if (s == Status.OK || s == Status.Stale) return new Result<Uint8Array>(<Status>s, "", body);
  if (s > Status.Unknown) return fail<Uint8Array>(Status.Internal, "unknown status " + s.toString() + ": " + text(body));
  return fail<Uint8Array>(<Status>s, text(body));
}

/** The revision and expiry a kv put or restore gave its entry. */
export class KVWritten {
  constructor(public revision: u64, public expiresAt: i64) {}
}

// kvOut receives kv responses; it grows when one does not fit.
let kvOut = new Uint8Array(16 << 10);
const kvEnc = new Encoder(256);

function kvDo(req: KVRequest): Result<Decoder> {
  kvEnc.reset();
  req.encode(kvEnc);
  let n = hostKVCall(kvEnc.dataStart, kvEnc.len, kvOut.dataStart, kvOut.length);
  if (n > kvOut.length) {
    kvOut = new Uint8Array(n);
    n = hostKVResult(kvOut.dataStart, kvOut.length);
  }
  const r = parseResponse(kvOut.subarray(0, n));
  if (!r.ok) return fail<Decoder>(r.status, r.message);
  return new Result<Decoder>(r.status, "", new Decoder(r.value!));
}

/** Sends a put or restore and reads the revision and expiry it gave. */
function kvWrite(q: KVRequest): Result<KVWritten> {
  const r = kvDo(q);
  if (!r.ok) return fail<KVWritten>(r.status, r.message);
  const d = r.value!;
  const rev = d.uvarint();
  const exp = d.time();
  return kvFinish<KVWritten>(d, new KVWritten(rev, exp));
}

function kvFinish<T>(d: Decoder, v: T): Result<T> {
  if (d.finish() != WireError.None) return fail<T>(Status.Internal, "kv response does not decode");
  return ok<T>(v);
}

/** The client of the host's kv capability (section 6.3 and 11): an ordered
 *  key-value store shared by every instance of the backend, with revisions
 *  and expiry. A plugin that uses it lists "kv" in its capabilities. */
export namespace KV {
  /** The live entry at key, or NOT_FOUND. */
  export function get(key: Uint8Array): Result<KVEntry> {
    const q = new KVRequest();
    q.op = KVOp.Get;
    q.key = key;
    const r = kvDo(q);
    if (!r.ok) return fail<KVEntry>(r.status, r.message);
    const d = r.value!;
    const en = KVEntry.decode(d, false);
    en.key = key;
    return kvFinish<KVEntry>(d, en);
  }

  /** Writes value at key if cond holds (else CONFLICT). expiresAt 0 is
   *  never; keepTTL keeps a live entry's expiry. */
  export function put(key: Uint8Array, value: Uint8Array, expiresAt: i64, keepTTL: bool, cond: Condition): Result<KVWritten> {
    const q = new KVRequest();
    q.op = KVOp.Put;
    q.key = key;
    q.value = value;
    q.expiresAt = expiresAt;
    q.keepTTL = keepTTL;
    q.condition = cond;
    return kvWrite(q);
  }

  /** Writes value at key with exactly revision (at least 1) and moves
   *  the store's revision counter past it (ABI 1.2): for a restore, which
   *  keeps a record's version. ifAbsent makes it CONFLICT when a live
   *  entry has the key; otherwise it replaces one. */
  export function restore(key: Uint8Array, value: Uint8Array, revision: u64, expiresAt: i64, ifAbsent: bool): Result<KVWritten> {
    const q = new KVRequest();
    q.op = KVOp.Restore;
    q.key = key;
    q.value = value;
    q.revision = revision;
    q.expiresAt = expiresAt;
    q.condition = ifAbsent ? Condition.ifAbsent() : new Condition();
    return kvWrite(q);
  }

  /** Deletes key if cond holds: null when deleted, else NOT_FOUND or
   *  CONFLICT (or another failure). */
  export function del(key: Uint8Array, cond: Condition): Failure | null {
    const q = new KVRequest();
    q.op = KVOp.Delete;
    q.key = key;
    q.condition = cond;
    const r = kvDo(q);
    if (!r.ok) return new Failure(r.status, r.message);
    if (r.value!.finish() != WireError.None) return new Failure(Status.Internal, "kv response does not decode");
    return null;
  }

  /** The entries with start <= key < end (empty end: unbounded), at most
   *  limit of them (0: 100); resume from next while it is not empty. */
  export function scan(start: Uint8Array, end: Uint8Array, limit: u32): Result<KVScan> {
    const q = new KVRequest();
    q.op = KVOp.Scan;
    q.key = start;
    q.end = end;
    q.limit = limit;
    const r = kvDo(q);
    if (!r.ok) return fail<KVScan>(r.status, r.message);
    const d = r.value!;
    return kvFinish<KVScan>(d, KVScan.decode(d));
  }
}

/** Publishes a plugin event (section 6.5; the "events" capability, ABI
 *  1.2) and returns the host's status: OK, INVALID, UNAVAILABLE or LIMIT.
 *  A refused event is dropped; the request goes on. */
export function publish(ev: PluginEvent): Status {
  const e = new Encoder(64 + ev.data.length);
  ev.encode(e);
  const s = hostEventsPublish(e.dataStart, e.len);
  return s >= 0 && s <= <i32>Status.Unknown ? <Status>s : Status.Internal;
}

/** The abort handler plugins build with (`--use abort=...`): it logs the
 *  message and where it was raised through storagehost_log, at error
 *  level, then traps, so the module imports no `env.abort` the host does
 *  not provide. The host discards the instance and answers INTERNAL. */
@lazy let aborting: bool = false;

export function storageAbort(message: string | null = null, fileName: string | null = null, line: u32 = 0, column: u32 = 0): void {
  if (aborting) unreachable(); // logging itself failed (out of memory, say)
  aborting = true;
  let m = "plugin aborted";
  if (message !== null) m += ": " + message;
  if (fileName !== null) m += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  log(Level.Error, m);
  unreachable();
}
