package storetest

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

func (s *suite) testQuery(t *testing.T) {
	ks := s.kinds()
	if len(ks) == 0 {
		t.Skip("the backend advertises no record kind")
	}
	if !s.has(abi.FeatureQuery) {
		t.Run("Refused", func(t *testing.T) {
			ctx := t.Context()
			p := s.prefix()
			if s.has(abi.FeatureMetrics) {
				_, err := s.st.QueryMetrics(ctx, host.MetricQuery{AgentID: p + "agent"})
				requireUnsupported(t, err, "QueryMetrics")
			}
			if s.has(abi.FeatureAlerts) {
				_, err := s.st.QueryAlerts(ctx, host.AlertQuery{AgentID: p + "agent"})
				requireUnsupported(t, err, "QueryAlerts")
			}
			if s.has(abi.FeatureAgentStates) {
				_, err := s.st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: p})
				requireUnsupported(t, err, "QueryAgentStates")
			}
		})
		return
	}
	if s.has(abi.FeatureMetrics) {
		t.Run("Metrics", s.testQueryMetrics)
	}
	if s.has(abi.FeatureAlerts) {
		t.Run("Alerts", s.testQueryAlerts)
	}
	if s.has(abi.FeatureAgentStates) {
		t.Run("AgentStates", s.testQueryAgentStates)
	}
	t.Run("Pagination", s.testPagination)
}

// inRange is the query time range: [from, to), a zero bound open.
func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

