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
	"github.com/storage-host/storage-host/host/internal/pgbridge"
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
	if err := EnsurePostgresTable(ctx, run, schema); errors.Is(err, ErrTableRebuilt) {
		logger.Error(err.Error())
	} else if err != nil {
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

// pgLog is a table of events. Writers insert rows without a position;
// a sequencer gives the rows of committed transactions their positions,
// in one transaction at a time per table, and readers take only rows
// with a position, in position order. Its IDs are (the table's storage,
// the row's position): the storage is the table's file node, which
// PostgreSQL gives anew when the table is created, truncated or
// rewritten, so a position in the table as it was before is
// recognisably foreign, as a Redis Stream's that Redis lost. Positions
// are never given twice in one storage: the sequencer's row keeps the
// highest deleted, by trims and by hand.
//
// Sequence numbers drawn at insert do not order the log: two
// transactions draw theirs and commit in either order, and a reader that
// had seen the later number would skip the earlier row when it appeared.
// A sequencer run sees only committed rows and gives them positions after
// every position given before; a row committed later gets a later one. So
// a reader never finds a row behind a position it has passed, while no
// writer waits for another (a write_events plugin's writes insert their
// events in their own transactions, nothing serialised), and a
// transaction that stays open holds back only its own rows (RATIONALE.md,
// "Why does a sequencer order the PostgreSQL event log?").
type pgLog struct {
	run       SQL
	schema    string
	channel   string
	retention int64
	logger    hclog.Logger

	mu   sync.Mutex
	wake chan struct{} // closed and replaced on each notification
	// top is the newest position this host has read (and handed out),
	// under mu: the sequencer skips past it when positions went back
	// (see checkLife).
	top id

	written chan struct{} // events were appended: sequence them, notify, trim
	stop    chan struct{} // closed by close
	wg      sync.WaitGroup

	// Of announce's trims: the table (its OID) and the position up to
	// which this host has trimmed it, the lower bound of its next trim.
	trimEpoch, trimmed uint64
	warned             time.Time // when announce last logged a failure
	sequenced          bool      // the sequencer numbered rows since the last vacuum

	// Of the fan-out's reads (read with a wait), owned by them: see
	// checkLife.
	fan struct {
		epoch   uint64 // the table's storage at the last read
		at      id     // the position of the row below
		seq, ns int64  // that row's sequence number and time
		tables  string // the record tables' storage at the last look
		looked  time.Time
	}
}

func (l *pgLog) async() bool { return true }

// The table of events. seq is drawn at insert; pos, the position readers
// see, is given by the sequencer (NULL until then).
const pgTableDDL = `CREATE TABLE IF NOT EXISTS ` + PostgresTable + ` (
	seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind text NOT NULL,
	op text NOT NULL,
	agent text NOT NULL,
	key text NOT NULL,
	version bigint NOT NULL,
	at bigint NOT NULL,
	data bytea,
	pos bigint
)`

// pgAddPos gives pos and its indexes to the table as an older host
// created it: its rows, appended under a lock in sequence order, keep
// their sequence numbers as positions, so positions held from then stay
// valid. Each step runs only when missing: an ALTER TABLE locks the table
// even when it has nothing to do, and hosts start while others write. It
// also creates the sequencer's table and its row, gives the table of an
// older host the column of the highest position deleted, and creates the
// trigger that keeps it (pgDeleting).
const pgAddPos = `DO $$BEGIN
IF to_regclass('` + pgSequencerTable + `') IS NULL THEN
	CREATE TABLE ` + pgSequencerTable + ` (one boolean PRIMARY KEY DEFAULT true CHECK (one), high bigint NOT NULL DEFAULT 0);
	INSERT INTO ` + pgSequencerTable + ` DEFAULT VALUES;
END IF;
IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = '` + pgSequencerTable + `'::regclass AND attname = 'high' AND NOT attisdropped) THEN
	ALTER TABLE ` + pgSequencerTable + ` ADD COLUMN high bigint NOT NULL DEFAULT 0;
END IF;
IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = '` + PostgresTable + `'::regclass AND attname = 'pos' AND NOT attisdropped) THEN
	ALTER TABLE ` + PostgresTable + ` ADD COLUMN pos bigint;
	UPDATE ` + PostgresTable + ` SET pos = seq;
END IF;
IF to_regclass('` + PostgresTable + `_pos') IS NULL THEN
	CREATE UNIQUE INDEX ` + PostgresTable + `_pos ON ` + PostgresTable + ` (pos);
END IF;
IF to_regclass('` + PostgresTable + `_new') IS NULL THEN
	CREATE INDEX ` + PostgresTable + `_new ON ` + PostgresTable + ` (seq) WHERE pos IS NULL;
END IF;
IF NOT EXISTS (SELECT FROM pg_proc WHERE oid = to_regprocedure('` + pgDeleting + `()') AND prosrc LIKE '%SET high = 0;%') THEN
	CREATE OR REPLACE FUNCTION ` + pgDeleting + `() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$BEGIN
		IF TG_OP = 'TRUNCATE' THEN
			UPDATE ` + pgSequencerTable + ` SET high = 0;
		ELSE
			UPDATE ` + pgSequencerTable + ` SET high = greatest(high, (SELECT coalesce(max(pos), 0) FROM ` + PostgresTable + `));
		END IF;
		RETURN NULL;
	END$f$;
END IF;
IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = '` + PostgresTable + `'::regclass AND tgname = '` + pgDeleting + `') THEN
	CREATE TRIGGER ` + pgDeleting + ` BEFORE DELETE ON ` + PostgresTable + ` FOR EACH STATEMENT EXECUTE FUNCTION ` + pgDeleting + `();
END IF;
IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = '` + PostgresTable + `'::regclass AND tgname = '` + pgTruncated + `') THEN
	CREATE TRIGGER ` + pgTruncated + ` AFTER TRUNCATE ON ` + PostgresTable + ` FOR EACH STATEMENT EXECUTE FUNCTION ` + pgDeleting + `();
END IF;
END$$`

// pgDeleting is the trigger, and its function, that records in the
// sequencer's row the highest position given before any DELETE of events
// (the host's trims, once a second at most, and rows deleted by hand), so
// that the sequencer never gives a deleted event's position again. It
// runs once a statement, before the rows go: a sequencer run pays nothing
// for it. It takes the sequencer's row lock, as a run does first too, so
// a DELETE and a run never deadlock.
const pgDeleting = PostgresTable + "_deleting"

// pgTruncated is the trigger that runs pgDeleting after a TRUNCATE of
// the events, which gives the table a new storage, and with it new IDs:
// the sequencer starts again from 0, so that the new storage's first
// event is at position 1 and a subscription that started on the emptied
// table (at 0, see anchor) resumes across it. It takes the sequencer's
// row after the TRUNCATE took the table, as a run does (pgSequenceBegin):
// a run waits for the TRUNCATE, or the TRUNCATE for the run, never both.
// (A run of a host older than the trigger takes the row first: a
// TRUNCATE meeting one deadlocks, and PostgreSQL ends one of the two.)
const pgTruncated = PostgresTable + "_truncated"

// EnsurePostgresTable creates the event table PostgresTable in the
// backend's schema if it is missing, under an advisory lock (hosts
// starting at once) waited for at most pgbridge.LockWait: any role may
// take it, so past that the statements run without it, and again while
// they meet a host that made the same objects first (pgbridge.RunAgain).
// The host calls it for a postgres backend even with events off, since a
// write_events plugin's statements name the table.
func EnsurePostgresTable(ctx context.Context, run SQL, schema string) error {
	l := &pgLog{run: run}
	var err error
	for attempt := range 4 {
		var stmts []abi.PGStatement
		if attempt == 0 {
			stmts = append(stmts,
				abi.PGStatement{SQL: "SELECT pg_catalog.set_config('lock_timeout', $1, true)", Params: []abi.PGValue{text(strconv.FormatInt(pgbridge.LockWait.Milliseconds(), 10))}},
				abi.PGStatement{SQL: "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))", Params: []abi.PGValue{text("storage-host events " + schema)}},
			)
		}
		stmts = append(stmts, abi.PGStatement{SQL: pgTableDDL}, abi.PGStatement{SQL: pgAddPos})
		_, err = l.exec(ctx, abi.PGTransaction, stmts...)
		var pe *abi.PGError
		if err == nil || !errors.As(err, &pe) {
			break
		}
		// A statement timeout of LockWait or less (a call timeout of a
		// second) ends the first attempt's wait for the lock before its
		// lock_timeout does: that attempt runs again without the lock
		// too, or a plugin holding the key (any role may take it) would
		// keep the backend from opening.
		// Two hosts replacing the trigger function at once without the
		// lock: the second's is refused "tuple concurrently updated"
		// (XX000), and finds the function replaced when it runs again.
		if !pgbridge.RunAgain(pe.SQLState) && (attempt != 0 || pe.SQLState != "57014") && pe.SQLState != "XX000" { // query_canceled
			break
		}
	}
	var pe *abi.PGError
	if err != nil && errors.As(err, &pe) && madeWrong(pe.SQLState) {
		// The backend's role owns the table, and its plugin may have
		// altered it so that no host can put it right (a column
		// dropped, a trigger that raises on the repair's UPDATE): a
		// backend that could not open took every other backend of its
		// daemon down with it, for good. The log is lost already; a new
		// one is made, and its readers are told so (its storage is new).
		// Under the hosts' lock, and not when an object outside the
		// schema (an operator's view, trigger or publication: the role
		// can make none there) depends on what goes, which CASCADE
		// would drop too.
		rs, derr := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: pgOutsideDependent, Params: []abi.PGValue{text(schema)}})
		switch {
		case derr != nil:
			err = fmt.Errorf("%w; not made anew: %w", err, derr)
		case rs[0].Rows() > 0:
			err = fmt.Errorf("%w; not made anew: %s depends on it", err, rs[0].Row(0)[0].Bytes)
		default:
			_, derr = l.exec(ctx, abi.PGTransaction,
				abi.PGStatement{SQL: "SELECT pg_catalog.set_config('lock_timeout', $1, true)", Params: []abi.PGValue{text(strconv.FormatInt(pgbridge.LockWait.Milliseconds(), 10))}},
				abi.PGStatement{SQL: "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))", Params: []abi.PGValue{text("storage-host events " + schema)}},
				abi.PGStatement{SQL: "DROP TABLE IF EXISTS " + PostgresTable + ", " + pgSequencerTable + " CASCADE"},
				abi.PGStatement{SQL: "DROP FUNCTION IF EXISTS " + pgDeleting + "() CASCADE"},
				abi.PGStatement{SQL: pgTableDDL}, abi.PGStatement{SQL: pgAddPos})
			if derr == nil {
				return fmt.Errorf("%w (%w)", ErrTableRebuilt, err)
			}
			err = fmt.Errorf("%w; not made anew: %w", err, derr)
		}
	}
	if err != nil {
		return fmt.Errorf("events: creating the event table: %w", err)
	}
	return nil
}

