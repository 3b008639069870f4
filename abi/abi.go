// Package abi is the contract between the storage host and its plugins:
// the ABI version, the names of every import and export, the status codes,
// and the binary encoding of requests, responses and records.
//
// It has no dependencies outside the standard library and builds for the
// host and for GOOS=wasip1, so the host and the Go SDK share one encoder and
// one decoder. README.md in this directory is the language-neutral
// specification a plugin author writes against.
package abi

import "fmt"

// Version is an ABI version. Majors break compatibility; minors only add.
type Version struct {
	Major uint16
	Minor uint16
}

// Current is the ABI version this package implements.
var Current = Version{Major: 1, Minor: 9}

// String formats v as "major.minor".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Packed returns v as the i32 the storage_abi_version export returns:
// major in the high 16 bits, minor in the low 16.
func (v Version) Packed() uint32 { return uint32(v.Major)<<16 | uint32(v.Minor) }

// UnpackVersion is the inverse of Version.Packed.
func UnpackVersion(p uint32) Version { return Version{Major: uint16(p >> 16), Minor: uint16(p)} }

// CanLoad reports whether a host speaking host can load a plugin built for
// plugin: the majors must match and the plugin must not need a newer minor.
func (host Version) CanLoad(plugin Version) bool {
	return host.Major == plugin.Major && plugin.Minor <= host.Minor
}

// Names of the functions a plugin exports.
const (
	// ExportABIVersion is "storage_abi_version() -> i32": the packed ABI
	// version the plugin was built for. The host calls it first, before
	// anything else but the WASI reactor initialiser.
	ExportABIVersion = "storage_abi_version"
	// ExportMetadata is "storage_metadata() -> i64": a packed region holding
	// the encoded Metadata.
	ExportMetadata = "storage_metadata"
	// ExportReserve is "storage_reserve(size i32) -> i32": a pointer to a
	// guest-owned region of at least size bytes the host may write the next
	// request into. The region stays valid until the next storage_reserve.
	ExportReserve = "storage_reserve"
	// ExportCall is "storage_call(op i32, len i32) -> i64": handle the
	// request of len bytes at the reserved region and return a packed region
	// holding the encoded response, valid until the next export call.
	ExportCall = "storage_call"
	// ExportInitialize is the optional WASI reactor initialiser, called once
	// per instance before anything else.
	ExportInitialize = "_initialize"
	// ExportMemory is the plugin's linear memory.
	ExportMemory = "memory"
)

// PackRegion packs a guest pointer and length into the i64 that
// storage_metadata and storage_call return: pointer high, length low.
func PackRegion(ptr, length uint32) uint64 { return uint64(ptr)<<32 | uint64(length) }

// UnpackRegion is the inverse of PackRegion.
func UnpackRegion(r uint64) (ptr, length uint32) { return uint32(r >> 32), uint32(r) }

// Capability names a host module a plugin may import. A plugin lists the
// capabilities it needs in its Metadata; the host instantiates only the
// granted ones. The import module name is "storagehost_" + the capability.
type Capability string

// The host capabilities of ABI 1.0; 1.1 adds CapabilityRedis (redis.go),
// 1.2 CapabilityEvents (events.go), 1.4 CapabilityRedisScripts
// (redis.go), a grant without a module of its own, and 1.5
// CapabilityPostgres (postgres.go).
const (
	// CapabilityLog is the "storagehost_log" module:
	//   write(level i32, ptr i32, len i32)
	// writes the message at ptr (UTF-8 expected, passed on as bytes) to the
	// host log at level (Level; others log at info), rate-limited.
	CapabilityLog Capability = "log"
	// CapabilityClock is the "storagehost_clock" module:
	//   now() -> i64
	// returns the host's wall clock in Unix nanoseconds. Plugins take time
	// from here, never from WASI, so that TTLs follow the host clock.
	CapabilityClock Capability = "clock"
	// CapabilityKV is the "storagehost_kv" module: an ordered key-value store
	// kept by the host, shared by every instance of one backend, with
	// revisions and expiry.
	//   call(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
	//   result(out_ptr i32, out_cap i32) -> i32
	// call runs the KVRequest at req_ptr and returns the length of the
	// encoded response. If it fits in out_cap it was written at out_ptr;
	// otherwise the guest calls result once, right after, with out_cap at
	// least that length, to fetch and consume it. result with nothing
	// pending or too small a buffer traps.
	CapabilityKV Capability = "kv"
)

// ModulePrefix prefixes every host import module name.
const ModulePrefix = "storagehost_"

// Module returns the import module name of c.
func (c Capability) Module() string { return ModulePrefix + string(c) }

// Names of the functions inside the capability modules.
const (
	FuncLogWrite = "write"
	FuncClockNow = "now"
	FuncKVCall   = "call"
	FuncKVResult = "result"
)

// Level is the level of a log record written through CapabilityLog.
type Level int32

// Log levels, as hclog numbers them.
const (
	LevelTrace Level = 1
	LevelDebug Level = 2
	LevelInfo  Level = 3
	LevelWarn  Level = 4
	LevelError Level = 5
)
