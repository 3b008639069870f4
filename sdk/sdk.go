// Package sdk is what a Go plugin author imports to write a storage backend
// for storage-host. Implement the stores for the record kinds you support,
// call Register from an init function, and build with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// The SDK provides the ABI exports, owns the guest memory the host writes
// requests into, decodes requests, encodes responses and turns errors into
// status codes. Host capabilities are wrapped by Log, Now, KV, Redis,
// Postgres and Publish.
package sdk

import (
	"errors"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// MetricStore stores metrics. Returned records carry ExpiresAt.
//
// In every store interface, a request passed by pointer is the SDK's: it
// is valid for the call only, and reused for the next one. Keep its
// fields (strings, maps and byte slices are the store's to keep), never
// the pointer.
type MetricStore interface {
	PutMetric(r *abi.PutMetric) (abi.Metric, error)
	GetMetric(k *abi.MetricKey) (abi.Metric, error)
	DeleteMetric(k *abi.MetricKey) error
}

// AlertStore stores alerts. PutAlert and SetAlertStatus must refuse a
// transition abi.AlertStatus.CanTransition rejects with abi.StatusConflict.
type AlertStore interface {
	PutAlert(r *abi.PutAlert) (abi.Alert, error)
	GetAlert(id string) (abi.Alert, error)
	DeleteAlert(id string) error
	SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error)
}

// AgentStateStore stores agent states.
type AgentStateStore interface {
	PutAgentState(r *abi.PutAgentState) (abi.AgentState, error)
	GetAgentState(agentID string) (abi.AgentState, error)
	DeleteAgentState(r *abi.DeleteAgentState) error
}

// MetricQuerier is implemented by a MetricStore that serves queries.
//
// Queries are one feature for every record kind a plugin serves (ABI
// section 9): when one of the plugin's stores implements its querier,
// all must, and Register panics otherwise, naming the missing method
// (the host's error at load quotes it).
type MetricQuerier interface {
	QueryMetrics(q *abi.MetricQuery) (abi.Page[abi.Metric], error)
}

// AlertQuerier is implemented by an AlertStore that serves queries.
type AlertQuerier interface {
	QueryAlerts(q *abi.AlertQuery) (abi.Page[abi.Alert], error)
}

// AgentStateQuerier is implemented by an AgentStateStore that serves
// queries.
type AgentStateQuerier interface {
	QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error)
}

// Batcher may be implemented by any store of a Plugin to serve a whole
// batch at once (a Redis backend pipelines it, say). Without one, the SDK
// runs the items one by one, still inside a single call from the host:
// the SDK advertises abi.FeatureBatch for every plugin either way. A
// Batcher decodes and answers its items with BatchOp, as the SDK does a
// single request, and serves queries and pings with ServeBatchItem.
type Batcher interface {
	Batch(items []abi.BatchItem) []abi.BatchResult
}

// Restorer is implemented by a plugin that serves abi.OpRestore (ABI 1.2):
// it writes a record exactly as given, backend fields included, for every
// kind the plugin stores. The SDK has decoded r and checked it
// (abi.Restore.Check) and that the plugin stores its kind (and advertises
// TTL when it has an expiry); Restore applies r.Mode atomically and
// answers written false, with no error, when r.Mode is abi.RestoreSkip and
// a live record exists, or when the record's expiry has passed
// (abi.Restore.Expired on the host clock). An existing live record under
// abi.RestoreFail is an error matching ErrConflict.
type Restorer interface {
	Restore(r *abi.Restore) (written bool, err error)
}