// pgOutsideDependent answers an object outside schema $1 that depends on
// the event table, its sequencer or its trigger function, if there is
// one (its kind and name); what is part of them (their row types, TOAST
// tables, identity sequences) is left out.
const pgOutsideDependent = `SELECT o.type OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) o.identity
	FROM pg_catalog.pg_depend d, pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) o
	WHERE (d.refclassid, d.refobjid) IN (
		SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n
			WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid AND n.nspname OPERATOR(pg_catalog.=) $1
			AND c.relname OPERATOR(pg_catalog.=) ANY ('{` + PostgresTable + `,` + pgSequencerTable + `}')
		UNION ALL
		SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc p, pg_catalog.pg_namespace n
			WHERE p.pronamespace OPERATOR(pg_catalog.=) n.oid AND n.nspname OPERATOR(pg_catalog.=) $1
			AND p.proname OPERATOR(pg_catalog.=) '` + pgDeleting + `')
	AND d.deptype OPERATOR(pg_catalog.<>) 'i' AND coalesce(o.schema, (SELECT n.nspname FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n
		WHERE n.oid OPERATOR(pg_catalog.=) c.relnamespace AND c.oid OPERATOR(pg_catalog.=) CASE d.classid -- what has no schema but its table's
			WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid OPERATOR(pg_catalog.=) d.objid)
			WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid OPERATOR(pg_catalog.=) d.objid)
			WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid OPERATOR(pg_catalog.=) d.objid)
			WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid OPERATOR(pg_catalog.=) d.objid)
			END)) IS DISTINCT FROM $1
	LIMIT 1`

