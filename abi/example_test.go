package abi_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// exampleField is one line of an annotated dump: read consumes the field
// from the decoder and describes the decoded value; prefixed splits a
// length-prefixed field into its length and its content.
type exampleField struct {
	read     func(d *abi.Decoder) string
	prefixed bool
}

// annotate decodes msg field by field and prints, for each field, the
// bytes the real decoder consumed and what it decoded them to.
func annotate(b *strings.Builder, msg []byte, fields []exampleField) {
	d := abi.NewDecoder(msg)
	off := 0
	for _, f := range fields {
		desc := f.read(d)
		end := len(msg) - d.Len()
		chunk := msg[off:end]
		if f.prefixed {
			n, k := binary.Uvarint(chunk)
			fmt.Fprintf(b, "%-27s length %d\n", spacedHex(chunk[:k]), n)
			chunk = chunk[k:]
		}
		fmt.Fprintf(b, "%-27s %s\n", spacedHex(chunk), desc)
		off = end
	}
	if err := d.Finish(); err != nil {
		panic(err)
	}
}

func spacedHex(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(s, " ")
}

func describeTime(t time.Time) string {
	if t.IsZero() {
		return "0 = unset"
	}
	return fmt.Sprintf("%d ns = %s", t.UnixNano(), t.Format(time.RFC3339))
}

// workedExample renders the worked example of README.md: an OpPutAgentState
// request and a plausible OK response, byte by byte.
func workedExample() string {
	req := abi.PutAgentState{
		State:     abi.AgentState{AgentID: "a1", State: []byte(`{"x":1}`)},
		TTL:       abi.TTL{Mode: abi.TTLDefault},
		Condition: abi.Condition{Mode: abi.IfAbsent},
	}
	var e abi.Encoder
	req.Encode(&e)
	reqBytes := append([]byte(nil), e.Bytes()...)

	// The backend was configured with agent_state_ttl_seconds=3600, so the
	// default TTL puts expires_at one hour after updated_at.
	updated := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	resp := abi.AgentState{
		AgentID:   "a1",
		State:     []byte(`{"x":1}`),
		Version:   7,
		UpdatedAt: updated,
		ExpiresAt: updated.Add(time.Hour),
	}
	e.Reset()
	e.U8(uint8(abi.StatusOK))
	resp.Encode(&e)
	respBytes := append([]byte(nil), e.Bytes()...)

	var b strings.Builder
	fmt.Fprintf(&b, "storage_call(op=%d, len=%d)\n", abi.OpPutAgentState, len(reqBytes))
	fmt.Fprintf(&b, "request:  %x\n", reqBytes)
	annotate(&b, reqBytes, []exampleField{
		{prefixed: true, read: func(d *abi.Decoder) string { return fmt.Sprintf("state.agent_id %q", d.String()) }},
		{prefixed: true, read: func(d *abi.Decoder) string { return "state.state " + string(d.BytesField()) }},
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("state.version %d (set by the backend)", d.Uvarint()) }},
		{read: func(d *abi.Decoder) string { return "state.updated_at " + describeTime(d.Time()) }},
		{read: func(d *abi.Decoder) string { return "state.expires_at " + describeTime(d.Time()) }},
		{read: func(d *abi.Decoder) string {
			var t abi.TTL
			t.Decode(d)
			return fmt.Sprintf("ttl.mode %d = TTLDefault", t.Mode)
		}},
		{read: func(d *abi.Decoder) string {
			var c abi.Condition
			c.Decode(d)
			return fmt.Sprintf("condition.mode %d = IfAbsent", c.Mode)
		}},
	})
	fmt.Fprintf(&b, "response: %x\n", respBytes)
	annotate(&b, respBytes, []exampleField{
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("status %d = %s", d.U8(), abi.StatusOK) }},
		{prefixed: true, read: func(d *abi.Decoder) string { return fmt.Sprintf("agent_id %q", d.String()) }},
		{prefixed: true, read: func(d *abi.Decoder) string { return "state " + string(d.BytesField()) }},
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("version %d", d.Uvarint()) }},
		{read: func(d *abi.Decoder) string { return "updated_at " + describeTime(d.Time()) }},
		{read: func(d *abi.Decoder) string { return "expires_at " + describeTime(d.Time()) }},
	})
	return b.String()
}

