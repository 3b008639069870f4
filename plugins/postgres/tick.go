package main

import (
	"strconv"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// Expired rows are never read (every statement filters them out by the
// host clock); the sweep removes them, a bounded number per table and
// tick, in one round trip. Each instance sweeps at most once per
// sweepInterval unless the last sweep left rows behind; rows another
// host's sweep holds are skipped, not waited for.
const (
	sweepRows     = 500
	sweepInterval = time.Second
)

var sweeps = [...]string{
	sweepStatement("metrics"),
	sweepStatement("alerts"),
	sweepStatement("agent_states"),
}

func sweepStatement(table string) string {
	return `DELETE FROM ` + table + ` WHERE ctid = ANY(ARRAY(SELECT ctid FROM ` + table + `
WHERE expires_at <> 0 AND expires_at <= $1 LIMIT ` + strconv.Itoa(sweepRows) + ` FOR UPDATE SKIP LOCKED))`
}

// tick sweeps expired rows. It reports no writes: the backend answers
// every write OK once it is in PostgreSQL, and an expiry is no write, so
// the sweep inserts no event either (the host publishes expiries).
func (b *backend) tick() (abi.TickResult, error) {
	now := sdk.Now()
	if now.Sub(b.lastSweep) < sweepInterval {
		return abi.TickResult{}, nil
	}
	b.lastSweep = now
	at := sdk.Int(ns(now))
	stmts := make([]abi.PGStatement, len(sweeps))
	for i, sql := range sweeps {
		stmts[i] = abi.PGStatement{SQL: sql, Params: []abi.PGValue{at}}
	}
	results, err := b.pg.Batch(stmts)
	if err != nil {
		return abi.TickResult{}, err
	}
	var more bool
	for i := range results {
		if err := results[i].Err(); err != nil {
			return abi.TickResult{}, statementError(err)
		}
		more = more || results[i].RowsAffected >= sweepRows
	}
	if more {
		b.lastSweep = time.Time{}
	}
	return abi.TickResult{More: more}, nil
}
