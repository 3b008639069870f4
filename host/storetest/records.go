package storetest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// requireUnsupported requires err to be the refusal of a feature the
// backend does not advertise.
func requireUnsupported(t *testing.T, err error, what string) {
	t.Helper()
	require.ErrorIs(t, err, host.ErrUnsupported, "%s: a feature the backend does not advertise must be refused", what)
}

// newInstancesHint explains a NewInstances failure: the record was written
// and then lost with the instances that served it.
const newInstancesHint = "read after the host replaced every instance (Store.Recycle): a plugin keeps its records in its stores (kv, Redis, PostgreSQL), not in an instance's memory, which the host may close between any two requests (abi/README.md, section 3)"

// longID returns an ID of exactly n bytes starting with p.
func longID(p string, n int) string { return p + strings.Repeat("x", n-len(p)) }

// --- metrics ---

func (s *suite) testMetrics(t *testing.T) {
	if !s.has(abi.FeatureMetrics) {
		t.Run("Refused", s.refuseMetrics)
		return
	}
	ctx := t.Context()
	st := s.st

	t.Run("RoundTrip", func(t *testing.T) {
		p := s.prefix()
		ts := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
		in := []host.Metric{
			{AgentID: p + "agent", Name: "cpu.load", Value: 0.75, Timestamp: ts, Labels: map[string]string{
				"host": "h-1", "region": "eu-west-1", "unicode": "héllo wörld ✓", "punctuation": "a=b,c{d}\"e\"\n\t",
			}},
			{AgentID: p + "agent", Name: "temperature", Value: -273.15, Timestamp: ts},
			{AgentID: p + "agent", Name: "max", Value: math.MaxFloat64, Timestamp: ts},
			{AgentID: p + "agent", Name: "min", Value: -math.MaxFloat64, Timestamp: ts},
			{AgentID: p + "agent", Name: "tiny", Value: math.SmallestNonzeroFloat64, Timestamp: ts},
			{AgentID: p + "agent", Name: "large-negative", Value: -1.234567890123e300, Timestamp: ts},
			{AgentID: p + "agent", Name: "zero", Value: 0, Timestamp: ts},
			{AgentID: p + "agent", Name: "before-1970", Value: 1, Timestamp: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC)},
			{AgentID: p + "agent", Name: "far-future", Value: 1, Timestamp: time.Date(2200, 1, 1, 0, 0, 0, 999999999, time.UTC)},
			{AgentID: p + "agent", Name: "other-zone", Value: 2, Timestamp: time.Date(2024, 3, 1, 14, 0, 0, 5, time.FixedZone("CEST", 2*3600))},
			{AgentID: p + "agent/ünïcode ✓", Name: "name with spaces/and:colons", Value: 3, Timestamp: ts},
			{AgentID: longID(p, abi.MaxIDLength), Name: longID("n", abi.MaxIDLength), Value: 4, Timestamp: ts},
		}
		for _, m := range in {
			put, err := st.PutMetric(ctx, m)
			require.NoError(t, err, "put %s/%s", m.AgentID, m.Name)
			want := m
			want.ExpiresAt = put.ExpiresAt // checked by TTL
			requireMetric(t, want, put, "put must return the metric as stored")
			got, err := st.GetMetric(ctx, m.Key())
			require.NoError(t, err, "get %s/%s", m.AgentID, m.Name)
			requireMetric(t, put, got, "get must return what put returned")
		}
	})

	t.Run("NanosecondKeys", func(t *testing.T) {
		// Two samples a nanosecond apart are two records.
		p := s.prefix()
		ts := time.Date(2024, 3, 1, 12, 0, 0, 500, time.UTC)
		a := host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: ts}
		b := host.Metric{AgentID: p + "agent", Name: "n", Value: 2, Timestamp: ts.Add(time.Nanosecond)}
		for _, m := range []host.Metric{a, b} {
			_, err := st.PutMetric(ctx, m)
			require.NoError(t, err)
		}
		for _, m := range []host.Metric{a, b} {
			got, err := st.GetMetric(ctx, m.Key())
			require.NoError(t, err)
			require.Equal(t, m.Value, got.Value, "the sample at %v", m.Timestamp)
			requireSameTime(t, m.Timestamp, got.Timestamp, "Timestamp")
		}
		_, err := st.GetMetric(ctx, host.MetricKey{AgentID: a.AgentID, Name: a.Name, Timestamp: ts.Add(2 * time.Nanosecond)})
		require.ErrorIs(t, err, host.ErrNotFound, "no sample 2ns later")
	})

	t.Run("Replace", func(t *testing.T) {
		p := s.prefix()
		m := host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 7, time.UTC),
			Labels: map[string]string{"a": "1", "b": "2"}}
		_, err := st.PutMetric(ctx, m)
		require.NoError(t, err)
		m.Value, m.Labels = -2.5, map[string]string{"c": "3"}
		put, err := st.PutMetric(ctx, m)
		require.NoError(t, err)
		m.ExpiresAt = put.ExpiresAt
		requireMetric(t, m, put, "put of an existing key must return the new sample")
		got, err := st.GetMetric(ctx, m.Key())
		require.NoError(t, err)
		requireMetric(t, m, got, "a put replaces the sample, labels included (they are not merged)")
	})

	t.Run("NewInstances", func(t *testing.T) {
		// Records live in the backend's stores, not in an instance: they
		// are read back after the host replaced every instance.
		p := s.prefix()
		put, err := st.PutMetric(ctx, host.Metric{AgentID: p + "agent", Name: "n", Value: 1.5, Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
		require.NoError(t, err)
		st.Recycle(ctx)
		got, err := st.GetMetric(ctx, put.Key())
		require.NoError(t, err, newInstancesHint)
		requireMetric(t, put, got, newInstancesHint)
	})

	t.Run("Delete", func(t *testing.T) {
		p := s.prefix()
		m := host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		_, err := st.PutMetric(ctx, m)
		require.NoError(t, err)
		require.NoError(t, st.DeleteMetric(ctx, m.Key()))
		_, err = st.GetMetric(ctx, m.Key())
		require.ErrorIs(t, err, host.ErrNotFound, "get after delete")
		require.ErrorIs(t, st.DeleteMetric(ctx, m.Key()), host.ErrNotFound, "a second delete")
	})

	t.Run("NotFound", func(t *testing.T) {
		p := s.prefix()
		ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		_, err := st.GetMetric(ctx, host.MetricKey{AgentID: p + "nobody", Name: "n", Timestamp: ts})
		require.ErrorIs(t, err, host.ErrNotFound, "get of a missing metric")
		require.ErrorIs(t, st.DeleteMetric(ctx, host.MetricKey{AgentID: p + "nobody", Name: "n", Timestamp: ts}), host.ErrNotFound,
			"delete of a missing metric")
		m := host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: ts}
		_, err = st.PutMetric(ctx, m)
		require.NoError(t, err)
		_, err = st.GetMetric(ctx, host.MetricKey{AgentID: m.AgentID, Name: "other", Timestamp: ts})
		require.ErrorIs(t, err, host.ErrNotFound, "same agent and timestamp, other name")
		_, err = st.GetMetric(ctx, host.MetricKey{AgentID: m.AgentID + "x", Name: m.Name, Timestamp: ts})
		require.ErrorIs(t, err, host.ErrNotFound, "an agent ID the stored one is a prefix of")
	})

	t.Run("Invalid", func(t *testing.T) {
		p := s.prefix()
		ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		valid := host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: ts}
		with := func(f func(m *host.Metric)) host.Metric {
			m := valid
			f(&m)
			return m
		}
		puts := []struct {
			name string
			m    host.Metric
		}{
			{"EmptyAgentID", with(func(m *host.Metric) { m.AgentID = "" })},
			{"EmptyName", with(func(m *host.Metric) { m.Name = "" })},
			{"NULInAgentID", with(func(m *host.Metric) { m.AgentID = p + "a\x00b" })},
			{"NULInName", with(func(m *host.Metric) { m.Name = "a\x00b" })},
			{"InvalidUTF8AgentID", with(func(m *host.Metric) { m.AgentID = p + "\xff\xfe" })},
			{"LongAgentID", with(func(m *host.Metric) { m.AgentID = longID(p, abi.MaxIDLength+1) })},
			{"LongName", with(func(m *host.Metric) { m.Name = longID("n", abi.MaxIDLength+1) })},
			{"ZeroTimestamp", with(func(m *host.Metric) { m.Timestamp = time.Time{} })},
			{"EmptyLabelName", with(func(m *host.Metric) { m.Labels = map[string]string{"": "v"} })},
			{"NULInLabelName", with(func(m *host.Metric) { m.Labels = map[string]string{"a\x00b": "v"} })},
		}
		for _, tc := range puts {
			t.Run("Put"+tc.name, func(t *testing.T) {
				_, err := st.PutMetric(ctx, tc.m)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
		}
		keys := []struct {
			name string
			k    host.MetricKey
		}{
			{"EmptyAgentID", host.MetricKey{Name: "n", Timestamp: ts}},
			{"EmptyName", host.MetricKey{AgentID: p + "agent", Timestamp: ts}},
			{"NULInAgentID", host.MetricKey{AgentID: p + "a\x00b", Name: "n", Timestamp: ts}},
			{"ZeroTimestamp", host.MetricKey{AgentID: p + "agent", Name: "n"}},
		}
		for _, tc := range keys {
			t.Run("Get"+tc.name, func(t *testing.T) {
				_, err := st.GetMetric(ctx, tc.k)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
			t.Run("Delete"+tc.name, func(t *testing.T) {
				require.ErrorIs(t, st.DeleteMetric(ctx, tc.k), host.ErrInvalid)
			})
		}
		t.Run("Condition", func(t *testing.T) {
			// Conditions apply to agent states only.
			for _, opt := range []host.WriteOption{host.IfVersion(1), host.IfAbsent()} {
				_, err := st.PutMetric(ctx, valid, opt)
				require.ErrorIs(t, err, host.ErrInvalid)
			}
		})
		// Nothing above may have written the valid key.
		_, err := st.GetMetric(ctx, valid.Key())
		require.ErrorIs(t, err, host.ErrNotFound, "a refused write stored a metric")
	})
}

func (s *suite) refuseMetrics(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	k := host.MetricKey{AgentID: p + "agent", Name: "n", Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, err := s.st.PutMetric(ctx, host.Metric{AgentID: k.AgentID, Name: k.Name, Value: 1, Timestamp: k.Timestamp})
	requireUnsupported(t, err, "PutMetric")
	_, err = s.st.GetMetric(ctx, k)
	requireUnsupported(t, err, "GetMetric")
	requireUnsupported(t, s.st.DeleteMetric(ctx, k), "DeleteMetric")
	_, err = s.st.QueryMetrics(ctx, host.MetricQuery{AgentID: k.AgentID})
	requireUnsupported(t, err, "QueryMetrics")
}

// --- alerts ---

var statuses = []abi.AlertStatus{abi.AlertFiring, abi.AlertAcknowledged, abi.AlertResolved}

func (s *suite) testAlerts(t *testing.T) {
	if !s.has(abi.FeatureAlerts) {
		t.Run("Refused", s.refuseAlerts)
		return
	}
	ctx := t.Context()
	st := s.st

	t.Run("RoundTrip", func(t *testing.T) {
		p := s.prefix()
		in := []host.Alert{
			{ID: p + "alert-1", AgentID: p + "agent", Severity: abi.SeverityCritical, Status: abi.AlertFiring,
				Message: "disk 95% full\nsecond line ✓", Labels: map[string]string{"disk": "/dev/sda1", "team": "storage ✓"}},
			{ID: p + "alert-2", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertAcknowledged},
			{ID: p + "alert-3", AgentID: p + "other-agent", Severity: abi.SeverityWarning, Status: abi.AlertResolved,
				Message: strings.Repeat("long message ", 1000)},
			{ID: longID(p, abi.MaxIDLength), AgentID: longID(p, abi.MaxIDLength), Severity: abi.SeverityInfo, Status: abi.AlertFiring},
		}
		for _, a := range in {
			before := time.Now()
			put, err := st.PutAlert(ctx, a)
			after := time.Now()
			require.NoError(t, err, "put %s", a.ID)
			requireNear(t, put.CreatedAt, before, after, "CreatedAt of a new alert")
			requireNear(t, put.UpdatedAt, before, after, "UpdatedAt of a new alert")
			want := a
			want.CreatedAt, want.UpdatedAt, want.ExpiresAt = put.CreatedAt, put.UpdatedAt, put.ExpiresAt
			requireAlert(t, want, put, "put must return the alert as stored")
			got, err := st.GetAlert(ctx, a.ID)
			require.NoError(t, err)
			requireAlert(t, put, got, "get must return what put returned")
		}
	})

	t.Run("Replace", func(t *testing.T) {
		p := s.prefix()
		a := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring,
			Message: "first", Labels: map[string]string{"a": "1", "b": "2"}}
		first, err := st.PutAlert(ctx, a)
		require.NoError(t, err)
		waitClockPast(t, first.UpdatedAt)

		a.Severity, a.Message, a.Labels = abi.SeverityCritical, "second", map[string]string{"c": "3"}
		a.AgentID = p + "other-agent"
		before := time.Now()
		second, err := st.PutAlert(ctx, a)
		after := time.Now()
		require.NoError(t, err)
		requireSameTime(t, first.CreatedAt, second.CreatedAt, "CreatedAt after a replace")
		require.True(t, second.UpdatedAt.After(first.UpdatedAt), "UpdatedAt must advance on a replace: %v, then %v", first.UpdatedAt, second.UpdatedAt)
		requireNear(t, second.UpdatedAt, before, after, "UpdatedAt of a replace")
		want := a
		want.CreatedAt, want.UpdatedAt, want.ExpiresAt = first.CreatedAt, second.UpdatedAt, second.ExpiresAt
		requireAlert(t, want, second, "a put replaces the alert, labels included (they are not merged)")
		got, err := st.GetAlert(ctx, a.ID)
		require.NoError(t, err)
		requireAlert(t, second, got)

		// CreatedAt is the backend's once the alert exists: a writer that
		// sends another one does not move it.
		waitClockPast(t, second.UpdatedAt)
		a.CreatedAt, a.UpdatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		third, err := st.PutAlert(ctx, a)
		require.NoError(t, err)
		requireSameTime(t, first.CreatedAt, third.CreatedAt, "CreatedAt after a replace that sends another CreatedAt")
		require.True(t, third.UpdatedAt.After(second.UpdatedAt), "UpdatedAt is the backend's, not the writer's: %v, then %v", second.UpdatedAt, third.UpdatedAt)
	})

	t.Run("CreatedAtOfTheRequest", func(t *testing.T) {
		// A new alert takes CreatedAt from the request when it has one
		// (ABI section 10.3): a migration or an agent that saw the alert
		// first keeps when it began.
		p := s.prefix()
		began := time.Date(2026, 3, 1, 12, 30, 45, 123_000_000, time.UTC)
		a := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertFiring, CreatedAt: began}
		put, err := st.PutAlert(ctx, a)
		require.NoError(t, err)
		requireSameTime(t, began, put.CreatedAt, "CreatedAt of a new alert whose request gives one")
		got, err := st.GetAlert(ctx, a.ID)
		require.NoError(t, err)
		requireSameTime(t, began, got.CreatedAt, "CreatedAt read back")
	})

	t.Run("NewInstances", func(t *testing.T) {
		p := s.prefix()
		put, err := st.PutAlert(ctx, host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "m"})
		require.NoError(t, err)
		st.Recycle(ctx)
		got, err := st.GetAlert(ctx, put.ID)
		require.NoError(t, err, newInstancesHint)
		requireAlert(t, put, got, newInstancesHint)
	})

	t.Run("Delete", func(t *testing.T) {
		p := s.prefix()
		a := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring}
		_, err := st.PutAlert(ctx, a)
		require.NoError(t, err)
		require.NoError(t, st.DeleteAlert(ctx, a.ID))
		_, err = st.GetAlert(ctx, a.ID)
		require.ErrorIs(t, err, host.ErrNotFound, "get after delete")
		require.ErrorIs(t, st.DeleteAlert(ctx, a.ID), host.ErrNotFound, "a second delete")
		_, err = st.SetAlertStatus(ctx, a.ID, abi.AlertResolved)
		require.ErrorIs(t, err, host.ErrNotFound, "SetAlertStatus after delete")

		// A deleted alert is created anew: with a new CreatedAt and in any
		// status, whatever the old one's was.
		a.Status = abi.AlertAcknowledged
		_, err = st.PutAlert(ctx, a)
		require.NoError(t, err, "re-creating a deleted alert")
	})

	t.Run("NotFound", func(t *testing.T) {
		p := s.prefix()
		_, err := st.GetAlert(ctx, p+"missing")
		require.ErrorIs(t, err, host.ErrNotFound, "GetAlert")
		require.ErrorIs(t, st.DeleteAlert(ctx, p+"missing"), host.ErrNotFound, "DeleteAlert")
		_, err = st.SetAlertStatus(ctx, p+"missing", abi.AlertResolved)
		require.ErrorIs(t, err, host.ErrNotFound, "SetAlertStatus")
		_, err = st.GetAlert(ctx, p+"missing")
		require.ErrorIs(t, err, host.ErrNotFound, "SetAlertStatus on a missing alert must not create it")
	})

	t.Run("Invalid", func(t *testing.T) {
		p := s.prefix()
		valid := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring}
		with := func(f func(a *host.Alert)) host.Alert {
			a := valid
			f(&a)
			return a
		}
		puts := []struct {
			name string
			a    host.Alert
		}{
			{"EmptyID", with(func(a *host.Alert) { a.ID = "" })},
			{"EmptyAgentID", with(func(a *host.Alert) { a.AgentID = "" })},
			{"NULInID", with(func(a *host.Alert) { a.ID = p + "a\x00b" })},
			{"NULInAgentID", with(func(a *host.Alert) { a.AgentID = p + "a\x00b" })},
			{"InvalidUTF8ID", with(func(a *host.Alert) { a.ID = p + "\xff" })},
			{"LongID", with(func(a *host.Alert) { a.ID = longID(p, abi.MaxIDLength+1) })},
			{"SeverityZero", with(func(a *host.Alert) { a.Severity = 0 })},
			{"UnknownSeverity", with(func(a *host.Alert) { a.Severity = abi.SeverityCritical + 1 })},
			{"StatusZero", with(func(a *host.Alert) { a.Status = 0 })},
			{"UnknownStatus", with(func(a *host.Alert) { a.Status = abi.AlertResolved + 1 })},
			{"EmptyLabelName", with(func(a *host.Alert) { a.Labels = map[string]string{"": "v"} })},
		}
		for _, tc := range puts {
			t.Run("Put"+tc.name, func(t *testing.T) {
				_, err := st.PutAlert(ctx, tc.a)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
		}
		for _, tc := range []struct{ name, id string }{{"EmptyID", ""}, {"NULInID", p + "a\x00b"}} {
			t.Run("Get"+tc.name, func(t *testing.T) {
				_, err := st.GetAlert(ctx, tc.id)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
			t.Run("Delete"+tc.name, func(t *testing.T) {
				require.ErrorIs(t, st.DeleteAlert(ctx, tc.id), host.ErrInvalid)
			})
			t.Run("SetAlertStatus"+tc.name, func(t *testing.T) {
				_, err := st.SetAlertStatus(ctx, tc.id, abi.AlertResolved)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
		}
		t.Run("Condition", func(t *testing.T) {
			for _, opt := range []host.WriteOption{host.IfVersion(1), host.IfAbsent()} {
				_, err := st.PutAlert(ctx, valid, opt)
				require.ErrorIs(t, err, host.ErrInvalid, "conditions apply to agent states only")
			}
		})
		_, err := st.GetAlert(ctx, valid.ID)
		require.ErrorIs(t, err, host.ErrNotFound, "a refused write stored an alert")

		t.Run("SetAlertStatusUnknown", func(t *testing.T) {
			stored, err := st.PutAlert(ctx, valid)
			require.NoError(t, err)
			for _, status := range []abi.AlertStatus{0, abi.AlertResolved + 1} {
				_, err := st.SetAlertStatus(ctx, valid.ID, status)
				require.ErrorIs(t, err, host.ErrInvalid, "status %d", status)
			}
			got, err := st.GetAlert(ctx, valid.ID)
			require.NoError(t, err)
			requireAlert(t, stored, got, "a refused SetAlertStatus changed the alert")
		})
	})

	t.Run("Transitions", s.testTransitions)
}

// testTransitions tries every pair of statuses through both ways of
// changing one: SetAlertStatus and a PutAlert that replaces the alert.
func (s *suite) testTransitions(t *testing.T) {
	ctx := t.Context()
	st := s.st
	for _, via := range []string{"SetAlertStatus", "PutAlert"} {
		t.Run(via, func(t *testing.T) {
			for _, from := range statuses {
				for _, to := range statuses {
					t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
						p := s.prefix()
						a := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: from,
							Message: "before", Labels: map[string]string{"k": "v"}}
						old, err := st.PutAlert(ctx, a)
						require.NoError(t, err, "creating an alert in status %s", from)
						waitClockPast(t, old.UpdatedAt)

						var got host.Alert
						if via == "SetAlertStatus" {
							got, err = st.SetAlertStatus(ctx, a.ID, to)
						} else {
							a.Status, a.Message = to, "after"
							got, err = st.PutAlert(ctx, a)
						}
						stored, gerr := st.GetAlert(ctx, a.ID)
						require.NoError(t, gerr)

						if !from.CanTransition(to) {
							require.ErrorIs(t, err, host.ErrConflict, "%s → %s is not an allowed transition", from, to)
							requireAlert(t, old, stored, "a refused transition must leave the alert as it was")
							return
						}
						require.NoError(t, err, "%s → %s is an allowed transition", from, to)
						want := old
						want.Status, want.UpdatedAt = to, got.UpdatedAt
						if via == "PutAlert" {
							want.Message = "after"
						}
						requireAlert(t, want, got, "the alert after %s → %s (CreatedAt, ExpiresAt and every other field kept)", from, to)
						require.True(t, got.UpdatedAt.After(old.UpdatedAt), "UpdatedAt must advance: %v, then %v", old.UpdatedAt, got.UpdatedAt)
						requireAlert(t, got, stored, "get after the transition")
					})
				}
			}
		})
	}
}

func (s *suite) refuseAlerts(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	_, err := s.st.PutAlert(ctx, host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
	requireUnsupported(t, err, "PutAlert")
	_, err = s.st.GetAlert(ctx, p+"alert")
	requireUnsupported(t, err, "GetAlert")
	requireUnsupported(t, s.st.DeleteAlert(ctx, p+"alert"), "DeleteAlert")
	_, err = s.st.SetAlertStatus(ctx, p+"alert", abi.AlertResolved)
	requireUnsupported(t, err, "SetAlertStatus")
	_, err = s.st.QueryAlerts(ctx, host.AlertQuery{AgentID: p + "agent"})
	requireUnsupported(t, err, "QueryAlerts")
}

// --- agent states ---

func (s *suite) testAgentStates(t *testing.T) {
	if !s.has(abi.FeatureAgentStates) {
		t.Run("Refused", s.refuseAgentStates)
		return
	}
	ctx := t.Context()
	st := s.st

	t.Run("RoundTrip", func(t *testing.T) {
		p := s.prefix()
		big := make([]byte, 64<<10)
		for i := range big {
			big[i] = byte(i * 7)
		}
		in := []host.AgentState{
			{AgentID: p + "json", State: []byte(`{"step":3,"plan":["a","b"],"note":"ünïcode ✓"}`)},
			{AgentID: p + "binary", State: []byte{0xff, 0xfe, 0x00, 0x80, 'x', 0x00, 0xc3, 0x28}},
			{AgentID: p + "empty", State: nil},
			{AgentID: p + "large", State: big},
			{AgentID: longID(p, abi.MaxIDLength), State: []byte("long id")},
		}
		for _, a := range in {
			before := time.Now()
			put, err := st.PutAgentState(ctx, a)
			after := time.Now()
			require.NoError(t, err, "put %s", a.AgentID)
			requireNear(t, put.UpdatedAt, before, after, "UpdatedAt")
			want := a
			want.Version, want.UpdatedAt, want.ExpiresAt = put.Version, put.UpdatedAt, put.ExpiresAt
			requireState(t, want, put, "put must return the state as stored")
			got, err := st.GetAgentState(ctx, a.AgentID)
			require.NoError(t, err)
			requireState(t, put, got, "get must return what put returned")
		}
	})

	t.Run("Replace", func(t *testing.T) {
		p := s.prefix()
		first, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("one")})
		require.NoError(t, err)
		waitClockPast(t, first.UpdatedAt)
		second, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("two")})
		require.NoError(t, err)
		require.Equal(t, []byte("two"), second.State)
		require.NotEqual(t, first.Version, second.Version, "the version must change on every write")
		require.True(t, second.UpdatedAt.After(first.UpdatedAt), "UpdatedAt must advance: %v, then %v", first.UpdatedAt, second.UpdatedAt)
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		requireState(t, second, got)
	})

	t.Run("Versions", func(t *testing.T) {
		// The same document written again is still a new write.
		p := s.prefix()
		seen := map[uint64]int{}
		var last host.AgentState
		for i := range 5 {
			put, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("same")})
			require.NoError(t, err)
			if j, dup := seen[put.Version]; dup {
				t.Fatalf("write %d returned version %d, as write %d did: the version must change on every write", i, put.Version, j)
			}
			seen[put.Version] = i
			last = put
		}
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		require.Equal(t, last.Version, got.Version, "get must return the version of the last write")

		// Input fields the backend owns are ignored.
		before := time.Now()
		put, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x"), Version: last.Version,
			UpdatedAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)})
		after := time.Now()
		require.NoError(t, err)
		require.NotEqual(t, last.Version, put.Version, "the version is the backend's, not the writer's")
		requireNear(t, put.UpdatedAt, before, after, "UpdatedAt (the backend's, not the writer's)")
	})

	t.Run("NewInstances", func(t *testing.T) {
		p := s.prefix()
		put, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("kept")})
		require.NoError(t, err)
		st.Recycle(ctx)
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err, newInstancesHint)
		requireState(t, put, got, newInstancesHint)
	})

	t.Run("Delete", func(t *testing.T) {
		p := s.prefix()
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")})
		require.NoError(t, err)
		require.NoError(t, st.DeleteAgentState(ctx, p+"agent"))
		_, err = st.GetAgentState(ctx, p+"agent")
		require.ErrorIs(t, err, host.ErrNotFound, "get after delete")
		require.ErrorIs(t, st.DeleteAgentState(ctx, p+"agent"), host.ErrNotFound, "a second delete")
	})

	t.Run("NotFound", func(t *testing.T) {
		p := s.prefix()
		_, err := st.GetAgentState(ctx, p+"missing")
		require.ErrorIs(t, err, host.ErrNotFound, "GetAgentState")
		require.ErrorIs(t, st.DeleteAgentState(ctx, p+"missing"), host.ErrNotFound, "DeleteAgentState")
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")})
		require.NoError(t, err)
		_, err = st.GetAgentState(ctx, p+"agen")
		require.ErrorIs(t, err, host.ErrNotFound, "a prefix of a stored agent ID")
		_, err = st.GetAgentState(ctx, p+"agent2")
		require.ErrorIs(t, err, host.ErrNotFound, "an agent ID the stored one is a prefix of")
	})

	t.Run("Invalid", func(t *testing.T) {
		p := s.prefix()
		ids := []struct{ name, id string }{
			{"EmptyAgentID", ""},
			{"NULInAgentID", p + "a\x00b"},
			{"InvalidUTF8AgentID", p + "\xff"},
			{"LongAgentID", longID(p, abi.MaxIDLength+1)},
		}
		for _, tc := range ids {
			t.Run("Put"+tc.name, func(t *testing.T) {
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: tc.id, State: []byte("x")})
				require.ErrorIs(t, err, host.ErrInvalid)
			})
			t.Run("Get"+tc.name, func(t *testing.T) {
				_, err := st.GetAgentState(ctx, tc.id)
				require.ErrorIs(t, err, host.ErrInvalid)
			})
			t.Run("Delete"+tc.name, func(t *testing.T) {
				require.ErrorIs(t, st.DeleteAgentState(ctx, tc.id), host.ErrInvalid)
			})
		}
	})
}

