package host_test

import (
	"context"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// debugSections returns the custom sections .debug_abbrev and .debug_info
// of one DWARF 4 compile unit holding dies children of one byte each: a
// module of that size whose every DIE a debug-info lookup visits.
func debugSections(dies int) []byte {
	custom := func(name string, payload []byte) []byte {
		body := binary.AppendUvarint(nil, uint64(len(name)))
		body = append(append(body, name...), payload...)
		return append(binary.AppendUvarint([]byte{0}, uint64(len(body))), body...)
	}
	// Abbreviation 1: a compile unit with children; 2: a base type without.
	abbrev := []byte{1, 0x11, 1, 0, 0, 2, 0x24, 0, 0, 0, 0}
	unit := binary.LittleEndian.AppendUint16(nil, 4) // version
	unit = binary.LittleEndian.AppendUint32(unit, 0) // abbreviations' offset
	unit = append(unit, 4, 1)                        // address size, the unit's DIE
	for range dies {
		unit = append(unit, 2)
	}
	unit = append(unit, 0) // the end of its children
	info := append(binary.LittleEndian.AppendUint32(nil, uint32(len(unit))), unit...)
	return append(custom(".debug_abbrev", abbrev), custom(".debug_info", info)...)
}

// An untrusted module's DWARF sections are not read: wazero looked up the
// source line of each frame of a trap's stack trace (up to 30) by walking
// every DIE of .debug_info, holding a lock of the module and checking no
// deadline, so that one call of a plugin trapping 40 calls deep, with 60
// MB of one-byte DIEs, answered after 169 s under a 5 s call timeout, and
// the backend's other calls waited behind it.
func TestHostileDebugSections(t *testing.T) {
	wasm, err := os.ReadFile(hostilePath("recursion"))
	require.NoError(t, err)
	wasm = append(wasm, debugSections(4<<20)...)
	limits := hostileLimits
	limits.CallTimeout = 2 * time.Second
	var log foreignLog
	st, err := host.Open(context.Background(), host.Config{WASM: wasm, Instances: 1, Limits: limits},
		host.WithCompilationCache(""), host.WithLogger(log.logger()))
	require.NoError(t, err)
	defer st.Close(context.Background())
	for range 2 {
		start := time.Now()
		err = st.DeleteAgentState(context.Background(), "a")
		require.ErrorIs(t, err, host.ErrInternal)
		require.ErrorContains(t, err, "unreachable")
		require.Less(t, time.Since(start), 2*limits.CallTimeout, "the trap's answer waited for its debug information")
	}
}
