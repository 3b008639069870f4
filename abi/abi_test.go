package abi_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// TestNames pins every name README.md promises to plugin authors.
func TestNames(t *testing.T) {
	assert.Equal(t, "storage_abi_version", abi.ExportABIVersion)
	assert.Equal(t, "storage_metadata", abi.ExportMetadata)
	assert.Equal(t, "storage_reserve", abi.ExportReserve)
	assert.Equal(t, "storage_call", abi.ExportCall)
	assert.Equal(t, "_initialize", abi.ExportInitialize)
	assert.Equal(t, "memory", abi.ExportMemory)

	assert.Equal(t, "storagehost_log", abi.CapabilityLog.Module())
	assert.Equal(t, "storagehost_clock", abi.CapabilityClock.Module())
	assert.Equal(t, "storagehost_kv", abi.CapabilityKV.Module())
	assert.Equal(t, "write", abi.FuncLogWrite)
	assert.Equal(t, "now", abi.FuncClockNow)
	assert.Equal(t, "call", abi.FuncKVCall)
	assert.Equal(t, "result", abi.FuncKVResult)
	assert.Equal(t, "storagehost_redis", abi.CapabilityRedis.Module())
	assert.Equal(t, "call", abi.FuncRedisCall)
	assert.Equal(t, "result", abi.FuncRedisResult)
	assert.Equal(t, "storagehost_events", abi.CapabilityEvents.Module())
	assert.Equal(t, "publish", abi.FuncEventsPublish)
	assert.Equal(t, abi.Capability("redis_scripts"), abi.CapabilityRedisScripts)
	assert.Equal(t, "storagehost_postgres", abi.CapabilityPostgres.Module())
	assert.Equal(t, "storage_migrations", abi.ExportMigrations)

	assert.Equal(t, []abi.Level{1, 2, 3, 4, 5},
		[]abi.Level{abi.LevelTrace, abi.LevelDebug, abi.LevelInfo, abi.LevelWarn, abi.LevelError})
}

func TestVersion(t *testing.T) {
	// The one place that pins the version this package implements; the
	// tests of README.md check the document against abi.Current.
	assert.Equal(t, abi.Version{Major: 1, Minor: 9}, abi.Current)
	assert.Equal(t, fmt.Sprintf("%d.%d", abi.Current.Major, abi.Current.Minor), abi.Current.String())
	assert.Equal(t, uint32(abi.Current.Major)<<16|uint32(abi.Current.Minor), abi.Current.Packed())
	assert.Equal(t, abi.Current, abi.UnpackVersion(abi.Current.Packed()))

	v10 := abi.Version{Major: 1, Minor: 0}
	assert.Equal(t, "1.0", v10.String())
	assert.Equal(t, uint32(0x0001_0000), v10.Packed())
	v11 := abi.Version{Major: 1, Minor: 1}
	assert.Equal(t, "1.1", v11.String())
	assert.Equal(t, uint32(0x0001_0001), v11.Packed())
	v12 := abi.Version{Major: 1, Minor: 2}
	assert.Equal(t, "1.2", v12.String())
	assert.Equal(t, uint32(0x0001_0002), v12.Packed())

	v := abi.Version{Major: 0xfffe, Minor: 0x1234}
	assert.Equal(t, uint32(0xfffe_1234), v.Packed())
	assert.Equal(t, v, abi.UnpackVersion(v.Packed()))
	assert.Equal(t, "65534.4660", v.String())
}

func TestVersionCanLoad(t *testing.T) {
	tests := []struct {
		host, plugin abi.Version
		want         bool
	}{
		{abi.Version{Major: 1, Minor: 0}, abi.Version{Major: 1, Minor: 0}, true},
		{abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 0}, true},
		{abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 3}, true},
		{abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 4}, false},
		{abi.Version{Major: 1, Minor: 0}, abi.Version{Major: 2, Minor: 0}, false},
		{abi.Version{Major: 2, Minor: 0}, abi.Version{Major: 1, Minor: 0}, false},
		{abi.Version{Major: 2, Minor: 5}, abi.Version{Major: 1, Minor: 0}, false},
		{abi.Version{Major: 1, Minor: 0}, abi.Version{Major: 0, Minor: 0}, false},
		{abi.Version{Major: 0, Minor: 1}, abi.Version{Major: 0, Minor: 0}, true},
		// ABI 1.1 added a capability: a 1.1 host loads 1.0 and 1.1 plugins,
		// a 1.0 host refuses 1.1 plugins.
		{abi.Version{Major: 1, Minor: 1}, abi.Version{Major: 1, Minor: 0}, true},
		{abi.Version{Major: 1, Minor: 1}, abi.Version{Major: 1, Minor: 1}, true},
		{abi.Version{Major: 1, Minor: 1}, abi.Version{Major: 1, Minor: 2}, false},
		{abi.Version{Major: 1, Minor: 0}, abi.Version{Major: 1, Minor: 1}, false},
		// ABI 1.2 added an op, a feature and a capability: a 1.2 host loads
		// 1.0, 1.1 and 1.2 plugins, a 1.1 host refuses 1.2 plugins.
		{abi.Version{Major: 1, Minor: 2}, abi.Version{Major: 1, Minor: 0}, true},
		{abi.Version{Major: 1, Minor: 2}, abi.Version{Major: 1, Minor: 1}, true},
		{abi.Version{Major: 1, Minor: 2}, abi.Version{Major: 1, Minor: 2}, true},
		{abi.Version{Major: 1, Minor: 1}, abi.Version{Major: 1, Minor: 2}, false},
		// ABI 1.3 added an op and a feature: a 1.3 host loads 1.0 to 1.3
		// plugins, a 1.2 host refuses 1.3 plugins.
		{abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 1}, true},
		{abi.Version{Major: 1, Minor: 3}, abi.Version{Major: 1, Minor: 2}, true},
		{abi.Version{Major: 1, Minor: 2}, abi.Version{Major: 1, Minor: 3}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("host %s plugin %s", tt.host, tt.plugin), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.host.CanLoad(tt.plugin))
		})
	}
}

