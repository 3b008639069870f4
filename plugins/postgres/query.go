package main

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/internal/querycost"
	"github.com/storage-host/storage-host/plugins/postgres/statements"
	"github.com/storage-host/storage-host/sdk"
)

// Queries. Each page is one SELECT in key order, served by an index:
// the primary key of each table, metrics_by_name for a metric query
// with a name and no agent, alerts_by_agent for an alert query with an
// agent, the GIN index on label_set for a query by labels that few rows
// have, alerts_by_created for alerts created in a short time. Filters on
// columns run in SQL; of the label matchers, the equalities to a
// non-empty text value run in SQL too, as one label_set @> {…} the GIN
// index can serve, and every matcher runs again in the plugin on the
// exact labels (the SQL one only narrows the rows). Regular expressions,
// inequalities and equalities to "" (which an absent label matches) run
// in the plugin only: PostgreSQL's regular expressions are not RE2, and
// a label a record lacks has no row to match. RATIONALE.md, "Why do some
// label matchers run in the plugin?"
//
// Whether a page is best read in key order, filtering rows until it is
// full, or from the index of its labels or creation times, sorting what
// matched, depends on how many rows match, which a prepared statement's
// generic plan cannot see: a page with labels in SQL, or alerts by
// creation time, is planned with its values (sqlPlanWithValues).
// RATIONALE.md, "Why are label queries planned with their values?"
//
// A page reads at most limit+1 rows when SQL applies every filter, so the
// extra row says whether there is a next page; with matchers left to the
// plugin it reads up to four times the limit, and answers what matched
// with a cursor after the last row examined. A page also stops early on
// the querycost budgets, and reads fewer rows when the rows would not
// fit in a response (the bridge answers LIMIT: the page is read again
// with half as many).

// query is a SELECT being built.
type query struct {
	sql    strings.Builder
	params []abi.PGValue
	// withValues: the statement is planned with its parameters' values
	// (statements).
	withValues bool
}

// param adds v and returns its placeholder.
func (q *query) param(v abi.PGValue) string {
	q.params = append(q.params, v)
	return "$" + strconv.Itoa(len(q.params))
}

// where adds a condition; cond's %s is the placeholder of v.
func (q *query) where(cond string, v abi.PGValue) {
	q.sql.WriteString(" AND ")
	q.sql.WriteString(strings.Replace(cond, "%s", q.param(v), 1))
}

// sqlLabels splits matchers: it returns the jsonb text of the equalities
// SQL can check ("" when none) and whether any matcher is left to the
// plugin alone.
func sqlLabels(ms []abi.Matcher) (set string, pluginOnly bool) {
	eq := map[string]string{}
	for _, m := range ms {
		if m.Op == abi.MatchEqual && m.Value != "" && textValue(m.Value) {
			eq[m.Label] = m.Value
			continue
		}
		pluginOnly = true
	}
	if len(eq) == 0 {
		return "", pluginOnly
	}
	return labelSet(eq), pluginOnly
}

// rowsToRead is how many rows a page reads.
func rowsToRead(limit int, pluginOnly bool) int {
	if pluginOnly {
		return min(4*limit, abi.MaxQueryLimit) + 1
	}
	return limit + 1
}

// sqlPlanWithValues makes the next statement of its transaction planned
// with its parameters' values. RATIONALE.md, "Why are label queries
// planned with their values?"
const sqlPlanWithValues = `SELECT set_config('plan_cache_mode', 'force_custom_plan', true)`

// finish ends q with its LIMIT of n rows, a parameter, so that every limit
// shares one prepared statement, and returns the statement's text.
func (q *query) finish(n int) string {
	q.sql.WriteString(" LIMIT ")
	q.sql.WriteString(q.param(sdk.Int(int64(n))))
	return q.sql.String()
}

// statements returns what a page sends: its SELECT, preceded, in one
// transaction, by sqlPlanWithValues when its plan depends on values a
// generic plan cannot see.
func (q *query) statements(sql string) []abi.PGStatement {
	if !q.withValues {
		return []abi.PGStatement{{SQL: sql, Params: q.params}}
	}
	return []abi.PGStatement{{SQL: sqlPlanWithValues}, {SQL: sql, Params: q.params}}
}

// read runs a page's SELECT, finished by a LIMIT of n rows, reading fewer
// rows while the result is too large for a response.
func (b *backend) read(q *query, n int) (abi.PGResult, int, error) {
	sql := q.finish(n)
	for {
		q.params[len(q.params)-1] = sdk.Int(int64(n))
		res, err := b.exec(q, sql)
		var ae *abi.Error
		if err != nil && errors.As(err, &ae) && ae.Status == abi.StatusLimit && n > 1 {
			n /= 2
			continue
		}
		if err != nil {
			return res, n, statementError(err)
		}
		return res, n, nil
	}
}

