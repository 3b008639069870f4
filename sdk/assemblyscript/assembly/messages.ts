// The messages of the plugin ABI (abi/README.md, sections 7.3 to 11), with
// the same field order as the Go package github.com/storage-host/storage-host/abi.
// Times are i64 Unix nanoseconds, 0 meaning unset. Identifiers are strings,
// checked on their bytes when decoded (Decoder.id); label values, alert
// messages and state documents are bytes, kept unchanged.

import { Decoder, Encoder, WireError, compareBytes, checkID, utf8 } from "./wire";

/** The ABI version this SDK speaks: 1.3. */
export const ABI_MAJOR: u16 = 1;
export const ABI_MINOR: u16 = 3;

/** Status codes (section 8). */
export enum Status {
  OK = 0,
  NotFound = 1,
  Conflict = 2,
  Invalid = 3,
  Unavailable = 4,
  Unsupported = 5,
  Internal = 6,
  Limit = 7,
  Stale = 8,
  Unknown = 9,
}

/** Op numbers (section 10). */
export namespace Op {
  export const Ping: u32 = 1;
  export const Configure: u32 = 2;
  export const Tick: u32 = 3;
  export const PutMetric: u32 = 10;
  export const GetMetric: u32 = 11;
  export const DeleteMetric: u32 = 12;
  export const QueryMetrics: u32 = 13;
  export const PutAlert: u32 = 20;
  export const GetAlert: u32 = 21;
  export const DeleteAlert: u32 = 22;
  export const QueryAlerts: u32 = 23;
  export const SetAlertStatus: u32 = 24;
  export const PutAgentState: u32 = 30;
  export const GetAgentState: u32 = 31;
  export const DeleteAgentState: u32 = 32;
  export const QueryAgentStates: u32 = 33;
  export const Batch: u32 = 40;
  export const Restore: u32 = 50;
}

/** Feature bits (section 9). */
export namespace Feature {
  export const Metrics: u32 = 1 << 0;
  export const Alerts: u32 = 1 << 1;
  export const AgentStates: u32 = 1 << 2;
  export const Query: u32 = 1 << 3;
  export const Batch: u32 = 1 << 4;
  export const TTL: u32 = 1 << 5;
  export const Concurrency: u32 = 1 << 6;
  export const Restore: u32 = 1 << 7;
  export const Tick: u32 = 1 << 8;
  /** No plugin has it: what an op number the ABI does not define needs. */
  export const Unknown: u32 = 1 << 31;
}

/** The features an op needs (section 9). */
export function opRequires(op: u32): u32 {
  switch (op) {
    case Op.Ping:
    case Op.Configure:
      return 0;
    case Op.PutMetric:
    case Op.GetMetric:
    case Op.DeleteMetric:
      return Feature.Metrics;
    case Op.QueryMetrics:
      return Feature.Metrics | Feature.Query;
    case Op.PutAlert:
    case Op.GetAlert:
    case Op.DeleteAlert:
    case Op.SetAlertStatus:
      return Feature.Alerts;
    case Op.QueryAlerts:
      return Feature.Alerts | Feature.Query;
    case Op.PutAgentState:
    case Op.GetAgentState:
    case Op.DeleteAgentState:
      return Feature.AgentStates;
    case Op.QueryAgentStates:
      return Feature.AgentStates | Feature.Query;
    case Op.Batch:
      return Feature.Batch;
    case Op.Restore:
      return Feature.Restore;
    case Op.Tick:
      return Feature.Tick;
  }
  return Feature.Unknown;
}

/** Whether an op changes records (a read never answers UNKNOWN). */
export function opWrites(op: u32): bool {
  return (
    op == Op.PutMetric || op == Op.DeleteMetric || op == Op.PutAlert || op == Op.DeleteAlert ||
    op == Op.SetAlertStatus || op == Op.PutAgentState || op == Op.DeleteAgentState || op == Op.Restore
  );
}

/** Alert severities. */
export namespace Severity {
  export const Info: u8 = 1;
  export const Warning: u8 = 2;
  export const Critical: u8 = 3;
}

/** Alert statuses. */
export namespace AlertStatus {
  export const Firing: u8 = 1;
  export const Acknowledged: u8 = 2;
  export const Resolved: u8 = 3;
}

