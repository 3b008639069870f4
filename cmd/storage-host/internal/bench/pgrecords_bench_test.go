package bench_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/plugins/postgres/statements"
)

// The metric and alert workloads of BenchmarkPostgres. Seeded alike on
// each side: a "cpu" series of pgSeriesPoints samples a minute apart for
// each of the benchAgents agents, and pgAlerts alerts, pgAlertsPerName
// of each alertname. PutMetric writes the samples pluginPutMetric writes
// (another time, so the queried series do not grow); QueryMetrics asks an
// agent's "cpu" samples in a range of pgRangePoints of them; PutAlert
// rewrites one of benchAgents alerts of their own name; QueryAlerts asks
// the alerts of one alertname (a label equality, no agent).

const (
	pgSeriesPoints  = 20
	pgRangePoints   = 10
	pgAlerts        = 5000
	pgAlertNames    = 100
	pgAlertsPerName = pgAlerts / pgAlertNames
)

// pgSeriesStart is the time of each series' first sample.
var pgSeriesStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pgRange is the range of QueryMetrics: samples 5 to 14.
func pgRange() (from, to time.Time) {
	from = pgSeriesStart.Add(5 * time.Minute)
	return from, from.Add(pgRangePoints * time.Minute)
}

func pgAlertName(i int) string { return "alert-" + strconv.Itoa(i%pgAlertNames) }

func pgSeedMetric(agent, point int) host.Metric {
	return host.Metric{AgentID: benchAgent(agent), Name: "cpu", Value: float64(point), Timestamp: pgSeriesStart.Add(time.Duration(point) * time.Minute),
		Labels: map[string]string{"host": "h" + strconv.Itoa(agent), "env": "prod"}}
}

func pgSeedAlert(i int) host.Alert {
	return host.Alert{ID: "seed-" + strconv.Itoa(i), AgentID: benchAgent(i), Severity: abi.SeverityWarning, Status: abi.AlertFiring,
		Message: "disk almost full", Labels: map[string]string{"alertname": pgAlertName(i), "team": "team-" + strconv.Itoa(i%20)}}
}

func pgPutAlert(i int) host.Alert {
	return host.Alert{ID: "put-" + strconv.Itoa(i%benchAgents), AgentID: benchAgent(i), Severity: abi.SeverityCritical, Status: abi.AlertFiring,
		Message: "load high", Labels: map[string]string{"alertname": "load", "host": "h" + strconv.Itoa(i%benchAgents)}}
}

