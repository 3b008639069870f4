package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// sample returns records of every kind, with and without TTLs.
func sample(n int) []backup.Record {
	var out []backup.Record
	for i := range n {
		out = append(out,
			backup.Record{Kind: abi.KindMetric, Metric: abi.Metric{
				AgentID: fmt.Sprintf("a%d", i), Name: "cpu", Value: float64(i) / 3,
				Timestamp: t0.Add(time.Duration(i) * time.Second), Labels: map[string]string{"host": "web-1", "i": fmt.Sprint(i)},
			}, TTL: time.Duration(i) * time.Hour},
			backup.Record{Kind: abi.KindAlert, Alert: abi.Alert{
				ID: fmt.Sprintf("al%d", i), AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertAcknowledged,
				Message: "disk ½ full", CreatedAt: t0, UpdatedAt: t0.Add(time.Minute),
			}},
			backup.Record{Kind: abi.KindAgentState, State: abi.AgentState{
				AgentID: fmt.Sprintf("s%d", i), State: []byte(`{"step":` + fmt.Sprint(i) + `}`), Version: uint64(i + 7), UpdatedAt: t0,
			}, TTL: 90 * time.Second}, // alive through any test that reads it back
		)
	}
	return out
}

func write(t *testing.T, recs []backup.Record) ([]byte, backup.Summary) {
	t.Helper()
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{Created: t0, Backend: "b", Plugin: "memory", PluginVersion: "1.0.0", ABI: abi.Version{Major: 1, Minor: 2}})
	require.NoError(t, err)
	for i := range recs {
		require.NoError(t, w.Write(&recs[i]))
	}
	sum, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), sum.Bytes)
	return buf.Bytes(), sum
}

func TestRoundTrip(t *testing.T) {
	recs := sample(5)
	file, wrote := write(t, recs)

	sum, err := backup.Verify(bytes.NewReader(file))
	require.NoError(t, err)
	require.Equal(t, wrote, sum)
	require.Equal(t, backup.Counts{Metrics: 5, Alerts: 5, AgentStates: 5}, sum.Counts)
	require.Equal(t, "b", sum.Header.Backend)
	require.True(t, t0.Equal(sum.Header.Created))
	require.Equal(t, abi.Version{Major: 1, Minor: 2}, sum.Header.ABI)

	r, err := backup.NewReader(bytes.NewReader(file))
	require.NoError(t, err)
	for i := range recs {
		got, err := r.Next()
		require.NoError(t, err)
		got.Metric.Timestamp = got.Metric.Timestamp.UTC()
		got.Alert.CreatedAt, got.Alert.UpdatedAt = got.Alert.CreatedAt.UTC(), got.Alert.UpdatedAt.UTC()
		got.State.UpdatedAt = got.State.UpdatedAt.UTC()
		require.Equal(t, recs[i], *got, "record %d", i)
	}
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF, "and again")

	// An empty backup is a backup.
	empty, _ := write(t, nil)
	sum, err = backup.Verify(bytes.NewReader(empty))
	require.NoError(t, err)
	require.Zero(t, sum.Counts.Total())
}

func TestWriterRefusesUnrestorableRecords(t *testing.T) {
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{})
	require.NoError(t, err)
	require.ErrorContains(t, w.Write(&backup.Record{Kind: abi.KindAgentState, State: abi.AgentState{AgentID: "a", UpdatedAt: t0}}),
		"a restored version is at least 1")
	require.ErrorContains(t, w.Write(&backup.Record{Kind: abi.KindMetric, Metric: abi.Metric{AgentID: "a", Name: "n"}}),
		"metric timestamp is unset")
	require.Error(t, w.Write(&backup.Record{Kind: 9}))
}

// TestEveryTruncationRefused cuts the file at every length short of its
// whole: each must be refused, as truncated or as not a backup at all.
func TestEveryTruncationRefused(t *testing.T) {
	file, _ := write(t, sample(4))
	for n := 0; n < len(file); n++ {
		_, err := backup.Verify(bytes.NewReader(file[:n]))
		require.Error(t, err, "truncated to %d of %d bytes", n, len(file))
		if n >= len(backup.Magic) {
			require.ErrorIs(t, err, backup.ErrTruncated, "truncated to %d of %d bytes", n, len(file))
		}
		if n > 0 {
			require.ErrorIs(t, err, backup.ErrCorrupt, "truncated to %d of %d bytes", n, len(file))
		}
	}
	_, err := backup.Verify(bytes.NewReader(nil))
	require.ErrorIs(t, err, backup.ErrNotBackup)
	// Anything after the trailer is refused too.
	_, err = backup.Verify(bytes.NewReader(append(bytes.Clone(file), 0)))
	require.ErrorIs(t, err, backup.ErrCorrupt)
	require.ErrorContains(t, err, "data after the trailer")
}

// TestEveryFlippedByteRefused flips each bit of... each byte in turn (one
// bit pattern per byte: all of them, then the lowest one).
func TestEveryFlippedByteRefused(t *testing.T) {
	file, _ := write(t, sample(4))
	for i := range file {
		for _, mask := range []byte{0xff, 0x01} {
			bad := bytes.Clone(file)
			bad[i] ^= mask
			_, err := backup.Verify(bytes.NewReader(bad))
			require.Error(t, err, "byte %d ^ %#x", i, mask)
			switch {
			case i < len(backup.Magic):
				require.ErrorIs(t, err, backup.ErrNotBackup, "byte %d ^ %#x", i, mask)
			case i == len(backup.Magic):
				require.ErrorIs(t, err, backup.ErrUnsupportedVersion, "byte %d ^ %#x", i, mask)
			default:
				require.ErrorIs(t, err, backup.ErrCorrupt, "byte %d ^ %#x", i, mask)
			}
		}
	}
}