/** Whether an alert may move from status `from` to `to` (section 13.3). */
export function canTransition(from: u8, to: u8): bool {
  if (from < 1 || from > 3 || to < 1 || to > 3) return false;
  if (from == to || from == AlertStatus.Firing) return true;
  if (from == AlertStatus.Acknowledged) return to == AlertStatus.Resolved;
  return to == AlertStatus.Firing;
}

/** A failure: a status other than OK and its message. */
export class Failure {
  constructor(public status: Status, public message: string) {}
}

/** Fails with INVALID for a message that did not decode, or an invalid
 *  identifier in it; null when it decoded whole and its IDs are valid. */
export function decodeFailure(d: Decoder): Failure | null {
  const e = d.finish();
  if (e == WireError.Truncated) return new Failure(Status.Invalid, "decode request: truncated message");
  if (e == WireError.Malformed) return new Failure(Status.Invalid, "decode request: malformed message");
  const inv = d.invalid;
  if (inv !== null) return new Failure(Status.Invalid, inv);
  return null;
}

// ---------------------------------------------------------------- labels

/** The bounds on a record's labels (section 7.3). */
export const MAX_LABELS = 64;
export const MAX_LABEL_BYTES = 1 << 20;

/** One label: a name (an identifier) and a value (bytes). */
export class Label {
  constructor(public name: string, public value: Uint8Array) {}
}

/** Labels, the map of section 7.3. Written sorted by name bytes. */
export class Labels {
  items: Label[] = [];

  /** Sets name to value, replacing an earlier value. */
  set(name: string, value: Uint8Array): void {
    for (let i = 0; i < this.items.length; i++) {
      if (this.items[i].name == name) {
        this.items[i].value = value;
        return;
      }
    }
    this.items.push(new Label(name, value));
  }

  /** The value of name, or null. */
  get(name: string): Uint8Array | null {
    for (let i = 0; i < this.items.length; i++) {
      if (this.items[i].name == name) return this.items[i].value;
    }
    return null;
  }

  get size(): i32 {
    return this.items.length;
  }

  encode(e: Encoder): void {
    const n = this.items.length;
    e.uvarint(<u64>n);
    if (n == 0) return;
    const keys = new Array<Uint8Array>(n);
    const order = new Array<i32>(n);
    for (let i = 0; i < n; i++) {
      keys[i] = utf8(this.items[i].name);
      order[i] = i;
    }
    // Insertion sort by name bytes: label sets are small.
    for (let i = 1; i < n; i++) {
      const k = order[i];
      let j = i - 1;
      while (j >= 0 && compareBytes(keys[order[j]], keys[k]) > 0) {
        order[j + 1] = order[j];
        j--;
      }
      order[j + 1] = k;
    }
    for (let i = 0; i < n; i++) {
      e.bytesField(keys[order[i]]);
      e.bytesField(this.items[order[i]].value);
    }
  }

  /** Reads a record's labels, at most MAX_LABELS of them with names and
   *  values of at most MAX_LABEL_BYTES together (section 7.3: a record
   *  past either is malformed); names are checked as identifiers when
   *  checkNames. */
  static decode(d: Decoder, checkNames: bool): Labels {
    const l = new Labels();
    const n = d.count(2);
    if (n > MAX_LABELS) {
      d.fail(WireError.Malformed);
      return l;
    }
    let size = 0;
    for (let i = 0; i < n && !d.failed; i++) {
      const k = checkNames ? d.id("label name") : d.str();
      const v = d.bytesField();
      size += String.UTF8.byteLength(k) + v.length;
      if (size > MAX_LABEL_BYTES) {
        d.fail(WireError.Malformed);
        return l;
      }
      l.set(k, v);
    }
    return l;
  }
}

/** The backend options of OpConfigure: names and values as text. */
export class Options {
  names: string[] = [];
  values: string[] = [];

  /** The value of name, or null when the option is not set. */
  get(name: string): string | null {
    for (let i = 0; i < this.names.length; i++) if (this.names[i] == name) return this.values[i];
    return null;
  }

