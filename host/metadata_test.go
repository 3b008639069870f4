package host_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// metadataModule assembles a minimal plugin: storage_abi_version returns
// version, storage_metadata returns meta as is, storage_call answers OK
// with an empty body to everything. Only the metadata differs between
// the cases below, so each refusal is for the rule it names.
func metadataModule(version uint32, meta []byte) []byte {
	var b []byte
	uleb := func(b []byte, v uint64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	sleb := func(b []byte, v int64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	name := func(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }
	section := func(id byte, body []byte) {
		b = append(b, id)
		b = uleb(b, uint64(len(body)))
		b = append(b, body...)
	}
	const i32, i64 = 0x7f, 0x7e
	b = append(b, 0, 'a', 's', 'm', 1, 0, 0, 0)
	// Types: () -> i32, () -> i64, (i32) -> i32, (i32 i32) -> i64.
	section(1, []byte{4,
		0x60, 0, 1, i32,
		0x60, 0, 1, i64,
		0x60, 1, i32, 1, i32,
		0x60, 2, i32, i32, 1, i64})
	section(3, []byte{4, 0, 1, 2, 3})
	section(5, []byte{1, 0, 1 + byte(len(meta)>>16)}) // one memory, of pages enough for meta
	var ex []byte
	ex = append(ex, 5)
	ex = append(name(ex, "memory"), 2, 0)
	ex = append(name(ex, abi.ExportABIVersion), 0, 0)
	ex = append(name(ex, abi.ExportMetadata), 0, 1)
	ex = append(name(ex, abi.ExportReserve), 0, 2)
	ex = append(name(ex, abi.ExportCall), 0, 3)
	section(7, ex)
	const metaAt, okAt = 0, 4096
	body := func(expr ...byte) []byte {
		f := append([]byte{0}, expr...) // no locals
		f = append(f, 0x0b)
		return append(uleb(nil, uint64(len(f))), f...)
	}
	code := []byte{4}
	code = append(code, body(sleb([]byte{0x41}, int64(int32(version)))...)...)
	code = append(code, body(sleb([]byte{0x42}, int64(metaAt)<<32|int64(len(meta)))...)...)
	code = append(code, body(sleb([]byte{0x41}, 8192)...)...)
	code = append(code, body(sleb([]byte{0x42}, int64(okAt)<<32|1)...)...)
	section(10, code)
	data := []byte{2}
	data = append(sleb(append(data, 0, 0x41), metaAt), 0x0b)
	data = append(uleb(data, uint64(len(meta))), meta...)
	data = append(sleb(append(data, 0, 0x41), okAt), 0x0b)
	data = append(uleb(data, 1), 0)
	section(11, data)
	return b
}

func encodeMetadata(m abi.Metadata) []byte {
	var e abi.Encoder
	m.Encode(&e)
	return e.Bytes()
}

// TestMetadataMUSTs: every rule of abi/README.md on a plugin's metadata
// that can be checked at load is, with ErrIncompatible naming it.
func TestMetadataMUSTs(t *testing.T) {
	v10, v11, v12 := abi.Version{Major: 1}, abi.Version{Major: 1, Minor: 1}, abi.Version{Major: 1, Minor: 2}
	v13, v14 := abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 4}
	v15, v16 := abi.Version{Major: 1, Minor: 5}, abi.Version{Major: 1, Minor: 6}
	v17, v18 := abi.Version{Major: 1, Minor: 7}, abi.Version{Major: 1, Minor: 8}
	v19 := abi.Version{Major: 1, Minor: 9}
	good := abi.Metadata{ABI: v12, Name: "fine", Version: "1.0.0", Features: abi.FeatureAgentStates}
	with := func(f func(*abi.Metadata)) []byte {
		m := good
		f(&m)
		return encodeMetadata(m)
	}
	// kvReads is good's metadata on ABI 1.8 with the kv capability and
	// reads.
	kv := []abi.Capability{abi.CapabilityKV}
	cutShort := func(b []byte, n int) []byte { return b[:len(b)-n] }
	kvReads := func(reads ...abi.KVRead) []byte {
		return with(func(m *abi.Metadata) { m.ABI, m.Capabilities, m.KVReads = v18, kv, reads })
	}
	// redisReads is good's metadata on ABI 1.9 with the redis and kv
	// capabilities and reads.
	redisKV := []abi.Capability{abi.CapabilityRedis, abi.CapabilityKV}
	redisReads := func(reads ...abi.RedisRead) []byte {
		return with(func(m *abi.Metadata) { m.ABI, m.Capabilities, m.RedisReads = v19, redisKV, reads })
	}
	state := func(prefix, suffix, guard string) abi.RedisRead {
		return abi.RedisRead{Kind: abi.KindAgentState, KeyPrefix: []byte(prefix), KeySuffix: []byte(suffix), Guard: []byte(guard)}
	}
	pg := []abi.Capability{abi.CapabilityPostgres}
	pgReads := func(reads ...abi.PGRead) []byte {
		return with(func(m *abi.Metadata) { m.ABI, m.Capabilities, m.PGReads = v19, pg, reads })
	}
	getState := abi.PGRead{Kind: abi.KindAgentState, SQL: "SELECT state, version, updated_at, expires_at FROM s WHERE id = $1"}
	// rawFeatures is good's metadata with the features field as given.
	rawFeatures := func(f uint32) []byte {
		var e abi.Encoder
		e.Uvarint(1)
		e.Uvarint(2)
		e.String(good.Name)
		e.String(good.Version)
		e.Uvarint(uint64(f))
		e.Uvarint(0)
		return e.Bytes()
	}
	cases := []struct {
		name    string
		version abi.Version
		meta    []byte
		caps    []abi.Capability
		want    string // "" loads
	}{
		{"consistent", v12, encodeMetadata(good), nil, ""},
		{"consistent 1.0", v10, with(func(m *abi.Metadata) { m.ABI = v10 }), nil, ""},
		{"metadata older than the export", v12, with(func(m *abi.Metadata) { m.ABI = v10 }), nil, "ABI version 1.0 differs from the 1.2 storage_abi_version returns"},
		{"metadata newer than the export", v11, encodeMetadata(good), nil, "ABI version 1.2 differs from the 1.1"},
		{"no name", v12, with(func(m *abi.Metadata) { m.Name = "" }), nil, `name "" is not`},
		{"name outside the grammar", v12, with(func(m *abi.Metadata) { m.Name = "Fine Plugin" }), nil, `name "Fine Plugin" is not 1 to 64 bytes of [a-z0-9_-]`},
		{"name with a control byte", v12, with(func(m *abi.Metadata) { m.Name = "fine\x1b[2J" }), nil, "is not 1 to 64 bytes"},
		{"name too long", v12, with(func(m *abi.Metadata) { m.Name = string(make([]byte, 65)) }), nil, "is not 1 to 64 bytes"},
		{"no version", v12, with(func(m *abi.Metadata) { m.Version = "" }), nil, `version "" is not`},
		{"version with a newline", v12, with(func(m *abi.Metadata) { m.Version = "1.0\nlevel=error" }), nil, "version"},
		{"undefined feature bit", v12, rawFeatures(uint32(abi.FeatureAgentStates) | 1<<10), nil, "features 0x400 set bits ABI 1.2 does not define"},
		{"restore on 1.1", v11, with(func(m *abi.Metadata) { m.ABI = v11; m.Features |= abi.FeatureRestore }), nil, "feature restore needs ABI 1.2, but the plugin declares ABI 1.1"},
		{"tick on 1.2", v12, with(func(m *abi.Metadata) { m.Features |= abi.FeatureTick }), nil, "feature tick needs ABI 1.3, but the plugin declares ABI 1.2"},
		{"write_events on 1.5", v15, with(func(m *abi.Metadata) {
			m.ABI = v15
			m.Features |= abi.FeatureWriteEvents
			m.Capabilities = []abi.Capability{abi.CapabilityPostgres}
		}), nil, "feature write_events needs ABI 1.6, but the plugin declares ABI 1.5"},
		{"write_events without postgres", v16, with(func(m *abi.Metadata) { m.ABI = v16; m.Features |= abi.FeatureWriteEvents }), nil, "feature write_events needs the postgres capability"},
		{"redis on 1.0", v10, with(func(m *abi.Metadata) { m.ABI = v10; m.Capabilities = []abi.Capability{abi.CapabilityRedis} }), nil, "capability redis needs ABI 1.1, but the plugin declares ABI 1.0"},
		{"redis_scripts on 1.3", v13, with(func(m *abi.Metadata) { m.ABI = v13; m.Capabilities = []abi.Capability{abi.CapabilityRedisScripts} }), nil, "capability redis_scripts needs ABI 1.4, but the plugin declares ABI 1.3"},
		{"postgres on 1.4", v14, with(func(m *abi.Metadata) { m.ABI = v14; m.Capabilities = []abi.Capability{abi.CapabilityPostgres} }), nil, "capability postgres needs ABI 1.5, but the plugin declares ABI 1.4"},
		{"events on 1.1", v11, with(func(m *abi.Metadata) { m.ABI = v11; m.Capabilities = []abi.Capability{abi.CapabilityEvents} }), []abi.Capability{abi.CapabilityEvents}, "capability events needs ABI 1.2"},
		{"capability twice", v12, with(func(m *abi.Metadata) { m.Capabilities = []abi.Capability{abi.CapabilityLog, abi.CapabilityLog} }), []abi.Capability{abi.CapabilityLog}, `capability "log" is declared twice`},
		{"unknown capability", v12, with(func(m *abi.Metadata) { m.Capabilities = []abi.Capability{"teleport"} }), nil, `capability "teleport" is not one this host provides`},
		{"kv reads", v18, kvReads(abi.KVRead{Kind: abi.KindAgentState, Prefix: []byte("s\x00")}), kv, ""},
		{"kv reads with an empty prefix", v18, kvReads(abi.KVRead{Kind: abi.KindAgentState}), kv, ""},
		{"kv reads without kv", v18, with(func(m *abi.Metadata) {
			m.ABI = v18
			m.KVReads = []abi.KVRead{{Kind: abi.KindAgentState}}
		}), nil, "kv reads: they need the kv capability"},
		{"kv read of metrics", v18, kvReads(abi.KVRead{Kind: abi.KindMetric}), kv, "kind 1 is not one a kv read serves"},
		{"kv read of kind 9", v18, kvReads(abi.KVRead{Kind: 9}), kv, "kind 9 is not one a kv read serves"},
		{"kv read of a kind not served", v18, kvReads(abi.KVRead{Kind: abi.KindAlert}), kv, "alerts are declared but the plugin does not advertise the feature alerts"},
		{"kv read twice", v18, kvReads(abi.KVRead{Kind: abi.KindAgentState}, abi.KVRead{Kind: abi.KindAgentState, Prefix: []byte("x")}), kv, "agent_states are declared twice"},
		{"kv read prefix too long", v18, kvReads(abi.KVRead{Kind: abi.KindAgentState, Prefix: make([]byte, 65)}), kv, "the prefix of agent_states is 65 bytes, over 64"},
		{"kv reads on 1.7", v17, append(with(func(m *abi.Metadata) { m.ABI = v17; m.Capabilities = []abi.Capability{abi.CapabilityKV} }), 1, 3, 0), kv, "(kv_reads, after the capabilities, needs abi_minor 8 or more; this plugin declares 1.7"},
		{"redis reads without redis", v19, with(func(m *abi.Metadata) {
			m.ABI, m.Capabilities = v19, kv
			m.RedisReads = []abi.RedisRead{state("s:{", "}", "")}
		}), kv, "redis reads: they need the redis capability"},
		{"redis read guard without kv", v19, with(func(m *abi.Metadata) {
			m.ABI, m.Capabilities = v19, []abi.Capability{abi.CapabilityRedis}
			m.RedisReads = []abi.RedisRead{state("s:{", "}", "q/")}
		}), []abi.Capability{abi.CapabilityRedis}, "the guard of agent_states is a kv prefix, but the plugin does not declare the kv capability"},
		{"redis read of metrics", v19, redisReads(abi.RedisRead{Kind: abi.KindMetric}), redisKV, "kind 1 is not one a redis read serves"},
		{"redis read of a kind not served", v19, redisReads(abi.RedisRead{Kind: abi.KindAlert}), redisKV, "alerts are declared but the plugin does not advertise the feature alerts"},
		{"redis read twice", v19, redisReads(state("a", "", ""), state("b", "", "")), redisKV, "redis reads: agent_states are declared twice"},
		{"redis read suffix too long", v19, redisReads(state("s:{", string(make([]byte, 65)), "")), redisKV, "the key prefix, key suffix or guard of agent_states is over 64 bytes"},
		{"redis read guard too long", v19, redisReads(state("s:{", "}", string(make([]byte, 65)))), redisKV, "over 64 bytes"},
		{"redis reads on 1.8", v18, append(with(func(m *abi.Metadata) { m.ABI = v18; m.Capabilities = redisKV }), 1, 3, 0, 0, 0), redisKV, "(redis_reads, after kv_reads, needs abi_minor 9 or more; this plugin declares 1.8"},
		{"redis reads cut short", v19, cutShort(redisReads(state("s:{", "}", "q/")), 2), redisKV, "in Metadata.redis_reads[0].guard"},
		{"pg reads", v19, pgReads(getState), pg, ""},
		{"pg reads without postgres", v19, with(func(m *abi.Metadata) {
			m.ABI = v19
			m.PGReads = []abi.PGRead{getState}
		}), nil, "postgres reads: they need the postgres capability"},
		{"pg read with no statement", v19, pgReads(abi.PGRead{Kind: abi.KindAgentState}), pg, "the statement of agent_states is 0 bytes, not 1 to 4096"},
		{"pg read statement too long", v19, pgReads(abi.PGRead{Kind: abi.KindAgentState, SQL: string(make([]byte, 4097))}), pg, "is 4097 bytes, not 1 to 4096"},
		{"pg read twice", v19, pgReads(getState, getState), pg, "postgres reads: agent_states are declared twice"},
		{"pg read of metrics", v19, pgReads(abi.PGRead{Kind: abi.KindMetric, SQL: "SELECT 1"}), pg, "kind 1 is not one a postgres read serves"},
		{"metadata over 64 KiB", v12, append(encodeMetadata(good), make([]byte, 64<<10)...), nil, "more than the 65536 a Metadata may hold"},
		{"three redis reads", v19, redisReads(state("a", "", ""), state("b", "", ""), state("c", "", "")), redisKV, "Metadata.redis_reads"},
		{"kv reads cut short", v18, cutShort(kvReads(abi.KVRead{Kind: abi.KindAgentState, Prefix: []byte("s\x00")}), 2), kv, "in Metadata.kv_reads[0].prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wasm := metadataModule(c.version.Packed(), c.meta)
			cfg := host.Config{Name: "m", WASM: wasm, Instances: 1, Capabilities: c.caps}
			if slices.Contains(c.caps, abi.CapabilityRedis) {
				addr := redistest.Addr(t)
				cfg.Redis = &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr)}
			}
			if slices.Contains(c.caps, abi.CapabilityPostgres) {
				cfg.Postgres = &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
			}
			st, err := host.Open(context.Background(), cfg, host.WithCompilationCache(""))
			if c.want == "" {
				require.NoError(t, err)
				require.NoError(t, st.Ping(context.Background()))
				require.NoError(t, st.Close(context.Background()))
				return
			}
			require.ErrorIs(t, err, host.ErrIncompatible)
			assert.ErrorContains(t, err, c.want)
			info := host.Inspect(context.Background(), wasm, host.WithCompilationCache(""))
			assert.ErrorIs(t, info.Err, host.ErrIncompatible, "plugin inspect says why too")
		})
	}

	// redis_scripts is granted by a Redis configuration with Scripts only;
	// plugin inspect, which grants every capability, loads it.
	wasm := metadataModule(v14.Packed(), with(func(m *abi.Metadata) { m.ABI = v14; m.Capabilities = []abi.Capability{abi.CapabilityRedisScripts} }))
	_, err := host.Open(context.Background(), host.Config{Name: "m", WASM: wasm, Instances: 1}, host.WithCompilationCache(""))
	require.ErrorIs(t, err, host.ErrIncompatible)
	assert.ErrorContains(t, err, `needs capability "redis_scripts", which the configuration does not grant`)
	assert.NoError(t, host.Inspect(context.Background(), wasm, host.WithCompilationCache("")).Err)
}