func (s *suite) refuseAgentStates(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	_, err := s.st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")})
	requireUnsupported(t, err, "PutAgentState")
	_, err = s.st.GetAgentState(ctx, p+"agent")
	requireUnsupported(t, err, "GetAgentState")
	requireUnsupported(t, s.st.DeleteAgentState(ctx, p+"agent"), "DeleteAgentState")
	_, err = s.st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: p})
	requireUnsupported(t, err, "QueryAgentStates")
}

// --- isolation and closing ---

func (s *suite) testIsolation(t *testing.T) {
	ctx := t.Context()
	a, b := s.openStore(t), s.openStore(t)
	ks := s.kinds()
	if len(ks) == 0 {
		t.Skip("the backend advertises no record kind")
	}
	for _, k := range ks {
		t.Run(k.name, func(t *testing.T) {
			id := s.prefix() + "isolated"
			_, err := k.put(ctx, a, id, "in-a")
			require.NoError(t, err)

			_, err = k.get(ctx, b, id)
			require.ErrorIs(t, err, host.ErrNotFound, "a record written in one namespace is visible in another")
			if s.has(abi.FeatureQuery) {
				_, found := k.find(t, b, id)
				require.False(t, found, "a record written in one namespace is listed by another's queries")
			}
			require.ErrorIs(t, k.del(ctx, b, id), host.ErrNotFound, "delete in the other namespace")
			got, err := k.get(ctx, a, id)
			require.NoError(t, err, "a delete in one namespace removed the record of another")
			require.Equal(t, "in-a", got.content)

			_, err = k.put(ctx, b, id, "in-b")
			require.NoError(t, err)
			got, err = k.get(ctx, a, id)
			require.NoError(t, err)
			require.Equal(t, "in-a", got.content, "a write in one namespace changed the record of another")
			got, err = k.get(ctx, b, id)
			require.NoError(t, err)
			require.Equal(t, "in-b", got.content)
			if s.has(abi.FeatureQuery) {
				got, found := k.find(t, a, id)
				require.True(t, found)
				require.Equal(t, "in-a", got.content, "a query in one namespace returned the record of another")
			}
		})
	}
}

