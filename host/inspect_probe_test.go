package host_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/internal/wasmcheck/wasmgen"
)

// sleb encodes v as signed LEB128.
func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// badReserveModule is a plugin of ABI 1.0 whose metadata is well formed
// and whose storage_reserve answers a region far outside its one page of
// memory, for every size: it cannot be sent a single call.
func badReserveModule() []byte {
	g := wasmgen.U32
	name := func(s string) []byte { return append(g(uint32(len(s))), s...) }
	export := func(s string, kind, idx byte) []byte { return append(name(s), kind, idx) }
	body := func(code ...byte) []byte { return wasmgen.Body(nil, append(code, 0x0b)) }
	metadata := "\x01\x00\x07minimal\x050.1.0\x00\x00"
	return wasmgen.Module(
		wasmgen.Section(wasmgen.SecType, wasmgen.Vec(
			[]byte{0x60, 0, 1, 0x7f},             // () -> i32
			[]byte{0x60, 0, 1, 0x7e},             // () -> i64
			[]byte{0x60, 1, 0x7f, 1, 0x7f},       // (i32) -> i32
			[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7e}, // (i32, i32) -> i64
		)),
		wasmgen.Section(wasmgen.SecFunction, wasmgen.Vec(g(0), g(1), g(2), g(3))),
		wasmgen.Section(5, wasmgen.Vec([]byte{0, 1})), // one page of memory
		wasmgen.Section(wasmgen.SecExport, wasmgen.Vec(
			export("memory", 2, 0), export("storage_abi_version", 0, 0), export("storage_metadata", 0, 1),
			export("storage_reserve", 0, 2), export("storage_call", 0, 3))),
		wasmgen.Section(wasmgen.SecCode, wasmgen.Vec(
			body(append([]byte{0x41}, sleb(1<<16)...)...),                // ABI 1.0
			body(append([]byte{0x42}, sleb(int64(len(metadata)))...)...), // the metadata at 0: pointer high, length low
			body(append([]byte{0x41}, sleb(0x7fff0000)...)...),           // far outside memory
			body(append([]byte{0x42}, sleb(0)...)...),
		)),
		wasmgen.Section(11, wasmgen.Vec(append([]byte{0, 0x41, 0, 0x0b}, name(metadata)...))),
	)
}

// Inspect sends a plugin the call every instance gets first: one whose
// metadata reads well but that cannot take a request is not loadable,
// as Open finds, not "loadable: yes".
func TestInspectSendsACall(t *testing.T) {
	ctx := context.Background()
	info := host.Inspect(ctx, badReserveModule())
	require.ErrorIs(t, info.Err, host.ErrIncompatible)
	require.ErrorContains(t, info.Err, "storage_reserve returned region [2147418112, +")
	require.Equal(t, "minimal", info.Metadata.Name, "its metadata was read")
	_, err := host.Open(ctx, host.Config{WASM: badReserveModule()})
	require.ErrorContains(t, err, "storage_reserve returned region [2147418112, +")
}