// TestCurrentLoadsOlderMinors: the host speaks abi.Current and must keep
// loading plugins built for every earlier minor of its major, 1.0 included
// (testdata/minimal.wasm and testdata/plugins/agentstate.wat are 1.0
// plugins).
func TestCurrentLoadsOlderMinors(t *testing.T) {
	for minor := uint16(0); minor <= abi.Current.Minor; minor++ {
		v := abi.Version{Major: abi.Current.Major, Minor: minor}
		assert.True(t, abi.Current.CanLoad(v), "host %s must load a %s plugin", abi.Current, v)
	}
	assert.True(t, abi.Current.CanLoad(abi.Version{Major: 1, Minor: 0}), "host %s must load a 1.0 plugin", abi.Current)
	assert.False(t, abi.Current.CanLoad(abi.Version{Major: abi.Current.Major, Minor: abi.Current.Minor + 1}))
	assert.False(t, abi.Current.CanLoad(abi.Version{Major: abi.Current.Major + 1}))
}

func TestRegion(t *testing.T) {
	r := abi.PackRegion(0x0001_0000, 42)
	assert.Equal(t, uint64(0x0001_0000_0000_002a), r)
	ptr, n := abi.UnpackRegion(r)
	assert.Equal(t, uint32(0x0001_0000), ptr)
	assert.Equal(t, uint32(42), n)
	ptr, n = abi.UnpackRegion(abi.PackRegion(math.MaxUint32, math.MaxUint32))
	assert.Equal(t, uint32(math.MaxUint32), ptr)
	assert.Equal(t, uint32(math.MaxUint32), n)
}

func TestStatus(t *testing.T) {
	tests := []struct {
		s    abi.Status
		code uint8
		name string
	}{
		{abi.StatusOK, 0, "ok"},
		{abi.StatusNotFound, 1, "not found"},
		{abi.StatusConflict, 2, "conflict"},
		{abi.StatusInvalid, 3, "invalid"},
		{abi.StatusUnavailable, 4, "unavailable"},
		{abi.StatusUnsupported, 5, "unsupported"},
		{abi.StatusInternal, 6, "internal"},
		{abi.StatusLimit, 7, "limit exceeded"},
		{abi.StatusStale, 8, "stale"},
		{abi.StatusUnknown, 9, "outcome unknown"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.code, uint8(tt.s))
		assert.True(t, tt.s.Known())
		assert.Equal(t, tt.name, tt.s.String())
		assert.Equal(t, tt.name, tt.s.Error())
	}
	assert.False(t, abi.Status(10).Known())
	assert.Equal(t, "status 10", abi.Status(10).String())
	assert.Equal(t, "status 255", abi.Status(255).String())
}

func TestStatusSentinels(t *testing.T) {
	statuses := []abi.Status{
		abi.StatusNotFound, abi.StatusConflict, abi.StatusInvalid, abi.StatusUnavailable,
		abi.StatusUnsupported, abi.StatusInternal, abi.StatusLimit, abi.StatusUnknown,
	}
	for _, s := range statuses {
		t.Run(s.String(), func(t *testing.T) {
			err := abi.Errorf(s, "record %q", "x")
			wrapped := fmt.Errorf("backend redis: %w", err)
			for _, other := range statuses {
				assert.Equal(t, other == s, errors.Is(err, other), "errors.Is(%v, %v)", err, other)
				assert.Equal(t, other == s, errors.Is(wrapped, other), "errors.Is(%v, %v)", wrapped, other)
			}
			var ae *abi.Error
			require.ErrorAs(t, wrapped, &ae)
			assert.Equal(t, s, ae.Status)
			assert.Equal(t, `record "x"`, ae.Message)
			assert.Equal(t, s.String()+`: record "x"`, err.Error())
			assert.True(t, errors.Is(s, s), "a bare Status is its own sentinel")
		})
	}
	assert.Equal(t, "not found", (&abi.Error{Status: abi.StatusNotFound}).Error())
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name     string
		resp     []byte
		wantBody []byte
		wantErr  *abi.Error
	}{
		{"ok with body", []byte{0, 1, 2}, []byte{1, 2}, nil},
		{"ok empty", []byte{0}, []byte{}, nil},
		{"empty response", nil, nil, &abi.Error{Status: abi.StatusInternal, Message: "empty response: no status byte (a response is its status, one byte, then its body: abi/README.md, section 8)"}},
		{"not found", []byte("\x01no such agent"), nil, &abi.Error{Status: abi.StatusNotFound, Message: "no such agent"}},
		{"conflict without message", []byte{2}, nil, &abi.Error{Status: abi.StatusConflict}},
		{"limit", []byte("\x07too big"), nil, &abi.Error{Status: abi.StatusLimit, Message: "too big"}},
		{"outcome unknown", []byte("\x09timed out"), nil, &abi.Error{Status: abi.StatusUnknown, Message: "timed out"}},
		{"unknown status", []byte("\x0aboom"), nil, &abi.Error{Status: abi.StatusInternal, Message: "unknown status 10 (a response starts with its status, one byte below 10: is it missing?): boom"}},
		{"unknown status 255", []byte{255}, nil, &abi.Error{Status: abi.StatusInternal, Message: "unknown status 255 (a response starts with its status, one byte below 10: is it missing?): "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := abi.ParseResponse(tt.resp)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.wantBody, body)
				return
			}
			assert.Nil(t, body)
			var ae *abi.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.wantErr, ae)
			assert.ErrorIs(t, err, tt.wantErr.Status)
		})
	}
}