// ErrTableRebuilt is EnsurePostgresTable's error when the event table
// was made anew, its events lost, because the one in place could not be
// put right: the table is ready, and the caller says so (logs it).
var ErrTableRebuilt = errors.New("events: the event table could not be put right (its plugin's role altered it), and was made anew: its events are lost")

// madeWrong reports whether a statement failed for what the objects it
// names are (class 42: a column, a table or a function missing or not
// what it should be, but a privilege; 23: a constraint; P0: an exception
// a trigger or a function raised; 22: data; 2F, 38, 39: a function's),
// not for the server's state: a connection, resources, a lock, a cancel,
// a serialization failure or an internal error leave the log alone.
func madeWrong(sqlState string) bool {
	if len(sqlState) != 5 || pgbridge.RunAgain(sqlState) { // another host making the same objects
		return false
	}
	switch sqlState[:2] {
	case "42", "23", "P0", "22", "2F", "38", "39":
		return sqlState != "42501" // a privilege taken is the operator's to give back
	}
	return false
}

// exec runs statements and returns their results, or the first failed
// statement's error (an *abi.PGError). A table that is gone (dropped by
// hand) is created again, and the statements run once more; a
// write_events plugin's writes fail until then, at most tableCheck.
func (l *pgLog) exec(ctx context.Context, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
	rs, err := l.execOnce(ctx, mode, stmts...)
	var pe *abi.PGError
	if l.schema != "" && errors.As(err, &pe) && pe.SQLState == "42P01" { // undefined_table
		if err := EnsurePostgresTable(ctx, l.run, l.schema); errors.Is(err, ErrTableRebuilt) {
			l.logger.Error(err.Error())
		} else if err != nil {
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

// syncCommit starts the host's own transactions on the event table: the
// backend's sessions log in with synchronous_commit on, but its plugin
// may set it off for its session, for the calls until the session is
// reset; an event appended or numbered without its WAL on disk could be
// lost in a crash after readers saw it, and its position given again.
var syncCommit = abi.PGStatement{SQL: "SELECT pg_catalog.set_config('synchronous_commit', 'on', true)"}

const pgInsert = "INSERT INTO " + PostgresTable + " (kind, op, agent, key, version, at, data) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq"

// append inserts evs in one transaction, in one round trip, and has them
// sequenced (announce). Their IDs are given then, not here.
func (l *pgLog) append(ctx context.Context, evs []Event) error {
	stmts := make([]abi.PGStatement, 0, 1+len(evs))
	stmts = append(stmts, syncCommit)
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
	rs, err := l.exec(ctx, abi.PGTransaction, stmts...)
	if err != nil {
		return err
	}
	// The backend's role can alter the table (a trigger that skips the
	// insert): what came back is checked.
	for i := range evs {
		if v := rs[1+i].Values; len(v) != 1 {
			return fmt.Errorf("events: an insert into %s returned %d values, not its sequence number", PostgresTable, len(v))
		}
	}
	l.appended()
	return nil
}

// appended has announce sequence the events appended, wake this host's
// readers and notify the other hosts'.
func (l *pgLog) appended() {
	select {
	case l.written <- struct{}{}:
	default: // an announcement is already due; it covers these events
	}
}

// notifyGap is the least time between two announcements of one host: the
// appends in between share the next. Every write of a write_events plugin
// appends, and a sequencer run and a NOTIFY each would cost two
// statements on the backend's pool and a wake-up of every listening host
// per write.
const notifyGap = 5 * time.Millisecond

// tableCheck is how often a host makes sure the event table exists, and
// sequences rows that a host which died after its writes left behind.
const tableCheck = 2 * time.Second

// announce sequences the events appended, then sends a NOTIFY, at most
// once every notifyGap, so that every host's readers look at the table
// (this host's are woken at once), and trims the table after appends, at
// most once a second. The NOTIFY is a statement of its own, never in a
// transaction that writes: PostgreSQL serialises the commits of
// transactions that notify.
func (l *pgLog) announce() {
	defer l.wg.Done()
	ctx, cancel := l.untilClosed()
	defer cancel()
	var lastTrim time.Time
	var trimDue <-chan time.Time // set while a trim waits for its second
	check := time.NewTicker(tableCheck)
	defer check.Stop()
	trim := func() {
		trimDue, lastTrim = nil, time.Now()
		l.warn(ctx, "cannot trim the event table", l.trim(ctx))
	}
	// sequence gives the events appended their positions and wakes this
	// host's readers; announce also notifies the other hosts'.
	sequence := func(ctx context.Context) bool {
		err := l.sequence(ctx)
		l.warn(ctx, "cannot sequence events", err)
		if err == nil {
			l.notify()
		}
		return err == nil
	}
	announce := func(ctx context.Context) {
		if !sequence(ctx) {
			return
		}
		// Its commit need not wait for its WAL to reach the disk
		// (what it announces has, and a NOTIFY lost in a crash only
		// leaves readers to their next look): a notifying commit holds
		// the server's one notification queue lock while it waits.
		_, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: "SELECT pg_catalog.set_config('synchronous_commit', 'off', true), pg_catalog.pg_notify($1, '')", Params: []abi.PGValue{text(l.channel)}})
		if err != nil && ctx.Err() == nil {
			l.logger.Debug("cannot notify other hosts of events; they read every 200ms meanwhile", "error", err)
		}
	}
	// The last appends, made while the bus closed, are announced too.
	last := func() {
		select {
		case <-l.written:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			announce(ctx)
		default:
		}
	}
	for {
		select {
		case <-l.written:
			announce(ctx)
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
			// A table dropped by hand fails a write_events plugin's
			// writes, which then append nothing that would create it
			// again; the sequencer's statement creates it. Rows a host
			// left unsequenced (it died after its writes) get their
			// positions, and readers find them at their next look. The
			// sequencer's row, if it was deleted (every table of the
			// schema truncated), is put back first: without it runs
			// would not be one at a time, and a unique violation would
			// fail some of them until then.
			_, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: "INSERT INTO " + pgSequencerTable + " DEFAULT VALUES ON CONFLICT DO NOTHING"})
			l.warn(ctx, "cannot check the sequencer's row", err)
			sequence(ctx)
			l.warn(ctx, "cannot vacuum the event table", l.vacuum(ctx))
		case <-l.stop:
			last()
			return
		}
	}
}