// seedPGRecords writes the queried metrics and alerts through the plugin
// (direct reads the same schema) and into plain's tables, then has
// PostgreSQL vacuum and analyze them, as autovacuum would have.
func seedPGRecords(ctx context.Context, st *host.Store, direct, plain *pgxpool.Pool) error {
	ms := make([]host.Metric, 0, 100)
	var batch pgx.Batch
	flush := func() error {
		if len(ms) > 0 {
			res, err := st.PutMetrics(ctx, ms)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			ms = ms[:0]
		}
		if batch.Len() > 0 {
			if err := sendAll(ctx, plain, &batch); err != nil {
				return err
			}
			batch = pgx.Batch{}
		}
		return nil
	}
	for a := range benchAgents {
		for p := range pgSeriesPoints {
			m := pgSeedMetric(a, p)
			ms = append(ms, m)
			batch.Queue(plainPutMetric, m.AgentID, m.Name, m.Timestamp, m.Value, m.Labels)
			if len(ms) == cap(ms) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	as := make([]host.Alert, 0, 100)
	for i := range pgAlerts {
		a := pgSeedAlert(i)
		as = append(as, a)
		batch.Queue(plainPutAlert, a.ID, a.AgentID, int(a.Severity), int(a.Status), a.Message, a.Labels, time.Now())
		if len(as) == cap(as) {
			res, err := st.PutAlerts(ctx, as)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			as = as[:0]
			if err := flush(); err != nil {
				return err
			}
		}
	}
	for _, v := range []struct {
		p     *pgxpool.Pool
		table string
	}{{direct, "metrics"}, {direct, "alerts"}, {plain, "plain_metrics"}, {plain, "plain_alerts"}} {
		if _, err := v.p.Exec(ctx, "VACUUM ANALYZE "+v.table); err != nil {
			return fmt.Errorf("vacuum %s: %w", v.table, err)
		}
	}
	return nil
}

// plainRecordTables are plain's metric and alert tables: labels as jsonb,
// times as timestamptz, each query served by its primary key or the GIN
// index of the labels.
const plainRecordTables = `
CREATE TABLE plain_metrics (agent_id text, name text, ts timestamptz, value double precision NOT NULL, labels jsonb NOT NULL,
	PRIMARY KEY (agent_id, name, ts));
CREATE TABLE plain_alerts (id text PRIMARY KEY, agent_id text NOT NULL, severity int NOT NULL, status int NOT NULL,
	message text NOT NULL, labels jsonb NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX ON plain_alerts USING gin (labels)`

// --- plugin ---

func pluginQueryMetrics(ctx context.Context, st *host.Store, i int) error {
	from, to := pgRange()
	p, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: benchAgent(i), Name: "cpu", From: from, To: to})
	if err != nil {
		return err
	}
	return checkSeries(benchAgent(i), len(p.Items), len(p.Next) > 0, func(j int) (string, time.Time) { return p.Items[j].AgentID, p.Items[j].Timestamp })
}

func pluginPutAlert(ctx context.Context, st *host.Store, i int) error {
	a, err := st.PutAlert(ctx, pgPutAlert(i))
	if err == nil && a.CreatedAt.IsZero() {
		err = fmt.Errorf("alert %s without a creation time", a.ID)
	}
	return err
}

func pluginQueryAlerts(ctx context.Context, st *host.Store, i int) error {
	name := pgAlertName(i)
	p, err := st.QueryAlerts(ctx, host.AlertQuery{Labels: []host.Matcher{{Label: "alertname", Op: abi.MatchEqual, Value: name}}})
	if err != nil {
		return err
	}
	return checkAlerts(name, len(p.Items), len(p.Next) > 0, func(j int) (string, map[string]string) { return p.Items[j].ID, p.Items[j].Labels })
}

// checkSeries checks a page of QueryMetrics: the range's samples of the
// agent, in time order, and no next page.
func checkSeries(agent string, n int, next bool, item func(int) (string, time.Time)) error {
	from, _ := pgRange()
	if n != pgRangePoints || next {
		return fmt.Errorf("%s: %d samples (next page %v), want %d", agent, n, next, pgRangePoints)
	}
	for j := range n {
		a, ts := item(j)
		if a != agent || !ts.Equal(from.Add(time.Duration(j)*time.Minute)) {
			return fmt.Errorf("%s: sample %d is %s at %v", agent, j, a, ts)
		}
	}
	return nil
}

// checkAlerts checks a page of QueryAlerts: the alerts of the name, in
// ID order, and no next page.
func checkAlerts(name string, n int, next bool, item func(int) (string, map[string]string)) error {
	if n != pgAlertsPerName || next {
		return fmt.Errorf("%s: %d alerts (next page %v), want %d", name, n, next, pgAlertsPerName)
	}
	prev := ""
	for j := range n {
		id, labels := item(j)
		if labels["alertname"] != name || id <= prev {
			return fmt.Errorf("%s: alert %d is %s with %v, after %s", name, j, id, labels, prev)
		}
		prev = id
	}
	return nil
}

// --- direct: the plugin's statements ---