// exec runs a page's statements (statements): the SELECT alone, or in a
// transaction after sqlPlanWithValues. It returns the SELECT's result.
func (b *backend) exec(q *query, sql string) (abi.PGResult, error) {
	if !q.withValues {
		return b.pg.Exec(sql, q.params...)
	}
	results, err := b.pg.Tx(q.statements(sql))
	if err != nil {
		return abi.PGResult{}, err
	}
	return results[len(results)-1], nil
}

// --- cursors ---

// A cursor is 'P', the kind, the FNV-64a hash of the query without its
// limit and cursor, then the key of the last row examined, encoded as
// the ABI encodes strings and times. A cursor of another kind or query is
// refused; it is not a secret, and a forged one can only make a query
// resume elsewhere in its own results.
const cursorMagic = 'P'

// cursor builds and opens cursors.
type cursor struct {
	kind byte
	hash uint64
}

func (c cursor) make(enc *abi.Encoder, key ...any) []byte {
	enc.Reset()
	enc.Raw([]byte{cursorMagic, c.kind})
	enc.Raw(binary.BigEndian.AppendUint64(nil, c.hash))
	for _, k := range key {
		switch k := k.(type) {
		case string:
			enc.String(k)
		case int64:
			enc.Varint(k)
		}
	}
	return append([]byte(nil), enc.Bytes()...)
}

// open decodes a cursor into the key's parts (pointers to string or
// int64).
func (c cursor) open(cur []byte, key ...any) error {
	bad := abi.Errorf(abi.StatusInvalid, "cursor does not belong to this query")
	if len(cur) < 10 || cur[0] != cursorMagic || cur[1] != c.kind || binary.BigEndian.Uint64(cur[2:10]) != c.hash {
		return bad
	}
	var d abi.Decoder
	d.Reset(cur[10:])
	for _, k := range key {
		switch k := k.(type) {
		case *string:
			*k = d.String()
			if !utf8.ValidString(*k) || strings.IndexByte(*k, 0) >= 0 {
				return bad
			}
		case *int64:
			*k = d.Varint()
		}
	}
	if d.Finish() != nil {
		return bad
	}
	return nil
}

// hashQuery hashes an encoded query.
func hashQuery(encoded []byte) uint64 {
	h := fnv.New64a()
	h.Write(encoded)
	return h.Sum64()
}

// page collects the rows of a SELECT into a page: examine each row in
// order until the page is full or a budget is spent.
type page struct {
	limit, read, rows int
	meter             *querycost.Meter
	// last is the index of the last row examined, -1 for none.
	last int
	full bool
}

// next reports whether row i is to be examined, charging it to the
// budgets; when it is not, the page ends before it.
func (p *page) next(i, size int, labels map[string]string, items int) (bool, error) {
	if items == p.limit {
		p.full = true
		return false, nil
	}
	if err := p.meter.Charge(size, labels); err != nil {
		if errors.Is(err, querycost.ErrSpent) {
			p.full = true
			return false, nil
		}
		return false, err
	}
	p.last = i
	return true, nil
}

// more reports whether there may be rows after the last one examined.
func (p *page) more() bool {
	return p.last >= 0 && (p.full || p.rows == p.read)
}

func liveWhere(q *query, table string, now int64) {
	q.sql.WriteString(" FROM ")
	q.sql.WriteString(table)
	q.sql.WriteString(" WHERE ")
	q.sql.WriteString(strings.Replace(statements.Live, "$%d", q.param(sdk.Int(now)), 1))
}