func TestVerifyMessages(t *testing.T) {
	file, _ := write(t, sample(1))
	bad := bytes.Clone(file)
	bad[len(bad)-1] ^= 1
	_, err := backup.Verify(bytes.NewReader(bad))
	require.ErrorContains(t, err, "backup: file is corrupt: checksum mismatch")

	_, err = backup.Verify(bytes.NewReader(file[:len(file)-10]))
	require.EqualError(t, err, fmt.Sprintf("backup: file is corrupt: truncated after %d bytes", len(file)-10))

	v3 := bytes.Clone(file)
	v3[len(backup.Magic)] = 3
	_, err = backup.Verify(bytes.NewReader(v3))
	require.EqualError(t, err, "backup: unsupported format version 3 (this host reads versions 1 and 2)")

	_, err = backup.Verify(bytes.NewReader([]byte("hello, world")))
	require.ErrorIs(t, err, backup.ErrNotBackup)
}

// TestBackupStore backs up a real backend and reads it back.
func TestBackupStore(t *testing.T) {
	ctx := context.Background()
	st := openMemory(t)
	fill(t, st, 1200, 30, 1100) // more than a page of metrics and agent states

	var buf bytes.Buffer
	sum, err := backup.Backup(ctx, st, &buf)
	require.NoError(t, err)
	require.Equal(t, backup.Counts{Metrics: 1200, Alerts: 30, AgentStates: 1100}, sum.Counts)
	require.Equal(t, "memory", sum.Header.Plugin)
	require.Equal(t, "src", sum.Header.Backend)
	require.WithinDuration(t, time.Now(), sum.Header.Created, time.Minute)

	got, err := backup.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, sum, got)

	// Every record is there as stored, its TTL what was left.
	r, err := backup.NewReader(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch rec.Kind {
		case abi.KindMetric:
			m, err := st.GetMetric(ctx, rec.Metric.Key())
			require.NoError(t, err)
			require.InDelta(t, time.Until(m.ExpiresAt).Seconds(), rec.TTL.Seconds(), 5)
			m.ExpiresAt = time.Time{}
			require.Equal(t, enc(&m), enc(&rec.Metric))
		case abi.KindAlert:
			a, err := st.GetAlert(ctx, rec.Alert.ID)
			require.NoError(t, err)
			require.Zero(t, rec.TTL, "persisted")
			require.Equal(t, enc(&a), enc(&rec.Alert))
		case abi.KindAgentState:
			s, err := st.GetAgentState(ctx, rec.State.AgentID)
			require.NoError(t, err)
			require.InDelta(t, time.Until(s.ExpiresAt).Seconds(), rec.TTL.Seconds(), 5)
			s.ExpiresAt = time.Time{}
			require.Equal(t, enc(&s), enc(&rec.State))
		}
	}
}

type encoder interface{ Encode(*abi.Encoder) }

// enc returns the ABI encoding of a record, the simplest exact comparison
// (times compare by instant, labels in order).
func enc(r encoder) []byte {
	var e abi.Encoder
	r.Encode(&e)
	return e.Bytes()
}

func openMemory(t testing.TB) *host.Store {
	t.Helper()
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Name: "src", Plugin: "builtin:memory"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// fill writes metrics (TTL 1h), alerts (no TTL; every other one
// acknowledged) and agent states (TTL 2h, written twice so their versions
// are not 1).
func fill(t testing.TB, st *host.Store, metrics, alerts, states int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < metrics; i += 500 {
		var batch []host.Metric
		for j := i; j < min(i+500, metrics); j++ {
			batch = append(batch, host.Metric{
				AgentID: fmt.Sprintf("agent-%03d", j%100), Name: fmt.Sprintf("m%d", j%7), Value: float64(j) * 1.5,
				Timestamp: t0.Add(time.Duration(j) * time.Millisecond), Labels: map[string]string{"j": fmt.Sprint(j)},
			})
		}
		rs, err := st.PutMetrics(ctx, batch, host.WithTTL(time.Hour))
		require.NoError(t, err)
		for _, r := range rs {
			require.NoError(t, r.Err)
		}
	}
	for i := range alerts {
		a, err := st.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("alert-%04d", i), AgentID: "agent-001",
			Severity: abi.SeverityCritical, Status: abi.AlertFiring, Message: "m"}, host.WithPersist())
		require.NoError(t, err)
		if i%2 == 1 {
			_, err = st.SetAlertStatus(ctx, a.ID, abi.AlertAcknowledged)
			require.NoError(t, err)
		}
	}
	for i := 0; i < states; i += 500 {
		var batch []host.AgentState
		for j := i; j < min(i+500, states); j++ {
			batch = append(batch, host.AgentState{AgentID: fmt.Sprintf("agent-%05d", j), State: []byte(fmt.Sprintf(`{"j":%d}`, j))})
		}
		for range 2 {
			rs, err := st.PutAgentStates(ctx, batch, host.WithTTL(2*time.Hour))
			require.NoError(t, err)
			for _, r := range rs {
				require.NoError(t, r.Err)
			}
		}
	}
}
