package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/storage-host/storage-host/abi"
)

// SQL runs the statements of req on a backend's PostgreSQL as the
// backend's own role, in its schema, and returns one result per
// statement; the host passes its postgres bridge. An error means the
// request did not run, or its outcome is unknown.
type SQL func(ctx context.Context, req *abi.PGRequest) ([]abi.PGResult, error)

// PostgresTable is the table, in the backend's schema, that holds a
// Postgres bus's events.
const PostgresTable = "storagehost_events"

// NewPostgres returns a Bus whose log is the table PostgresTable in the
// backend's schema, which it creates when missing (EnsurePostgresTable),
// trimmed to about Options.Retention events and shared by every host that
// uses that schema (RATIONALE.md, "Why a log table for PostgreSQL events,
// and NOTIFY only to wake readers?"). Statements run through run, as the
// backend's role. listen, when not nil, is the connection on which the
// bus LISTENs for the NOTIFY sent after appends, so readers wake at once
// (the host passes the backend role's: LISTEN needs no privilege); that
// connection runs nothing else. Without it, or while it is down, readers
// look at the table every 200 ms.
//
// Besides the events published to the Bus, the table takes those a
// write_events plugin inserts in its writes' own transactions (abi/README.md,
// section 16.6); Bus.Written tells the bus that some were.
func NewPostgres(ctx context.Context, run SQL, schema string, listen *pgx.ConnConfig, opts Options, logger hclog.Logger) (*Bus, error) {
	opts = opts.withDefaults(true)
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	l := &pgLog{
		run:       run,
		schema:    schema,
		channel:   "storagehost_events_" + schema,
		retention: int64(opts.Retention),
		wake:      make(chan struct{}),
		written:   make(chan struct{}, 1),
		stop:      make(chan struct{}),
		logger:    logger,
	}
	if err := EnsurePostgresTable(ctx, run, schema); err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.announce()
	if listen != nil {
		cfg := listen.Copy()
		// This connection runs LISTEN and nothing else; with an empty
		// search_path no name it could resolve is one a plugin controls.
		cfg.RuntimeParams["search_path"] = ""
		cfg.RuntimeParams["application_name"] = "storage-host events " + schema
		l.wg.Add(1)
		go l.listen(cfg)
	}
	return newBus(l, opts, logger), nil
}

// pgLog is a table of events, read in the order of the transactions that
// inserted them. Its IDs are (the inserting transaction's ID, the row's
// sequence number).
//
// Sequence numbers alone do not order the log: two transactions draw
// theirs and commit in either order, and a reader that had seen the later
// number would skip the earlier row when it appeared. A transaction ID
// below the oldest one still running (pg_snapshot_xmin) belongs to a
// transaction that has ended, so the rows of those transactions are all
// there is of them, for good: readers take only those, in (transaction,
// sequence) order, and a row they have passed never appears behind them.
// No append waits for another, so a write_events plugin's writes insert
// their events in their own transactions with nothing serialised
// (RATIONALE.md, "Why are PostgreSQL events ordered by transaction ID?").
type pgLog struct {
	run       SQL
	schema    string
	channel   string
	retention int64
	logger    hclog.Logger

	mu   sync.Mutex
	wake chan struct{} // closed and replaced on each notification

	written chan struct{} // events were appended: notify the other hosts, trim
	stop    chan struct{} // closed by close
	wg      sync.WaitGroup

	// Of announce's trims: the position up to which this host has
	// trimmed the table, the lower bound of its next trim.
	trimmed id
}

func (l *pgLog) async() bool { return true }

// The table of events. xid is the inserting transaction's ID (its 64-bit
// form, which never wraps), by which readers order the log.
const pgTableDDL = `CREATE TABLE IF NOT EXISTS ` + PostgresTable + ` (
	seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind text NOT NULL,
	op text NOT NULL,
	agent text NOT NULL,
	key text NOT NULL,
	version bigint NOT NULL,
	at bigint NOT NULL,
	data bytea,
	xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint
)`

// pgAddXID gives xid and its index to the table as an older host created
// it (its rows get the ID of the transaction that adds the column, after
// any position read from it). Each step runs only when missing: an ALTER
// TABLE locks the table even when it has nothing to do, and hosts start
// while others write.
const pgAddXID = `DO $$BEGIN
IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = '` + PostgresTable + `'::regclass AND attname = 'xid' AND NOT attisdropped) THEN
	ALTER TABLE ` + PostgresTable + ` ADD COLUMN xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
END IF;
IF to_regclass('` + PostgresTable + `_xid') IS NULL THEN
	CREATE INDEX ` + PostgresTable + `_xid ON ` + PostgresTable + ` (xid, seq);
END IF;
END$$`