func filter[T any](all []T, keep func(T) bool) []T {
	out := []T{}
	for _, x := range all {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func compareMetrics(a, b host.Metric) int {
	return cmp.Or(strings.Compare(a.AgentID, b.AgentID), strings.Compare(a.Name, b.Name), a.Timestamp.Compare(b.Timestamp))
}

// metricKeys names metrics for a readable diff: agent (without the run's
// prefix), name, timestamp.
func metricKeys(p string, ms []host.Metric) []string {
	keys := make([]string, 0, len(ms))
	for _, m := range ms {
		keys = append(keys, fmt.Sprintf("%s %s %s", strings.TrimPrefix(m.AgentID, p), m.Name, utc(m.Timestamp).Format(time.RFC3339Nano)))
	}
	return keys
}

func alertKeys(p string, as []host.Alert) []string {
	keys := make([]string, 0, len(as))
	for _, a := range as {
		keys = append(keys, strings.TrimPrefix(a.ID, p))
	}
	return keys
}

func stateKeys(p string, ss []host.AgentState) []string {
	keys := make([]string, 0, len(ss))
	for _, s := range ss {
		keys = append(keys, strings.TrimPrefix(s.AgentID, p))
	}
	return keys
}

func (s *suite) testQueryMetrics(t *testing.T) {
	ctx := t.Context()
	st := s.st
	p := s.prefix()
	agents := []string{p + "a", p + "b"}
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * (time.Minute + time.Nanosecond)) }
	dcs := []string{"", "eu-west", "eu-central", "us-east"} // "" = no dc label
	var in []host.Metric
	for _, a := range agents {
		for _, name := range []string{"cpu", "mem"} {
			for i := range dcs {
				labels := map[string]string{"run": p, "host": fmt.Sprintf("h%d", i%2)}
				if dcs[i] != "" {
					labels["dc"] = dcs[i]
				}
				in = append(in, host.Metric{AgentID: a, Name: name, Value: float64(i) - 1.5, Timestamp: ts(i), Labels: labels})
			}
		}
	}
	// Write in an order unlike the result order.
	rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
	var all []host.Metric
	for _, m := range in {
		put, err := st.PutMetric(ctx, m)
		require.NoError(t, err)
		all = append(all, put)
	}
	slices.SortFunc(all, compareMetrics)

	run := host.Matcher{Label: "run", Op: abi.MatchEqual, Value: p}
	check := func(t *testing.T, q host.MetricQuery, keep func(m host.Metric) bool) {
		t.Helper()
		want := filter(all, keep)
		got := queryMetrics(t, st, q, len(want))
		require.Equal(t, metricKeys(p, want), metricKeys(p, got), "which metrics, in which order (agent, name, timestamp)")
		require.Equal(t, views(want, normMetric), views(got, normMetric), "the metrics' fields")
	}
	label := func(m host.Metric, k string) string { return m.Labels[k] }

	t.Run("All", func(t *testing.T) {
		check(t, host.MetricQuery{Labels: []host.Matcher{run}}, func(host.Metric) bool { return true })
	})
	t.Run("ByAgent", func(t *testing.T) {
		check(t, host.MetricQuery{AgentID: agents[0]}, func(m host.Metric) bool { return m.AgentID == agents[0] })
	})
	t.Run("ByName", func(t *testing.T) {
		check(t, host.MetricQuery{Name: "cpu", Labels: []host.Matcher{run}}, func(m host.Metric) bool { return m.Name == "cpu" })
	})
	t.Run("ByAgentAndName", func(t *testing.T) {
		check(t, host.MetricQuery{AgentID: agents[1], Name: "mem"}, func(m host.Metric) bool {
			return m.AgentID == agents[1] && m.Name == "mem"
		})
	})

	t.Run("TimeRange", func(t *testing.T) {
		ranges := []struct {
			name     string
			from, to time.Time
		}{
			{"FromInclusiveToExclusive", ts(1), ts(3)},
			{"NanosecondPastBounds", ts(1).Add(time.Nanosecond), ts(3).Add(time.Nanosecond)},
			{"NanosecondBeforeBounds", ts(1).Add(-time.Nanosecond), ts(3).Add(-time.Nanosecond)},
			{"FromOnly", ts(2), time.Time{}},
			{"ToOnly", time.Time{}, ts(2)},
			{"NoSampleInside", ts(1).Add(time.Nanosecond), ts(2)},
			{"FromEqualsTo", ts(2), ts(2)},
			{"Inverted", ts(3), ts(1)},
		}
		for _, r := range ranges {
			within := func(m host.Metric) bool { return inRange(m.Timestamp, r.from, r.to) }
			t.Run(r.name, func(t *testing.T) {
				t.Run("AgentAndName", func(t *testing.T) {
					check(t, host.MetricQuery{AgentID: agents[0], Name: "cpu", From: r.from, To: r.to}, func(m host.Metric) bool {
						return m.AgentID == agents[0] && m.Name == "cpu" && within(m)
					})
				})
				t.Run("Agent", func(t *testing.T) {
					check(t, host.MetricQuery{AgentID: agents[0], From: r.from, To: r.to}, func(m host.Metric) bool {
						return m.AgentID == agents[0] && within(m)
					})
				})
				t.Run("Labels", func(t *testing.T) {
					check(t, host.MetricQuery{Labels: []host.Matcher{run}, From: r.from, To: r.to}, within)
				})
			})
		}
	})

	t.Run("Labels", func(t *testing.T) {
		matchers := []struct {
			name string
			ms   []host.Matcher
			keep func(m host.Metric) bool
		}{
			{"Equal", []host.Matcher{{Label: "host", Op: abi.MatchEqual, Value: "h1"}},
				func(m host.Metric) bool { return label(m, "host") == "h1" }},
			{"NotEqual", []host.Matcher{{Label: "dc", Op: abi.MatchNotEqual, Value: "eu-west"}},
				func(m host.Metric) bool { return label(m, "dc") != "eu-west" }},
			{"Regexp", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: "eu-.*"}},
				func(m host.Metric) bool { return strings.HasPrefix(label(m, "dc"), "eu-") }},
			{"RegexpAnchoredAtStart", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: "west"}},
				func(host.Metric) bool { return false }},
			{"RegexpAnchoredAtEnd", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: "eu"}},
				func(host.Metric) bool { return false }},
			{"RegexpAlternation", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: "eu-west|us-east"}},
				func(m host.Metric) bool { return label(m, "dc") == "eu-west" || label(m, "dc") == "us-east" }},
			{"NotRegexp", []host.Matcher{{Label: "dc", Op: abi.MatchNotRegexp, Value: "eu-.*"}},
				func(m host.Metric) bool { return !strings.HasPrefix(label(m, "dc"), "eu-") }},
			{"NotRegexpAnchored", []host.Matcher{{Label: "dc", Op: abi.MatchNotRegexp, Value: "eu"}},
				func(host.Metric) bool { return true }},
			{"AbsentEqualsEmpty", []host.Matcher{{Label: "dc", Op: abi.MatchEqual, Value: ""}},
				func(m host.Metric) bool { return label(m, "dc") == "" }},
			{"AbsentMatchesEmptyRegexp", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: ""}},
				func(m host.Metric) bool { return label(m, "dc") == "" }},
			{"PresentRegexp", []host.Matcher{{Label: "dc", Op: abi.MatchRegexp, Value: ".+"}},
				func(m host.Metric) bool { return label(m, "dc") != "" }},
			{"Several", []host.Matcher{
				{Label: "host", Op: abi.MatchEqual, Value: "h1"},
				{Label: "dc", Op: abi.MatchRegexp, Value: "eu.*"},
			}, func(m host.Metric) bool { return label(m, "host") == "h1" && strings.HasPrefix(label(m, "dc"), "eu") }},
			{"NoMatch", []host.Matcher{{Label: "host", Op: abi.MatchEqual, Value: "nope"}},
				func(host.Metric) bool { return false }},
		}
		for _, tc := range matchers {
			t.Run(tc.name, func(t *testing.T) {
				check(t, host.MetricQuery{Labels: append([]host.Matcher{run}, tc.ms...)}, tc.keep)
			})
		}
		t.Run("WithAgent", func(t *testing.T) {
			ms := []host.Matcher{{Label: "dc", Op: abi.MatchNotRegexp, Value: "eu-.*"}}
			check(t, host.MetricQuery{AgentID: agents[1], Labels: ms}, func(m host.Metric) bool {
				return m.AgentID == agents[1] && !strings.HasPrefix(label(m, "dc"), "eu-")
			})
		})
	})

	t.Run("Empty", func(t *testing.T) {
		// No match is a success with no items, never ErrNotFound.
		check(t, host.MetricQuery{AgentID: p + "nobody"}, func(host.Metric) bool { return false })
		check(t, host.MetricQuery{AgentID: agents[0], Name: "nothing"}, func(host.Metric) bool { return false })
	})

	t.Run("InvalidMatcher", func(t *testing.T) {
		for _, m := range invalidMatchers {
			_, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: agents[0], Labels: []host.Matcher{run, m}})
			require.ErrorIs(t, err, host.ErrInvalid, "matcher %+v", m)
		}
	})
}

