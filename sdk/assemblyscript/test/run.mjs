// Checks the SDK's decoders and encoders against the golden vectors the Go
// encoders made (abi/testdata/vectors.json): every valid vector decodes
// whole, to the fields the Go decoder read, and encodes back to the same
// bytes (its canonical form when it is padded); every invalid vector is
// refused the way the Go reader refuses it. Then: the module imports only
// storagehost_ modules, and its abort handler logs and traps.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { instantiate } from "../build/test.js";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const vectors = JSON.parse(await readFile(here("../../../abi/testdata/vectors.json"), "utf8"));
const module = await WebAssembly.compile(await readFile(here("../build/test.wasm")));
const logs = [];
const sdk = await instantiate(module, {
  storagehost_log: {
    write(level, ptr, len) {
      logs.push(new TextDecoder().decode(new Uint8Array(sdk.memory.buffer, ptr, len)));
    },
  },
});

const hex = (b) => Buffer.from(b).toString("hex");
const bytes = (h) => new Uint8Array(Buffer.from(h, "hex"));
// Compares JSON values with object keys in any order.
const canon = (v) =>
  Array.isArray(v) ? v.map(canon)
  : v !== null && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]))
  : v;
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));

let failed = 0;
let passed = 0;
function fail(v, msg) {
  failed++;
  console.log(`FAIL ${v.type} "${v.name}": ${msg}`);
}

for (const v of vectors.valid) {
  const input = bytes(v.hex);
  let how;
  try {
    how = sdk.check(v.type, input);
  } catch (e) {
    fail(v, `trapped: ${e.message} ${logs.join("; ")}`);
    continue;
  }
  if (how !== "") { fail(v, `refused as ${how}`); continue; }
  const fields = JSON.parse(sdk.describe(v.type, input));
  if (!same(fields, v.fields)) { fail(v, `fields\n  got  ${JSON.stringify(canon(fields))}\n  want ${JSON.stringify(canon(v.fields))}`); continue; }
  const out = hex(sdk.reencode(v.type, input));
  const want = v.canonical ?? v.hex;
  if (out !== want) { fail(v, `re-encoded\n  got  ${out}\n  want ${want}`); continue; }
  passed++;
}
for (const v of vectors.invalid) {
  let how;
  try {
    how = sdk.check(v.type, bytes(v.hex));
  } catch (e) {
    fail(v, `trapped: ${e.message} ${logs.join("; ")}`);
    continue;
  }
  if (how !== v.error) { fail(v, `refused as "${how}", want "${v.error}"`); continue; }
  passed++;
}
// The abort handler: no env.abort import, a log line, then a trap.
const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
if (imports.some((i) => !i.startsWith("storagehost_"))) {
  fail({ type: "module", name: "imports" }, `imports ${imports.join(", ")}; want only storagehost_ modules`);
} else passed++;
logs.length = 0;
try {
  sdk.abortForTest();
  fail({ type: "abort", name: "assert(false)" }, "returned; want a trap");
} catch (e) {
  if (!(e instanceof WebAssembly.RuntimeError) || !/^plugin aborted: boom at test\/vectors\.ts:\d+:\d+$/.test(logs.join("|"))) {
    fail({ type: "abort", name: "assert(false)" }, `threw ${e}; logged ${JSON.stringify(logs)}`);
  } else passed++;
}

console.log(`${failed ? "FAILED" : "ok"}: ${passed} checks passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