func TestParseResponseAliases(t *testing.T) {
	resp := []byte{0, 'a'}
	body, err := abi.ParseResponse(resp)
	require.NoError(t, err)
	resp[1] = 'b'
	assert.Equal(t, []byte("b"), body, "the body aliases the response")
}

func TestAppendErrorParses(t *testing.T) {
	var e abi.Encoder
	abi.AppendError(&e, abi.StatusUnavailable, "redis down")
	_, err := abi.ParseResponse(e.Bytes())
	assert.Equal(t, &abi.Error{Status: abi.StatusUnavailable, Message: "redis down"}, err)
}

func TestAlertStatusCanTransition(t *testing.T) {
	const (
		none = abi.AlertStatus(0)
		bad  = abi.AlertStatus(4)
		F    = abi.AlertFiring
		A    = abi.AlertAcknowledged
		R    = abi.AlertResolved
	)
	all := []abi.AlertStatus{none, F, A, R, bad}
	allowed := map[[2]abi.AlertStatus]bool{
		{F, F}: true, {F, A}: true, {F, R}: true,
		{A, A}: true, {A, R}: true,
		{R, R}: true, {R, F}: true,
	}
	for _, from := range all {
		for _, to := range all {
			assert.Equal(t, allowed[[2]abi.AlertStatus{from, to}], from.CanTransition(to), "%s → %s", from, to)
		}
	}
}

func TestSeverityAndAlertStatusNames(t *testing.T) {
	for s, name := range map[abi.Severity]string{
		abi.SeverityInfo: "info", abi.SeverityWarning: "warning", abi.SeverityCritical: "critical",
	} {
		assert.True(t, s.Valid())
		assert.Equal(t, name, s.String())
		got, ok := abi.ParseSeverity(name)
		assert.True(t, ok)
		assert.Equal(t, s, got)
	}
	assert.Equal(t, []uint8{1, 2, 3}, []uint8{uint8(abi.SeverityInfo), uint8(abi.SeverityWarning), uint8(abi.SeverityCritical)})
	for _, s := range []abi.Severity{0, 4, 255} {
		assert.False(t, s.Valid())
	}
	assert.Equal(t, "severity(0)", abi.Severity(0).String())
	_, ok := abi.ParseSeverity("fatal")
	assert.False(t, ok)

	for s, name := range map[abi.AlertStatus]string{
		abi.AlertFiring: "firing", abi.AlertAcknowledged: "acknowledged", abi.AlertResolved: "resolved",
	} {
		assert.True(t, s.Valid())
		assert.Equal(t, name, s.String())
		got, ok := abi.ParseAlertStatus(name)
		assert.True(t, ok)
		assert.Equal(t, s, got)
	}
	assert.Equal(t, []uint8{1, 2, 3}, []uint8{uint8(abi.AlertFiring), uint8(abi.AlertAcknowledged), uint8(abi.AlertResolved)})
	assert.False(t, abi.AlertStatus(0).Valid())
	assert.Equal(t, "alert_status(9)", abi.AlertStatus(9).String())
	_, ok = abi.ParseAlertStatus("open")
	assert.False(t, ok)
}