// The worked example of README.md. If this output changes, the README
// must change with it (TestREADMEWorkedExample checks that).
func Example_putAgentState() {
	fmt.Print(workedExample())
	// Output:
	// storage_call(op=30, len=16)
	// request:  026131077b2278223a317d0000000002
	// 02                          length 2
	// 61 31                       state.agent_id "a1"
	// 07                          length 7
	// 7b 22 78 22 3a 31 7d        state.state {"x":1}
	// 00                          state.version 0 (set by the backend)
	// 00                          state.updated_at 0 = unset
	// 00                          state.expires_at 0 = unset
	// 00                          ttl.mode 0 = TTLDefault
	// 02                          condition.mode 2 = IfAbsent
	// response: 00026131077b2278223a317d078080bce9d7daf4c430808081f59dacf6c430
	// 00                          status 0 = ok
	// 02                          length 2
	// 61 31                       agent_id "a1"
	// 07                          length 7
	// 7b 22 78 22 3a 31 7d        state {"x":1}
	// 07                          version 7
	// 80 80 bc e9 d7 da f4 c4 30  updated_at 1748779200000000000 ns = 2025-06-01T12:00:00Z
	// 80 80 81 f5 9d ac f6 c4 30  expires_at 1748782800000000000 ns = 2025-06-01T13:00:00Z
}

// TestREADMEWorkedExample keeps the bytes printed in README.md equal to
// what the encoders produce.
func TestREADMEWorkedExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), workedExample(),
		"README.md must contain the output of Example_putAgentState verbatim")
}

// TestREADMEMinimalPlugin keeps the WAT listing in README.md equal to
// testdata/minimal.wat, the file minimal.wasm is built from.
func TestREADMEMinimalPlugin(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	wat, err := os.ReadFile("testdata/minimal.wat")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```wat\n"+string(wat)+"```\n")

	// The metadata in its data segment is what the encoder writes. The
	// minimal plugin is built for ABI 1.0, which the current host loads.
	v10 := abi.Version{Major: 1, Minor: 0}
	assert.True(t, abi.Current.CanLoad(v10), "a %s host must load the 1.0 minimal plugin", abi.Current)
	want := encoded(func(e *abi.Encoder) {
		(&abi.Metadata{ABI: v10, Name: "minimal", Version: "0.1.0"}).Encode(e)
	})
	assert.Len(t, want, 18, "storage_metadata returns 18 bytes")
	assert.Contains(t, string(wat), `(data (i32.const 0) "\01\00\07minimal\050.1.0\00\00")`)
	assert.Equal(t, []byte("\x01\x00\x07minimal\x050.1.0\x00\x00"), want)
	assert.Contains(t, string(wat), fmt.Sprintf("(i32.const 0x%04x_%04x))", v10.Packed()>>16, v10.Packed()&0xffff),
		"storage_abi_version returns the packed 1.0")

	// The compiled module is committed next to its source.
	wasm, err := os.ReadFile("testdata/minimal.wasm")
	require.NoError(t, err)
	assert.Equal(t, []byte("\x00asm\x01\x00\x00\x00"), wasm[:8])
}

// TestREADMEVersion keeps the version README.md documents equal to
// abi.Current, in the title, the handshake section and the changelog.
func TestREADMEVersion(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	cur := abi.Current
	for _, want := range []string{
		"# storage-host plugin ABI " + cur.String() + "\n",
		"document is version **" + cur.String() + "**.",
		fmt.Sprintf("ABI %s → 0x%08x = %d", cur, cur.Packed(), cur.Packed()),
		fmt.Sprintf("ABI version mismatch: host speaks %s, plugin needs", cur),
		"- **" + cur.String() + "**: ",
		"abi_minor     uvarint   u16; the plugin's ABI minor (" + fmt.Sprint(cur.Minor) + " for ABI " + cur.String(),
	} {
		assert.True(t, strings.Contains(readme, want), "README.md must contain %q", want)
	}
	assert.True(t, strings.HasSuffix(readme, "- **1.0**: the first version.\n"), "the changelog ends README.md")

	// The handshake examples still show 1.0 where they are about a 1.0
	// plugin, and the rule lets the current host load it.
	v10 := abi.Version{Major: 1, Minor: 0}
	assert.Contains(t, readme, fmt.Sprintf("ABI %s → 0x%08x = %d", v10, v10.Packed(), v10.Packed()))
	assert.True(t, cur.CanLoad(v10))
}

