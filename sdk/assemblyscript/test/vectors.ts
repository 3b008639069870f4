// The test module: decodes the golden vectors of abi/testdata/vectors.json
// with the SDK's decoders, renders their fields as the Go test does, and
// re-encodes them. test/run.mjs drives it.

import {
  AgentState, AgentStateQuery, Alert, AlertQuery, Condition, ConditionMode, DeleteAgentState, Decoder,
  Encoder, KVEntry, KVRequest, Labels, Matcher, Metadata, Metric, MetricKey, MetricQuery, Options,
  PutAgentState, PutAlert, PutMetric, SetAlertStatus, TTL, WireError, checkAlertEnums, checkMetricTimestamp,
  decodeAgentStatePage, decodeAlertPage, decodeBatch, decodeBatchResults, decodeMetricPage, encodeBatch,
  encodeBatchResults, PluginEvent, Restore,
} from "../assembly/index";

// ------------------------------------------------------------ rendering

function q(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

const HEX = "0123456789abcdef";

function hx(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) {
    s += HEX.charAt(b[i] >> 4) + HEX.charAt(b[i] & 15);
  }
  return q(s);
}

function u64s(v: u64): string {
  return q(v.toString());
}

function i64s(v: i64): string {
  return q(v.toString());
}

function f64hex(v: f64): string {
  const bits = reinterpret<u64>(v);
  let s = "";
  for (let i = 15; i >= 0; i--) s += HEX.charAt(<i32>((bits >> (<u64>i * 4)) & 15));
  return q(s);
}

/** An object from key/value pairs already rendered. */
function obj(kv: string[]): string {
  let s = "{";
  for (let i = 0; i < kv.length; i += 2) {
    if (i > 0) s += ",";
    s += q(kv[i]) + ":" + kv[i + 1];
  }
  return s + "}";
}

function arr(items: string[]): string {
  return "[" + items.join(",") + "]";
}

function labels(l: Labels): string {
  const kv = new Array<string>(0);
  for (let i = 0; i < l.items.length; i++) {
    kv.push(l.items[i].name);
    kv.push(hx(l.items[i].value));
  }
  return obj(kv);
}

function metric(m: Metric): string {
  return obj(["agent_id", q(m.agentID), "name", q(m.name), "value", f64hex(m.value), "timestamp", i64s(m.timestamp), "labels", labels(m.labels), "expires_at", i64s(m.expiresAt)]);
}

function alert(a: Alert): string {
  return obj([
    "id", q(a.id), "agent_id", q(a.agentID), "severity", a.severity.toString(), "status", a.status.toString(),
    "message", hx(a.message), "labels", labels(a.labels), "created_at", i64s(a.createdAt),
    "updated_at", i64s(a.updatedAt), "expires_at", i64s(a.expiresAt),
  ]);
}

function state(s: AgentState): string {
  return obj(["agent_id", q(s.agentID), "state", hx(s.state), "version", u64s(s.version), "updated_at", i64s(s.updatedAt), "expires_at", i64s(s.expiresAt)]);
}

function ttl(t: TTL): string {
  return obj(["mode", t.mode.toString(), "duration_ms", u64s(t.durationMs)]);
}

function cond(c: Condition): string {
  return obj(["mode", c.mode.toString(), "version", u64s(c.version)]);
}

function matchers(ms: Matcher[]): string {
  const out = new Array<string>(0);
  for (let i = 0; i < ms.length; i++) out.push(obj(["label", q(ms[i].label), "op", ms[i].op.toString(), "value", hx(ms[i].value)]));
  return arr(out);
}

function u8list(v: u8[]): string {
  const out = new Array<string>(0);
  for (let i = 0; i < v.length; i++) out.push(v[i].toString());
  return arr(out);
}

function entry(en: KVEntry): string {
  return obj(["key", hx(en.key), "revision", u64s(en.revision), "expires_at", i64s(en.expiresAt), "value", hx(en.value)]);
}

// ------------------------------------------------------------ one vector

/** What decoding a vector gave: its fields rendered, its re-encoding, and
 *  the check of the rules a reader applies beyond decoding. */
class Decoded {
  fields: string = "null";
  bytes: Uint8Array = new Uint8Array(0);
  invalid: bool = false;
}