func TestLabelFilter(t *testing.T) {
	labels := map[string]string{"env": "prod", "host": "web-12", "empty": ""}
	tests := []struct {
		name string
		ms   []abi.Matcher
		want bool
	}{
		{"no matchers", nil, true},
		{"equal", []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: "prod"}}, true},
		{"equal other value", []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: "dev"}}, false},
		{"equal absent label to empty", []abi.Matcher{{Label: "zone", Op: abi.MatchEqual, Value: ""}}, true},
		{"equal empty label to empty", []abi.Matcher{{Label: "empty", Op: abi.MatchEqual, Value: ""}}, true},
		{"not equal", []abi.Matcher{{Label: "env", Op: abi.MatchNotEqual, Value: "dev"}}, true},
		{"not equal same", []abi.Matcher{{Label: "env", Op: abi.MatchNotEqual, Value: "prod"}}, false},
		{"not equal empty requires presence", []abi.Matcher{{Label: "zone", Op: abi.MatchNotEqual, Value: ""}}, false},
		{"regexp whole value", []abi.Matcher{{Label: "host", Op: abi.MatchRegexp, Value: "web-[0-9]+"}}, true},
		{"regexp anchored at start", []abi.Matcher{{Label: "host", Op: abi.MatchRegexp, Value: "eb-12"}}, false},
		{"regexp anchored at end", []abi.Matcher{{Label: "host", Op: abi.MatchRegexp, Value: "web-1"}}, false},
		{"regexp alternation anchored", []abi.Matcher{{Label: "host", Op: abi.MatchRegexp, Value: "web|db"}}, false},
		{"regexp alternation whole", []abi.Matcher{{Label: "env", Op: abi.MatchRegexp, Value: "dev|prod"}}, true},
		{"regexp absent label is empty", []abi.Matcher{{Label: "zone", Op: abi.MatchRegexp, Value: ".*"}}, true},
		{"regexp absent label not matched", []abi.Matcher{{Label: "zone", Op: abi.MatchRegexp, Value: ".+"}}, false},
		{"not regexp", []abi.Matcher{{Label: "host", Op: abi.MatchNotRegexp, Value: "db-.*"}}, true},
		{"not regexp matching", []abi.Matcher{{Label: "host", Op: abi.MatchNotRegexp, Value: "web-.*"}}, false},
		{"not regexp anchored", []abi.Matcher{{Label: "host", Op: abi.MatchNotRegexp, Value: "web"}}, true},
		{"all must hold", []abi.Matcher{
			{Label: "env", Op: abi.MatchEqual, Value: "prod"},
			{Label: "host", Op: abi.MatchRegexp, Value: "db-.*"},
		}, false},
		{"all hold", []abi.Matcher{
			{Label: "env", Op: abi.MatchEqual, Value: "prod"},
			{Label: "host", Op: abi.MatchNotRegexp, Value: "db-.*"},
			{Label: "zone", Op: abi.MatchNotEqual, Value: "eu"},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := abi.CompileMatchers(tt.ms)
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Match(labels))
		})
	}

	var zero abi.LabelFilter
	assert.True(t, zero.Match(nil), "the zero filter matches everything")
	assert.True(t, zero.Match(labels))
}

func TestCompileMatchersInvalid(t *testing.T) {
	tests := []struct {
		name string
		m    abi.Matcher
	}{
		{"bad regexp", abi.Matcher{Label: "host", Op: abi.MatchRegexp, Value: "web-(["}},
		{"bad negated regexp", abi.Matcher{Label: "host", Op: abi.MatchNotRegexp, Value: "*"}},
		{"operator 0", abi.Matcher{Label: "host", Op: 0, Value: "x"}},
		{"operator 5", abi.Matcher{Label: "host", Op: 5, Value: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: "prod"}, tt.m}
			_, err := abi.CompileMatchers(ms)
			require.Error(t, err)
			assert.ErrorIs(t, err, abi.StatusInvalid)
			assert.Contains(t, err.Error(), "host")
		})
	}
}

// TestRegexpMatcherStaysAnchored: a value that closes the group the
// anchors wrap must not turn a whole-value match into a substring match.
// "web)|(.*" is not a valid RE2 expression on its own, yet wrapped as
// "^(?:web)|(.*)$" it compiles and matches every value.
func TestRegexpMatcherStaysAnchored(t *testing.T) {
	for _, op := range []abi.MatchOp{abi.MatchRegexp, abi.MatchNotRegexp} {
		f, err := abi.CompileMatchers([]abi.Matcher{{Label: "host", Op: op, Value: "web)|(.*"}})
		if err == nil {
			t.Errorf("op %d: CompileMatchers accepted %q, an expression that is invalid on its own; "+
				"host=db-1 matches: %v", op, "web)|(.*", f.Match(map[string]string{"host": "db-1"}))
			continue
		}
		assert.ErrorIs(t, err, abi.StatusInvalid)
	}
}

func TestPageLimit(t *testing.T) {
	tests := []struct {
		requested uint32
		want      int
	}{
		{0, abi.DefaultQueryLimit},
		{1, 1},
		{99, 99},
		{abi.DefaultQueryLimit, abi.DefaultQueryLimit},
		{abi.MaxQueryLimit, abi.MaxQueryLimit},
		{abi.MaxQueryLimit + 1, abi.MaxQueryLimit},
		{math.MaxUint32, abi.MaxQueryLimit},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, abi.PageLimit(tt.requested), "PageLimit(%d)", tt.requested)
	}
	assert.Equal(t, 100, abi.DefaultQueryLimit)
	assert.Equal(t, 1000, abi.MaxQueryLimit)
}

func TestTTLExpiresAt(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	prev := now.Add(10 * time.Minute)
	never := time.Time{}
	tests := []struct {
		name string
		ttl  abi.TTL
		def  time.Duration
		prev time.Time
		want time.Time
		new  bool
	}{
		{"default with kind default", abi.TTL{}, time.Hour, prev, now.Add(time.Hour), false},
		{"default restarts from this write", abi.TTL{}, time.Hour, now.Add(5 * time.Hour), now.Add(time.Hour), false},
		{"default without kind default", abi.TTL{}, 0, prev, never, false},
		{"default with negative kind default", abi.TTL{}, -time.Hour, prev, never, false},
		{"duration", abi.TTL{Mode: abi.TTLDuration, Duration: 90 * time.Second}, time.Hour, prev, now.Add(90 * time.Second), false},
		{"duration without kind default", abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute}, 0, never, now.Add(time.Minute), false},
		{"persist", abi.TTL{Mode: abi.TTLPersist}, time.Hour, prev, never, false},
		{"keep", abi.TTL{Mode: abi.TTLKeep}, time.Hour, prev, prev, false},
		{"keep without expiry", abi.TTL{Mode: abi.TTLKeep}, time.Hour, never, never, false},
		{"keep on a new record gives the kind default", abi.TTL{Mode: abi.TTLKeep}, time.Hour, never, now.Add(time.Hour), true},
		{"keep on a new record without kind default", abi.TTL{Mode: abi.TTLKeep}, 0, never, never, true},
		{"unknown mode acts as default", abi.TTL{Mode: 9}, time.Hour, prev, now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.ttl.ExpiresAt(now, tt.def, tt.prev, !tt.new))
		})
	}
}