  set(name: string, value: string): void {
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] == name) {
        this.values[i] = value;
        return;
      }
    }
    this.names.push(name);
    this.values.push(value);
  }

  encode(e: Encoder): void {
    const l = new Labels();
    for (let i = 0; i < this.names.length; i++) l.set(this.names[i], utf8(this.values[i]));
    l.encode(e);
  }

  static decode(d: Decoder): Options {
    const o = new Options();
    const n = d.count(2);
    for (let i = 0; i < n && !d.failed; i++) {
      const k = d.str();
      o.set(k, d.str());
    }
    return o;
  }
}

// ---------------------------------------------------------------- ttl, condition

/** TTL modes (section 7.3). */
export namespace TTLMode {
  export const Default: u8 = 0;
  export const Duration: u8 = 1;
  export const Persist: u8 = 2;
  export const Keep: u8 = 3;
}

/** The most milliseconds a signed 64-bit nanosecond count holds. */
const MAX_TTL_MS: u64 = 9223372036854;
/** The longest TTL duration a write may ask for: 100 years, in ms. */
export const MAX_TTL_DURATION_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/** How a write sets the record's expiry (section 13.1). */
export class TTL {
  mode: u8 = TTLMode.Default;
  durationMs: u64 = 0;

  encode(e: Encoder): void {
    e.u8(this.mode);
    if (this.mode == TTLMode.Duration) e.uvarint(this.durationMs);
  }

  static decode(d: Decoder): TTL {
    const t = new TTL();
    t.mode = d.u8();
    if (t.mode == TTLMode.Duration) {
      const ms = d.uvarint();
      if (ms > MAX_TTL_MS) d.fail(WireError.Malformed);
      else t.durationMs = ms;
    }
    return t;
  }

  /** Why the TTL is invalid, or null. */
  check(): Failure | null {
    if (this.mode > 3) return new Failure(Status.Invalid, "unknown ttl mode " + this.mode.toString());
    if (this.mode == TTLMode.Duration) {
      if (this.durationMs < 1) return new Failure(Status.Invalid, "ttl duration is below 1ms");
      if (this.durationMs > MAX_TTL_DURATION_MS) return new Failure(Status.Invalid, "ttl duration is over 100 years; use persist");
    }
    return null;
  }

  /** The expiry a write at now gets: defaultNs is the kind's default TTL
   *  (0: none); prev and exists describe the live record, for keep. */
  expiresAt(now: i64, defaultNs: i64, prev: i64, exists: bool): i64 {
    if (this.mode == TTLMode.Duration) return now + <i64>this.durationMs * 1000000;
    if (this.mode == TTLMode.Persist) return 0;
    if (this.mode == TTLMode.Keep && exists) return prev;
    return defaultNs > 0 ? now + defaultNs : 0;
  }
}

/** Condition modes (section 13.2). */
export namespace ConditionMode {
  export const Unconditional: u8 = 0;
  export const IfVersion: u8 = 1;
  export const IfAbsent: u8 = 2;
}

/** An optimistic-concurrency precondition. */
export class Condition {
  mode: u8 = ConditionMode.Unconditional;
  version: u64 = 0;

  static ifVersion(v: u64): Condition {
    const c = new Condition();
    c.mode = ConditionMode.IfVersion;
    c.version = v;
    return c;
  }

  static ifAbsent(): Condition {
    const c = new Condition();
    c.mode = ConditionMode.IfAbsent;
    return c;
  }

  encode(e: Encoder): void {
    e.u8(this.mode);
    if (this.mode == ConditionMode.IfVersion) e.uvarint(this.version);
  }

  static decode(d: Decoder): Condition {
    const c = new Condition();
    c.mode = d.u8();
    if (c.mode == ConditionMode.IfVersion) c.version = d.uvarint();
    if (c.mode > ConditionMode.IfAbsent) d.fail(WireError.Malformed);
    return c;
  }
}

// ---------------------------------------------------------------- records

/** One sample of a named value reported by an agent. */
export class Metric {
  agentID: string = "";
  name: string = "";
  value: f64 = 0;
  timestamp: i64 = 0;
  labels: Labels = new Labels();
  expiresAt: i64 = 0;

  encode(e: Encoder): void {
    e.str(this.agentID);
    e.str(this.name);
    e.f64(this.value);
    e.time(this.timestamp);
    this.labels.encode(e);
    e.time(this.expiresAt);
  }