function decodeAs(typ: string, d: Decoder): Decoded {
  const r = new Decoded();
  const e = new Encoder(64);
  if (typ == "u8") {
    const v = d.u8();
    r.fields = obj(["value", v.toString()]);
    e.u8(v);
  } else if (typ == "bool") {
    const v = d.bool();
    r.fields = obj(["value", v ? "true" : "false"]);
    e.bool(v);
  } else if (typ == "uvarint") {
    const v = d.uvarint();
    r.fields = obj(["value", u64s(v)]);
    e.uvarint(v);
  } else if (typ == "varint") {
    const v = d.varint();
    r.fields = obj(["value", i64s(v)]);
    e.varint(v);
  } else if (typ == "f64") {
    const v = d.f64();
    r.fields = obj(["value", f64hex(v)]);
    e.f64(v);
  } else if (typ == "bytes") {
    const v = d.bytesField();
    r.fields = obj(["value", hx(v)]);
    e.bytesField(v);
  } else if (typ == "time") {
    const v = d.time();
    r.fields = obj(["value", i64s(v)]);
    e.time(v);
  } else if (typ == "ID") {
    const v = d.id("id");
    r.fields = obj(["value", q(v)]);
    e.str(v);
    r.invalid = d.invalid !== null;
  } else if (typ == "TTL") {
    const v = TTL.decode(d);
    r.fields = ttl(v);
    v.encode(e);
    r.invalid = v.check() !== null;
  } else if (typ == "Condition") {
    const v = Condition.decode(d);
    r.fields = cond(v);
    v.encode(e);
  } else if (typ == "Metric") {
    const v = Metric.decode(d);
    r.fields = metric(v);
    v.encode(e);
    r.invalid = d.invalid !== null || checkMetricTimestamp(v.timestamp) !== null;
  } else if (typ == "MetricKey") {
    const v = MetricKey.decode(d);
    r.fields = obj(["agent_id", q(v.agentID), "name", q(v.name), "timestamp", i64s(v.timestamp)]);
    v.encode(e);
    r.invalid = d.invalid !== null || checkMetricTimestamp(v.timestamp) !== null;
  } else if (typ == "Alert") {
    const v = Alert.decode(d);
    r.fields = alert(v);
    v.encode(e);
    r.invalid = d.invalid !== null || checkAlertEnums(v) !== null;
  } else if (typ == "AgentState") {
    const v = AgentState.decode(d);
    r.fields = state(v);
    v.encode(e);
    r.invalid = d.invalid !== null;
  } else if (typ == "PutMetric") {
    const v = PutMetric.decode(d);
    r.fields = obj(["metric", metric(v.metric), "ttl", ttl(v.ttl)]);
    v.encode(e);
    r.invalid = d.invalid !== null || checkMetricTimestamp(v.metric.timestamp) !== null || v.ttl.check() !== null;
  } else if (typ == "PutAlert") {
    const v = PutAlert.decode(d);
    r.fields = obj(["alert", alert(v.alert), "ttl", ttl(v.ttl)]);
    v.encode(e);
    r.invalid = d.invalid !== null || checkAlertEnums(v.alert) !== null || v.ttl.check() !== null;
  } else if (typ == "PutAgentState") {
    const v = PutAgentState.decode(d);
    r.fields = obj(["state", state(v.state), "ttl", ttl(v.ttl), "condition", cond(v.condition)]);
    v.encode(e);
    r.invalid = d.invalid !== null || v.ttl.check() !== null;
  } else if (typ == "DeleteAgentState") {
    const v = DeleteAgentState.decode(d);
    r.fields = obj(["agent_id", q(v.agentID), "condition", cond(v.condition)]);
    v.encode(e);
    r.invalid = d.invalid !== null || v.condition.mode == ConditionMode.IfAbsent;
  } else if (typ == "SetAlertStatus") {
    const v = SetAlertStatus.decode(d);
    r.fields = obj(["id", q(v.id), "status", v.status.toString()]);
    v.encode(e);
    r.invalid = d.invalid !== null || v.status < 1 || v.status > 3;
  } else if (typ == "Options") {
    const v = Options.decode(d);
    const kv = new Array<string>(0);
    for (let i = 0; i < v.names.length; i++) {
      kv.push(v.names[i]);
      kv.push(q(v.values[i]));
    }
    r.fields = obj(kv);
    v.encode(e);
  } else if (typ == "MetricQuery") {
    const v = MetricQuery.decode(d);
    r.fields = obj([
      "agent_id", q(v.agentID), "name", q(v.name), "from", i64s(v.from), "to", i64s(v.to),
      "labels", matchers(v.labels), "limit", v.limit.toString(), "cursor", hx(v.cursor),
    ]);
    v.encode(e);
  } else if (typ == "AlertQuery") {
    const v = AlertQuery.decode(d);
    r.fields = obj([
      "agent_id", q(v.agentID), "severities", u8list(v.severities), "statuses", u8list(v.statuses),
      "labels", matchers(v.labels), "from", i64s(v.from), "to", i64s(v.to), "limit", v.limit.toString(),
      "cursor", hx(v.cursor),
    ]);
    v.encode(e);
  } else if (typ == "AgentStateQuery") {
    const v = AgentStateQuery.decode(d);
    r.fields = obj(["agent_id_prefix", q(v.agentIDPrefix), "limit", v.limit.toString(), "cursor", hx(v.cursor)]);
    v.encode(e);
  } else if (typ == "MetricPage") {
    const v = decodeMetricPage(d);
    const items = new Array<string>(0);
    for (let i = 0; i < v.items.length; i++) items.push(metric(v.items[i]));
    r.fields = obj(["items", arr(items), "next", hx(v.next)]);
    v.encode(e);
  } else if (typ == "AlertPage") {
    const v = decodeAlertPage(d);
    const items = new Array<string>(0);
    for (let i = 0; i < v.items.length; i++) items.push(alert(v.items[i]));
    r.fields = obj(["items", arr(items), "next", hx(v.next)]);
    v.encode(e);
  } else if (typ == "AgentStatePage") {
    const v = decodeAgentStatePage(d);
    const items = new Array<string>(0);
    for (let i = 0; i < v.items.length; i++) items.push(state(v.items[i]));
    r.fields = obj(["items", arr(items), "next", hx(v.next)]);
    v.encode(e);
  } else if (typ == "Batch") {
    const v = decodeBatch(d);
    const items = new Array<string>(0);
    for (let i = 0; i < v.length; i++) items.push(obj(["op", v[i].op.toString(), "payload", hx(v[i].payload)]));
    r.fields = obj(["items", arr(items)]);
    encodeBatch(e, v);
  } else if (typ == "BatchResults") {
    const v = decodeBatchResults(d);
    const items = new Array<string>(0);
    for (let i = 0; i < v.length; i++) items.push(obj(["status", v[i].status.toString(), "body", hx(v[i].body)]));
    r.fields = obj(["results", arr(items)]);
    encodeBatchResults(e, v);
  } else if (typ == "Metadata") {
    const v = Metadata.decode(d);
    const caps = new Array<string>(0);
    for (let i = 0; i < v.capabilities.length; i++) caps.push(q(v.capabilities[i]));
    r.fields = obj([
      "abi_major", v.abiMajor.toString(), "abi_minor", v.abiMinor.toString(), "name", q(v.name),
      "version", q(v.version), "features", v.features.toString(), "capabilities", arr(caps),
    ]);
    v.encode(e);
  } else if (typ == "KVRequest") {
    const v = KVRequest.decode(d);
    r.fields = obj([
      "op", v.op.toString(), "key", hx(v.key), "end", hx(v.end), "value", hx(v.value),
      "revision", u64s(v.revision), "expires_at", i64s(v.expiresAt), "keep_ttl", v.keepTTL ? "true" : "false",
      "condition", cond(v.condition), "limit", v.limit.toString(),
    ]);
    v.encode(e);
  } else if (typ == "KVEntry" || typ == "KVEntryWithKey") {
    const withKey = typ == "KVEntryWithKey";
    const v = KVEntry.decode(d, withKey);
    r.fields = entry(v);
    v.encode(e, withKey);
  } else if (typ == "Restore") {
    const v = Restore.decode(d);
    let rec = "null";
    const m = v.metric, a = v.alert, st = v.state;
    if (m !== null) rec = metric(m);
    else if (a !== null) rec = alert(a);
    else if (st !== null) rec = state(st);
    r.fields = obj(["kind", v.kind.toString(), "record", rec, "mode", v.mode.toString()]);
    if (!d.failed) v.encode(e);
  } else if (typ == "PluginEvent") {
    const v = PluginEvent.decode(d);
    r.fields = obj(["kind", q(v.kind), "op", q(v.op), "agent_id", q(v.agentID), "key", q(v.key), "data", hx(v.data)]);
    v.encode(e);
  } else {
    r.fields = "unknown type " + typ;
  }
  r.bytes = e.bytes();
  return r;
}

// ------------------------------------------------------------ exports

/** How a reader refuses input as a typ: "" (accepted), "truncated",
 *  "malformed" or "invalid". */
export function check(typ: string, input: Uint8Array): string {
  const d = new Decoder(input);
  const r = decodeAs(typ, d);
  const err = d.finish();
  if (err == WireError.Truncated) return "truncated";
  if (err == WireError.Malformed) return "malformed";
  return r.invalid ? "invalid" : "";
}

/** The fields of input decoded as a typ, as JSON. */
export function describe(typ: string, input: Uint8Array): string {
  return decodeAs(typ, new Decoder(input)).fields;
}

/** input decoded as a typ and encoded again. */
export function reencode(typ: string, input: Uint8Array): Uint8Array {
  return decodeAs(typ, new Decoder(input)).bytes;
}

/** Fails an assertion, as a plugin might: the handler the modules are
 *  built with logs the message and traps. */
export function abortForTest(): void {
  assert(false, "boom");
}
