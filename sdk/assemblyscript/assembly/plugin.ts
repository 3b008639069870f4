// The dispatcher: a plugin registers the stores of the record kinds it
// implements; the SDK advertises features from them, decodes requests,
// checks them as the ABI requires, calls the stores and encodes responses.

import { Decoder, Encoder } from "./wire";
import { Result, fail } from "./host";
import {
  ABI_MAJOR, ABI_MINOR, Alert, AlertQuery, AgentState, AgentStateQuery, ConditionMode, DeleteAgentState,
  Failure, Feature, Metadata, Metric, MetricKey, MetricQuery, Op, Options, Page, PutAgentState, PutAlert,
  PutMetric, SetAlertStatus, Status, TTL, TTLMode, Condition, checkAlertEnums, checkMetricTimestamp,
  Matcher, Restore, Restored, decodeBatch, decodeFailure, opRequires, opWrites,
} from "./messages";

/** Stores metrics. Override the methods; returned records carry expiresAt.
 *  Override servesQueries to return true and query to serve queries. */
export class MetricStore {
  put(r: PutMetric): Result<Metric> {
    return fail<Metric>(Status.Unsupported, "put metric is not implemented");
  }
  get(k: MetricKey): Result<Metric> {
    return fail<Metric>(Status.Unsupported, "get metric is not implemented");
  }
  /** null when deleted; NOT_FOUND when absent. */
  del(k: MetricKey): Failure | null {
    return new Failure(Status.Unsupported, "delete metric is not implemented");
  }
  servesQueries(): bool {
    return false;
  }
  query(q: MetricQuery): Result<Page<Metric>> {
    return fail<Page<Metric>>(Status.Unsupported, "metric queries are not implemented");
  }
}

/** Stores alerts. put and setStatus must refuse a transition
 *  canTransition rejects with CONFLICT. */
export class AlertStore {
  put(r: PutAlert): Result<Alert> {
    return fail<Alert>(Status.Unsupported, "put alert is not implemented");
  }
  get(id: string): Result<Alert> {
    return fail<Alert>(Status.Unsupported, "get alert is not implemented");
  }
  del(id: string): Failure | null {
    return new Failure(Status.Unsupported, "delete alert is not implemented");
  }
  setStatus(r: SetAlertStatus): Result<Alert> {
    return fail<Alert>(Status.Unsupported, "set alert status is not implemented");
  }
  servesQueries(): bool {
    return false;
  }
  query(q: AlertQuery): Result<Page<Alert>> {
    return fail<Page<Alert>>(Status.Unsupported, "alert queries are not implemented");
  }
}

/** Stores agent states. */
export class AgentStateStore {
  put(r: PutAgentState): Result<AgentState> {
    return fail<AgentState>(Status.Unsupported, "put agent state is not implemented");
  }
  get(agentID: string): Result<AgentState> {
    return fail<AgentState>(Status.Unsupported, "get agent state is not implemented");
  }
  del(r: DeleteAgentState): Failure | null {
    return new Failure(Status.Unsupported, "delete agent state is not implemented");
  }
  servesQueries(): bool {
    return false;
  }
  query(q: AgentStateQuery): Result<Page<AgentState>> {
    return fail<Page<AgentState>>(Status.Unsupported, "agent state queries are not implemented");
  }
}

/** Serves OpRestore (ABI 1.2): writes a record exactly as given, backend
 *  fields included (an agent state's version, an alert's created_at and
 *  updated_at, the absolute expiry), for every kind the plugin stores. The
 *  SDK has checked the request (Restore.check) and that the plugin serves
 *  its kind (and ttl, for a record that expires). It answers whether the
 *  record was written: false for a record already expired, or for a live
 *  one with the key in mode skip; mode fail makes that CONFLICT. */
export class Restorer {
  restore(r: Restore): Result<Restored> {
    return fail<Restored>(Status.Unsupported, "restore is not implemented");
  }
}

/** A backend. Null stores are kinds it does not support; the SDK
 *  advertises features from what is set. Subclass it to override
 *  configure. */
export class Plugin {
  metrics: MetricStore | null = null;
  alerts: AlertStore | null = null;
  agentStates: AgentStateStore | null = null;
  /** Advertises the ttl feature: the stores honour every TTL mode. */
  ttl: bool = false;
  /** Advertises the concurrency feature: agent-state puts and deletes
   *  honour their condition. */
  concurrency: bool = false;
  /** When set, serves OpRestore and advertises the restore feature. */
  restorer: Restorer | null = null;
  /** The host modules the plugin imports besides "log", which the SDK
   *  always imports and lists: "clock", "kv", "events". */
  capabilities: string[] = [];

  constructor(public name: string, public version: string) {}