  static decode(d: Decoder): Metric {
    const m = new Metric();
    m.agentID = d.id("agent id");
    m.name = d.id("metric name");
    m.value = d.f64();
    m.timestamp = d.time();
    m.labels = Labels.decode(d, true);
    m.expiresAt = d.time();
    return m;
  }

  key(): MetricKey {
    const k = new MetricKey();
    k.agentID = this.agentID;
    k.name = this.name;
    k.timestamp = this.timestamp;
    return k;
  }
}

/** The identity of a metric sample. */
export class MetricKey {
  agentID: string = "";
  name: string = "";
  timestamp: i64 = 0;

  encode(e: Encoder): void {
    e.str(this.agentID);
    e.str(this.name);
    e.time(this.timestamp);
  }

  static decode(d: Decoder): MetricKey {
    const k = new MetricKey();
    k.agentID = d.id("agent id");
    k.name = d.id("metric name");
    k.timestamp = d.time();
    return k;
  }
}

/** A condition raised about an agent. */
export class Alert {
  id: string = "";
  agentID: string = "";
  severity: u8 = 0;
  status: u8 = 0;
  message: Uint8Array = new Uint8Array(0);
  labels: Labels = new Labels();
  createdAt: i64 = 0;
  updatedAt: i64 = 0;
  expiresAt: i64 = 0;

  encode(e: Encoder): void {
    e.str(this.id);
    e.str(this.agentID);
    e.u8(this.severity);
    e.u8(this.status);
    e.bytesField(this.message);
    this.labels.encode(e);
    e.time(this.createdAt);
    e.time(this.updatedAt);
    e.time(this.expiresAt);
  }

  static decode(d: Decoder): Alert {
    const a = new Alert();
    a.id = d.id("alert id");
    a.agentID = d.id("agent id");
    a.severity = d.u8();
    a.status = d.u8();
    a.message = d.bytesField();
    a.labels = Labels.decode(d, true);
    a.createdAt = d.time();
    a.updatedAt = d.time();
    a.expiresAt = d.time();
    return a;
  }
}

/** The opaque state document of one agent. */
export class AgentState {
  agentID: string = "";
  state: Uint8Array = new Uint8Array(0);
  version: u64 = 0;
  updatedAt: i64 = 0;
  expiresAt: i64 = 0;

  encode(e: Encoder): void {
    e.str(this.agentID);
    e.bytesField(this.state);
    e.uvarint(this.version);
    e.time(this.updatedAt);
    e.time(this.expiresAt);
  }

  static decode(d: Decoder): AgentState {
    const s = new AgentState();
    s.agentID = d.id("agent id");
    s.state = d.bytesField();
    s.version = d.uvarint();
    s.updatedAt = d.time();
    s.expiresAt = d.time();
    return s;
  }
}

// ---------------------------------------------------------------- requests

/** OpPutMetric's request. */
export class PutMetric {
  metric: Metric = new Metric();
  ttl: TTL = new TTL();

  encode(e: Encoder): void {
    this.metric.encode(e);
    this.ttl.encode(e);
  }

  static decode(d: Decoder): PutMetric {
    const r = new PutMetric();
    r.metric = Metric.decode(d);
    r.ttl = TTL.decode(d);
    return r;
  }
}

/** OpPutAlert's request. */
export class PutAlert {
  alert: Alert = new Alert();
  ttl: TTL = new TTL();

  encode(e: Encoder): void {
    this.alert.encode(e);
    this.ttl.encode(e);
  }

  static decode(d: Decoder): PutAlert {
    const r = new PutAlert();
    r.alert = Alert.decode(d);
    r.ttl = TTL.decode(d);
    return r;
  }
}

/** OpPutAgentState's request. */
export class PutAgentState {
  state: AgentState = new AgentState();
  ttl: TTL = new TTL();
  condition: Condition = new Condition();

  encode(e: Encoder): void {
    this.state.encode(e);
    this.ttl.encode(e);
    this.condition.encode(e);
  }

  static decode(d: Decoder): PutAgentState {
    const r = new PutAgentState();
    r.state = AgentState.decode(d);
    r.ttl = TTL.decode(d);
    r.condition = Condition.decode(d);
    return r;
  }
}

/** OpDeleteAgentState's request. */
export class DeleteAgentState {
  agentID: string = "";
  condition: Condition = new Condition();