// warn logs err, at most once every ten seconds.
func (l *pgLog) warn(ctx context.Context, msg string, err error) {
	if err == nil || ctx.Err() != nil || time.Since(l.warned) < 10*time.Second {
		return
	}
	l.warned = time.Now()
	l.logger.Warn(msg, "error", err)
}

// pgSequencerTable holds one row, which a sequencer run locks (FOR
// UPDATE) for its transaction: runs are one at a time, across hosts, and
// each sees the positions of the one before. A row lock rather than a lock
// of the event table: the one mode that would not hold up writers (SHARE
// UPDATE EXCLUSIVE) is VACUUM's too, and would make runs wait for the
// table's autovacuum (or cancel it). Only the backend's role may lock it:
// no other backend's plugin can stall this one's sequencer, as with an
// advisory lock, which any role may take under any key. The row also
// keeps the highest position of the events deleted (high: pgDeleting and
// pgSkip), so that positions are not given again after rows were
// deleted.
const pgSequencerTable = PostgresTable + "_sequencer"

// pgSequence gives the rows without a position, in the order of their
// sequence numbers, the positions after the highest given: the table's,
// or the sequencer's when the newest rows were deleted. A row whose
// transaction has not committed is not seen, and gets its position in a
// later run.
const pgSequence = `WITH n AS (SELECT seq, row_number() OVER (ORDER BY seq) AS r FROM ` + PostgresTable + ` WHERE pos IS NULL),
b AS (SELECT greatest(coalesce(max(pos), 0), (SELECT coalesce(max(high), 0) FROM ` + pgSequencerTable + `)) AS base FROM ` + PostgresTable + `)
UPDATE ` + PostgresTable + ` e SET pos = b.base + n.r FROM n, b WHERE e.seq = n.seq`

