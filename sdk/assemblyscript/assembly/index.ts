// The storage-host AssemblyScript SDK: types and wire encoding of the
// plugin ABI 1.3 (abi/README.md), the host capabilities, and a dispatcher
// that serves the stores a plugin registers.
//
// A plugin's entry file imports from here, and re-exports the ABI exports
// from "./exports" (see README.md).

export * from "./wire";
export * from "./messages";
export * from "./host";
export * from "./plugin";
