//go:build !wasip1

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	NodeType    string     `json:"Node Type"`
	Relation    string     `json:"Relation Name"`
	Index       string     `json:"Index Name"`
	ActualRows  float64    `json:"Actual Rows"`
	Loops       float64    `json:"Actual Loops"`
	Removed     float64    `json:"Rows Removed by Filter"`
	Rechecked   float64    `json:"Rows Removed by Index Recheck"`
	HeapFetches float64    `json:"Heap Fetches"`
	Plans       []planNode `json:"Plans"`
}

// walk calls f on n and every node below it.
func (n *planNode) walk(f func(*planNode)) {
	f(n)
	for i := range n.Plans {
		n.Plans[i].walk(f)
	}
}

// Every page's statement, as the plugin sends it, reads its rows through
// an index that fits the query, and reads few more rows than it answers
// (and an expiry sweep reads only expired rows),
// even on a connection where PostgreSQL runs prepared statements with
// their generic plan (which it settles on after five executions whose
// plans cost more than the generic one's estimate): a generic plan
// cannot tell a label that most rows have from one that few have, and
// walks the primary key through the whole table for the rare one.
//
// Tables of 50 000 metrics over 1 000 agents and 20 000 alerts, vacuumed
// and analyzed as autovacuum would have them; the statements run as the
// bridge runs a page's: prepared, in one pipeline ending with one sync
// (an implicit transaction).
func TestQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	ctx := t.Context()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "plan_")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, sql := range []string{"CREATE SCHEMA " + schema, "SET search_path = " + schema} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations {
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seed := []string{
		// 1 000 agents × 5 names × 10 points a minute apart; a quarter
		// expire (later than now); one point in a thousand is a canary.
		fmt.Sprintf(`INSERT INTO metrics
SELECT 'agent-' || lpad(a::text, 4, '0'), n, %[1]d + t * 60000000000::bigint, a, '\x00'::bytea,
  jsonb_build_object('env', (ARRAY['prod','prod','prod','staging','dev'])[1 + a %% 5], 'host', 'host-' || a, 'service', 'svc-' || (a %% 50))
  || CASE WHEN (a * 7 + t * 13 + length(n)) %% 1000 = 0 THEN '{"canary":"true"}'::jsonb ELSE '{}' END,
  CASE WHEN t %% 4 = 0 THEN %[2]d ELSE 0 END
FROM generate_series(0, 999) a, unnest(ARRAY['cpu','mem','disk','net','load']) n, generate_series(0, 9) t`,
			t0.UnixNano(), t0.AddDate(1, 0, 0).UnixNano()),
		// 20 000 alerts a second apart, over the same agents; one in a
		// thousand pages the on-call.
		fmt.Sprintf(`INSERT INTO alerts
SELECT md5(i::text), 'agent-' || lpad((i %% 1000)::text, 4, '0'), 1 + i %% 3,
  CASE WHEN i %% 10 < 7 THEN 3 WHEN i %% 10 < 9 THEN 1 ELSE 2 END, '\x00', '\x00',
  jsonb_build_object('env', (ARRAY['prod','prod','prod','staging','dev'])[1 + i %% 5], 'team', 'team-' || (i %% 20), 'alertname', 'alert-' || (i %% 100))
  || CASE WHEN i %% 1000 = 7 THEN '{"page":"oncall"}'::jsonb ELSE '{}' END,
  %[1]d + i * 1000000000::bigint, %[1]d + i * 1000000000::bigint, CASE WHEN i %% 3 = 0 THEN %[2]d ELSE 0 END
FROM generate_series(0, 19999) i`, t0.UnixNano(), t0.AddDate(1, 0, 0).UnixNano()),
		"VACUUM ANALYZE metrics", "VACUUM ANALYZE alerts",
		// What PostgreSQL may settle on for any prepared statement.
		"SET plan_cache_mode = force_generic_plan",
	}
	for _, sql := range seed {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.AddDate(0, 1, 0).UnixNano()
	var enc abi.Encoder
	mc, ac := cursor{kind: 'm', hash: 1}, cursor{kind: 'a', hash: 1}
	eq := func(label, value string) []abi.Matcher {
		return []abi.Matcher{{Label: label, Op: abi.MatchEqual, Value: value}}
	}
	type shape struct {
		name string
		mq   *abi.MetricQuery
		aq   *abi.AlertQuery
		// sweep: an expiry sweep's statement (tick.go), when no query.
		sweep string
		// indexes: one of them must be scanned; maxRead bounds the rows
		// the scans read (returned or filtered out).
		indexes []string
		maxRead float64
	}
	pkey, byName, mByLabel := "metrics_pkey", "metrics_by_name", "metrics_by_label"
	apkey, byAgent, aByLabel, byCreated := "alerts_pkey", "alerts_by_agent", "alerts_by_label", "alerts_by_created"
	shapes := []shape{
		{name: "metrics by agent", mq: &abi.MetricQuery{AgentID: "agent-0500"}, indexes: []string{pkey}, maxRead: 101},
		{name: "metrics by agent, name and time", mq: &abi.MetricQuery{AgentID: "agent-0500", Name: "cpu", From: t0.Add(2 * time.Minute), To: t0.Add(5 * time.Minute)},
			indexes: []string{pkey, byName}, maxRead: 3},
		{name: "metrics by name", mq: &abi.MetricQuery{Name: "cpu"}, indexes: []string{pkey, byName}, maxRead: 101},
		{name: "metrics by name after a cursor", mq: &abi.MetricQuery{Name: "cpu", Cursor: mc.make(&enc, "agent-0500", "cpu", t0.UnixNano())},
			indexes: []string{pkey, byName}, maxRead: 101},
		{name: "metrics by time", mq: &abi.MetricQuery{From: t0.Add(5 * time.Minute), To: t0.Add(6 * time.Minute)}, indexes: []string{pkey}, maxRead: 1010},
		{name: "all metrics after a cursor", mq: &abi.MetricQuery{Cursor: mc.make(&enc, "agent-0500", "cpu", t0.UnixNano())}, indexes: []string{pkey}, maxRead: 101},
		{name: "metrics by a common label", mq: &abi.MetricQuery{Labels: eq("env", "prod")}, indexes: []string{pkey}, maxRead: 202},
		{name: "metrics by a rare label", mq: &abi.MetricQuery{Labels: eq("canary", "true")}, indexes: []string{mByLabel}, maxRead: 101},
		{name: "metrics by a label of the last agents", mq: &abi.MetricQuery{Labels: eq("host", "host-990")}, indexes: []string{mByLabel}, maxRead: 101},
		{name: "metrics by a label none has", mq: &abi.MetricQuery{Labels: eq("env", "nowhere")}, indexes: []string{mByLabel}, maxRead: 0},
		{name: "metrics by a rare label after a cursor", mq: &abi.MetricQuery{Labels: eq("canary", "true"), Cursor: mc.make(&enc, "agent-0500", "cpu", t0.UnixNano())},
			indexes: []string{mByLabel}, maxRead: 101},
		{name: "metrics by a rare label and a regular expression", mq: &abi.MetricQuery{Labels: append(eq("canary", "true"), abi.Matcher{Label: "env", Op: abi.MatchRegexp, Value: "p.*"})},
			indexes: []string{mByLabel}, maxRead: 101},
		{name: "metrics by agent and label", mq: &abi.MetricQuery{AgentID: "agent-0500", Labels: eq("env", "prod")}, indexes: []string{pkey}, maxRead: 101},
		{name: "metrics by name and a rare label", mq: &abi.MetricQuery{Name: "cpu", Labels: eq("canary", "true")}, indexes: []string{mByLabel}, maxRead: 101},
		{name: "alerts by agent", aq: &abi.AlertQuery{AgentID: "agent-0500"}, indexes: []string{byAgent}, maxRead: 20},
		{name: "alerts by agent after a cursor", aq: &abi.AlertQuery{AgentID: "agent-0500", Cursor: ac.make(&enc, "8")}, indexes: []string{byAgent}, maxRead: 20},
		{name: "all alerts after a cursor", aq: &abi.AlertQuery{Cursor: ac.make(&enc, "8")}, indexes: []string{apkey}, maxRead: 101},
		{name: "alerts by severity and status", aq: &abi.AlertQuery{Severities: []abi.Severity{abi.SeverityCritical}, Statuses: []abi.AlertStatus{abi.AlertFiring}},
			indexes: []string{apkey}, maxRead: 101 * 20},
		{name: "alerts created in a minute", aq: &abi.AlertQuery{From: t0.Add(time.Hour), To: t0.Add(time.Hour + time.Minute)}, indexes: []string{byCreated}, maxRead: 60},
		{name: "alerts created in a day", aq: &abi.AlertQuery{From: t0, To: t0.AddDate(0, 0, 1)}, indexes: []string{apkey}, maxRead: 101},
		{name: "alerts by a common label", aq: &abi.AlertQuery{Labels: eq("env", "prod")}, indexes: []string{apkey}, maxRead: 202},
		{name: "alerts by a rare label", aq: &abi.AlertQuery{Labels: eq("page", "oncall")}, indexes: []string{aByLabel}, maxRead: 20},
		{name: "alerts by a label none has", aq: &abi.AlertQuery{Labels: eq("env", "nowhere")}, indexes: []string{aByLabel}, maxRead: 0},
		{name: "alerts by a label, severity and status", aq: &abi.AlertQuery{Labels: eq("alertname", "alert-7"), Severities: []abi.Severity{abi.SeverityWarning}, Statuses: []abi.AlertStatus{abi.AlertFiring, abi.AlertAcknowledged}},
			indexes: []string{aByLabel}, maxRead: 200},
		{name: "alerts by a rare label after a cursor", aq: &abi.AlertQuery{Labels: eq("page", "oncall"), Cursor: ac.make(&enc, "8")}, indexes: []string{aByLabel}, maxRead: 20},
		// Nothing has expired yet: a sweep reads no row.
		{name: "metrics' expiry sweep", sweep: sweeps[0], indexes: []string{"metrics_by_expiry"}, maxRead: 0},
		{name: "alerts' expiry sweep", sweep: sweeps[1], indexes: []string{"alerts_by_expiry"}, maxRead: 0},
	}
	for i, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			var (
				q          *query
				pluginOnly bool
				err        error
				limit      int
			)
			var stmts []abi.PGStatement
			switch {
			case s.mq != nil:
				q, pluginOnly, err = metricQuery(s.mq, now, mc)
				limit = abi.PageLimit(s.mq.Limit)
			case s.aq != nil:
				q, pluginOnly, err = alertQuery(s.aq, now, ac)
				limit = abi.PageLimit(s.aq.Limit)
			default:
				stmts = []abi.PGStatement{{SQL: s.sweep, Params: []abi.PGValue{{Kind: abi.PGInt, Int: now}}}}
			}
			if err != nil {
				t.Fatal(err)
			}
			if q != nil {
				stmts = q.statements(q.finish(rowsToRead(limit, pluginOnly)))
			}
			last := stmts[len(stmts)-1]
			name := "page_" + strconv.Itoa(i)
			if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+last.SQL); err != nil {
				t.Fatal(err)
			}
			var b pgx.Batch
			for _, st := range stmts[:len(stmts)-1] {
				b.Queue(st.SQL)
			}
			args := make([]string, len(last.Params))
			for j, p := range last.Params {
				args[j] = literal(p)
			}
			b.Queue("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE " + name + "(" + strings.Join(args, ", ") + ")")
			br := conn.SendBatch(ctx, &b)
			for range stmts[:len(stmts)-1] {
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
			}
			var out []byte
			if err := br.QueryRow().Scan(&out); err != nil {
				t.Fatal(err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			var explained []struct{ Plan planNode }
			if err := json.Unmarshal(out, &explained); err != nil {
				t.Fatal(err)
			}
			plan := explained[0].Plan
			var used, nodes []string
			var read float64
			plan.walk(func(n *planNode) {
				nodes = append(nodes, strings.TrimSpace(n.NodeType+" "+n.Index))
				if n.Index != "" {
					used = append(used, n.Index)
				}
				if n.Relation != "" {
					read += (n.ActualRows + n.Removed + n.Rechecked) * n.Loops
				}
			})
			if !slices.ContainsFunc(s.indexes, func(ix string) bool { return slices.Contains(used, ix) }) || read > s.maxRead {
				t.Errorf("%s\nplan %s reads %.0f rows; want a scan of one of %v, at most %.0f rows", last.SQL, strings.Join(nodes, " > "), read, s.indexes, s.maxRead)
			}
		})
	}
}

// literal is p as an SQL literal, for EXECUTE.
func literal(p abi.PGValue) string {
	switch p.Kind {
	case abi.PGInt:
		return strconv.FormatInt(p.Int, 10)
	case abi.PGText:
		return "'" + strings.ReplaceAll(string(p.Bytes), "'", "''") + "'"
	}
	panic(fmt.Sprintf("no literal for a parameter of kind %d", p.Kind))
}