// EnsurePostgresTable creates the event table PostgresTable in the
// backend's schema if it is missing, under an advisory lock (hosts
// starting at once). The host calls it for a postgres backend even with
// events off, since a write_events plugin's statements name the table.
func EnsurePostgresTable(ctx context.Context, run SQL, schema string) error {
	l := &pgLog{run: run}
	_, err := l.exec(ctx, abi.PGTransaction,
		abi.PGStatement{SQL: "SELECT pg_advisory_xact_lock(hashtext($1))", Params: []abi.PGValue{text("storage-host events " + schema)}},
		abi.PGStatement{SQL: pgTableDDL},
		abi.PGStatement{SQL: pgAddXID},
	)
	if err != nil {
		return fmt.Errorf("events: creating the event table: %w", err)
	}
	return nil
}

// exec runs statements and returns their results, or the first failed
// statement's error (an *abi.PGError). A table that is gone (dropped by
// hand) is created again, and the statements run once more; a
// write_events plugin's writes fail until then, at most tableCheck.
func (l *pgLog) exec(ctx context.Context, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
	rs, err := l.execOnce(ctx, mode, stmts...)
	var pe *abi.PGError
	if l.schema != "" && errors.As(err, &pe) && pe.SQLState == "42P01" { // undefined_table
		if err := EnsurePostgresTable(ctx, l.run, l.schema); err != nil {
			return nil, err
		}
		rs, err = l.execOnce(ctx, mode, stmts...)
	}
	return rs, err
}

func (l *pgLog) execOnce(ctx context.Context, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
	rs, err := l.run(ctx, &abi.PGRequest{Mode: mode, Statements: stmts})
	if err != nil {
		return nil, err
	}
	if len(rs) != len(stmts) {
		return nil, fmt.Errorf("events: %d results for %d statements", len(rs), len(stmts))
	}
	for i := range rs {
		if err := rs[i].Err(); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func text(s string) abi.PGValue { return abi.PGValue{Kind: abi.PGText, Bytes: []byte(s)} }

func integer(n int64) abi.PGValue { return abi.PGValue{Kind: abi.PGInt, Int: n} }

const pgInsert = "INSERT INTO " + PostgresTable + " (kind, op, agent, key, version, at, data) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING xid, seq"

// append inserts evs in one transaction, in one round trip, then has the
// other hosts' readers woken (announce).
func (l *pgLog) append(ctx context.Context, evs []Event) error {
	stmts := make([]abi.PGStatement, 0, len(evs))
	for i := range evs {
		ev := &evs[i]
		data := abi.PGValue{Kind: abi.PGNull}
		if ev.Data != nil {
			data = abi.PGValue{Kind: abi.PGBytea, Bytes: ev.Data}
		}
		stmts = append(stmts, abi.PGStatement{SQL: pgInsert, Params: []abi.PGValue{
			text(ev.Kind), text(ev.Op), text(ev.AgentID), text(ev.Key),
			integer(int64(ev.Version)), integer(ev.Time.UnixNano()), data,
		}})
	}
	mode := abi.PGTransaction
	if len(stmts) == 1 {
		mode = abi.PGBatch // one statement is its own transaction
	}
	rs, err := l.exec(ctx, mode, stmts...)
	if err != nil {
		return err
	}
	// The backend's role can alter the table (a trigger that skips the
	// insert): what came back is checked before it is read.
	for i := range evs {
		v := rs[i].Values
		if len(v) != 2 {
			return fmt.Errorf("events: an insert into %s returned %d values, not its transaction and sequence number", PostgresTable, len(v))
		}
		evs[i].ID = id{uint64(v[0].Int), uint64(v[1].Int)}.String()
	}
	l.appended()
	return nil
}

// appended wakes this host's readers at once and has announce notify the
// other hosts' and trim the table.
func (l *pgLog) appended() {
	l.notify()
	select {
	case l.written <- struct{}{}:
	default: // an announcement is already due; it covers these events
	}
}

// notifyGap is the least time between two NOTIFYs of one host: the
// appends in between share the next one. Every write of a write_events
// plugin appends, and a NOTIFY each would cost a statement on the
// backend's pool and a wake-up of every listening host per write.
const notifyGap = 5 * time.Millisecond

// tableCheck is how often a host makes sure the event table exists.
const tableCheck = 2 * time.Second

// announce sends a NOTIFY after appends, at most one every notifyGap, so
// that every host's readers look at the table soon (this host's were
// woken at once), and trims the table after appends, at most once a
// second. The NOTIFY is a statement of its own, never in a transaction
// that writes: PostgreSQL serialises the commits of transactions that
// notify.
func (l *pgLog) announce() {
	defer l.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-l.stop
		cancel()
	}()
	var lastTrim time.Time
	var trimDue <-chan time.Time // set while a trim waits for its second
	// A table dropped by hand fails a write_events plugin's writes, which
	// then append nothing that would create it again: it is looked for
	// every tableCheck.
	check := time.NewTicker(tableCheck)
	defer check.Stop()
	trim := func() {
		trimDue, lastTrim = nil, time.Now()
		if err := l.trim(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn("cannot trim the event table", "error", err)
		}
	}
	notify := func(ctx context.Context) {
		if _, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: "SELECT pg_notify($1, '')", Params: []abi.PGValue{text(l.channel)}}); err != nil && ctx.Err() == nil {
			l.logger.Debug("cannot notify other hosts of events; they read every 200ms meanwhile", "error", err)
		}
	}
	// The last appends, made while the bus closed, are announced too.
	last := func() {
		select {
		case <-l.written:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			notify(ctx)
		default:
		}
	}
	for {
		select {
		case <-l.written:
			notify(ctx)
			select {
			case <-time.After(notifyGap):
			case <-l.stop:
				last()
				return
			}
			if trimDue == nil {
				if wait := time.Second - time.Since(lastTrim); wait > 0 {
					trimDue = time.After(wait)
				} else {
					trim()
				}
			}
		case <-trimDue:
			trim()
		case <-check.C:
			if _, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: "SELECT FROM " + PostgresTable + " LIMIT 0"}); err != nil && ctx.Err() == nil {
				l.logger.Debug("cannot look for the event table", "error", err)
			}
		case <-l.stop:
			last()
			return
		}
	}
}