  encode(e: Encoder): void {
    e.str(this.agentID);
    this.condition.encode(e);
  }

  static decode(d: Decoder): DeleteAgentState {
    const r = new DeleteAgentState();
    r.agentID = d.id("agent id");
    r.condition = Condition.decode(d);
    return r;
  }
}

/** OpSetAlertStatus's request. */
export class SetAlertStatus {
  id: string = "";
  status: u8 = 0;

  encode(e: Encoder): void {
    e.str(this.id);
    e.u8(this.status);
  }

  static decode(d: Decoder): SetAlertStatus {
    const r = new SetAlertStatus();
    r.id = d.id("alert id");
    r.status = d.u8();
    return r;
  }
}

// ---------------------------------------------------------------- queries

/** The page size of a query limit: 0 is 100, above 1000 is 1000. */
export function pageLimit(requested: u32): i32 {
  if (requested == 0) return 100;
  if (requested > 1000) return 1000;
  return <i32>requested;
}

/** One label matcher; op 1 =, 2 !=, 3 =~, 4 !~. */
export class Matcher {
  constructor(public label: string, public op: u8, public value: Uint8Array) {}
}

function encodeMatchers(e: Encoder, ms: Matcher[]): void {
  e.uvarint(<u64>ms.length);
  for (let i = 0; i < ms.length; i++) {
    e.str(ms[i].label);
    e.u8(ms[i].op);
    e.bytesField(ms[i].value);
  }
}

function decodeMatchers(d: Decoder): Matcher[] {
  const n = d.count(3);
  const ms = new Array<Matcher>(0);
  for (let i = 0; i < n && !d.failed; i++) {
    const label = d.str();
    const op = d.u8();
    ms.push(new Matcher(label, op, d.bytesField()));
  }
  return ms;
}

/** OpQueryMetrics's request. */
export class MetricQuery {
  agentID: string = "";
  name: string = "";
  from: i64 = 0;
  to: i64 = 0;
  labels: Matcher[] = [];
  limit: u32 = 0;
  cursor: Uint8Array = new Uint8Array(0);

  encode(e: Encoder): void {
    e.str(this.agentID);
    e.str(this.name);
    e.time(this.from);
    e.time(this.to);
    encodeMatchers(e, this.labels);
    e.uvarint(<u64>this.limit);
    e.bytesField(this.cursor);
  }

  static decode(d: Decoder): MetricQuery {
    const q = new MetricQuery();
    q.agentID = d.str();
    q.name = d.str();
    q.from = d.time();
    q.to = d.time();
    q.labels = decodeMatchers(d);
    q.limit = d.u32();
    q.cursor = d.bytesField();
    return q;
  }
}

/** OpQueryAlerts's request. */
export class AlertQuery {
  agentID: string = "";
  severities: u8[] = [];
  statuses: u8[] = [];
  labels: Matcher[] = [];
  from: i64 = 0;
  to: i64 = 0;
  limit: u32 = 0;
  cursor: Uint8Array = new Uint8Array(0);

  encode(e: Encoder): void {
    e.str(this.agentID);
    e.uvarint(<u64>this.severities.length);
    for (let i = 0; i < this.severities.length; i++) e.u8(this.severities[i]);
    e.uvarint(<u64>this.statuses.length);
    for (let i = 0; i < this.statuses.length; i++) e.u8(this.statuses[i]);
    encodeMatchers(e, this.labels);
    e.time(this.from);
    e.time(this.to);
    e.uvarint(<u64>this.limit);
    e.bytesField(this.cursor);
  }

  static decode(d: Decoder): AlertQuery {
    const q = new AlertQuery();
    q.agentID = d.str();
    for (let n = d.count(1); n > 0; n--) q.severities.push(d.u8());
    for (let n = d.count(1); n > 0; n--) q.statuses.push(d.u8());
    q.labels = decodeMatchers(d);
    q.from = d.time();
    q.to = d.time();
    q.limit = d.u32();
    q.cursor = d.bytesField();
    return q;
  }
}

/** OpQueryAgentStates's request. */
export class AgentStateQuery {
  agentIDPrefix: string = "";
  limit: u32 = 0;
  cursor: Uint8Array = new Uint8Array(0);