func TestTTLCheck(t *testing.T) {
	valid := []abi.TTL{
		{Mode: abi.TTLDefault}, {Mode: abi.TTLPersist}, {Mode: abi.TTLKeep},
		{Mode: abi.TTLDuration, Duration: time.Millisecond}, {Mode: abi.TTLDuration, Duration: 365 * 24 * time.Hour},
		{Mode: abi.TTLDefault, Duration: -time.Hour}, // duration ignored outside TTLDuration
	}
	for _, ttl := range valid {
		assert.NoError(t, ttl.Check(), "%+v", ttl)
	}
	invalid := []abi.TTL{
		{Mode: abi.TTLDuration}, {Mode: abi.TTLDuration, Duration: time.Millisecond - 1},
		{Mode: abi.TTLDuration, Duration: -time.Second}, {Mode: 4}, {Mode: 255},
	}
	for _, ttl := range invalid {
		err := ttl.Check()
		assert.ErrorIs(t, err, abi.StatusInvalid, "%+v", ttl)
	}
}

// TestTTLDurationRange: a duration_ms too large for time.Duration must not
// wrap around into a short (or negative) TTL. 18446744073711 ms is about
// 584 years; wrapped modulo 2^64 ns it would be 1.448384 ms, which passes
// Check and expires the record at once.
func TestTTLDurationRange(t *testing.T) {
	const maxMS = math.MaxInt64 / uint64(time.Millisecond)
	for _, ms := range []uint64{maxMS + 1, 18446744073711, 1 << 63, math.MaxUint64} {
		msg := encoded(func(e *abi.Encoder) { e.U8(uint8(abi.TTLDuration)); e.Uvarint(ms) })
		var ttl abi.TTL
		d := abi.NewDecoder(msg)
		ttl.Decode(d)
		if err := d.Finish(); err != nil {
			assert.ErrorIs(t, err, abi.ErrMalformed, "duration_ms %d", ms)
			continue
		}
		if ttl.Duration < time.Duration(maxMS)*time.Millisecond {
			t.Errorf("duration_ms %d decoded to %v (Check: %v): the multiplication wrapped", ms, ttl.Duration, ttl.Check())
		}
	}

	// The largest duration that fits round-trips exactly.
	msg := encoded(func(e *abi.Encoder) { e.U8(uint8(abi.TTLDuration)); e.Uvarint(maxMS) })
	var ttl abi.TTL
	d := abi.NewDecoder(msg)
	ttl.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, time.Duration(maxMS)*time.Millisecond, ttl.Duration)
	assert.Equal(t, msg, encoded(ttl.Encode))
}

func TestInRange(t *testing.T) {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	var open time.Time
	assert.True(t, abi.InRange(from, from, to), "from is inclusive")
	assert.False(t, abi.InRange(to, from, to), "to is exclusive")
	assert.False(t, abi.InRange(from.Add(-1), from, to))
	assert.True(t, abi.InRange(to.Add(-1), from, to))
	assert.True(t, abi.InRange(from.Add(-time.Hour), open, to))
	assert.True(t, abi.InRange(to.Add(time.Hour), from, open))
	assert.True(t, abi.InRange(time.Time{}, open, open))
	assert.False(t, abi.InRange(to, to, to), "an empty range holds nothing")
}

func TestMetricQueryMatch(t *testing.T) {
	m := abi.Metric{AgentID: "a1", Name: "cpu", Timestamp: t0, Labels: map[string]string{"env": "prod"}}
	tests := []struct {
		name string
		q    abi.MetricQuery
		want bool
	}{
		{"zero query", abi.MetricQuery{}, true},
		{"agent", abi.MetricQuery{AgentID: "a1"}, true},
		{"other agent", abi.MetricQuery{AgentID: "a2"}, false},
		{"name", abi.MetricQuery{Name: "cpu"}, true},
		{"other name", abi.MetricQuery{Name: "mem"}, false},
		{"range", abi.MetricQuery{From: t0, To: t1}, true},
		{"range ends at timestamp", abi.MetricQuery{From: tOld, To: t0}, false},
		{"labels", abi.MetricQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: "prod"}}}, true},
		{"other labels", abi.MetricQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: "dev"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf, err := abi.CompileMatchers(tt.q.Labels)
			require.NoError(t, err)
			assert.Equal(t, tt.want, tt.q.Match(&m, &lf))
		})
	}
}

