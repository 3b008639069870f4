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
// backend's schema, which it creates when missing, trimmed to
// Options.Retention events and shared by every host that uses that
// schema (RATIONALE.md, "Why a log table for PostgreSQL events, and
// NOTIFY only to wake readers?"). Statements run through run, as the
// backend's role. listen, when not nil, is the connection on which the
// bus LISTENs for the NOTIFY each append sends, so readers wake at once
// (the host passes the backend role's: LISTEN needs no privilege); that
// connection runs nothing else. Without it, or while it is down, readers
// look at the table every 200 ms.
func NewPostgres(ctx context.Context, run SQL, schema string, listen *pgx.ConnConfig, opts Options, logger hclog.Logger) (*Bus, error) {
	opts = opts.withDefaults(true)
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	l := &pgLog{
		run:       run,
		channel:   "storagehost_events_" + schema,
		lockKey:   "storage-host events " + schema,
		retention: int64(opts.Retention),
		wake:      make(chan struct{}),
		stop:      make(chan struct{}),
		logger:    logger,
	}
	if err := l.ensure(ctx); err != nil {
		return nil, err
	}
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

// pgLog is a table of events. Its IDs are (the table's OID, its row's
// sequence number): a table created again has another OID, so a position
// in the one before is recognisably foreign, as a Redis Stream's that
// Redis lost.
//
// Appends take a transaction-scoped advisory lock before they draw their
// sequence numbers, so the rows of one append commit before the next
// append draws any: a reader that has seen sequence n never sees a row
// below n appear later. (Without the lock, two hosts' transactions could
// commit out of sequence order and a reader skip the earlier one.)
type pgLog struct {
	run       SQL
	channel   string
	lockKey   string
	retention int64
	logger    hclog.Logger

	mu   sync.Mutex
	wake chan struct{} // closed and replaced on each notification

	stop chan struct{} // closed by close
	wg   sync.WaitGroup

	// Of append, which only the Bus's appender calls, one at a time: the
	// table (its OID) and the sequence number up to which this host has
	// trimmed it, the lower bound of its next trim.
	trimEpoch, trimmed uint64
}

func (l *pgLog) async() bool { return true }

const pgTableDDL = `CREATE TABLE IF NOT EXISTS ` + PostgresTable + ` (
	seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind text NOT NULL,
	op text NOT NULL,
	agent text NOT NULL,
	key text NOT NULL,
	version bigint NOT NULL,
	at bigint NOT NULL,
	data bytea
)`

// ensure creates the table if it is missing, under the append lock (hosts
// starting at once).
func (l *pgLog) ensure(ctx context.Context) error {
	_, err := l.exec(ctx, abi.PGTransaction,
		abi.PGStatement{SQL: "SELECT pg_advisory_xact_lock(hashtext($1))", Params: []abi.PGValue{text(l.lockKey)}},
		abi.PGStatement{SQL: pgTableDDL},
	)
	if err != nil {
		return fmt.Errorf("events: creating the event table: %w", err)
	}
	return nil
}

// exec runs statements and returns their results, or the first failed
// statement's error (an *abi.PGError).
func (l *pgLog) exec(ctx context.Context, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
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

const pgInsert = "INSERT INTO " + PostgresTable + " (kind, op, agent, key, version, at, data) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq"

// append inserts evs in one transaction, in one round trip, then trims
// the table to the retention and wakes the readers of every host. A table
// that is gone (dropped by hand) is created again, with a new OID.
func (l *pgLog) append(ctx context.Context, evs []Event) error {
	stmts := make([]abi.PGStatement, 0, len(evs)+3)
	stmts = append(stmts, abi.PGStatement{SQL: "SELECT pg_advisory_xact_lock(hashtext($1))", Params: []abi.PGValue{text(l.lockKey)}})
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
	stmts = append(stmts,
		// Trimmed to the newest sequence number less the retention, in
		// the same transaction: the table never holds more. The range has
		// a lower bound, where this host trimmed to last, so that the plan
		// is a scan of the key's index from there, not of the table: with
		// an upper bound alone, which only the subquery knows, PostgreSQL
		// estimates a third of the rows and scans them all (9 ms an
		// append at 100 000 events, against 0.4 ms; RATIONALE.md).
		abi.PGStatement{SQL: pgTrim, Params: []abi.PGValue{integer(int64(l.trimmed)), integer(l.retention)}},
		// Delivered when the transaction commits, to every host listening.
		abi.PGStatement{SQL: "SELECT pg_notify($1, ''), '" + PostgresTable + "'::regclass::oid::bigint", Params: []abi.PGValue{text(l.channel)}},
	)
	rs, err := l.exec(ctx, abi.PGTransaction, stmts...)
	var pe *abi.PGError
	if errors.As(err, &pe) && pe.SQLState == "42P01" { // undefined_table
		if err := l.ensure(ctx); err != nil {
			return err
		}
		rs, err = l.exec(ctx, abi.PGTransaction, stmts...)
	}
	if err != nil {
		return err
	}
	// The backend's role can alter the table (a trigger that skips the
	// insert): what came back is checked before it is read.
	if v := rs[len(rs)-1].Values; len(v) != 2 {
		return errors.New("events: the notify statement returned no OID")
	}
	epoch := uint64(rs[len(rs)-1].Values[1].Int)
	var newest uint64
	for i := range evs {
		v := rs[1+i].Values
		if len(v) != 1 {
			return fmt.Errorf("events: an insert into %s returned %d values, not its sequence number", PostgresTable, len(v))
		}
		newest = uint64(v[0].Int)
		evs[i].ID = id{epoch, newest}.String()
	}
	// Under the append lock the newest row is this append's last, so the
	// trim removed every row up to newest less the retention. In a table
	// created again (another OID) the next trim starts from its beginning.
	if epoch != l.trimEpoch && l.trimmed != 0 {
		// This trim started from a position in another table.
		l.trimEpoch, l.trimmed = epoch, 0
		return nil
	}
	l.trimEpoch = epoch
	if newest > uint64(l.retention) {
		l.trimmed = max(l.trimmed, newest-uint64(l.retention))
	}
	return nil
}

const pgTrim = "DELETE FROM " + PostgresTable + " WHERE seq > $1 AND seq <= (SELECT max(seq) FROM " + PostgresTable + ") - $2"

// pgRead selects up to $3 events after the position ($1 the table's OID,
// $2 the sequence number) and the table's OID, in one row at least: a
// position in another table counts as the beginning.
//
// Each field is cut to a bound (the names to abi.MaxEventNameLength, the
// data to abi.MaxEventData): the backend's role can write the table too.
var pgRead = `SELECT t.epoch, e.seq, left(e.kind, ` + strconv.Itoa(abi.MaxEventNameLength) + `), left(e.op, ` + strconv.Itoa(abi.MaxEventNameLength) + `),
	left(e.agent, 4096), left(e.key, 4096), e.version, e.at, substring(e.data for ` + strconv.Itoa(abi.MaxEventData) + `)
FROM (SELECT '` + PostgresTable + `'::regclass::oid::bigint AS epoch) t
LEFT JOIN LATERAL (
	SELECT * FROM ` + PostgresTable + `
	WHERE seq > CASE WHEN t.epoch = $1 THEN $2 ELSE 0 END
	ORDER BY seq LIMIT $3
) e ON true`

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
		if row[1].Kind == abi.PGNull {
			break // no event: the row only carries the OID
		}
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

func (l *pgLog) last(ctx context.Context) (id, error) {
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT '" + PostgresTable + "'::regclass::oid::bigint, max(seq) FROM " + PostgresTable,
	})
	if err != nil {
		return id{}, err
	}
	row := rs[0].Row(0)
	if row[1].Kind == abi.PGNull {
		return id{}, nil // empty: as a Redis Stream without entries
	}
	return id{uint64(row[0].Int), uint64(row[1].Int)}, nil
}

// retained reports whether the position is at or past the oldest event
// left in the same table, as the Redis log does: trimming removes the
// oldest first.
func (l *pgLog) retained(ctx context.Context, after id) (bool, error) {
	if after == (id{}) {
		return true, nil
	}
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT '" + PostgresTable + "'::regclass::oid::bigint, min(seq), max(seq) FROM " + PostgresTable,
	})
	if err != nil {
		return false, err
	}
	row := rs[0].Row(0)
	if uint64(row[0].Int) != after.hi {
		return false, nil // another table's position
	}
	if row[1].Kind == abi.PGNull {
		return after.lo == 0, nil
	}
	return after.lo >= uint64(row[1].Int) && after.lo <= uint64(row[2].Int), nil
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