// Plugin describes a backend. Nil stores are kinds the backend does not
// support; the SDK advertises features from what is set.
type Plugin struct {
	// Name and Version identify the plugin in logs and `plugin inspect`.
	// Name is 1 to 64 bytes of [a-z0-9_-] (it becomes the backend's name
	// when the configuration gives none), Version 1 to 64 bytes of
	// [A-Za-z0-9._+-]; the host refuses a plugin with either out of form
	// (abi/README.md, section 10.9).
	Name    string
	Version string

	Metrics     MetricStore
	Alerts      AlertStore
	AgentStates AgentStateStore

	// TTL advertises abi.FeatureTTL: the stores honour every abi.TTLMode.
	TTL bool
	// Concurrency advertises abi.FeatureConcurrency: PutAgentState and
	// DeleteAgentState honour their Condition.
	Concurrency bool
	// Restorer, when set, serves abi.OpRestore and advertises
	// abi.FeatureRestore; the SDK advertises it for no other reason.
	Restorer Restorer

	// Capabilities lists the host modules the plugin imports, besides
	// abi.CapabilityLog: the SDK adds that one to the metadata when it is
	// not listed (the module imports it only where the plugin calls Log or
	// Logf; `plugin inspect` then shows it "asked for, not imported",
	// which is harmless).
	Capabilities []abi.Capability

	// Configure, if set, receives the backend options before any request.
	// A plugin without it refuses any option, INVALID.
	Configure func(abi.Options) error

	// Tick, when set, advertises abi.FeatureTick (ABI 1.3): the host then
	// calls it on a timer of its own (about every 100 ms, and again at
	// once while the result has More set), from no caller's request, on
	// any instance, and once more when the backend closes. It does work
	// no request asks for, such as replaying writes a store acknowledged
	// into a buffer: a write method may return its result with ErrStale
	// to say the write was acknowledged but has not reached the primary
	// store yet, and Tick MUST then report it in Writes once it has (see
	// abi.TickResult). A Tick that fails is logged by the host, which
	// ticks again later. A Tick that forgets the writes it reported only
	// at the next tick reports them again when TickResumed says so.
	//
	// Tick is also where a plugin removes what has expired from a store
	// that does not expire records itself. PostgreSQL keeps a row until
	// it is deleted, and the host deletes none: a plugin's reads leave
	// out expired rows, and its Tick deletes a bounded number of them a
	// tick (say 500 rows of each table, found by an index on the expiry),
	// with More set while a sweep left rows behind. The built-in postgres
	// plugin does this (plugins/postgres, tick.go).
	Tick func() (abi.TickResult, error)

	// WriteEvents advertises abi.FeatureWriteEvents (ABI 1.6): every
	// record write of the plugin, a postgres one, inserts its event into
	// abi.PGEventsTable in the write's own statement or transaction, so
	// the event commits with the write and costs no commit of its own;
	// the host then publishes none for the plugin's writes.
	WriteEvents bool

	// Migrations (ABI 1.5) is the versioned DDL of a plugin that lists
	// abi.CapabilityPostgres: versions 1, 2, 3 … in order, each one SQL
	// text that may hold several statements. The host applies those the
	// backend's schema lacks when it loads the plugin, once, and refuses to
	// load a plugin that knows fewer versions than the schema has. Never
	// change a released migration: add the next version. At most
	// abi.MaxMigrations of them, abi.MaxMigrationsBytes encoded.
	Migrations abi.Migrations

	// KVReads (ABI 1.8) declares the gets of alerts and agent states that
	// are kv lookups, for the host to answer from the kv store without
	// calling the plugin (see abi.KVRead): the record with ID id is the
	// entry at Prefix+id, its value the record encoded as the get answers
	// it (abi.Alert.Encode, abi.AgentState.Encode), the entry's expiry the
	// record's and, for an agent state, the entry's revision its version.
	// The plugin's own get must answer the same, since the host still
	// calls it for a value that is not the record. It needs
	// abi.CapabilityKV in Capabilities.
	KVReads []abi.KVRead

	// RedisReads (ABI 1.9) declares the gets of alerts and agent states
	// that are one HMGET, for the host to make itself without calling the
	// plugin (see abi.RedisRead): the record with ID id is the Redis hash
	// at KeyPrefix+id+KeySuffix, its fields those abi.RedisStateFields or
	// abi.RedisAlertFields name, in the form abi/README.md section 12.8
	// gives. While the kv store holds an entry whose key starts with
	// Guard (when set), the plugin serves them. The plugin's own get must
	// answer the same, since the host still calls it for a hash out of
	// that form. It needs abi.CapabilityRedis in Capabilities, and
	// abi.CapabilityKV with a Guard.
	RedisReads []abi.RedisRead

	// PGReads (ABI 1.9) declares the gets of alerts and agent states
	// that are one SELECT, for the host to run itself without calling the
	// plugin (see abi.PGRead): the statement, with $1 the ID and $2 the
	// host's clock in Unix nanoseconds, answers no row for a record that
	// does not exist or has expired, else one row of the columns
	// abi/README.md section 16.7 gives. The plugin's own get must answer
	// the same. It needs abi.CapabilityPostgres in Capabilities.
	PGReads []abi.PGRead
}