func TestAlertQueryMatch(t *testing.T) {
	a := abi.Alert{
		ID: "x", AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertFiring,
		Labels: map[string]string{"env": "prod"}, CreatedAt: t0, UpdatedAt: t2,
	}
	tests := []struct {
		name string
		q    abi.AlertQuery
		want bool
	}{
		{"zero query", abi.AlertQuery{}, true},
		{"agent", abi.AlertQuery{AgentID: "a1"}, true},
		{"other agent", abi.AlertQuery{AgentID: "a2"}, false},
		{"severity in set", abi.AlertQuery{Severities: []abi.Severity{abi.SeverityInfo, abi.SeverityWarning}}, true},
		{"severity not in set", abi.AlertQuery{Severities: []abi.Severity{abi.SeverityCritical}}, false},
		{"status in set", abi.AlertQuery{Statuses: []abi.AlertStatus{abi.AlertFiring}}, true},
		{"status not in set", abi.AlertQuery{Statuses: []abi.AlertStatus{abi.AlertResolved}}, false},
		{"range on created_at", abi.AlertQuery{From: t0, To: t1}, true},
		{"range excludes created_at", abi.AlertQuery{From: t1, To: t2.Add(time.Hour)}, false},
		{"labels", abi.AlertQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchRegexp, Value: "pr.*"}}}, true},
		{"other labels", abi.AlertQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchNotEqual, Value: "prod"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf, err := abi.CompileMatchers(tt.q.Labels)
			require.NoError(t, err)
			assert.Equal(t, tt.want, tt.q.Match(&a, &lf))
		})
	}
}

func TestOps(t *testing.T) {
	m, a, s := abi.FeatureMetrics, abi.FeatureAlerts, abi.FeatureAgentStates
	q := abi.FeatureQuery
	tests := []struct {
		op       abi.Op
		code     uint32
		name     string
		requires abi.Feature
	}{
		{abi.OpPing, 1, "ping", 0},
		{abi.OpConfigure, 2, "configure", 0},
		{abi.OpPutMetric, 10, "put_metric", m},
		{abi.OpGetMetric, 11, "get_metric", m},
		{abi.OpDeleteMetric, 12, "delete_metric", m},
		{abi.OpQueryMetrics, 13, "query_metrics", m | q},
		{abi.OpPutAlert, 20, "put_alert", a},
		{abi.OpGetAlert, 21, "get_alert", a},
		{abi.OpDeleteAlert, 22, "delete_alert", a},
		{abi.OpQueryAlerts, 23, "query_alerts", a | q},
		{abi.OpSetAlertStatus, 24, "set_alert_status", a},
		{abi.OpPutAgentState, 30, "put_agent_state", s},
		{abi.OpGetAgentState, 31, "get_agent_state", s},
		{abi.OpDeleteAgentState, 32, "delete_agent_state", s},
		{abi.OpQueryAgentStates, 33, "query_agent_states", s | q},
		{abi.OpBatch, 40, "batch", abi.FeatureBatch},
		{abi.OpRestore, 50, "restore", abi.FeatureRestore},
	}
	every := abi.FeatureMetrics | abi.FeatureAlerts | abi.FeatureAgentStates | abi.FeatureQuery |
		abi.FeatureBatch | abi.FeatureTTL | abi.FeatureConcurrency | abi.FeatureRestore
	for _, tt := range tests {
		assert.Equal(t, tt.code, uint32(tt.op))
		assert.Equal(t, tt.name, tt.op.String())
		assert.Equal(t, tt.requires, tt.op.Requires(), "%s", tt.op)
		assert.True(t, every.Has(tt.op.Requires()))
	}
	for _, op := range []abi.Op{0, 3, 14, 41, 51, math.MaxUint32} {
		assert.False(t, every.Has(op.Requires()), "unknown op %d must not be served by any advertised feature set", op)
	}
	assert.Equal(t, "op_99", abi.Op(99).String())
}

func TestFeatures(t *testing.T) {
	tests := []struct {
		f    abi.Feature
		bit  uint
		name string
	}{
		{abi.FeatureMetrics, 0, "metrics"},
		{abi.FeatureAlerts, 1, "alerts"},
		{abi.FeatureAgentStates, 2, "agent_states"},
		{abi.FeatureQuery, 3, "query"},
		{abi.FeatureBatch, 4, "batch"},
		{abi.FeatureTTL, 5, "ttl"},
		{abi.FeatureConcurrency, 6, "concurrency"},
		{abi.FeatureRestore, 7, "restore"},
	}
	for _, tt := range tests {
		assert.Equal(t, abi.Feature(1)<<tt.bit, tt.f)
		assert.Equal(t, []string{tt.name}, tt.f.Names())
		got, ok := abi.ParseFeature(tt.name)
		assert.True(t, ok)
		assert.Equal(t, tt.f, got)
	}
	f := abi.FeatureTTL | abi.FeatureMetrics | abi.FeatureQuery
	assert.Equal(t, []string{"metrics", "query", "ttl"}, f.Names())
	assert.Equal(t, "metrics,query,ttl", f.String())
	assert.True(t, f.Has(abi.FeatureMetrics|abi.FeatureQuery))
	assert.False(t, f.Has(abi.FeatureMetrics|abi.FeatureAlerts))
	assert.True(t, f.Has(0))
	assert.Nil(t, abi.Feature(0).Names())
	assert.Equal(t, "", abi.Feature(0).String())
	_, ok := abi.ParseFeature("pubsub")
	assert.False(t, ok)
}