  encode(e: Encoder): void {
    e.str(this.agentIDPrefix);
    e.uvarint(<u64>this.limit);
    e.bytesField(this.cursor);
  }

  static decode(d: Decoder): AgentStateQuery {
    const q = new AgentStateQuery();
    q.agentIDPrefix = d.str();
    q.limit = d.u32();
    q.cursor = d.bytesField();
    return q;
  }
}

/** A page of query results: Metric, Alert or AgentState items. */
export class Page<T> {
  items: T[] = [];
  /** The cursor of the next page; empty at the end. */
  next: Uint8Array = new Uint8Array(0);

  encode(e: Encoder): void {
    e.uvarint(<u64>this.items.length);
    for (let i = 0; i < this.items.length; i++) this.items[i].encode(e);
    e.bytesField(this.next);
  }
}

export function decodeMetricPage(d: Decoder): Page<Metric> {
  const p = new Page<Metric>();
  for (let n = d.count(4); n > 0 && !d.failed; n--) p.items.push(Metric.decode(d));
  p.next = d.bytesField();
  return p;
}

export function decodeAlertPage(d: Decoder): Page<Alert> {
  const p = new Page<Alert>();
  for (let n = d.count(4); n > 0 && !d.failed; n--) p.items.push(Alert.decode(d));
  p.next = d.bytesField();
  return p;
}

export function decodeAgentStatePage(d: Decoder): Page<AgentState> {
  const p = new Page<AgentState>();
  for (let n = d.count(4); n > 0 && !d.failed; n--) p.items.push(AgentState.decode(d));
  p.next = d.bytesField();
  return p;
}

// ---------------------------------------------------------------- batch

/** One request of a batch. */
export class BatchItem {
  constructor(public op: u32, public payload: Uint8Array) {}
}

export function encodeBatch(e: Encoder, items: BatchItem[]): void {
  e.uvarint(<u64>items.length);
  for (let i = 0; i < items.length; i++) {
    e.uvarint(<u64>items[i].op);
    e.bytesField(items[i].payload);
  }
}

export function decodeBatch(d: Decoder): BatchItem[] {
  const items = new Array<BatchItem>(0);
  for (let n = d.count(2); n > 0 && !d.failed; n--) {
    const op = d.u32();
    items.push(new BatchItem(op, d.bytesField()));
  }
  return items;
}

/** One item's result: its status and its OK body or error message. */
export class BatchResult {
  constructor(public status: u8, public body: Uint8Array) {}
}

export function encodeBatchResults(e: Encoder, rs: BatchResult[]): void {
  e.uvarint(<u64>rs.length);
  for (let i = 0; i < rs.length; i++) {
    e.u8(rs[i].status);
    e.bytesField(rs[i].body);
  }
}

export function decodeBatchResults(d: Decoder): BatchResult[] {
  const rs = new Array<BatchResult>(0);
  for (let n = d.count(2); n > 0 && !d.failed; n--) {
    const s = d.u8();
    rs.push(new BatchResult(s, d.bytesField()));
  }
  return rs;
}

// ---------------------------------------------------------------- metadata

/** What storage_metadata returns (section 10.9). */
export class Metadata {
  abiMajor: u16 = ABI_MAJOR;
  abiMinor: u16 = ABI_MINOR;
  name: string = "";
  version: string = "";
  features: u32 = 0;
  capabilities: string[] = [];

  encode(e: Encoder): void {
    e.uvarint(<u64>this.abiMajor);
    e.uvarint(<u64>this.abiMinor);
    e.str(this.name);
    e.str(this.version);
    e.uvarint(<u64>this.features);
    e.uvarint(<u64>this.capabilities.length);
    for (let i = 0; i < this.capabilities.length; i++) e.str(this.capabilities[i]);
  }

  static decode(d: Decoder): Metadata {
    const m = new Metadata();
    m.abiMajor = d.u16();
    m.abiMinor = d.u16();
    m.name = d.str();
    m.version = d.str();
    m.features = d.u32();
    for (let n = d.count(1); n > 0 && !d.failed; n--) m.capabilities.push(d.str());
    return m;
  }
}

// ---------------------------------------------------------------- kv

/** kv ops (section 11). */
export namespace KVOp {
  export const Get: u8 = 1;
  export const Put: u8 = 2;
  export const Delete: u8 = 3;
  export const Scan: u8 = 4;
  export const Restore: u8 = 5;
}