// sequence runs the sequencer: the lock, then the numbering, whose
// snapshot is taken once the lock is held.
//
// The numbering finds the rows without a position through the partial
// index of pgAddPos, whose entries for rows numbered since the last
// VACUUM are dead. A bitmap scan (the planner's choice) visits the heap
// for every one of them at every run, 10–15 ms a run at 190 000 rows
// numbered since; a plain index scan marks them dead in the index once
// and then passes over them, 1.6–1.8 ms (reading the marked entries'
// pages, which VACUUM frees: 0.4–0.6 ms after it; see vacuum and
// testdata/sequencer_scan.sql).
// pgSequenceBegin starts a sequencer run. set_config, not SET LOCAL: the
// bridge sends a transaction as one pipeline, which PostgreSQL does not
// count as a transaction block, so SET LOCAL would log a WARNING at every
// run. One statement sets both, locks the event table (naming it: the
// lock is taken before the statement runs) and then takes the
// sequencer's row: a run is two statements, not five (a run numbers a few
// rows at one caller, and its fixed cost is most of what it costs). The
// table before the row, as a TRUNCATE takes them (pgTruncated): a run
// holding the row and waiting for the table would deadlock with it.
const pgSequenceBegin = "SELECT pg_catalog.set_config('synchronous_commit', 'on', true), pg_catalog.set_config('enable_bitmapscan', 'off', true), " +
	"EXISTS (SELECT FROM " + PostgresTable + " WHERE false), EXISTS (SELECT FROM " + pgSequencerTable + " FOR UPDATE)"

func (l *pgLog) sequence(ctx context.Context) error {
	rs, err := l.exec(ctx, abi.PGTransaction,
		abi.PGStatement{SQL: pgSequenceBegin},
		abi.PGStatement{SQL: pgSequence},
	)
	if err != nil {
		return err
	}
	if rs[1].RowsAffected > 0 {
		l.sequenced = true
	}
	return nil
}

// vacuum runs VACUUM on the event table if this host's sequencer
// numbered rows since its last: every number it gives leaves a dead row
// version and a dead entry in the index the next run reads, and
// autovacuum comes by a busy table about once a minute at best. A VACUUM
// already running (another host's, autovacuum's) is not waited for.
func (l *pgLog) vacuum(ctx context.Context) error {
	if !l.sequenced {
		return nil
	}
	l.sequenced = false
	// TRUNCATE false: giving back the table's empty end pages takes an
	// ACCESS EXCLUSIVE lock, which would stop every write for its moment;
	// autovacuum still does it now and then. PARALLEL 0 (PostgreSQL 13
	// or later): two of the table's indexes (sequence numbers, positions)
	// grow past min_parallel_index_scan_size, from where PostgreSQL starts
	// a parallel worker process for the index work, however little there
	// is; starting it cost 31–51 ms a VACUUM, against 0.2–0.7 ms for the
	// whole VACUUM without it after a few writes (BENCHMARKS.md, "The event
	// table's VACUUM without a parallel worker").
	_, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: "VACUUM (SKIP_LOCKED, TRUNCATE false, PARALLEL 0) " + PostgresTable})
	return err
}

