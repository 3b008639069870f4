//go:build wasip1

package sdk

import (
	"unsafe"

	"github.com/storage-host/storage-host/abi"
)

// The guest side of the ABI. All memory handed to the host is owned here:
// reserved is where the host writes requests, response is where answers
// are encoded. Both are package variables, so the Go GC keeps them alive,
// and the GC never moves them.
var (
	reserved []byte
	response abi.Encoder
	metadata []byte
)

//lint:ignore U1000 the host calls it: staticcheck does not count go:wasmexport as a use
//go:wasmexport storage_abi_version
func exportABIVersion() int32 { return int32(abi.Current.Packed()) }

//lint:ignore U1000 the host calls it: staticcheck does not count go:wasmexport as a use
//go:wasmexport storage_metadata
func exportMetadata() int64 {
	if registered == nil {
		return 0
	}
	if metadata == nil {
		var e abi.Encoder
		registered.meta.Encode(&e)
		metadata = e.Bytes()
	}
	return int64(abi.PackRegion(ptrOf(metadata), uint32(len(metadata))))
}

var migrations []byte

//lint:ignore U1000 the host calls it: staticcheck does not count go:wasmexport as a use
//go:wasmexport storage_migrations
func exportMigrations() int64 {
	if registered == nil {
		return 0
	}
	if migrations == nil {
		var e abi.Encoder
		registered.p.Migrations.Encode(&e)
		migrations = e.Bytes()
	}
	return int64(abi.PackRegion(ptrOf(migrations), uint32(len(migrations))))
}

//lint:ignore U1000 the host calls it: staticcheck does not count go:wasmexport as a use
//go:wasmexport storage_reserve
func exportReserve(size int32) int32 {
	if size < 0 {
		return 0
	}
	if int(size) > cap(reserved) || reserved == nil {
		reserved = make([]byte, max(int(size), 4096))
	}
	return int32(ptrOf(reserved[:1]))
}

//lint:ignore U1000 the host calls it: staticcheck does not count go:wasmexport as a use
//go:wasmexport storage_call
func exportCall(op int32, n int32) int64 {
	response.Reset()
	if registered == nil {
		abi.AppendError(&response, abi.StatusInternal, "sdk: no plugin registered; call sdk.Register from init")
	} else if n < 0 || int(n) > len(reserved) {
		abi.AppendError(&response, abi.StatusInvalid, "sdk: request length outside the reserved region")
	} else {
		registered.handle(abi.Op(op), reserved[:n], &response)
	}
	b := response.Bytes()
	return int64(abi.PackRegion(ptrOf(b), uint32(len(b))))
}

func ptrOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmimport storagehost_log write
func hostLogWrite(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport storagehost_clock now
func hostClockNow() int64

//go:wasmimport storagehost_kv call
func hostKVCall(req unsafe.Pointer, reqLen int32, out unsafe.Pointer, outCap int32) int32

//go:wasmimport storagehost_kv result
func hostKVResult(out unsafe.Pointer, outCap int32) int32

//go:wasmimport storagehost_redis call
func hostRedisCall(req unsafe.Pointer, reqLen int32, out unsafe.Pointer, outCap int32) int32

//go:wasmimport storagehost_redis result
func hostRedisResult(out unsafe.Pointer, outCap int32) int32

// The linker keeps a wasmimport only when a reachable function calls it,
// so a plugin that never calls Publish does not import storagehost_events,
// as one that never uses Redis does not import storagehost_redis.
//
//go:wasmimport storagehost_events publish
func hostEventsPublish(ptr unsafe.Pointer, n int32) int32

func eventsPublish(ev []byte) int32 {
	return hostEventsPublish(unsafe.Pointer(unsafe.SliceData(ev)), int32(len(ev)))
}

//go:wasmimport storagehost_postgres call
func hostPostgresCall(req unsafe.Pointer, reqLen int32, out unsafe.Pointer, outCap int32) int32

//go:wasmimport storagehost_postgres result
func hostPostgresResult(out unsafe.Pointer, outCap int32) int32

// postgresOut receives postgres responses; it grows when one does not
// fit. One grown past maxKeptPostgresOut is replaced by the next call
// (the previous response is the client's only until then), so that one
// large result, up to the host's reply bound of an eighth of the
// instance's memory, is not held for as long as the instance lives.
var postgresOut = make([]byte, 16<<10)

const maxKeptPostgresOut = 1 << 20

func postgresCall(req []byte) []byte {
	if len(postgresOut) > maxKeptPostgresOut {
		postgresOut = make([]byte, 16<<10)
	}
	n := hostPostgresCall(unsafe.Pointer(unsafe.SliceData(req)), int32(len(req)), unsafe.Pointer(unsafe.SliceData(postgresOut)), int32(len(postgresOut)))
	if int(n) > len(postgresOut) {
		postgresOut = make([]byte, n)
		n = hostPostgresResult(unsafe.Pointer(unsafe.SliceData(postgresOut)), int32(len(postgresOut)))
	}
	return postgresOut[:n]
}

// redisOut receives redis responses; it grows when one does not fit.
var redisOut = make([]byte, 16<<10)

func redisCall(req []byte) []byte {
	n := hostRedisCall(unsafe.Pointer(unsafe.SliceData(req)), int32(len(req)), unsafe.Pointer(unsafe.SliceData(redisOut)), int32(len(redisOut)))
	if int(n) > len(redisOut) {
		redisOut = make([]byte, n)
		n = hostRedisResult(unsafe.Pointer(unsafe.SliceData(redisOut)), int32(len(redisOut)))
	}
	return redisOut[:n]
}

func logWrite(level abi.Level, msg string) {
	if len(msg) == 0 {
		return
	}
	hostLogWrite(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

func clockNow() int64 { return hostClockNow() }

// kvOut receives kv responses; it grows when a response does not fit.
var kvOut = make([]byte, 16<<10)

func kvCall(req []byte) []byte {
	n := hostKVCall(unsafe.Pointer(unsafe.SliceData(req)), int32(len(req)), unsafe.Pointer(unsafe.SliceData(kvOut)), int32(len(kvOut)))
	if int(n) > len(kvOut) {
		kvOut = make([]byte, n)
		n = hostKVResult(unsafe.Pointer(unsafe.SliceData(kvOut)), int32(len(kvOut)))
	}
	return kvOut[:n]
}