var invalidMatchers = []host.Matcher{
	{Label: "dc", Op: abi.MatchRegexp, Value: "("},
	{Label: "dc", Op: abi.MatchNotRegexp, Value: "[a-"},
	{Label: "dc", Op: 0, Value: "x"},
	{Label: "dc", Op: abi.MatchNotRegexp + 1, Value: "x"},
}

func (s *suite) testQueryAlerts(t *testing.T) {
	ctx := t.Context()
	st := s.st
	p := s.prefix()
	agents := []string{p + "a", p + "b"}
	severities := []abi.Severity{abi.SeverityInfo, abi.SeverityWarning, abi.SeverityCritical}
	const n = 9 // every severity in every status once
	var all []host.Alert
	// Created in an order unlike the ID order, so the two orders differ.
	for _, i := range rand.Perm(n) {
		team := "core"
		if i%4 >= 2 {
			team = "edge"
		}
		put, err := st.PutAlert(ctx, host.Alert{
			ID: fmt.Sprintf("%salert-%02d", p, i), AgentID: agents[i%2], Severity: severities[i%3], Status: statuses[i/3],
			Message: fmt.Sprintf("alert %d", i), Labels: map[string]string{"run": p, "team": team},
		})
		require.NoError(t, err)
		all = append(all, put)
	}
	slices.SortFunc(all, func(a, b host.Alert) int { return strings.Compare(a.ID, b.ID) })

	run := host.Matcher{Label: "run", Op: abi.MatchEqual, Value: p}
	check := func(t *testing.T, q host.AlertQuery, keep func(a host.Alert) bool) {
		t.Helper()
		want := filter(all, keep)
		got := queryAlerts(t, st, q, len(want))
		require.Equal(t, alertKeys(p, want), alertKeys(p, got), "which alerts, in which order (ID)")
		require.Equal(t, views(want, normAlert), views(got, normAlert), "the alerts' fields")
	}

	t.Run("All", func(t *testing.T) {
		check(t, host.AlertQuery{Labels: []host.Matcher{run}}, func(host.Alert) bool { return true })
	})
	t.Run("ByAgent", func(t *testing.T) {
		check(t, host.AlertQuery{AgentID: agents[1]}, func(a host.Alert) bool { return a.AgentID == agents[1] })
	})
	t.Run("BySeverity", func(t *testing.T) {
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, Severities: []abi.Severity{abi.SeverityCritical}},
			func(a host.Alert) bool { return a.Severity == abi.SeverityCritical })
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, Severities: []abi.Severity{abi.SeverityWarning, abi.SeverityCritical}},
			func(a host.Alert) bool { return a.Severity != abi.SeverityInfo })
	})
	t.Run("ByStatus", func(t *testing.T) {
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, Statuses: []abi.AlertStatus{abi.AlertFiring}},
			func(a host.Alert) bool { return a.Status == abi.AlertFiring })
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, Statuses: []abi.AlertStatus{abi.AlertAcknowledged, abi.AlertResolved}},
			func(a host.Alert) bool { return a.Status != abi.AlertFiring })
	})
	t.Run("Combined", func(t *testing.T) {
		check(t, host.AlertQuery{
			AgentID:    agents[0],
			Severities: []abi.Severity{abi.SeverityInfo, abi.SeverityCritical},
			Statuses:   []abi.AlertStatus{abi.AlertFiring, abi.AlertResolved},
			Labels:     []host.Matcher{{Label: "team", Op: abi.MatchRegexp, Value: "core|edge"}},
		}, func(a host.Alert) bool {
			return a.AgentID == agents[0] && a.Severity != abi.SeverityWarning && a.Status != abi.AlertAcknowledged
		})
	})
	t.Run("Labels", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			m    host.Matcher
			keep func(a host.Alert) bool
		}{
			{"Equal", host.Matcher{Label: "team", Op: abi.MatchEqual, Value: "core"}, func(a host.Alert) bool { return a.Labels["team"] == "core" }},
			{"NotEqual", host.Matcher{Label: "team", Op: abi.MatchNotEqual, Value: "core"}, func(a host.Alert) bool { return a.Labels["team"] != "core" }},
			{"Regexp", host.Matcher{Label: "team", Op: abi.MatchRegexp, Value: "c.*"}, func(a host.Alert) bool { return a.Labels["team"] == "core" }},
			{"RegexpAnchored", host.Matcher{Label: "team", Op: abi.MatchRegexp, Value: "or"}, func(host.Alert) bool { return false }},
			{"NotRegexp", host.Matcher{Label: "team", Op: abi.MatchNotRegexp, Value: "c.*"}, func(a host.Alert) bool { return a.Labels["team"] != "core" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				check(t, host.AlertQuery{Labels: []host.Matcher{run, tc.m}}, tc.keep)
			})
		}
	})
	t.Run("CreatedAtRange", func(t *testing.T) {
		byCreation := slices.Clone(all)
		slices.SortStableFunc(byCreation, func(a, b host.Alert) int { return a.CreatedAt.Compare(b.CreatedAt) })
		from, to := byCreation[2].CreatedAt, byCreation[6].CreatedAt
		want := filter(all, func(a host.Alert) bool { return inRange(a.CreatedAt, from, to) })
		require.NotEmpty(t, want)
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, From: from, To: to},
			func(a host.Alert) bool { return inRange(a.CreatedAt, from, to) })
		check(t, host.AlertQuery{AgentID: agents[0], From: from},
			func(a host.Alert) bool { return a.AgentID == agents[0] && inRange(a.CreatedAt, from, time.Time{}) })
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, To: to},
			func(a host.Alert) bool { return inRange(a.CreatedAt, time.Time{}, to) })
		check(t, host.AlertQuery{Labels: []host.Matcher{run}, From: from.Add(time.Nanosecond), To: to.Add(time.Nanosecond)},
			func(a host.Alert) bool {
				return inRange(a.CreatedAt, from.Add(time.Nanosecond), to.Add(time.Nanosecond))
			})
	})
	t.Run("Empty", func(t *testing.T) {
		check(t, host.AlertQuery{AgentID: p + "nobody"}, func(host.Alert) bool { return false })
		check(t, host.AlertQuery{AgentID: agents[0], Severities: []abi.Severity{abi.SeverityWarning}, Statuses: []abi.AlertStatus{abi.AlertFiring}},
			func(a host.Alert) bool {
				return a.AgentID == agents[0] && a.Severity == abi.SeverityWarning && a.Status == abi.AlertFiring
			})
	})
	t.Run("InvalidMatcher", func(t *testing.T) {
		for _, m := range invalidMatchers {
			_, err := st.QueryAlerts(ctx, host.AlertQuery{AgentID: agents[0], Labels: []host.Matcher{run, m}})
			require.ErrorIs(t, err, host.ErrInvalid, "matcher %+v", m)
		}
	})
	t.Run("AfterStatusChange", func(t *testing.T) {
		// Filters see the current status, not the one the alert was created in.
		a := all[0]
		require.Equal(t, abi.AlertFiring, a.Status)
		set, err := st.SetAlertStatus(ctx, a.ID, abi.AlertResolved)
		require.NoError(t, err)
		got := queryAlerts(t, st, host.AlertQuery{AgentID: a.AgentID, Statuses: []abi.AlertStatus{abi.AlertResolved}}, n)
		require.Contains(t, alertKeys(p, got), strings.TrimPrefix(a.ID, p), "an alert moved to resolved is missing from a query for resolved alerts")
		got = queryAlerts(t, st, host.AlertQuery{AgentID: a.AgentID, Statuses: []abi.AlertStatus{abi.AlertFiring}}, n)
		require.NotContains(t, alertKeys(p, got), strings.TrimPrefix(a.ID, p), "an alert moved to resolved is still listed as firing")
		all[0] = set
	})
}