func (m *metrics) QueryMetrics(mq *abi.MetricQuery) (abi.Page[abi.Metric], error) {
	b := (*backend)(m)
	var out abi.Page[abi.Metric]
	w, err := querycost.Check(mq.Labels)
	if err != nil {
		return out, err
	}
	lf, err := abi.CompileMatchers(mq.Labels)
	if err != nil {
		return out, err
	}
	key := *mq
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	cur := cursor{kind: 'm', hash: hashQuery(b.enc.Bytes())}
	q, pluginOnly, err := metricQuery(mq, ns(sdk.Now()), cur)
	if err != nil {
		return out, err
	}
	limit := abi.PageLimit(mq.Limit)
	res, n, err := b.read(q, rowsToRead(limit, pluginOnly))
	if err != nil {
		return out, err
	}
	p := page{limit: limit, read: n, rows: res.Rows(), meter: querycost.NewMeter(w), last: -1}
	for i := 0; i < p.rows; i++ {
		row := res.Row(i)
		labels, err := decodeLabels(row[4].Bytes)
		if err != nil {
			return out, err
		}
		ok, err := p.next(i, len(row[0].Bytes)+len(row[1].Bytes)+len(row[4].Bytes)+24, labels, len(out.Items))
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		rec := abi.Metric{AgentID: string(row[0].Bytes), Name: string(row[1].Bytes), Timestamp: fromNS(row[2].Int),
			Value: row[3].Float, Labels: labels, ExpiresAt: fromNS(row[5].Int)}
		if lf.Match(rec.Labels) {
			out.Items = append(out.Items, rec)
		}
	}
	if p.more() {
		row := res.Row(p.last)
		out.Next = cur.make(&b.enc, string(row[0].Bytes), string(row[1].Bytes), row[2].Int)
	}
	return out, nil
}

func (a *alerts) QueryAlerts(aq *abi.AlertQuery) (abi.Page[abi.Alert], error) {
	b := (*backend)(a)
	var out abi.Page[abi.Alert]
	w, err := querycost.Check(aq.Labels)
	if err != nil {
		return out, err
	}
	lf, err := abi.CompileMatchers(aq.Labels)
	if err != nil {
		return out, err
	}
	key := *aq
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	cur := cursor{kind: 'a', hash: hashQuery(b.enc.Bytes())}
	q, pluginOnly, err := alertQuery(aq, ns(sdk.Now()), cur)
	if err != nil {
		return out, err
	}
	limit := abi.PageLimit(aq.Limit)
	res, n, err := b.read(q, rowsToRead(limit, pluginOnly))
	if err != nil {
		return out, err
	}
	p := page{limit: limit, read: n, rows: res.Rows(), meter: querycost.NewMeter(w), last: -1}
	for i := 0; i < p.rows; i++ {
		row := res.Row(i)
		rec := abi.Alert{ID: string(row[0].Bytes)}
		if err := decodeAlert(&rec, row[1:]); err != nil {
			return out, err
		}
		ok, err := p.next(i, len(row[0].Bytes)+len(row[1].Bytes)+len(row[4].Bytes)+len(row[5].Bytes)+32, rec.Labels, len(out.Items))
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		if lf.Match(rec.Labels) {
			out.Items = append(out.Items, rec)
		}
	}
	if p.more() {
		out.Next = cur.make(&b.enc, string(res.Row(p.last)[0].Bytes))
	}
	return out, nil
}

// metricQuery builds the SELECT of a metric query's page at now, all but
// its LIMIT, and reports whether matchers are left to the plugin.
func metricQuery(mq *abi.MetricQuery, now int64, cur cursor) (*query, bool, error) {
	q := new(query)
	q.sql.WriteString("SELECT agent_id, name, ts, value, labels, expires_at")
	liveWhere(q, "metrics", now)
	if mq.AgentID != "" {
		q.where("agent_id = %s", text(mq.AgentID))
	}
	if mq.Name != "" {
		q.where("name = %s", text(mq.Name))
	}
	if !mq.From.IsZero() {
		q.where("ts >= %s", sdk.Int(ns(mq.From)))
	}
	if !mq.To.IsZero() {
		q.where("ts < %s", sdk.Int(ns(mq.To)))
	}
	set, pluginOnly := sqlLabels(mq.Labels)
	if set != "" {
		q.where("label_set @> %s::jsonb", text(set))
		q.withValues = true
	}
	if len(mq.Cursor) > 0 {
		var agent, name string
		var ts int64
		if err := cur.open(mq.Cursor, &agent, &name, &ts); err != nil {
			return nil, false, err
		}
		// The form of the comparison the query's index serves.
		switch {
		case mq.AgentID != "" && mq.Name != "":
			q.where("ts > %s", sdk.Int(ts))
		case mq.AgentID != "":
			q.sql.WriteString(" AND (name, ts) > (" + q.param(text(name)) + ", " + q.param(sdk.Int(ts)) + ")")
		case mq.Name != "":
			q.sql.WriteString(" AND (agent_id, ts) > (" + q.param(text(agent)) + ", " + q.param(sdk.Int(ts)) + ")")
		default:
			q.sql.WriteString(" AND (agent_id, name, ts) > (" + q.param(text(agent)) + ", " + q.param(text(name)) + ", " + q.param(sdk.Int(ts)) + ")")
		}
	}
	if mq.Name != "" {
		q.sql.WriteString(" ORDER BY agent_id, ts")
	} else {
		q.sql.WriteString(" ORDER BY agent_id, name, ts")
	}
	return q, pluginOnly, nil
}