// The plugin's queries (query.go builds the SELECTs and
// sqlPlanWithValues); its writes are statements.PutMetric and
// statements.PutAlert.
const (
	pgMetricSeries   = `SELECT agent_id, name, ts, value, labels, expires_at FROM metrics WHERE (expires_at = 0 OR expires_at > $1) AND agent_id = $2 AND name = $3 AND ts >= $4 AND ts < $5 ORDER BY agent_id, ts LIMIT $6`
	pgPlanWithValues = `SELECT set_config('plan_cache_mode', 'force_custom_plan', true)`
	pgAlertsByLabels = `SELECT id, agent_id, severity, status, message, labels, created_at, updated_at, expires_at FROM alerts WHERE (expires_at = 0 OR expires_at > $1) AND label_set @> $2::jsonb ORDER BY id LIMIT $3`
)

// encodeLabels and labelSet are the plugin's two forms of labels (the
// ABI's layout, and the jsonb text; strconv's quoting is JSON's for the
// benchmark's ASCII labels).
func encodeLabels(l map[string]string) []byte {
	var e abi.Encoder
	e.Uvarint(uint64(len(l)))
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.String(k)
		e.String(l[k])
	}
	return e.Bytes()
}

func labelSet(l map[string]string) string {
	b := []byte{'{'}
	for k, v := range l {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = strconv.AppendQuote(b, v)
	}
	return string(append(b, '}'))
}

func decodeLabels(v []byte) (map[string]string, error) {
	var d abi.Decoder
	d.Reset(v)
	n := d.Count(2)
	l := make(map[string]string, n)
	for range n {
		k := d.String()
		l[k] = d.String()
	}
	return l, d.Finish()
}

func directPGPutMetric(ctx context.Context, p *pgxpool.Pool, i int) error {
	var expires int64
	return p.QueryRow(ctx, statements.PutMetric, benchAgent(i), "cpu", benchTS(i).UnixNano(), 0.5, encodeLabels(benchLabels), labelSet(benchLabels),
		int64(0), false, time.Now().UnixNano(), abi.MetricEventKey("cpu", benchTS(i))).Scan(&expires)
}

