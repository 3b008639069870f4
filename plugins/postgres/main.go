// Command postgres is the PostgreSQL storage backend. The host owns the
// connections, the schema and the role the backend runs as (the postgres
// capability); this plugin owns the policy: the tables and their indexes
// (Migrations), TTLs, filters, status transitions, optimistic concurrency
// and pagination.
//
// Every record operation is one SQL statement, atomic on its own: a
// condition, a status transition or a TTL's keep is checked by the
// statement that writes (INSERT … ON CONFLICT … WHERE, UPDATE … WHERE),
// never by a read before it. The statement of a write also inserts the
// write's event into storagehost_events, while the session's
// storagehost.events is on (the write_events feature, abi/README.md
// section 16.6; statements.go), so the event commits with the write and
// costs neither another statement nor a commit. A single operation is
// one statement in one round trip; a whole batch is one request of a
// statement per item, in one transaction (one commit), sent again with
// each statement in a transaction of its own if one of them fails, so
// that a failed item undoes nothing else (an OpBatch is not atomic; see
// records.go, send).
// A query is one statement per page.
//
// # Tables
//
// Times are bigint Unix nanoseconds of the host clock, never the
// server's now(): a record whose expires_at (0: never) is not after the
// host's clock is expired, and every statement filters it out. Strings that
// identify records are text COLLATE "C", so that ORDER BY and the
// cursors compare bytes as the ABI orders them. Label values and alert
// messages are bytes, not text (the ABI does not require UTF-8): labels
// are kept in the ABI's encoding (labels bytea), and again as jsonb
// (label_set) holding those values that are text, for the equality
// matchers a GIN index serves (see query.go).
//
//	metrics       (agent_id, name, ts) primary key; index (name, agent_id, ts)
//	alerts        id primary key; index (agent_id, id)
//	agent_states  agent_id primary key; version the server's clock in µs plus the state_versions sequence
//
// Each table has a GIN index on label_set (metrics, alerts) and a partial
// index on expires_at for the expiry sweep (tick.go).
//
// # Options
//
// metric_ttl_seconds, alert_ttl_seconds and agent_state_ttl_seconds are
// the kinds' default TTLs in whole seconds (0 or absent: none), as for the
// other built-in backends. Any other option, or a malformed value, is
// INVALID.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o postgres.wasm .
package main

import (
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/postgres/statements"
	"github.com/storage-host/storage-host/sdk"
)

func main() {}

func init() {
	b := &backend{}
	sdk.Register(sdk.Plugin{
		Name:         "postgres",
		Version:      "1.0.0",
		Metrics:      (*metrics)(b),
		Alerts:       (*alerts)(b),
		AgentStates:  (*states)(b),
		TTL:          true,
		Concurrency:  true,
		Restorer:     b,
		Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityPostgres},
		Configure:    b.configure,
		// Ticks sweep expired rows (tick.go).
		Tick:       b.tick,
		Migrations: migrations,
		// Each write's statement inserts its event (statements.go).
		WriteEvents: true,
		// A get is one statement whose row is in the columns the ABI
		// names (records.go): the host may run it itself.
		PGReads: []abi.PGRead{
			{Kind: abi.KindAlert, SQL: statements.GetAlert},
			{Kind: abi.KindAgentState, SQL: statements.GetState},
		},
	})
}

type backend struct {
	pg sdk.Postgres
	// Default TTLs per kind, from the options; 0 = never expire.
	metricTTL, alertTTL, stateTTL time.Duration

	one   [1]item // the item of a single operation
	items []item  // the items of a batch
	stmts []abi.PGStatement
	// params holds the parameters of stmts, one statement's after
	// another's (add).
	params []abi.PGValue
	enc    abi.Encoder // scratch: labels, cursors, query hashes
	body   abi.Encoder // a batch's response bodies

	// lastSweep is the host time of this instance's last expiry sweep.
	lastSweep time.Time
}

type (
	metrics backend
	alerts  backend
	states  backend
)

func (b *backend) configure(o abi.Options) error {
	for name := range o {
		var dst *time.Duration
		switch name {
		case "metric_ttl_seconds":
			dst = &b.metricTTL
		case "alert_ttl_seconds":
			dst = &b.alertTTL
		case "agent_state_ttl_seconds":
			dst = &b.stateTTL
		default:
			return abi.Errorf(abi.StatusInvalid, "unknown option %q", name)
		}
		ttl, _, err := o.TTL(name)
		if err != nil {
			return err
		}
		*dst = ttl
	}
	return nil
}

// ns is t in Unix nanoseconds, 0 for the zero time (never, or unset).
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNS is the inverse of ns.
func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