var registered *dispatcher

// Register makes p the plugin this module serves. Call it once, from an
// init function: the host reads the metadata right after initialisation.
func Register(p Plugin) {
	if registered != nil {
		panic("sdk: Register called twice")
	}
	registered = newDispatcher(p)
}

// Errors a store returns to answer with a status other than
// abi.StatusInternal. Wrap them to add detail:
//
//	fmt.Errorf("agent %q: %w", id, sdk.ErrNotFound)
var (
	ErrNotFound    error = abi.StatusNotFound
	ErrConflict    error = abi.StatusConflict
	ErrInvalid     error = abi.StatusInvalid
	ErrUnavailable error = abi.StatusUnavailable
	ErrUnsupported error = abi.StatusUnsupported
	// ErrLimit answers that the request is past a limit of the
	// backend's own (a document larger than it keeps, say), which the
	// message should name: the same request fails the same way again.
	ErrLimit error = abi.StatusLimit
	// ErrStale, returned with a record from a Get method, answers the
	// record marked as possibly behind: served from a fallback copy while
	// the primary store is unreachable (ABI 1.1). Returned from a write
	// method (with its result, for a put) by a plugin with a Tick hook, it
	// answers the write as acknowledged into a buffer, not yet in the
	// primary store (ABI 1.3): a success, whose event the host publishes
	// when Tick reports the write.
	ErrStale error = abi.StatusStale
	// ErrOutcomeUnknown (ABI 1.3), returned from a write, answers that the
	// write may or may not have taken effect: it reached the primary
	// store, or may have, and the answer was lost. The redis capability
	// returns it for such a request; a store returns it only from writes.
	ErrOutcomeUnknown error = abi.StatusUnknown
)

// readStatus is s, except that an op that changes nothing never answers
// StatusUnknown (a read that met a lost reply): it answers
// StatusUnavailable.
func readStatus(op abi.Op, s abi.Status) abi.Status {
	if s == abi.StatusUnknown && !op.Writes() {
		return abi.StatusUnavailable
	}
	return s
}

// StatusOf returns the status a store's error answers with: the one it
// wraps (ErrNotFound, an *abi.Error, ...), else abi.StatusInternal.
func StatusOf(err error) abi.Status {
	s, _ := statusOf(err)
	return s
}

// statusOf maps an error from a store to a status and message.
func statusOf(err error) (abi.Status, string) {
	var ae *abi.Error
	if errors.As(err, &ae) {
		// A wrapped one keeps what the plugin added around it
		// ("agent state "a1": no such key"), not the status's name.
		if full, own := err.Error(), ae.Error(); full != own && strings.HasSuffix(full, own) {
			return ae.Status, full[:len(full)-len(own)] + ae.Message
		}
		return ae.Status, ae.Message
	}
	var s abi.Status
	if errors.As(err, &s) {
		// The status itself is the response's first byte; keep the detail.
		return s, strings.TrimSuffix(err.Error(), ": "+s.String())
	}
	return abi.StatusInternal, err.Error()
}