// TestREADMECapabilities keeps the capability table of README.md equal to
// the capabilities the package defines.
func TestREADMECapabilities(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, c := range []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV, abi.CapabilityRedis, abi.CapabilityEvents, abi.CapabilityPostgres} {
		row := fmt.Sprintf("| `%s` | `%s` | ", c, c.Module())
		assert.True(t, strings.Contains(readme, row), "README.md must contain the row %q", row)
	}
	assert.True(t, strings.Contains(readme, `count × string ("log", "clock", "kv", "redis", "events", "redis_scripts", "postgres")`))
	assert.True(t, strings.Contains(readme, fmt.Sprintf("| `%s` | none: a grant, never imported | ", abi.CapabilityRedisScripts)))
	assert.True(t, strings.Contains(readme, "\n### 6.4 "+abi.CapabilityRedis.Module()+"\n"), "section 6.4")
	assert.True(t, strings.Contains(readme, "\n### 6.5 "+abi.CapabilityEvents.Module()+"\n"), "section 6.5")
	assert.True(t, strings.Contains(readme, "\n### 6.6 "+abi.CapabilityPostgres.Module()+"\n"), "section 6.6")
	assert.True(t, strings.Contains(readme, "\n"+abi.ExportMigrations+"() -> i64\n"), "the migrations export")
	for _, sig := range []string{
		abi.FuncRedisCall + "(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32",
		abi.FuncRedisResult + "(out_ptr i32, out_cap i32) -> i32",
		abi.FuncEventsPublish + "(ptr i32, len i32) -> i32",
	} {
		assert.True(t, strings.Contains(readme, sig), "README.md must contain %q", sig)
	}
	assert.True(t, strings.Contains(readme, fmt.Sprintf("1 to %d bytes", abi.MaxEventNameLength)), "event name length")
	assert.True(t, strings.Contains(readme, fmt.Sprintf("at most %d %03d bytes", abi.MaxEventData/1000, abi.MaxEventData%1000)), "event data limit")
}

// TestREADMEFeaturesAndOps keeps the feature table and the op table of
// README.md equal to the features and op numbers the package defines.
func TestREADMEFeaturesAndOps(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	for bit := uint(0); bit < 32; bit++ {
		f := abi.Feature(1) << bit
		names := f.Names()
		if len(names) == 0 {
			continue
		}
		row := fmt.Sprintf("| %d | `0x%02x` | `%s` | ", bit, uint32(f), names[0])
		assert.True(t, strings.Contains(readme, row), "README.md must contain the row %q", row)
	}
	for name, op := range map[string]abi.Op{
		"OpPing": abi.OpPing, "OpConfigure": abi.OpConfigure,
		"OpPutMetric": abi.OpPutMetric, "OpQueryMetrics": abi.OpQueryMetrics,
		"OpSetAlertStatus": abi.OpSetAlertStatus, "OpQueryAgentStates": abi.OpQueryAgentStates,
		"OpBatch": abi.OpBatch, "OpRestore": abi.OpRestore,
	} {
		row := fmt.Sprintf("| `%s` | %d | ", name, op)
		assert.True(t, strings.Contains(readme, row), "README.md must contain the row %q", row)
	}
	assert.True(t, strings.Contains(readme, fmt.Sprintf("1 get · 2 put · 3 delete · 4 scan · %d restore", abi.KVRestore)))
}

// TestREADMEMetadataExample checks the metadata bytes shown in README.md.
func TestREADMEMetadataExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	msg := encoded(func(e *abi.Encoder) {
		(&abi.Metadata{
			ABI: abi.Current, Name: "memory", Version: "0.1.0",
			Features: abi.FeatureAgentStates, Capabilities: []abi.Capability{abi.CapabilityClock},
		}).Encode(e)
	})
	require.Contains(t, string(readme), "```\n"+spacedHex(msg)+"\n```\n")

	// "The same plugin built for ABI 1.0 differs only in its second byte."
	msg10 := encoded(func(e *abi.Encoder) {
		(&abi.Metadata{
			ABI: abi.Version{Major: 1, Minor: 0}, Name: "memory", Version: "0.1.0",
			Features: abi.FeatureAgentStates, Capabilities: []abi.Capability{abi.CapabilityClock},
		}).Encode(e)
	})
	require.Len(t, msg10, len(msg)-3, "1.0 has no kv_reads, redis_reads nor pg_reads count")
	assert.Equal(t, byte(0), msg10[1])
	assert.Equal(t, msg[:1], msg10[:1])
	assert.Equal(t, msg[2:len(msg)-3], msg10[2:])
	assert.Equal(t, []byte{0, 0, 0}, msg[len(msg)-3:], "no kv reads, redis reads nor pg reads")

	// "Declaring its agent states a kv read at prefix s\0 would end it
	// with 01 03 02 73 00 00 00 instead of 00 00 00."
	withReads := encoded(func(e *abi.Encoder) {
		(&abi.Metadata{
			ABI: abi.Current, Name: "memory", Version: "0.1.0",
			Features: abi.FeatureAgentStates, Capabilities: []abi.Capability{abi.CapabilityClock},
			KVReads: []abi.KVRead{{Kind: abi.KindAgentState, Prefix: []byte("s\x00")}},
		}).Encode(e)
	})
	assert.Equal(t, append(msg[:len(msg)-3:len(msg)-3], 0x01, 0x03, 0x02, 0x73, 0x00, 0x00, 0x00), withReads)
	require.Contains(t, string(readme), "would end it with `01 03 02 73 00 00 00` instead of `00 00 00`")
	require.Contains(t, string(readme), "need `kv` among its capabilities")
}
