package abi_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

func encoded(f func(e *abi.Encoder)) []byte {
	var e abi.Encoder
	f(&e)
	return append([]byte(nil), e.Bytes()...)
}

// TestEncoderBytes pins the byte layout of every primitive, as README.md
// documents it.
func TestEncoderBytes(t *testing.T) {
	tests := []struct {
		name string
		enc  func(e *abi.Encoder)
		want []byte
	}{
		{"u8", func(e *abi.Encoder) { e.U8(0xab) }, []byte{0xab}},
		{"bool true", func(e *abi.Encoder) { e.Bool(true) }, []byte{1}},
		{"bool false", func(e *abi.Encoder) { e.Bool(false) }, []byte{0}},
		{"uvarint 0", func(e *abi.Encoder) { e.Uvarint(0) }, []byte{0}},
		{"uvarint 127", func(e *abi.Encoder) { e.Uvarint(127) }, []byte{0x7f}},
		{"uvarint 128", func(e *abi.Encoder) { e.Uvarint(128) }, []byte{0x80, 0x01}},
		{"uvarint 300", func(e *abi.Encoder) { e.Uvarint(300) }, []byte{0xac, 0x02}},
		{"uvarint max", func(e *abi.Encoder) { e.Uvarint(math.MaxUint64) },
			[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"varint 0", func(e *abi.Encoder) { e.Varint(0) }, []byte{0}},
		{"varint -1", func(e *abi.Encoder) { e.Varint(-1) }, []byte{1}},
		{"varint 1", func(e *abi.Encoder) { e.Varint(1) }, []byte{2}},
		{"varint -2", func(e *abi.Encoder) { e.Varint(-2) }, []byte{3}},
		{"varint 64", func(e *abi.Encoder) { e.Varint(64) }, []byte{0x80, 0x01}},
		{"varint min", func(e *abi.Encoder) { e.Varint(math.MinInt64) },
			[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"f64 1.5", func(e *abi.Encoder) { e.F64(1.5) }, []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}},
		{"f64 -0", func(e *abi.Encoder) { e.F64(math.Copysign(0, -1)) }, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}},
		{"bytes empty", func(e *abi.Encoder) { e.BytesField(nil) }, []byte{0}},
		{"bytes", func(e *abi.Encoder) { e.BytesField([]byte{1, 2}) }, []byte{2, 1, 2}},
		{"string", func(e *abi.Encoder) { e.String("héllo") }, []byte{6, 'h', 0xc3, 0xa9, 'l', 'l', 'o'}},
		{"time zero", func(e *abi.Encoder) { e.Time(time.Time{}) }, []byte{0}},
		{"time 1ns", func(e *abi.Encoder) { e.Time(time.Unix(0, 1)) }, []byte{2}},
		{"time -1ns", func(e *abi.Encoder) { e.Time(time.Unix(0, -1)) }, []byte{1}},
		{"time 1s", func(e *abi.Encoder) { e.Time(time.Unix(1, 0)) }, []byte{0x80, 0xa8, 0xd6, 0xb9, 0x07}},
		{"raw", func(e *abi.Encoder) { e.Raw([]byte("ab")) }, []byte("ab")},
		{"ttl default", func(e *abi.Encoder) { (&abi.TTL{}).Encode(e) }, []byte{0}},
		{"ttl duration 1s", func(e *abi.Encoder) { (&abi.TTL{Mode: abi.TTLDuration, Duration: time.Second}).Encode(e) },
			[]byte{1, 0xe8, 0x07}},
		{"ttl duration drops sub-millisecond", func(e *abi.Encoder) {
			(&abi.TTL{Mode: abi.TTLDuration, Duration: 1500 * time.Microsecond}).Encode(e)
		}, []byte{1, 1}},
		{"ttl persist ignores duration", func(e *abi.Encoder) {
			(&abi.TTL{Mode: abi.TTLPersist, Duration: time.Hour}).Encode(e)
		}, []byte{2}},
		{"ttl keep", func(e *abi.Encoder) { (&abi.TTL{Mode: abi.TTLKeep}).Encode(e) }, []byte{3}},
		{"condition unconditional ignores version", func(e *abi.Encoder) {
			(&abi.Condition{Mode: abi.Unconditional, Version: 9}).Encode(e)
		}, []byte{0}},
		{"condition if version", func(e *abi.Encoder) { (&abi.Condition{Mode: abi.IfVersion, Version: 300}).Encode(e) },
			[]byte{1, 0xac, 0x02}},
		{"condition if absent", func(e *abi.Encoder) { (&abi.Condition{Mode: abi.IfAbsent}).Encode(e) }, []byte{2}},
		{"labels sorted by key", func(e *abi.Encoder) { abi.Options{"b": "2", "a": "1", "c": ""}.Encode(e) },
			[]byte{3, 1, 'a', 1, '1', 1, 'b', 1, '2', 1, 'c', 0}},
		{"labels empty", func(e *abi.Encoder) { abi.Options{}.Encode(e) }, []byte{0}},
		{"error response", func(e *abi.Encoder) { abi.AppendError(e, abi.StatusNotFound, "no") }, []byte{1, 'n', 'o'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, encoded(tt.enc))
		})
	}
}