// pgTrim deletes, in log order, the events older than the newest $3 of
// ended transactions, from after ($1, $2) (where this host trimmed to
// last) up, and returns the newest it deleted. Only ended transactions'
// rows count and go: a row a reader cannot take yet (an older
// transaction still runs) is never deleted before it could be read, and
// what is deleted is always a beginning of the log as readers see it, so
// retained is exact. The lower bound makes the plan a scan of the
// (xid, seq) index from there, not of the table, whose dead rows an
// earlier trim left (9 ms at 100 000 events, against 0.4 ms; RATIONALE.md).
const pgTrim = `WITH b AS (SELECT xid, seq FROM ` + PostgresTable + ` WHERE xid < ` + pgHorizon + `
	ORDER BY xid DESC, seq DESC OFFSET $3 LIMIT 1),
d AS (DELETE FROM ` + PostgresTable + ` e USING b WHERE (e.xid, e.seq) > ($1, $2) AND (e.xid, e.seq) <= (b.xid, b.seq)
	RETURNING e.xid, e.seq)
SELECT xid, seq FROM d ORDER BY xid DESC, seq DESC LIMIT 1`

// trim keeps about the newest retention events of ended transactions,
// and every event of those still running.
func (l *pgLog) trim(ctx context.Context) error {
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: pgTrim, Params: []abi.PGValue{
		integer(int64(l.trimmed.hi)), integer(int64(l.trimmed.lo)), integer(l.retention),
	}})
	if err != nil {
		return err
	}
	if rs[0].Rows() == 1 {
		// Transaction IDs only grow, so in a table dropped and created
		// again every row is after this bound too.
		row := rs[0].Row(0)
		l.trimmed = id{uint64(row[0].Int), uint64(row[1].Int)}
	}
	return nil
}

// pgHorizon is the oldest transaction still running: every transaction
// below it has ended, so the rows it inserted are final.
const pgHorizon = `pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// pgRead selects up to $3 events after the position ($1 the transaction,
// $2 the sequence number), of ended transactions only, in log order.
//
// Each field is cut to a bound (the names to abi.MaxEventNameLength, the
// data to abi.MaxEventData): the backend's role can write the table too.
var pgRead = `SELECT xid, seq, left(kind, ` + strconv.Itoa(abi.MaxEventNameLength) + `), left(op, ` + strconv.Itoa(abi.MaxEventNameLength) + `),
	left(agent, 4096), left(key, 4096), version, at, substring(data for ` + strconv.Itoa(abi.MaxEventData) + `)