// TestParseStale: a stale response carries its result and says so.
func TestParseStale(t *testing.T) {
	body, err := abi.ParseResponse([]byte{8, 1, 2})
	require.Equal(t, []byte{1, 2}, body, "the body holds the result")
	require.ErrorIs(t, err, abi.StatusStale)
}

// TestMetadataMasksFeatures: bits this ABI does not define are dropped on
// decode; the ones it defines, restore (1.2) included, are kept.
func TestMetadataMasksFeatures(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		e.Uvarint(1)
		e.Uvarint(2)
		e.String("p")
		e.String("1")
		e.Uvarint(uint64(abi.FeatureRestore | abi.FeatureMetrics | abi.FeatureTick | abi.FeatureWriteEvents | 1<<10 | 1<<31))
		e.Uvarint(0)
	})
	var m abi.Metadata
	d := abi.NewDecoder(msg)
	m.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.FeatureMetrics|abi.FeatureRestore|abi.FeatureTick|abi.FeatureWriteEvents, m.Features)
}

func TestRecordKindsAndRestoreModes(t *testing.T) {
	for k, want := range map[abi.RecordKind]struct {
		code uint8
		name string
		f    abi.Feature
	}{
		abi.KindMetric:     {1, "metric", abi.FeatureMetrics},
		abi.KindAlert:      {2, "alert", abi.FeatureAlerts},
		abi.KindAgentState: {3, "agent_state", abi.FeatureAgentStates},
	} {
		assert.Equal(t, want.code, uint8(k))
		assert.True(t, k.Valid())
		assert.Equal(t, want.name, k.String())
		assert.Equal(t, want.f, k.Feature())
	}
	every := abi.Feature(math.MaxUint32 >> 1)
	for _, k := range []abi.RecordKind{0, 4, 255} {
		assert.False(t, k.Valid())
		assert.False(t, every.Has(k.Feature()), "kind %d must need a feature no backend has", k)
	}
	assert.Equal(t, "record_kind(4)", abi.RecordKind(4).String())

	for m, want := range map[abi.RestoreMode]struct {
		code uint8
		name string
	}{abi.RestoreFail: {1, "fail"}, abi.RestoreSkip: {2, "skip"}, abi.RestoreOverwrite: {3, "overwrite"}} {
		assert.Equal(t, want.code, uint8(m))
		assert.True(t, m.Valid())
		assert.Equal(t, want.name, m.String())
		got, ok := abi.ParseRestoreMode(want.name)
		assert.True(t, ok)
		assert.Equal(t, m, got)
	}
	assert.False(t, abi.RestoreMode(0).Valid())
	assert.False(t, abi.RestoreMode(4).Valid())
	assert.Equal(t, "restore_mode(0)", abi.RestoreMode(0).String())
	_, ok := abi.ParseRestoreMode("merge")
	assert.False(t, ok)
}

func TestRestoreRequires(t *testing.T) {
	r := abi.Restore{Kind: abi.KindAlert, Alert: fullAlert}
	assert.Equal(t, abi.FeatureRestore|abi.FeatureAlerts|abi.FeatureTTL, r.Requires(), "an expiry needs ttl")
	r.Alert.ExpiresAt = time.Time{}
	assert.Equal(t, abi.FeatureRestore|abi.FeatureAlerts, r.Requires())
	r = abi.Restore{Kind: abi.KindMetric}
	assert.Equal(t, abi.FeatureRestore|abi.FeatureMetrics, r.Requires())
	r = abi.Restore{Kind: abi.KindAgentState}
	assert.Equal(t, abi.FeatureRestore|abi.FeatureAgentStates, r.Requires())
	r = abi.Restore{Kind: 7}
	every := abi.Feature(math.MaxUint32 >> 1)
	assert.False(t, every.Has(r.Requires()))
}

func TestRestoreExpired(t *testing.T) {
	now := t0
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{{time.Time{}, false}, {now.Add(time.Nanosecond), false}, {now, true}, {now.Add(-time.Hour), true}} {
		for _, r := range []abi.Restore{
			{Kind: abi.KindMetric, Metric: abi.Metric{ExpiresAt: tt.at}},
			{Kind: abi.KindAlert, Alert: abi.Alert{ExpiresAt: tt.at}},
			{Kind: abi.KindAgentState, State: abi.AgentState{ExpiresAt: tt.at}},
		} {
			assert.Equal(t, tt.at, r.ExpiresAt())
			assert.Equal(t, tt.want, r.Expired(now), "%s expiring at %v", r.Kind, tt.at)
		}
	}
	r := abi.Restore{Kind: abi.KindAgentState, Metric: abi.Metric{ExpiresAt: now}}
	assert.False(t, r.Expired(now), "only the record of the kind counts")
}