func TestEncoderReset(t *testing.T) {
	var e abi.Encoder
	assert.Empty(t, e.Bytes())
	e.String("abc")
	e.Reset()
	assert.Empty(t, e.Bytes())
	e.U8(7)
	assert.Equal(t, []byte{7}, e.Bytes())
}

func TestDecoderPrimitives(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		e.U8(9)
		e.Bool(true)
		e.Bool(false)
		e.Uvarint(math.MaxUint64)
		e.Varint(math.MinInt64)
		e.F64(-2.25)
		e.BytesField([]byte{1, 2, 3})
		e.BytesField(nil)
		e.String("x")
		e.Time(time.Time{})
		e.Time(time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC))
		e.Raw([]byte("rest"))
	})
	d := abi.NewDecoder(msg)
	assert.Equal(t, uint8(9), d.U8())
	assert.True(t, d.Bool())
	assert.False(t, d.Bool())
	assert.Equal(t, uint64(math.MaxUint64), d.Uvarint())
	assert.Equal(t, int64(math.MinInt64), d.Varint())
	assert.Equal(t, -2.25, d.F64())
	assert.Equal(t, []byte{1, 2, 3}, d.BytesField())
	assert.Nil(t, d.BytesField(), "an empty bytes field decodes as nil")
	assert.Equal(t, "x", d.String())
	assert.True(t, d.Time().IsZero())
	got := d.Time()
	assert.Equal(t, time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC), got)
	assert.Equal(t, time.UTC, got.Location())
	assert.Equal(t, 4, d.Len())
	assert.Equal(t, []byte("rest"), d.Rest())
	assert.Equal(t, 0, d.Len())
	require.NoError(t, d.Finish())
}

func TestDecoderCopies(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) { e.BytesField([]byte("abc")); e.String("def") })
	d := abi.NewDecoder(msg)
	b := d.BytesField()
	s := d.String()
	require.NoError(t, d.Finish())
	for i := range msg {
		msg[i] = 'z'
	}
	assert.Equal(t, []byte("abc"), b)
	assert.Equal(t, "def", s)

	msg = []byte("xyz")
	d = abi.NewDecoder(msg)
	rest := d.Rest()
	msg[0] = 'q'
	assert.Equal(t, []byte("xyz"), rest)
}

func TestDecoderErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		read func(d *abi.Decoder)
		want error
	}{
		{"u8 empty", nil, func(d *abi.Decoder) { d.U8() }, abi.ErrTruncated},
		{"bool 2", []byte{2}, func(d *abi.Decoder) { d.Bool() }, abi.ErrMalformed},
		{"bool empty", nil, func(d *abi.Decoder) { d.Bool() }, abi.ErrTruncated},
		{"uvarint empty", nil, func(d *abi.Decoder) { d.Uvarint() }, abi.ErrTruncated},
		{"uvarint unterminated", []byte{0x80, 0x80}, func(d *abi.Decoder) { d.Uvarint() }, abi.ErrTruncated},
		{"uvarint 11 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
			func(d *abi.Decoder) { d.Uvarint() }, abi.ErrMalformed},
		{"uvarint overflows 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
			func(d *abi.Decoder) { d.Uvarint() }, abi.ErrMalformed},
		{"varint empty", nil, func(d *abi.Decoder) { d.Varint() }, abi.ErrTruncated},
		{"varint overflows 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
			func(d *abi.Decoder) { d.Varint() }, abi.ErrMalformed},
		{"f64 short", []byte{1, 2, 3, 4, 5, 6, 7}, func(d *abi.Decoder) { d.F64() }, abi.ErrTruncated},
		{"bytes longer than input", []byte{3, 1, 2}, func(d *abi.Decoder) { d.BytesField() }, abi.ErrTruncated},
		{"string huge length", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}, func(d *abi.Decoder) { _ = d.String() }, abi.ErrTruncated},
		{"time empty", nil, func(d *abi.Decoder) { d.Time() }, abi.ErrTruncated},
		{"count above 1<<24", encoded(func(e *abi.Encoder) { e.Uvarint(1<<24 + 1) }),
			func(d *abi.Decoder) { d.Count(0) }, abi.ErrMalformed},
		{"count above input", []byte{4, 0, 0, 0}, func(d *abi.Decoder) { d.Count(1) }, abi.ErrMalformed},
		{"count times size above input", []byte{2, 0, 0, 0}, func(d *abi.Decoder) { d.Count(2) }, abi.ErrMalformed},
		{"count truncated", []byte{0x80}, func(d *abi.Decoder) { d.Count(1) }, abi.ErrTruncated},
		{"trailing byte", []byte{1, 2}, func(d *abi.Decoder) { d.U8() }, abi.ErrMalformed},
		{"condition mode 3", []byte{3}, func(d *abi.Decoder) { (&abi.Condition{}).Decode(d) }, abi.ErrMalformed},
		{"kv op 0", []byte{0, 0}, func(d *abi.Decoder) { (&abi.KVRequest{}).Decode(d) }, abi.ErrMalformed},
		{"kv op 6", []byte{6, 0}, func(d *abi.Decoder) { (&abi.KVRequest{}).Decode(d) }, abi.ErrMalformed},
		{"kv restore truncated", []byte{byte(abi.KVRestore), 0}, func(d *abi.Decoder) { (&abi.KVRequest{}).Decode(d) }, abi.ErrTruncated},
		{"restore kind 0", []byte{0, 1}, func(d *abi.Decoder) { (&abi.Restore{}).Decode(d) }, abi.ErrMalformed},
		{"restore kind 4", []byte{4, 1}, func(d *abi.Decoder) { (&abi.Restore{}).Decode(d) }, abi.ErrMalformed},
		{"ttl duration_ms overflows", encoded(func(e *abi.Encoder) { e.U8(1); e.Uvarint(1 << 53) }),
			func(d *abi.Decoder) { (&abi.TTL{}).Decode(d) }, abi.ErrMalformed},
		{"kv put keep_ttl 2", []byte{byte(abi.KVPut), 0, 0, 0, 2, 0}, func(d *abi.Decoder) { (&abi.KVRequest{}).Decode(d) }, abi.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := abi.NewDecoder(tt.msg)
			tt.read(d)
			assert.ErrorIs(t, d.Finish(), tt.want)
		})
	}
}

func TestDecoderCountFits(t *testing.T) {
	d := abi.NewDecoder([]byte{2, 0, 0, 0, 0})
	assert.Equal(t, 2, d.Count(2))
	assert.NoError(t, d.Err())
	d = abi.NewDecoder([]byte{3, 0, 0, 0})
	assert.Equal(t, 3, d.Count(0), "a minimum size below 1 counts as 1")
	assert.NoError(t, d.Err())
}