  /** Receives the backend options before any request; a failure fails
   *  the instance. The default refuses every option with INVALID, as the
   *  ABI recommends for options a plugin does not know. */
  configure(o: Options): Failure | null {
    if (o.names.length > 0) return new Failure(Status.Invalid, "unknown option " + o.names[0]);
    return null;
  }
}

/** Serves requests for one registered Plugin. */
export class Dispatcher {
  features: u32;
  meta: Metadata;
  private sub: Encoder = new Encoder(256);
  private dec: Decoder = new Decoder(new Uint8Array(0));

  constructor(public p: Plugin) {
    let f: u32 = Feature.Batch;
    let query = true;
    const ms = p.metrics;
    const as = p.alerts;
    const ss = p.agentStates;
    if (ms !== null) {
      f |= Feature.Metrics;
      query = query && ms.servesQueries();
    }
    if (as !== null) {
      f |= Feature.Alerts;
      query = query && as.servesQueries();
    }
    if (ss !== null) {
      f |= Feature.AgentStates;
      query = query && ss.servesQueries();
    }
    if (query && (ms !== null || as !== null || ss !== null)) f |= Feature.Query;
    if (p.ttl) f |= Feature.TTL;
    if (p.concurrency) f |= Feature.Concurrency;
    if (p.restorer !== null) f |= Feature.Restore;
    this.features = f;
    const m = new Metadata();
    m.abiMajor = ABI_MAJOR;
    m.abiMinor = ABI_MINOR;
    m.name = p.name;
    m.version = p.version;
    m.features = f;
    m.capabilities = ["log"];
    for (let i = 0; i < p.capabilities.length; i++) {
      if (p.capabilities[i] != "log") m.capabilities.push(p.capabilities[i]);
    }
    this.meta = m;
  }

  /** Serves one request and appends the whole response (status, body). */
  handle(op: u32, req: Uint8Array, e: Encoder): void {
    const mark = e.len;
    e.u8(<u8>Status.OK);
    const f = this.serve(op, req, e);
    if (f === null) return;
    if (f.status == Status.Stale && !opWrites(op)) {
      // A read served from a fallback copy: the body is encoded, only the
      // status changes.
      e.buf[mark] = <u8>Status.Stale;
      return;
    }
    e.truncate(mark);
    let s = f.status;
    if (s == Status.Stale) s = Status.Internal; // a write answers STALE only with tick, which this SDK does not serve
    if (s == Status.OK) s = Status.Internal;
    if (s == Status.Unknown && !opWrites(op)) s = Status.Unavailable;
    e.u8(<u8>s);
    if (f.status == Status.Stale && s == Status.Internal) e.text("plugin answered a write with STALE but does not advertise tick");
    else e.text(f.message);
  }

  private begin(req: Uint8Array): Decoder {
    this.dec.reset(req);
    return this.dec;
  }

  /** Checks a write's ttl and condition against the features. */
  private checkWrite(ttl: TTL | null, cond: Condition | null): Failure | null {
    if (ttl !== null) {
      const f = ttl.check();
      if (f !== null) return f;
      if (ttl.mode != TTLMode.Default && (this.features & Feature.TTL) == 0) {
        return new Failure(Status.Unsupported, "plugin " + this.p.name + " does not support TTLs");
      }
    }
    if (cond !== null && cond.mode != ConditionMode.Unconditional && (this.features & Feature.Concurrency) == 0) {
      return new Failure(Status.Unsupported, "plugin " + this.p.name + " does not support conditional writes");
    }
    return null;
  }

