// The ABI exports (abi/README.md, section 4). A plugin's entry file
// re-exports them:
//
//   export * from "@storage-host/sdk-assemblyscript/assembly/exports";
//
// Memory (section 5): the request region is a buffer kept in a global
// until the next storage_reserve asks for more; the response is encoded
// into a global buffer that is only reset by the next storage_call, and the
// metadata is encoded once and kept. The collector never moves objects and
// never frees what a global references, so each region stays valid for as
// long as the ABI requires.

import { Encoder } from "./wire";
import { ABI_MAJOR, ABI_MINOR, Status } from "./messages";
import { registered } from "./plugin";

let reserved = new Uint8Array(4096);
const response = new Encoder(4096);
let metadata: Uint8Array | null = null;

function packRegion(ptr: usize, len: i32): u64 {
  return (<u64>ptr << 32) | <u64>(<u32>len);
}

export function storage_abi_version(): u32 {
  return (<u32>ABI_MAJOR << 16) | <u32>ABI_MINOR;
}

export function storage_metadata(): u64 {
  const d = registered();
  if (d === null) return 0;
  let m = metadata;
  if (m === null) {
    const e = new Encoder(64);
    d.meta.encode(e);
    m = e.bytes();
    metadata = m;
  }
  return packRegion(m.dataStart, m.length);
}

export function storage_reserve(size: u32): usize {
  if (size > <u32>reserved.length) {
    // Beyond what a Uint8Array holds (1 GiB), or memory that cannot grow,
    // aborts: the instance traps, as section 4 requires.
    reserved = new Uint8Array(<i32>size);
  }
  return reserved.dataStart;
}

export function storage_call(op: u32, len: u32): u64 {
  response.reset();
  const d = registered();
  if (d === null) {
    response.u8(<u8>Status.Internal);
    response.text("sdk: no plugin registered; call register from the entry file");
  } else if (len > <u32>reserved.length) {
    response.u8(<u8>Status.Invalid);
    response.text("sdk: request length outside the reserved region");
  } else {
    // A copy: decoded fields never alias the region the host writes into.
    d.handle(op, reserved.slice(0, <i32>len), response);
  }
  return packRegion(response.dataStart, response.len);
}