/** The request of storagehost_kv.call. */
export class KVRequest {
  op: u8 = KVOp.Get;
  key: Uint8Array = new Uint8Array(0);
  end: Uint8Array = new Uint8Array(0);
  value: Uint8Array = new Uint8Array(0);
  revision: u64 = 0;
  expiresAt: i64 = 0;
  keepTTL: bool = false;
  condition: Condition = new Condition();
  limit: u32 = 0;

  encode(e: Encoder): void {
    e.u8(this.op);
    e.bytesField(this.key);
    if (this.op == KVOp.Put) {
      e.bytesField(this.value);
      e.time(this.expiresAt);
      e.bool(this.keepTTL);
      this.condition.encode(e);
    } else if (this.op == KVOp.Delete) {
      this.condition.encode(e);
    } else if (this.op == KVOp.Scan) {
      e.bytesField(this.end);
      e.uvarint(<u64>this.limit);
    } else if (this.op == KVOp.Restore) {
      e.bytesField(this.value);
      e.uvarint(this.revision);
      e.time(this.expiresAt);
      this.condition.encode(e);
    }
  }

  static decode(d: Decoder): KVRequest {
    const r = new KVRequest();
    r.op = d.u8();
    r.key = d.bytesField();
    if (r.op == KVOp.Get) {
    } else if (r.op == KVOp.Put) {
      r.value = d.bytesField();
      r.expiresAt = d.time();
      r.keepTTL = d.bool();
      r.condition = Condition.decode(d);
    } else if (r.op == KVOp.Delete) {
      r.condition = Condition.decode(d);
    } else if (r.op == KVOp.Scan) {
      r.end = d.bytesField();
      r.limit = d.u32();
    } else if (r.op == KVOp.Restore) {
      r.value = d.bytesField();
      r.revision = d.uvarint();
      r.expiresAt = d.time();
      r.condition = Condition.decode(d);
    } else {
      d.fail(WireError.Malformed);
    }
    return r;
  }
}

/** One kv entry; key is set in scan results only. */
export class KVEntry {
  key: Uint8Array = new Uint8Array(0);
  revision: u64 = 0;
  expiresAt: i64 = 0;
  value: Uint8Array = new Uint8Array(0);

  encode(e: Encoder, withKey: bool): void {
    if (withKey) e.bytesField(this.key);
    e.uvarint(this.revision);
    e.time(this.expiresAt);
    e.bytesField(this.value);
  }

  static decode(d: Decoder, withKey: bool): KVEntry {
    const en = new KVEntry();
    if (withKey) en.key = d.bytesField();
    en.revision = d.uvarint();
    en.expiresAt = d.time();
    en.value = d.bytesField();
    return en;
  }
}

/** The OK body of a kv scan. */
export class KVScan {
  entries: KVEntry[] = [];
  next: Uint8Array = new Uint8Array(0);

  static decode(d: Decoder): KVScan {
    const s = new KVScan();
    for (let n = d.count(4); n > 0 && !d.failed; n--) s.entries.push(KVEntry.decode(d, true));
    s.next = d.bytesField();
    return s;
  }
}

/** Why a metric is invalid beyond its identifiers, or null. */
export function checkMetricTimestamp(ts: i64): Failure | null {
  return ts == 0 ? new Failure(Status.Invalid, "metric timestamp is unset") : null;
}

/** Why an alert's severity or status is invalid, or null. */
export function checkAlertEnums(a: Alert): Failure | null {
  if (a.severity < 1 || a.severity > 3) return new Failure(Status.Invalid, "unknown alert severity " + a.severity.toString());
  if (a.status < 1 || a.status > 3) return new Failure(Status.Invalid, "unknown alert status " + a.status.toString());
  return null;
}

/** checkID as a Failure. */
export function idFailure(what: string, id: string): Failure | null {
  const m = checkID(what, id);
  return m === null ? null : new Failure(Status.Invalid, m);
}

// ---------------------------------------------------------------- restore, events

/** Record kinds, as OpRestore numbers them. */
export namespace RecordKind {
  export const Metric: u8 = 1;
  export const Alert: u8 = 2;
  export const AgentState: u8 = 3;
}