func TestRestoreCheck(t *testing.T) {
	alert := fullAlert
	state := abi.AgentState{AgentID: "a1", State: []byte("x"), Version: 1, UpdatedAt: t0}
	valid := []abi.Restore{
		{Kind: abi.KindMetric, Metric: fullMetric, Mode: abi.RestoreFail},
		{Kind: abi.KindAlert, Alert: alert, Mode: abi.RestoreSkip},
		{Kind: abi.KindAgentState, State: state, Mode: abi.RestoreOverwrite},
		{Kind: abi.KindAgentState, State: fullState, Mode: abi.RestoreOverwrite},
	}
	for _, r := range valid {
		assert.NoError(t, r.Check(), "%+v", r)
	}
	noCreated, noUpdated := alert, alert
	noCreated.CreatedAt, noUpdated.UpdatedAt = time.Time{}, time.Time{}
	badSeverity := alert
	badSeverity.Severity = 0
	version0, stateNoUpdated, stateNoID := state, state, state
	version0.Version, stateNoUpdated.UpdatedAt, stateNoID.AgentID = 0, time.Time{}, ""
	invalid := map[string]abi.Restore{
		"unknown kind":             {Kind: 4, Mode: abi.RestoreFail},
		"kind 0":                   {Mode: abi.RestoreFail},
		"mode 0":                   {Kind: abi.KindMetric, Metric: fullMetric},
		"mode 4":                   {Kind: abi.KindMetric, Metric: fullMetric, Mode: 4},
		"metric without timestamp": {Kind: abi.KindMetric, Metric: abi.Metric{AgentID: "a", Name: "n"}, Mode: abi.RestoreFail},
		"alert without created_at": {Kind: abi.KindAlert, Alert: noCreated, Mode: abi.RestoreFail},
		"alert without updated_at": {Kind: abi.KindAlert, Alert: noUpdated, Mode: abi.RestoreFail},
		"alert severity":           {Kind: abi.KindAlert, Alert: badSeverity, Mode: abi.RestoreFail},
		"agent state version 0":    {Kind: abi.KindAgentState, State: version0, Mode: abi.RestoreFail},
		"agent state updated_at":   {Kind: abi.KindAgentState, State: stateNoUpdated, Mode: abi.RestoreFail},
		"agent state id":           {Kind: abi.KindAgentState, State: stateNoID, Mode: abi.RestoreFail},
	}
	for name, r := range invalid {
		assert.ErrorIs(t, r.Check(), abi.StatusInvalid, name)
	}
}

func TestPluginEventCheck(t *testing.T) {
	ok := abi.PluginEvent{Kind: "workflow", Op: "step.done", AgentID: "agent-1", Key: "run-7", Data: make([]byte, abi.MaxEventData)}
	require.NoError(t, ok.Check())
	require.NoError(t, (&abi.PluginEvent{Kind: "a-b_c.9", Op: strings.Repeat("x", abi.MaxEventNameLength)}).Check(),
		"agent and key may be empty")

	bad := func(f func(ev *abi.PluginEvent)) abi.PluginEvent {
		ev := ok
		f(&ev)
		return ev
	}
	for name, ev := range map[string]abi.PluginEvent{
		"empty kind":        bad(func(ev *abi.PluginEvent) { ev.Kind = "" }),
		"empty op":          bad(func(ev *abi.PluginEvent) { ev.Op = "" }),
		"long kind":         bad(func(ev *abi.PluginEvent) { ev.Kind = strings.Repeat("k", abi.MaxEventNameLength+1) }),
		"upper case":        bad(func(ev *abi.PluginEvent) { ev.Kind = "Workflow" }),
		"space in op":       bad(func(ev *abi.PluginEvent) { ev.Op = "step done" }),
		"non-ASCII":         bad(func(ev *abi.PluginEvent) { ev.Op = "étape" }),
		"invalid UTF-8":     bad(func(ev *abi.PluginEvent) { ev.Kind = "\xff" }),
		"reserved metrics":  bad(func(ev *abi.PluginEvent) { ev.Kind = "metrics" }),
		"reserved alerts":   bad(func(ev *abi.PluginEvent) { ev.Kind = "alerts" }),
		"reserved states":   bad(func(ev *abi.PluginEvent) { ev.Kind = "agent_states" }),
		"agent with NUL":    bad(func(ev *abi.PluginEvent) { ev.AgentID = "a\x00b" }),
		"key too long":      bad(func(ev *abi.PluginEvent) { ev.Key = strings.Repeat("k", abi.MaxIDLength+1) }),
		"key invalid UTF-8": bad(func(ev *abi.PluginEvent) { ev.Key = "\xc3" }),
	} {
		assert.ErrorIs(t, ev.Check(), abi.StatusInvalid, name)
	}
	big := bad(func(ev *abi.PluginEvent) { ev.Data = make([]byte, abi.MaxEventData+1) })
	assert.ErrorIs(t, big.Check(), abi.StatusLimit)
}

func TestOptionsTTL(t *testing.T) {
	o := abi.Options{"none": "0", "day": "86400", "century": "3153600000", "past": "3153600001", "huge": "9223372036", "neg": "-1", "word": "1h"}
	for name, want := range map[string]time.Duration{"none": 0, "day": 24 * time.Hour, "century": abi.MaxTTL} {
		d, ok, err := o.TTL(name)
		require.NoError(t, err, name)
		require.True(t, ok, name)
		require.Equal(t, want, d, name)
	}
	for _, name := range []string{"past", "huge", "neg", "word"} {
		_, ok, err := o.TTL(name)
		require.True(t, ok, name)
		require.ErrorIs(t, err, abi.StatusInvalid, name)
		require.ErrorContains(t, err, "option "+name+": ", name)
		require.ErrorContains(t, err, "is not a whole number of seconds from 0 to 3153600000 (100 years)", name)
	}
	_, ok, err := o.TTL("absent")
	require.False(t, ok)
	require.NoError(t, err)
}
