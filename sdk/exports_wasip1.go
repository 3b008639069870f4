//go:build wasip1

package sdk

import (
	"runtime"
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
	if int(n)+len(b) >= yieldAfter {
		runtime.Gosched()
	}
	return int64(abi.PackRegion(ptrOf(b), uint32(len(b))))
}

// yieldAfter is the size of a call, its request and response in bytes,
// past which the call yields to Go's scheduler before it answers. The
// scheduler runs only while a call does, and the garbage collector's
// worker is one of its goroutines: without a yield, a collection's
// marking is left to the allocations of calls, one at a time, and its
// write barriers slow every call until they have done it (a fifth of
// the guest's time in a Redis bulk put of 100, 1.6 % with the yield). A
// yield costs about a microsecond, so small calls, which leave the
// collector little to do, make none. A plugin's own goroutines run in
// the yield too, on the call's time and budgets.
const yieldAfter = 4 << 10

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

// inbox receives one capability's responses (a host call writes them
// into it): it grows when a response does not fit, and one grown past
// maxKeptInbox is replaced at the next call, so that one large response,
// up to the host's reply bound of an eighth of the instance's memory, is
// not held for as long as the instance lives. A response is the caller's
// until the next call through the same inbox.
type inbox []byte

const maxKeptInbox = 1 << 20

// call sends req through hostCall and returns the response, fetching it
// with hostResult when it did not fit.
func (in *inbox) call(req []byte, hostCall func(req unsafe.Pointer, reqLen int32, out unsafe.Pointer, outCap int32) int32, hostResult func(out unsafe.Pointer, outCap int32) int32) []byte {
	if len(*in) == 0 || len(*in) > maxKeptInbox {
		*in = make([]byte, 16<<10)
	}
	n := hostCall(unsafe.Pointer(unsafe.SliceData(req)), int32(len(req)), unsafe.Pointer(unsafe.SliceData(*in)), int32(len(*in)))
	if int(n) > len(*in) {
		*in = make([]byte, n)
		n = hostResult(unsafe.Pointer(unsafe.SliceData(*in)), int32(len(*in)))
	}
	return (*in)[:n]
}

var postgresIn, redisIn, kvIn inbox

func postgresCall(req []byte) []byte {
	return postgresIn.call(req, hostPostgresCall, hostPostgresResult)
}

func redisCall(req []byte) []byte { return redisIn.call(req, hostRedisCall, hostRedisResult) }

func kvCall(req []byte) []byte { return kvIn.call(req, hostKVCall, hostKVResult) }

func logWrite(level abi.Level, msg string) {
	if len(msg) == 0 {
		return
	}
	hostLogWrite(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

func clockNow() int64 { return hostClockNow() }