// TestHostileABIMismatch: the corpus's plugin whose storage_abi_version
// (1.2) and metadata (1.0) disagree does not load, and plugin inspect
// says why.
func TestHostileABIMismatch(t *testing.T) {
	wasm, err := os.ReadFile("../testdata/plugins/hostile/abimismatch.wasm")
	require.NoError(t, err)
	_, err = host.Open(context.Background(), host.Config{WASM: wasm}, host.WithCompilationCache(""))
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, "metadata: ABI version 1.0 differs from the 1.2 storage_abi_version returns (section 2: the two MUST be equal)")
	info := host.Inspect(context.Background(), wasm, host.WithCompilationCache(""))
	require.ErrorIs(t, info.Err, host.ErrIncompatible)
	require.Equal(t, abi.Version{Major: 1}, info.Metadata.ABI, "inspect shows what the refused metadata says")
	require.NotEmpty(t, info.Metadata.Name)
}

// TestLoadErrorsNameTheMistake: the common mistakes of a plugin's
// author are refused at load with what to do about them: a memory not
// exported (the ABI requires it, though the host could reach it), a
// module built as a WASI command rather than a reactor, metadata of no
// bytes (a Go plugin that never called sdk.Register), an export of the
// wrong type or none.
func TestLoadErrorsNameTheMistake(t *testing.T) {
	for fixture, want := range map[string]string{
		"hiddenmemory": `plugin exports no memory: its linear memory must be exported as "memory"`,
		"command":      "built as a WASI command (it exports _start and no _initialize, so its runtime is never initialised): build it as a reactor, in Go with -buildmode=c-shared",
		"nometadata":   "storage_metadata returned no bytes (pointer 0, length 0): the plugin describes nothing",
		"badcall":      "export storage_call has type (i32, i32, i32) -> i64; the ABI gives it (i32, i32) -> i64",
		"nocall":       "missing export storage_call (abi/README.md, section 4)",
	} {
		t.Run(fixture, func(t *testing.T) {
			wasm, err := os.ReadFile("../testdata/plugins/hostile/" + fixture + ".wasm")
			require.NoError(t, err)
			_, err = host.Open(context.Background(), host.Config{WASM: wasm}, host.WithCompilationCache(""))
			require.ErrorIs(t, err, host.ErrIncompatible)
			require.ErrorContains(t, err, want)
			info := host.Inspect(context.Background(), wasm, host.WithCompilationCache(""))
			require.ErrorIs(t, info.Err, host.ErrIncompatible)
			require.ErrorContains(t, info.Err, want)
			if fixture == "nocall" || fixture == "badcall" {
				require.False(t, info.Ran, "refused for its bytes, before anything ran")
			}
		})
	}
}