  private serve(op: u32, req: Uint8Array, e: Encoder): Failure | null {
    const need = opRequires(op);
    if ((this.features & need) != need) {
      return new Failure(Status.Unsupported, "op " + op.toString() + " is not supported by plugin " + this.p.name);
    }
    let f: Failure | null = null;
    switch (op) {
      case Op.Ping: {
        return null;
      }
      case Op.Configure: {
        const d = this.begin(req);
        const o = Options.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        return this.p.configure(o);
      }
      case Op.PutMetric: {
        const d = this.begin(req);
        const r = PutMetric.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = this.checkWrite(r.ttl, null)) !== null) return f;
        if ((f = checkMetricTimestamp(r.metric.timestamp)) !== null) return f;
        const v = this.p.metrics!.put(r);
        return answer(v, e);
      }
      case Op.GetMetric:
      case Op.DeleteMetric: {
        const d = this.begin(req);
        const k = MetricKey.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = checkMetricTimestamp(k.timestamp)) !== null) return f;
        if (op == Op.DeleteMetric) return this.p.metrics!.del(k);
        const v = this.p.metrics!.get(k);
        return answer(v, e);
      }
      case Op.QueryMetrics: {
        const d = this.begin(req);
        const q = MetricQuery.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = checkMatcherOps(q.labels)) !== null) return f;
        const v = this.p.metrics!.query(q);
        return answer(v, e);
      }
      case Op.PutAlert: {
        const d = this.begin(req);
        const r = PutAlert.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = this.checkWrite(r.ttl, null)) !== null) return f;
        if ((f = checkAlertEnums(r.alert)) !== null) return f;
        const v = this.p.alerts!.put(r);
        return answer(v, e);
      }
      case Op.GetAlert:
      case Op.DeleteAlert: {
        const d = this.begin(req);
        const id = d.id("alert id");
        if ((f = decodeFailure(d)) !== null) return f;
        if (op == Op.DeleteAlert) return this.p.alerts!.del(id);
        const v = this.p.alerts!.get(id);
        return answer(v, e);
      }
      case Op.SetAlertStatus: {
        const d = this.begin(req);
        const r = SetAlertStatus.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if (r.status < 1 || r.status > 3) return new Failure(Status.Invalid, "unknown alert status " + r.status.toString());
        const v = this.p.alerts!.setStatus(r);
        return answer(v, e);
      }
      case Op.QueryAlerts: {
        const d = this.begin(req);
        const q = AlertQuery.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = checkMatcherOps(q.labels)) !== null) return f;
        const v = this.p.alerts!.query(q);
        return answer(v, e);
      }
      case Op.PutAgentState: {
        const d = this.begin(req);
        const r = PutAgentState.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = this.checkWrite(r.ttl, r.condition)) !== null) return f;
        const v = this.p.agentStates!.put(r);
        return answer(v, e);
      }
      case Op.GetAgentState: {
        const d = this.begin(req);
        const id = d.id("agent id");
        if ((f = decodeFailure(d)) !== null) return f;
        const v = this.p.agentStates!.get(id);
        return answer(v, e);
      }
      case Op.DeleteAgentState: {
        const d = this.begin(req);
        const r = DeleteAgentState.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = this.checkWrite(null, r.condition)) !== null) return f;
        if (r.condition.mode == ConditionMode.IfAbsent) return new Failure(Status.Invalid, "delete cannot be create-only");
        return this.p.agentStates!.del(r);
      }
      case Op.QueryAgentStates: {
        const d = this.begin(req);
        const q = AgentStateQuery.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        const v = this.p.agentStates!.query(q);
        return answer(v, e);
      }
      case Op.Restore: {
        const d = this.begin(req);
        const r = Restore.decode(d);
        if ((f = decodeFailure(d)) !== null) return f;
        if ((f = r.check()) !== null) return f;
        const need = r.requires();
        if ((this.features & need) != need) {
          return new Failure(Status.Unsupported, "plugin " + this.p.name + " does not restore this record (needs features " + (need & ~this.features).toString() + ")");
        }
        const v = this.p.restorer!.restore(r);
        return answer(v, e);
      }
      case Op.Batch: {
        const d = this.begin(req);
        const items = decodeBatch(d);
        if ((f = decodeFailure(d)) !== null) return f;
        for (let i = 0; i < items.length; i++) {
          const iop = items[i].op;
          if (iop == Op.Batch || iop == Op.Configure) {
            return new Failure(Status.Invalid, "batch item " + i.toString() + ": op " + iop.toString() + " cannot be batched");
          }
        }
        // Each item's response (status byte, body) goes straight into the
        // batch response as BatchResults lays it out.
        e.uvarint(<u64>items.length);
        const sub = this.sub;
        for (let i = 0; i < items.length; i++) {
          sub.reset();
          this.handle(items[i].op, items[i].payload, sub);
          e.u8(sub.buf[0]);
          e.uvarint(<u64>(sub.len - 1));
          e.rawAt(sub.dataStart + 1, sub.len - 1);
        }
        return null;
      }
    }
    return new Failure(Status.Unsupported, "unknown op " + op.toString());
  }
}

/** Encodes the value of an ok result; the failure of any other. A STALE
 *  result is encoded, and handle marks the response stale. */
function answer<T>(v: Result<T>, e: Encoder): Failure | null {
  if (!v.ok) return v.failure();
  v.value!.encode(e);
  return v.status == Status.Stale ? v.failure() : null;
}

/** INVALID for a label matcher whose op is not 1 to 4. Regular expressions
 *  are the store's to compile (and refuse with INVALID). */
function checkMatcherOps(ms: Array<Matcher>): Failure | null {
  for (let i = 0; i < ms.length; i++) {
    const o = ms[i].op;
    if (o < 1 || o > 4) return new Failure(Status.Invalid, "label matcher " + ms[i].label + ": unknown operator " + o.toString());
  }
  return null;
}

let current: Dispatcher | null = null;

/** Makes p the plugin this module serves. Call it once, from the entry
 *  file's top level: the host reads the metadata right after
 *  _initialize. */
export function register(p: Plugin): void {
  if (current !== null) abort("register called twice");
  current = new Dispatcher(p);
}

/** The dispatcher of the registered plugin, or null. */
export function registered(): Dispatcher | null {
  return current;
}