func (s *suite) testQueryAgentStates(t *testing.T) {
	ctx := t.Context()
	st := s.st
	p := s.prefix()
	ids := []string{"x/1", "x/10", "x/2", "xy", "y/1"}
	var all []host.AgentState
	for _, i := range rand.Perm(len(ids)) {
		put, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + ids[i], State: []byte(ids[i])})
		require.NoError(t, err)
		all = append(all, put)
	}
	slices.SortFunc(all, func(a, b host.AgentState) int { return strings.Compare(a.AgentID, b.AgentID) })
	for _, tc := range []struct{ name, prefix string }{
		{"Prefix", "x/"},
		{"ShorterPrefix", "x"},
		{"WholeID", "xy"},
		{"All", ""},
		{"Empty", "z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := filter(all, func(a host.AgentState) bool { return strings.HasPrefix(a.AgentID, p+tc.prefix) })
			got := queryStates(t, st, host.AgentStateQuery{AgentIDPrefix: p + tc.prefix}, len(want))
			require.Equal(t, stateKeys(p, want), stateKeys(p, got), "which agent states, in which order (agent ID)")
			require.Equal(t, views(want, normState), views(got, normState), "the agent states' fields")
		})
	}
}

// testPagination follows cursors over more matches than a page holds.
func (s *suite) testPagination(t *testing.T) {
	ctx := t.Context()
	st := s.st
	// putMetrics writes n samples of one agent and returns them in result
	// order: of one name, or of names n000, n001, ... each holding at most
	// the samples a backend's retention policy keeps.
	putMetrics := func(t *testing.T, agent string, n int, labels func(i int) map[string]string) []host.Metric {
		t.Helper()
		base := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
		out := make([]host.Metric, n)
		for i := range n {
			name := "n"
			if keep := s.policy.MaxSamplesPerSeries; keep > 0 {
				name = fmt.Sprintf("n%03d", i/keep)
			}
			m := host.Metric{AgentID: agent, Name: name, Value: float64(i), Timestamp: base.Add(time.Duration(i) * time.Second)}
			if labels != nil {
				m.Labels = labels(i)
			}
			put, err := st.PutMetric(ctx, m)
			require.NoError(t, err)
			out[i] = put
		}
		return out
	}

	if s.has(abi.FeatureMetrics) {
		t.Run("Metrics", func(t *testing.T) {
			p := s.prefix()
			want := putMetrics(t, p+"agent", 7, nil)
			for _, limit := range []int{1, 3, 7, 8} {
				got := queryMetrics(t, st, host.MetricQuery{AgentID: p + "agent", Limit: uint32(limit)}, len(want))
				require.Equal(t, metricKeys(p, want), metricKeys(p, got), "limit %d: every match exactly once, in order", limit)
			}
		})
		t.Run("MetricsFiltered", func(t *testing.T) {
			p := s.prefix()
			all := putMetrics(t, p+"agent", 10, func(i int) map[string]string {
				return map[string]string{"parity": []string{"even", "odd"}[i%2]}
			})
			want := filter(all, func(m host.Metric) bool { return m.Labels["parity"] == "even" })
			got := queryMetrics(t, st, host.MetricQuery{AgentID: p + "agent", Limit: 2,
				Labels: []host.Matcher{{Label: "parity", Op: abi.MatchEqual, Value: "even"}}}, len(want))
			require.Equal(t, metricKeys(p, want), metricKeys(p, got), "every match exactly once, in order")
		})
		t.Run("DefaultLimit", func(t *testing.T) {
			p := s.prefix()
			want := putMetrics(t, p+"agent", abi.DefaultQueryLimit+5, nil)
			first, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: p + "agent"})
			require.NoError(t, err)
			require.NotEmpty(t, first.Items)
			require.LessOrEqual(t, len(first.Items), abi.DefaultQueryLimit, "limit 0 serves at most abi.DefaultQueryLimit items")
			require.NotEmpty(t, first.Next, "more matches remain after the first page")
			got := queryMetrics(t, st, host.MetricQuery{AgentID: p + "agent"}, len(want))
			require.Equal(t, metricKeys(p, want), metricKeys(p, got), "every match exactly once, in order")
		})
		t.Run("MaxLimit", func(t *testing.T) {
			if testing.Short() {
				t.Skipf("writes %d metrics; skipped with -short", abi.MaxQueryLimit+5)
			}
			p := s.prefix()
			want := putMetrics(t, p+"agent", abi.MaxQueryLimit+5, nil)
			for _, limit := range []uint32{abi.MaxQueryLimit + 1, abi.MaxQueryLimit + 500, math.MaxUint32} {
				first, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: p + "agent", Limit: limit})
				require.NoError(t, err)
				require.NotEmpty(t, first.Items)
				require.LessOrEqual(t, len(first.Items), abi.MaxQueryLimit, "limit %d: a page holds at most abi.MaxQueryLimit items", limit)
				require.NotEmpty(t, first.Next, "more matches remain after the first page")
			}
			got := queryMetrics(t, st, host.MetricQuery{AgentID: p + "agent", Limit: abi.MaxQueryLimit + 500}, len(want))
			require.Equal(t, metricKeys(p, want), metricKeys(p, got), "every match exactly once, in order")
		})
	}

	if s.has(abi.FeatureAlerts) {
		t.Run("Alerts", func(t *testing.T) {
			p := s.prefix()
			var want []host.Alert
			for i := range 7 {
				put, err := st.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("%salert-%d", p, i), AgentID: p + "agent",
					Severity: abi.SeverityInfo, Status: abi.AlertFiring})
				require.NoError(t, err)
				want = append(want, put)
			}
			for _, limit := range []int{1, 3, 7} {
				got := queryAlerts(t, st, host.AlertQuery{AgentID: p + "agent", Limit: uint32(limit)}, len(want))
				require.Equal(t, alertKeys(p, want), alertKeys(p, got), "limit %d: every match exactly once, in order", limit)
			}
		})
	}

	if s.has(abi.FeatureAgentStates) {
		t.Run("AgentStates", func(t *testing.T) {
			p := s.prefix()
			var want []host.AgentState
			for i := range 7 {
				put, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("%sagent-%d", p, i), State: []byte("x")})
				require.NoError(t, err)
				want = append(want, put)
			}
			for _, limit := range []int{1, 3, 7} {
				got := queryStates(t, st, host.AgentStateQuery{AgentIDPrefix: p, Limit: uint32(limit)}, len(want))
				require.Equal(t, stateKeys(p, want), stateKeys(p, got), "limit %d: every match exactly once, in order", limit)
			}
		})
	}

	// A cursor the backend did not issue for the query is INVALID
	// (section 13.4), not taken for a position.
	t.Run("ForgedCursor", func(t *testing.T) {
		p := s.prefix()
		forged := []byte("\xff\xfeforged cursor")
		if s.has(abi.FeatureMetrics) {
			_, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: p + "agent", Cursor: forged})
			require.ErrorIs(t, err, host.ErrInvalid, "metrics")
		}
		if s.has(abi.FeatureAlerts) {
			_, err := st.QueryAlerts(ctx, host.AlertQuery{AgentID: p + "agent", Cursor: forged})
			require.ErrorIs(t, err, host.ErrInvalid, "alerts")
		}
		if s.has(abi.FeatureAgentStates) {
			_, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: p, Cursor: forged})
			require.ErrorIs(t, err, host.ErrInvalid, "agent states")
		}
	})
}
