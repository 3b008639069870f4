// Package events carries a backend's change notifications — every put,
// delete, alert status change and expiry, and the events plugins publish —
// to subscribers, in order, resumably.
//
// A Bus belongs to one backend. Its log is a Redis Stream in the
// backend's namespace for a Redis backend, a table in the backend's schema
// for a PostgreSQL one (NewPostgres), so that the events of every host
// sharing that Redis or that schema reach the subscribers of every other
// one, and in-process for any other backend. A subscriber resumes after the ID of the
// last event it saw and misses nothing the log still retains. Publishing
// never waits for a subscriber: each has a bounded buffer, and one that
// lets it fill is disconnected with ErrSlowSubscriber (and may resume).
package events

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ops of the host's own events.
const (
	OpPut    = "put"    // a record was created or replaced (restores included)
	OpDelete = "delete" // a record was deleted
	OpStatus = "status" // an alert's status was set
	OpExpire = "expire" // a record's expiry passed
	// OpUnknown: a write of the record was answered ErrOutcomeUnknown
	// (HTTP 504): it may or may not have changed it. Version is 0; read
	// the record to know what it holds.
	OpUnknown = "unknown"
)

// Event is one change to a backend's records, or one event a plugin
// published.
type Event struct {
	// ID is the event's position in the backend's log, assigned when it is
	// appended: pass it to Subscribe to resume after it. IDs are opaque;
	// within one log a later event has a greater ID.
	ID string `json:"id"`
	// Kind is the record kind's name (abi.RecordKind.Name: "metrics",
	// "alerts", "agent_states") for the host's own events, or a plugin's
	// own kind.
	Kind string `json:"kind"`
	// Op is what happened (OpPut, OpDelete, OpStatus, OpExpire), or a
	// plugin's own op.
	Op string `json:"op"`
	// AgentID is the agent the record belongs to.
	AgentID string `json:"agent_id,omitempty"`
	// Key identifies the record within its kind: the agent ID for agent
	// states, the alert ID for alerts, name@timestamp (RFC 3339) for
	// metrics.
	Key string `json:"key"`
	// Version is the record's version after the change: an agent state's
	// version, an alert's updated_at in Unix nanoseconds; 0 for metrics,
	// deletes and plugin events.
	Version uint64 `json:"version,omitempty"`
	// Time is when the change was made, on the host clock of the host that
	// made it.
	Time time.Time `json:"time"`
	// Data is what a plugin attached to its own event; nil otherwise.
	Data []byte `json:"data,omitempty"`

	// gap, in a Redis log's entry that is no event, says why events may
	// be missing before it (gaps.go); readers never deliver it.
	gap string
	// anchor marks a Redis log's entry that is no event: the position a
	// subscription started at when the stream had no entry (see
	// redisLog.anchor). Readers pass it without delivering it.
	anchor bool
}

// Filter selects events: an event passes when each non-empty list holds
// its field. The zero Filter passes everything. An OpUnknown event passes
// every Ops list, and one whose AgentID is unknown ("": the host could not
// read it) every AgentIDs list: the write it tells of may have been any
// of those ops, of any agent.
type Filter struct {
	Kinds    []string
	AgentIDs []string
	Ops      []string
}

// Match reports whether ev passes f.
func (f *Filter) Match(ev *Event) bool {
	unknown := ev.Op == OpUnknown
	return in(f.Kinds, ev.Kind) && (unknown && ev.AgentID == "" || in(f.AgentIDs, ev.AgentID)) && (unknown || in(f.Ops, ev.Op))
}

func in(list []string, s string) bool { return len(list) == 0 || slices.Contains(list, s) }

// shortList is the longest list of a Filter a subscription scans; a
// longer one is looked up in a set, so that a subscriber naming
// thousands of agents costs the fan-out, which matches every event
// against every subscription under the bus's lock, no more per event
// than one naming a few.
const shortList = 8

// matcher is a Filter compiled for the fan-out.
type matcher struct {
	kinds, agents, ops set
}

func compile(f Filter) matcher {
	return matcher{kinds: newSet(f.Kinds), agents: newSet(f.AgentIDs), ops: newSet(f.Ops)}
}

func (m *matcher) match(ev *Event) bool {
	unknown := ev.Op == OpUnknown
	return m.kinds.has(ev.Kind) && (unknown && ev.AgentID == "" || m.agents.has(ev.AgentID)) && (unknown || m.ops.has(ev.Op))
}

// set is a list of a Filter: empty passes everything.
type set struct {
	list []string            // when short
	m    map[string]struct{} // when longer
}

func newSet(list []string) set {
	if len(list) <= shortList {
		return set{list: list}
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return set{m: m}
}

func (s *set) has(v string) bool {
	if s.m != nil {
		_, ok := s.m[v]
		return ok
	}
	return in(s.list, v)
}

// Errors of a Bus and its subscriptions; test with errors.Is.
var (
	// ErrSlowSubscriber ends a subscription whose buffer was full when an
	// event arrived. It may resume after the last event it received.
	ErrSlowSubscriber = errors.New("events: subscriber too slow: its buffer filled, so it was disconnected")
	// ErrLost is returned by Subscribe when events after the requested
	// position are no longer retained, or the position itself was lost
	// (Redis came back from an older snapshot without it) or is from
	// another log: the subscriber has to resynchronise, then subscribe
	// afresh.
	ErrLost = errors.New("events: events after this position are no longer retained")
	// ErrBadID is returned by Subscribe for a position that is not an
	// event ID.
	ErrBadID = errors.New("events: not an event ID")
	// ErrClosed ends the subscriptions of a closed Bus.
	ErrClosed = errors.New("events: the backend's events are closed")
)

// Beginning, passed to Subscribe, starts at the oldest retained event.
const Beginning = "0-0"

// id is an event ID: two unsigned numbers, "a-b", compared in order. A
// Redis Stream's IDs have this form (milliseconds, sequence); an
// in-process log uses (its start time in ms, sequence), so an ID from an
// earlier process is recognisably foreign.
type id struct{ hi, lo uint64 }

func parseID(s string) (id, error) {
	a, b, ok := strings.Cut(s, "-")
	hi, err1 := strconv.ParseUint(a, 10, 64)
	lo, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return id{}, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	return id{hi, lo}, nil
}

func (i id) String() string { return strconv.FormatUint(i.hi, 10) + "-" + strconv.FormatUint(i.lo, 10) }

func (i id) less(j id) bool { return i.hi < j.hi || i.hi == j.hi && i.lo < j.lo }

// next is the smallest ID after i.
func (i id) next() id {
	if i.lo == math.MaxUint64 {
		return id{i.hi + 1, 0}
	}
	return id{i.hi, i.lo + 1}
}