// pgTrim deletes the events more than $2 positions below the newest,
// from $1 up (where this host trimmed to last), and returns the highest
// it deleted and the table's storage (pgEpoch). Rows not yet sequenced
// are kept. The range has a lower bound so that the plan is a scan of the
// positions' index from there, not of the table: with an upper bound
// alone, which only the subquery knows, PostgreSQL estimates a third of
// the rows and scans them all (9 ms at 100 000 events, against 0.4 ms;
// RATIONALE.md).
const pgTrim = `WITH d AS (DELETE FROM ` + PostgresTable + ` WHERE pos > $1 AND pos <= (SELECT max(pos) FROM ` + PostgresTable + `) - $2 RETURNING pos)
SELECT (SELECT max(pos) FROM d), ` + pgEpoch

// trim keeps about the newest retention events.
func (l *pgLog) trim(ctx context.Context) error {
	from := l.trimmed
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: pgTrim, Params: []abi.PGValue{integer(int64(from)), integer(l.retention)}})
	if err != nil {
		return err
	}
	v := rs[0].Values
	if len(v) != 2 {
		return fmt.Errorf("events: a trim returned %d values", len(v))
	}
	if epoch := uint64(v[1].Int); epoch != l.trimEpoch {
		// The table was created again, truncated or rewritten: its next
		// trim starts from its beginning.
		l.trimEpoch, l.trimmed = epoch, 0
		return nil
	}
	if v[0].Kind == abi.PGInt {
		l.trimmed = max(l.trimmed, uint64(v[0].Int))
	}
	return nil
}

// pgEpoch is the table's storage, the first part of its IDs: its file
// node, which PostgreSQL gives anew when the table is created, emptied by
// TRUNCATE or rewritten (VACUUM FULL, CLUSTER, an ALTER TABLE that
// rewrites it). A table never rewritten has its OID as its file node, the
// first part of the IDs older hosts handed out, which stay valid.
const pgEpoch = "pg_relation_filenode('" + PostgresTable + "')::bigint"

// pgRead selects up to $3 events after the position minus $4 ($1 the
// table's storage, $2 the position) and the table's storage, in one row at
// least: a position in another storage counts as the beginning. With $4
// 1, the first row is the event at the position itself, when it is still
// there, read in the same index scan (see checkLife).
//
// Each field is cut to a bound (the names to abi.MaxEventNameLength, the
// data to abi.MaxEventData): the backend's role can write the table too.
var pgRead = `SELECT t.epoch, e.pos, e.seq, left(e.kind, ` + strconv.Itoa(abi.MaxEventNameLength) + `), left(e.op, ` + strconv.Itoa(abi.MaxEventNameLength) + `),
	left(e.agent, 4096), left(e.key, 4096), e.version, e.at, substring(e.data for ` + strconv.Itoa(abi.MaxEventData) + `)
FROM (SELECT ` + pgEpoch + ` AS epoch) t
LEFT JOIN LATERAL (
	SELECT * FROM ` + PostgresTable + `
	WHERE pos > CASE WHEN t.epoch = $1 THEN $2::bigint - $4::bigint ELSE 0 END
	ORDER BY pos LIMIT $3
) e ON true`

// pgTables is the storage of the backend's record tables (every table of
// its schema, $1, but the host's own), in OID order: a table truncated,
// created, dropped or rewritten changes it.
const pgTables = `SELECT coalesce(string_agg(c.oid::text || '/' || c.relfilenode::text, ',' ORDER BY c.oid), '')
FROM pg_class c
WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relkind = 'r' AND c.relname NOT LIKE 'storagehost\_%'`