/** Restore modes: what a restore does when a live record has its key. */
export namespace RestoreMode {
  export const Fail: u8 = 1;
  export const Skip: u8 = 2;
  export const Overwrite: u8 = 3;
}

/** The body of OpRestore (ABI 1.2, section 10.10): a record of one kind,
 *  written exactly as given, and the mode. A plugin serves it with a
 *  Restorer (Plugin.restorer). */
export class Restore {
  kind: u8 = 0;
  metric: Metric | null = null;
  alert: Alert | null = null;
  state: AgentState | null = null;
  mode: u8 = 0;

  encode(e: Encoder): void {
    e.u8(this.kind);
    if (this.kind == RecordKind.Metric) this.metric!.encode(e);
    else if (this.kind == RecordKind.Alert) this.alert!.encode(e);
    else if (this.kind == RecordKind.AgentState) this.state!.encode(e);
    e.u8(this.mode);
  }

  static decode(d: Decoder): Restore {
    const r = new Restore();
    r.kind = d.u8();
    if (r.kind == RecordKind.Metric) r.metric = Metric.decode(d);
    else if (r.kind == RecordKind.Alert) r.alert = Alert.decode(d);
    else if (r.kind == RecordKind.AgentState) r.state = AgentState.decode(d);
    else {
      d.fail(WireError.Malformed);
      return r;
    }
    r.mode = d.u8();
    return r;
  }

  /** Why the restore is invalid (abi.Restore.Check), or null: a mode out
   *  of 1 to 3, a metric without timestamp, an alert with a severity or
   *  status out of range or without created_at and updated_at, an agent
   *  state with version 0 or without updated_at. IDs were checked when
   *  the request decoded. */
  check(): Failure | null {
    if (this.mode < RestoreMode.Fail || this.mode > RestoreMode.Overwrite) {
      return new Failure(Status.Invalid, "unknown restore mode " + this.mode.toString());
    }
    if (this.kind == RecordKind.Metric) return checkMetricTimestamp(this.metric!.timestamp);
    if (this.kind == RecordKind.Alert) {
      const a = this.alert!;
      const f = checkAlertEnums(a);
      if (f !== null) return f;
      if (a.createdAt == 0 || a.updatedAt == 0) {
        return new Failure(Status.Invalid, "alert " + a.id + ": a restored alert needs its created_at and updated_at");
      }
      return null;
    }
    const st = this.state!;
    if (st.version == 0) return new Failure(Status.Invalid, "agent state " + st.agentID + ": a restored version is at least 1");
    if (st.updatedAt == 0) return new Failure(Status.Invalid, "agent state " + st.agentID + ": a restored state needs its updated_at");
    return null;
  }

  /** The record's expiry (0: never). */
  expiresAt(): i64 {
    if (this.kind == RecordKind.Metric) return this.metric!.expiresAt;
    if (this.kind == RecordKind.Alert) return this.alert!.expiresAt;
    return this.state!.expiresAt;
  }

  /** The features serving the restore needs: restore, the kind's, and
   *  ttl when the record expires. */
  requires(): u32 {
    let f: u32 = Feature.Restore;
    if (this.kind == RecordKind.Metric) f |= Feature.Metrics;
    else if (this.kind == RecordKind.Alert) f |= Feature.Alerts;
    else f |= Feature.AgentStates;
    if (this.expiresAt() != 0) f |= Feature.TTL;
    return f;
  }
}

/** What OpRestore answers: whether the record was written. */
export class Restored {
  constructor(public written: bool) {}

  encode(e: Encoder): void {
    e.bool(this.written);
  }
}

/** An event of the plugin's own (section 6.5), as storagehost_events
 *  publish takes it. */
export class PluginEvent {
  kind: string = "";
  op: string = "";
  agentID: string = "";
  key: string = "";
  data: Uint8Array = new Uint8Array(0);

  encode(e: Encoder): void {
    e.str(this.kind);
    e.str(this.op);
    e.str(this.agentID);
    e.str(this.key);
    e.bytesField(this.data);
  }

  static decode(d: Decoder): PluginEvent {
    const ev = new PluginEvent();
    ev.kind = d.str();
    ev.op = d.str();
    ev.agentID = d.str();
    ev.key = d.str();
    ev.data = d.bytesField();
    return ev;
  }
}