func directPGQueryMetrics(ctx context.Context, p *pgxpool.Pool, i int) error {
	from, to := pgRange()
	rows, err := p.Query(ctx, pgMetricSeries, time.Now().UnixNano(), benchAgent(i), "cpu", from.UnixNano(), to.UnixNano(), abi.DefaultQueryLimit+1)
	if err != nil {
		return err
	}
	type sample struct {
		agent, name string
		ts          time.Time
		value       float64
		labels      map[string]string
	}
	var page []sample
	for rows.Next() {
		var s sample
		var ts, expires int64
		var labels []byte
		if err := rows.Scan(&s.agent, &s.name, &ts, &s.value, &labels, &expires); err != nil {
			return err
		}
		s.ts = time.Unix(0, ts)
		if s.labels, err = decodeLabels(labels); err != nil {
			return err
		}
		page = append(page, s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return checkSeries(benchAgent(i), len(page), len(page) > abi.DefaultQueryLimit, func(j int) (string, time.Time) { return page[j].agent, page[j].ts })
}

func directPGPutAlert(ctx context.Context, p *pgxpool.Pool, i int) error {
	a := pgPutAlert(i)
	now := time.Now().UnixNano()
	var created, expires int64
	if err := p.QueryRow(ctx, statements.PutAlert, a.ID, a.AgentID, int64(a.Severity), int64(a.Status), []byte(a.Message), encodeLabels(a.Labels), labelSet(a.Labels),
		now, now, int64(0), false).Scan(&created, &expires); err != nil {
		return err
	}
	if created == 0 {
		return fmt.Errorf("alert %s without a creation time", a.ID)
	}
	return nil
}

// directPGQueryAlerts sends the page's SELECT as the plugin does: after
// pgPlanWithValues, in one implicit transaction, one round trip.
func directPGQueryAlerts(ctx context.Context, p *pgxpool.Pool, i int) error {
	name := pgAlertName(i)
	var batch pgx.Batch
	batch.Queue(pgPlanWithValues)
	batch.Queue(pgAlertsByLabels, time.Now().UnixNano(), labelSet(map[string]string{"alertname": name}), abi.DefaultQueryLimit+1)
	br := p.SendBatch(ctx, &batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	var page []host.Alert
	for rows.Next() {
		var a host.Alert
		var severity, status int16
		var message, labels []byte
		var created, updated, expires int64
		if err := rows.Scan(&a.ID, &a.AgentID, &severity, &status, &message, &labels, &created, &updated, &expires); err != nil {
			return err
		}
		a.Severity, a.Status, a.Message = abi.Severity(severity), abi.AlertStatus(status), string(message)
		a.CreatedAt, a.UpdatedAt = time.Unix(0, created), time.Unix(0, updated)
		if a.Labels, err = decodeLabels(labels); err != nil {
			return err
		}
		page = append(page, a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := checkAlerts(name, len(page), len(page) > abi.DefaultQueryLimit, func(j int) (string, map[string]string) { return page[j].ID, page[j].Labels }); err != nil {
		return err
	}
	return br.Close()
}

// --- plain ---

const (
	plainPutMetric = `INSERT INTO plain_metrics (agent_id, name, ts, value, labels) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (agent_id, name, ts) DO UPDATE SET value = excluded.value, labels = excluded.labels`
	plainPutAlert = `INSERT INTO plain_alerts (id, agent_id, severity, status, message, labels, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, severity = excluded.severity, status = excluded.status,
message = excluded.message, labels = excluded.labels, updated_at = excluded.updated_at`
)

func plainPGPutMetric(ctx context.Context, p *pgxpool.Pool, i int) error {
	_, err := p.Exec(ctx, plainPutMetric, benchAgent(i), "cpu", benchTS(i), 0.5, benchLabels)
	return err
}

func plainPGQueryMetrics(ctx context.Context, p *pgxpool.Pool, i int) error {
	from, to := pgRange()
	rows, err := p.Query(ctx, `SELECT ts, value, labels FROM plain_metrics WHERE agent_id = $1 AND name = $2 AND ts >= $3 AND ts < $4 ORDER BY ts LIMIT 100`,
		benchAgent(i), "cpu", from, to)
	if err != nil {
		return err
	}
	var page []time.Time
	for rows.Next() {
		var ts time.Time
		var value float64
		var labels map[string]string
		if err := rows.Scan(&ts, &value, &labels); err != nil {
			return err
		}
		page = append(page, ts)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return checkSeries(benchAgent(i), len(page), false, func(j int) (string, time.Time) { return benchAgent(i), page[j] })
}

func plainPGPutAlert(ctx context.Context, p *pgxpool.Pool, i int) error {
	a := pgPutAlert(i)
	_, err := p.Exec(ctx, plainPutAlert, a.ID, a.AgentID, int(a.Severity), int(a.Status), a.Message, a.Labels, time.Now())
	return err
}

func plainPGQueryAlerts(ctx context.Context, p *pgxpool.Pool, i int) error {
	name := pgAlertName(i)
	rows, err := p.Query(ctx, `SELECT id, agent_id, severity, status, message, labels, updated_at FROM plain_alerts WHERE labels @> $1 ORDER BY id LIMIT 100`,
		map[string]string{"alertname": name})
	if err != nil {
		return err
	}
	var page []host.Alert
	for rows.Next() {
		var a host.Alert
		var severity, status int
		var updated time.Time
		if err := rows.Scan(&a.ID, &a.AgentID, &severity, &status, &a.Message, &a.Labels, &updated); err != nil {
			return err
		}
		a.Severity, a.Status, a.UpdatedAt = abi.Severity(severity), abi.AlertStatus(status), updated
		page = append(page, a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return checkAlerts(name, len(page), false, func(j int) (string, map[string]string) { return page[j].ID, page[j].Labels })
}