// alertQuery builds the SELECT of an alert query's page at now, all but
// its LIMIT, and reports whether matchers are left to the plugin.
func alertQuery(aq *abi.AlertQuery, now int64, cur cursor) (*query, bool, error) {
	q := new(query)
	q.sql.WriteString("SELECT id, agent_id, severity, status, message, labels, created_at, updated_at, expires_at")
	liveWhere(q, "alerts", now)
	if aq.AgentID != "" {
		q.where("agent_id = %s", text(aq.AgentID))
	}
	if len(aq.Severities) > 0 {
		q.where("severity = ANY(%s::smallint[])", text(intArray(aq.Severities)))
	}
	if len(aq.Statuses) > 0 {
		q.where("status = ANY(%s::smallint[])", text(intArray(aq.Statuses)))
	}
	if !aq.From.IsZero() {
		q.where("created_at >= %s", sdk.Int(ns(aq.From)))
		q.withValues = true
	}
	if !aq.To.IsZero() {
		q.where("created_at < %s", sdk.Int(ns(aq.To)))
		q.withValues = true
	}
	set, pluginOnly := sqlLabels(aq.Labels)
	if set != "" {
		q.where("label_set @> %s::jsonb", text(set))
		q.withValues = true
	}
	if len(aq.Cursor) > 0 {
		var id string
		if err := cur.open(aq.Cursor, &id); err != nil {
			return nil, false, err
		}
		q.where("id > %s", text(id))
	}
	q.sql.WriteString(" ORDER BY id")
	return q, pluginOnly, nil
}

// intArray is the PostgreSQL array text of vs, as {1,3}.
func intArray[T ~uint8](vs []T) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, v := range vs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(int(v)))
	}
	sb.WriteByte('}')
	return sb.String()
}

func (s *states) QueryAgentStates(sq *abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	b := (*backend)(s)
	var out abi.Page[abi.AgentState]
	key := *sq
	key.Limit, key.Cursor = 0, nil
	b.enc.Reset()
	key.Encode(&b.enc)
	cur := cursor{kind: 's', hash: hashQuery(b.enc.Bytes())}
	var q query
	q.sql.WriteString("SELECT agent_id, state, version, updated_at, expires_at")
	liveWhere(&q, "agent_states", ns(sdk.Now()))
	if p := sq.AgentIDPrefix; p != "" {
		if !textValue(p) {
			return out, nil // no agent ID starts with what is not text
		}
		q.where("agent_id >= %s", text(p))
		if end, ok := prefixEnd(p); ok {
			q.where("agent_id < %s", text(end))
		}
	}
	if len(sq.Cursor) > 0 {
		var id string
		if err := cur.open(sq.Cursor, &id); err != nil {
			return out, err
		}
		q.where("agent_id > %s", text(id))
	}
	q.sql.WriteString(" ORDER BY agent_id")
	limit := abi.PageLimit(sq.Limit)
	res, n, err := b.read(&q, rowsToRead(limit, false))
	if err != nil {
		return out, err
	}
	p := page{limit: limit, read: n, rows: res.Rows(), meter: querycost.NewMeter(querycost.Weights{}), last: -1}
	for i := 0; i < p.rows; i++ {
		row := res.Row(i)
		ok, err := p.next(i, len(row[0].Bytes)+len(row[1].Bytes)+24, nil, len(out.Items))
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out.Items = append(out.Items, abi.AgentState{AgentID: string(row[0].Bytes), State: append([]byte{}, row[1].Bytes...),
			Version: uint64(row[2].Int), UpdatedAt: fromNS(row[3].Int), ExpiresAt: fromNS(row[4].Int)})
	}
	if p.more() {
		out.Next = cur.make(&b.enc, string(res.Row(p.last)[0].Bytes))
	}
	return out, nil
}

// prefixEnd returns the least valid UTF-8 string above every string that
// starts with p (valid UTF-8), if there is one: p with its last rune
// replaced by the next one (UTF-8 orders bytes as it orders runes, and
// no rune's encoding is a prefix of another's). Without the bound, a
// generic plan of the prepared statement could not stop its index scan
// at the prefix's end.
func prefixEnd(p string) (string, bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		next := r + 1
		if next == 0xD800 {
			next = 0xE000 // surrogates are not valid UTF-8
		}
		if next <= utf8.MaxRune {
			return p + string(next), true
		}
	}
	return "", false
}