func (s *suite) testClosed(t *testing.T) {
	ctx := t.Context()
	st := s.openStore(t)
	require.NoError(t, st.Close(ctx))
	p := s.prefix()
	k := host.MetricKey{AgentID: p + "agent", Name: "n", Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	alert := host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", st.Ping},
		{"PutMetric", func(ctx context.Context) error {
			_, err := st.PutMetric(ctx, host.Metric{AgentID: k.AgentID, Name: k.Name, Value: 1, Timestamp: k.Timestamp})
			return err
		}},
		{"GetMetric", func(ctx context.Context) error { _, err := st.GetMetric(ctx, k); return err }},
		{"DeleteMetric", func(ctx context.Context) error { return st.DeleteMetric(ctx, k) }},
		{"QueryMetrics", func(ctx context.Context) error {
			_, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: k.AgentID})
			return err
		}},
		{"PutAlert", func(ctx context.Context) error { _, err := st.PutAlert(ctx, alert); return err }},
		{"GetAlert", func(ctx context.Context) error { _, err := st.GetAlert(ctx, alert.ID); return err }},
		{"DeleteAlert", func(ctx context.Context) error { return st.DeleteAlert(ctx, alert.ID) }},
		{"SetAlertStatus", func(ctx context.Context) error {
			_, err := st.SetAlertStatus(ctx, alert.ID, abi.AlertResolved)
			return err
		}},
		{"QueryAlerts", func(ctx context.Context) error {
			_, err := st.QueryAlerts(ctx, host.AlertQuery{AgentID: alert.AgentID})
			return err
		}},
		{"PutAgentState", func(ctx context.Context) error {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")})
			return err
		}},
		{"GetAgentState", func(ctx context.Context) error { _, err := st.GetAgentState(ctx, p+"agent"); return err }},
		{"DeleteAgentState", func(ctx context.Context) error { return st.DeleteAgentState(ctx, p+"agent") }},
		{"QueryAgentStates", func(ctx context.Context) error {
			_, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: p})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, c.call(t.Context()), host.ErrClosed)
		})
	}
	t.Run("CloseAgain", func(t *testing.T) {
		require.NoError(t, st.Close(t.Context()), "Close of a closed store")
	})
}