FROM ` + PostgresTable + `
WHERE (xid, seq) > ($1, $2) AND xid < ` + pgHorizon + `
ORDER BY xid, seq LIMIT $3`

func (l *pgLog) read(ctx context.Context, after id, n int, wait time.Duration) ([]Event, error) {
	var timer <-chan time.Time
	for {
		// Taken before the query: a notification sent after it is not missed.
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		evs, err := l.query(ctx, after, n)
		if err != nil || len(evs) > 0 || wait <= 0 {
			return evs, err
		}
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-wake:
		case <-timer:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// query reads up to n events after `after`. Results too large for the
// bridge's cap (big plugin events; the backend's role can write the
// table too) are read again in smaller pages: a row is cut to a few
// tens of kilobytes, so a page of one fits any usable cap.
func (l *pgLog) query(ctx context.Context, after id, n int) ([]Event, error) {
	var rs []abi.PGResult
	var err error
	for {
		rs, err = l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: pgRead, Params: []abi.PGValue{
			integer(int64(after.hi)), integer(int64(after.lo)), integer(int64(n)),
		}})
		var ae *abi.Error
		if n > 1 && errors.As(err, &ae) && ae.Status == abi.StatusLimit {
			n /= 2
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	r := &rs[0]
	out := make([]Event, 0, r.Rows())
	for i := range r.Rows() {
		row := r.Row(i)
		ev := Event{
			ID:      id{uint64(row[0].Int), uint64(row[1].Int)}.String(),
			Kind:    string(row[2].Bytes),
			Op:      string(row[3].Bytes),
			AgentID: string(row[4].Bytes),
			Key:     string(row[5].Bytes),
			Version: uint64(row[6].Int),
		}
		if ns := row[7].Int; ns != 0 {
			ev.Time = time.Unix(0, ns).UTC()
		}
		if row[8].Kind == abi.PGBytea {
			ev.Data = row[8].Bytes
		}
		out = append(out, ev)
	}
	return out, nil
}

// last is the newest event of an ended transaction: every event after it
// is one readers have not been given yet.
func (l *pgLog) last(ctx context.Context) (id, error) {
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT xid, seq FROM " + PostgresTable + " WHERE xid < " + pgHorizon + " ORDER BY xid DESC, seq DESC LIMIT 1",
	})
	if err != nil {
		return id{}, err
	}
	if rs[0].Rows() == 0 {
		return id{}, nil // none yet: as a Redis Stream without entries
	}
	row := rs[0].Row(0)
	return id{uint64(row[0].Int), uint64(row[1].Int)}, nil
}

// retained reports whether the position is within the events kept, from
// the oldest to the newest, as the Redis log does: trimming removes the
// oldest first. A position from before the table was dropped and created
// again is below its oldest event (transaction IDs only grow).
func (l *pgLog) retained(ctx context.Context, after id) (bool, error) {
	if after == (id{}) {
		return true, nil
	}
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT o.xid, o.seq, n.xid, n.seq FROM " +
			"(SELECT xid, seq FROM " + PostgresTable + " ORDER BY xid, seq LIMIT 1) o, " +
			"(SELECT xid, seq FROM " + PostgresTable + " ORDER BY xid DESC, seq DESC LIMIT 1) n",
	})
	if err != nil {
		return false, err
	}
	if rs[0].Rows() == 0 {
		return false, nil // empty: whatever followed the position is gone
	}
	row := rs[0].Row(0)
	oldest := id{uint64(row[0].Int), uint64(row[1].Int)}
	newest := id{uint64(row[2].Int), uint64(row[3].Int)}
	return !after.less(oldest) && !newest.less(after), nil
}

// listen keeps a connection LISTENing on the log's channel, waking the
// readers on each notification, until close; it connects again after a
// failure. The notification's payload is not read: it only says "look".
func (l *pgLog) listen(cfg *pgx.ConnConfig) {
	defer l.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-l.stop
		cancel()
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		l.logger.Warn("cannot listen for event notifications; reading every 200ms meanwhile", "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (l *pgLog) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return err
	}
	l.notify() // events appended while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		l.notify()
	}
}

// notify wakes every reader waiting for events.
func (l *pgLog) notify() {
	l.mu.Lock()
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// close stops the listener.
func (l *pgLog) close() {
	close(l.stop)
	l.wg.Wait()
}