func (l *pgLog) read(ctx context.Context, after id, n int, wait time.Duration) ([]Event, error) {
	var timer <-chan time.Time
	for {
		// Taken before the query: a notification sent after it is not missed.
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		evs, err := l.query(ctx, after, n, wait > 0)
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

// query reads up to n events after `after`; the fan-out's reads (check)
// also check the log's life (checkLife). Results too large for the
// bridge's cap (big plugin events; the backend's role can write the
// table too) are read again in smaller pages: a row is cut to a few
// tens of kilobytes, so a page of one fits any usable cap.
func (l *pgLog) query(ctx context.Context, after id, n int, check bool) ([]Event, error) {
	look := check && time.Since(l.fan.looked) >= tableCheck
	var back int64 // 1: the event at the position is read too
	if check && after.lo > 0 {
		back = 1
	}
	var rs []abi.PGResult
	var err error
	for {
		stmts := []abi.PGStatement{{SQL: pgRead, Params: []abi.PGValue{
			integer(int64(after.hi)), integer(int64(after.lo)), integer(int64(n) + back), integer(back),
		}}}
		if look {
			stmts = append(stmts, abi.PGStatement{SQL: pgTables, Params: []abi.PGValue{text(l.schema)}})
		}
		rs, err = l.exec(ctx, abi.PGBatch, stmts...)
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
	if r.Rows() == 0 || r.Columns != 10 {
		return nil, fmt.Errorf("events: a read of %s returned %d rows of %d values", PostgresTable, r.Rows(), r.Columns)
	}
	epoch := uint64(r.Row(0)[0].Int)
	rows := r.Rows()
	var held bool     // the event at the position is there
	var seq, ns int64 // its sequence number and time
	out := make([]Event, 0, rows)
	for i := range rows {
		row := r.Row(i)
		if row[1].Kind == abi.PGNull {
			break // no event: the row only carries the storage
		}
		if i == 0 && back == 1 && epoch == after.hi && uint64(row[1].Int) == after.lo {
			held, seq, ns = true, row[2].Int, row[8].Int
			continue
		}
		ev := Event{
			ID:      id{epoch, uint64(row[1].Int)}.String(),
			Kind:    string(row[3].Bytes),
			Op:      string(row[4].Bytes),
			AgentID: string(row[5].Bytes),
			Key:     string(row[6].Bytes),
			Version: uint64(row[7].Int),
		}
		if ns := row[8].Int; ns != 0 {
			ev.Time = time.Unix(0, ns).UTC()
		}
		if row[9].Kind == abi.PGBytea {
			ev.Data = row[9].Bytes
		}
		out = append(out, ev)
	}
	if len(out) > 0 {
		l.saw(out[len(out)-1].ID)
	}
	if !check {
		return out, nil
	}
	var tables *string
	if look {
		if v := rs[1].Values; len(v) == 1 {
			s := string(v[0].Bytes)
			tables = &s
		}
	}
	if err := l.checkLife(ctx, after, epoch, held, seq, ns, tables); err != nil {
		return nil, err
	}
	if len(out) > 0 {
		i := len(out) - 1
		if held {
			i++ // the row of the event at the position came first
		}
		last := r.Row(i)
		l.fan.at = id{epoch, uint64(last[1].Int)}
		l.fan.seq, l.fan.ns = last[2].Int, last[8].Int
	}
	return out, nil
}

// checkLife returns a *lostError when the table, just read after `after`
// by the fan-out, cannot be the one that position was read from with
// nothing missed since, and when the record tables lost their rows
// without an event. No statement fails in either case: a reader that did
// not look would go on serving read caches what PostgreSQL no longer
// holds, and subscribers would miss events, or be handed the events of a
// new table as if they followed the old ones. Lost are:
//
//   - a table of another storage than the one read before: dropped and
//     created again (a schema restored from a dump), truncated, or
//     rewritten (VACUUM FULL, which loses nothing, cannot be told from a
//     TRUNCATE);
//   - a table without the event at the read position (its rows deleted,
//     or trimmed before they were read), or with another event there (an
//     older state of the table restored in place, the sequencer's row
//     with it): the row read last is remembered by its sequence number
//     and time;
//   - record tables of another storage than at the last look, once every
//     tableCheck (truncated, created again or rewritten): the events are
//     whole, so subscriptions go on and only observers (read caches) are
//     told.
//
// held says whether the event at the position is there, seq and ns are
// its sequence number and time; tables is the record tables' storage
// when they were looked at.
func (l *pgLog) checkLife(ctx context.Context, after id, epoch uint64, held bool, seq, ns int64, tables *string) error {
	known := after.hi
	if known == 0 {
		known = l.fan.epoch // the table was empty when the fan-out started
	}
	var why string
	switch {
	case known != 0 && known != epoch:
		why = "the event table was created again, truncated or rewritten"
	case after.lo > 0 && !held:
		why = "the event read last is gone: the table's rows were deleted, or trimmed before they were read"
	case after.lo > 0 && l.fan.at == after && (seq != l.fan.seq || ns != l.fan.ns):
		why = "another event is at the position read last: an older state of the table was restored"
	}
	if why != "" {
		if known == epoch && after.lo > 0 {
			// Positions went back (rows deleted, the sequencer's row
			// restored with them): the ones this host has handed out, up
			// to the newest any of its reads had (a subscription catching
			// up reads ahead of the fan-out), are not given again (those
			// numbered since the loss, before this read, aside), so a
			// subscriber resuming at one is told.
			skip := after.lo
			if top := l.newest(); top.hi == epoch {
				skip = max(skip, top.lo)
			}
			_, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{SQL: pgSkip, Params: []abi.PGValue{integer(int64(skip))}})
			if err != nil {
				return err
			}
		}
		resume, err := l.last(ctx)
		if err != nil {
			return err
		}
		// The record tables are looked at afresh, not compared: their
		// loss, if any, is told with this one.
		l.fan.epoch, l.fan.at, l.fan.looked = resume.hi, id{}, time.Time{}
		if resume.hi == 0 {
			l.fan.epoch = epoch
		}
		return &lostError{resume: resume, why: "PostgreSQL schema " + l.schema + ": " + why}
	}
	l.fan.epoch = epoch
	if l.fan.at != after {
		// A position the fan-out did not read (the newest when it
		// started, or where it resumed): the event there is remembered.
		l.fan.at, l.fan.seq, l.fan.ns = after, seq, ns
	}
	if tables == nil {
		return nil
	}
	before, looked := l.fan.tables, !l.fan.looked.IsZero()
	l.fan.tables, l.fan.looked = *tables, time.Now()
	if looked && before != *tables {
		return &lostError{resume: after, records: true,
			why: "PostgreSQL schema " + l.schema + ": a record table was truncated, created, dropped or rewritten"}
	}
	return nil
}

// saw records a position this host has read.
func (l *pgLog) saw(s string) {
	i, err := parseID(s)
	if err != nil {
		return
	}
	l.mu.Lock()
	if i.hi != l.top.hi || l.top.lo < i.lo {
		l.top = i // a new storage's positions replace the old one's
	}
	l.mu.Unlock()
}

// newest returns the newest position this host has read.
func (l *pgLog) newest() id {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.top
}

// pgSkip has the sequencer give positions after $1 from now on.
const pgSkip = `INSERT INTO ` + pgSequencerTable + ` (high) VALUES ($1)
ON CONFLICT (one) DO UPDATE SET high = greatest(` + pgSequencerTable + `.high, excluded.high)`

// last is the newest event with a position: every event after it is one
// readers have not been given yet.
func (l *pgLog) last(ctx context.Context) (id, error) {
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT " + pgEpoch + ", max(pos) FROM " + PostgresTable,
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

// forget does nothing: what the fan-out keeps of the table (fan) is tied
// to the position it read last, which the Bus has replaced.
func (l *pgLog) forget() {}

// anchor returns, in the table's storage (which a TRUNCATE, or the table
// made anew, changes, making the position unretained): the newest event's
// position (with first, zero: a start at Beginning, as before); in a
// table without events, the position the next event follows (the
// sequencer's highest position given: 0 in a table new or truncated,
// pgTruncated; the newest deleted in one whose events were all deleted,
// where the anchor is refused once an event follows it, as a deleted
// event's position is).
func (l *pgLog) anchor(ctx context.Context, first bool) (id, error) {
	end := "max(pos)"
	if first {
		end = "CASE WHEN max(pos) IS NOT NULL THEN -1 END"
	}
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT " + pgEpoch + ", " + end + ", (SELECT coalesce(max(high), 0) FROM " + pgSequencerTable + ") FROM " + PostgresTable,
	})
	if err != nil {
		return id{}, err
	}
	row := rs[0].Row(0)
	switch {
	case row[1].Kind == abi.PGNull:
		return id{uint64(row[0].Int), uint64(row[2].Int)}, nil
	case row[1].Int < 0:
		return id{}, nil
	}
	return id{uint64(row[0].Int), uint64(row[1].Int)}, nil
}

// retained reports whether the event at the position is still in the
// same storage: trimming removes the oldest first, so every event after
// it is too. A position of a storage emptied or rewritten since is not,
// nor one whose row was deleted, or trimmed (as with the Redis log, a
// subscriber whose last event was the last one trimmed is told ErrLost
// too), nor one past the newest: positions are not given again
// (pgSequence, pgSkip). Two positions without an event are retained too,
// those anchor gives: 0, the beginning of a storage while its first
// event is there, and in a table without events the position the next
// event follows (a delete of every event leaves the sequencer past
// them: an anchor taken before it is not that position). The second is
// refused once an event follows it: this log cannot tell it from an
// event's position that was deleted.
func (l *pgLog) retained(ctx context.Context, after id) (bool, error) {
	if after == (id{}) {
		return true, nil
	}
	rs, err := l.exec(ctx, abi.PGBatch, abi.PGStatement{
		SQL: "SELECT " + pgEpoch + ", EXISTS (SELECT FROM " + PostgresTable + " WHERE pos = $1), NOT EXISTS (SELECT FROM " + PostgresTable + " WHERE pos IS NOT NULL), " +
			"(SELECT coalesce(max(high), 0) FROM " + pgSequencerTable + "), EXISTS (SELECT FROM " + PostgresTable + " WHERE pos = 1)",
		Params: []abi.PGValue{integer(int64(after.lo))},
	})
	if err != nil {
		return false, err
	}
	row := rs[0].Row(0)
	switch {
	case uint64(row[0].Int) != after.hi:
		return false, nil // another storage's position
	case row[2].Bool:
		return after.lo == uint64(row[3].Int), nil
	case after.lo == 0:
		return row[4].Bool, nil
	}
	return row[1].Bool, nil
}

// listen keeps a connection LISTENing on the log's channel, waking the
// readers on each notification, until close; it connects again after a
// failure. The notification's payload is not read: it only says "look".
func (l *pgLog) listen(cfg *pgx.ConnConfig) {
	defer l.wg.Done()
	ctx, cancel := l.untilClosed()
	defer cancel()
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

// untilClosed returns a context that ends when the log closes, or when
// cancel is called.
func (l *pgLog) untilClosed() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
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
