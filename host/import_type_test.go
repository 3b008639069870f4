package host_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// An import of a capability's function with another type than the host's
// is refused saying both types, as the ABI's text writes them, and where
// the ABI gives them.
func TestImportOfTheWrongTypeNamesBoth(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x09\x01\x60\x04\x7f\x7f\x7f\x7f\x01\x7e" + // type 0: (i32, i32, i32, i32) -> i64
		"\x02\x17\x01\x0estoragehost_kv\x04call\x00\x00" + // import storagehost_kv.call, type 0
		"\x05\x03\x01\x00\x01" + // one memory of a page
		"\x07\x0a\x01\x06memory\x02\x00") // exported
	_, err := host.Open(context.Background(), host.Config{WASM: wasm})
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, "imports storagehost_kv.call with type (i32, i32, i32, i32) -> i64; the host's storagehost_kv.call has type (i32, i32, i32, i32) -> i32 (abi/README.md, section 6)")
}