func TestDecoderErrorSticks(t *testing.T) {
	d := abi.NewDecoder([]byte{0x80})
	assert.Equal(t, uint64(0), d.Uvarint())
	require.ErrorIs(t, d.Err(), abi.ErrTruncated)
	// Every later read yields a zero value and the first error stays.
	assert.Equal(t, uint8(0), d.U8())
	assert.Equal(t, "", d.String())
	assert.Nil(t, d.BytesField())
	assert.Equal(t, 0.0, d.F64())
	assert.True(t, d.Time().IsZero())
	assert.Equal(t, 0, d.Count(1))
	assert.ErrorIs(t, d.Finish(), abi.ErrTruncated)
	assert.NotErrorIs(t, d.Finish(), abi.ErrMalformed)

	d.Reset([]byte{5})
	assert.NoError(t, d.Err())
	assert.Equal(t, uint8(5), d.U8())
	assert.NoError(t, d.Finish())
}

// TestNonMinimalVarints records what the decoders accept: LEB128 with
// redundant continuation bytes decodes (encoders never produce it).
func TestNonMinimalVarints(t *testing.T) {
	d := abi.NewDecoder([]byte{0x80, 0x00, 0x81, 0x80, 0x00})
	assert.Equal(t, uint64(0), d.Uvarint())
	assert.Equal(t, uint64(1), d.Uvarint())
	assert.NoError(t, d.Finish())
}

// TestTimeEpochIsUnset records a limit of the encoding: the Unix epoch
// itself is indistinguishable from "unset".
func TestTimeEpochIsUnset(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) { e.Time(time.Unix(0, 0)) })
	assert.Equal(t, []byte{0}, msg)
	assert.True(t, abi.NewDecoder(msg).Time().IsZero())
}

func TestDecoderView(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) { e.BytesField([]byte("abc")); e.BytesField(nil) })
	d := abi.NewDecoder(msg)
	v := d.View()
	assert.Equal(t, []byte("abc"), v)
	assert.Nil(t, d.View(), "an empty field views as nil")
	require.NoError(t, d.Finish())
	msg[1] = 'z'
	assert.Equal(t, []byte("zbc"), v, "a view aliases the input")

	d = abi.NewDecoder([]byte{3, 'a'})
	assert.Nil(t, d.View())
	assert.ErrorIs(t, d.Finish(), abi.ErrTruncated)
}

// TestKVDecodeAliases records that kv requests and entries decode as views
// of their input (the host reads them in place from guest memory).
func TestKVDecodeAliases(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		(&abi.KVRequest{Op: abi.KVPut, Key: []byte("k"), Value: []byte("v")}).Encode(e)
	})
	var r abi.KVRequest
	d := abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	msg[2], msg[4] = 'K', 'V'
	assert.Equal(t, []byte("K"), r.Key)
	assert.Equal(t, []byte("V"), r.Value)

	msg = encoded(func(e *abi.Encoder) { (&abi.KVEntry{Key: []byte("k"), Value: []byte("v")}).Encode(e, true) })
	var en abi.KVEntry
	d = abi.NewDecoder(msg)
	en.Decode(d, true)
	require.NoError(t, d.Finish())
	msg[1] = 'K'
	assert.Equal(t, []byte("K"), en.Key)
}

// Where says where the first error was met: at a bad field, or where a
// message with bytes left over should have ended.
func TestDecoderWhere(t *testing.T) {
	d := abi.NewDecoder([]byte{0x02, 'h', 'i', 0x07})
	_ = d.String()
	require.Equal(t, "", d.Where())
	require.ErrorIs(t, d.Finish(), abi.ErrMalformed)
	require.Equal(t, "at byte 3 of 4", d.Where())

	d.Reset([]byte{0x01, 0x05, 'a'})
	_ = d.U8()
	_ = d.String()
	require.ErrorIs(t, d.Finish(), abi.ErrTruncated)
	require.Equal(t, "at byte 2 of 3", d.Where(), "the string's 5 bytes, from byte 2, are not there")
}
