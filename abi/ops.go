package abi

import (
	"strconv"
	"strings"
)

// Op identifies a request passed to storage_call.
type Op uint32

// The operations of ABI 1.0. Each names its request and response bodies in
// README.md. Numbers are never reused.
const (
	OpPing      Op = 1 // empty → empty
	OpConfigure Op = 2 // Options → empty; sent once to every new instance
	// OpTick (ABI 1.3): empty → TickResult. The host sends it on a
	// timer of its own, only to a backend advertising FeatureTick, so
	// that the plugin can do work no request asks for (replay a
	// fallback buffer, say).
	OpTick Op = 3

	OpPutMetric    Op = 10 // PutMetric → Metric
	OpGetMetric    Op = 11 // MetricKey → Metric
	OpDeleteMetric Op = 12 // MetricKey → empty
	OpQueryMetrics Op = 13 // MetricQuery → Page of Metric

	OpPutAlert       Op = 20 // PutAlert → Alert
	OpGetAlert       Op = 21 // ID → Alert
	OpDeleteAlert    Op = 22 // ID → empty
	OpQueryAlerts    Op = 23 // AlertQuery → Page of Alert
	OpSetAlertStatus Op = 24 // SetAlertStatus → Alert

	OpPutAgentState    Op = 30 // PutAgentState → AgentState
	OpGetAgentState    Op = 31 // ID → AgentState
	OpDeleteAgentState Op = 32 // DeleteAgentState → empty
	OpQueryAgentStates Op = 33 // AgentStateQuery → Page of AgentState

	OpBatch Op = 40 // Batch → BatchResults; items may not be batches

	// OpRestore (ABI 1.2) writes a record exactly as given, backend fields
	// included: Restore → written bool. It may be a batch item.
	OpRestore Op = 50
)

var opNames = map[Op]string{
	OpPing: "ping", OpConfigure: "configure", OpTick: "tick",
	OpPutMetric: "put_metric", OpGetMetric: "get_metric", OpDeleteMetric: "delete_metric", OpQueryMetrics: "query_metrics",
	OpPutAlert: "put_alert", OpGetAlert: "get_alert", OpDeleteAlert: "delete_alert", OpQueryAlerts: "query_alerts", OpSetAlertStatus: "set_alert_status",
	OpPutAgentState: "put_agent_state", OpGetAgentState: "get_agent_state", OpDeleteAgentState: "delete_agent_state", OpQueryAgentStates: "query_agent_states",
	OpBatch: "batch", OpRestore: "restore",
}

// String names the op, as the host logs and metrics label it.
func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return "op_" + strconv.FormatUint(uint64(o), 10)
}

// Writes reports whether o changes records: the puts, deletes, status
// changes and restores. Only these, and batch items of these, may answer
// StatusUnknown.
func (o Op) Writes() bool {
	switch o {
	case OpPutMetric, OpDeleteMetric, OpPutAlert, OpDeleteAlert, OpSetAlertStatus,
		OpPutAgentState, OpDeleteAgentState, OpRestore:
		return true
	}
	return false
}

// Requires returns the features a backend must advertise to serve o.
// Ping and Configure require nothing; an unknown op requires a feature no
// backend can advertise. OpRestore requires FeatureRestore here and, per
// request, the features Restore.Requires adds (the record kind's).
func (o Op) Requires() Feature {
	switch o {
	case OpPing, OpConfigure:
		return 0
	case OpPutMetric, OpGetMetric, OpDeleteMetric:
		return FeatureMetrics
	case OpQueryMetrics:
		return FeatureMetrics | FeatureQuery
	case OpPutAlert, OpGetAlert, OpDeleteAlert, OpSetAlertStatus:
		return FeatureAlerts
	case OpQueryAlerts:
		return FeatureAlerts | FeatureQuery
	case OpPutAgentState, OpGetAgentState, OpDeleteAgentState:
		return FeatureAgentStates
	case OpQueryAgentStates:
		return FeatureAgentStates | FeatureQuery
	case OpBatch:
		return FeatureBatch
	case OpRestore:
		return FeatureRestore
	case OpTick:
		return FeatureTick
	}
	return featureUnknown
}

// Feature is a bit set of what a backend implements, advertised in its
// Metadata. The host refuses with StatusUnsupported any request that needs
// a feature the backend does not advertise.
type Feature uint32

// Features of ABI 1.0, FeatureRestore of 1.2, FeatureTick of 1.3 and
// FeatureWriteEvents of 1.6. Bits are never reused.
const (
	FeatureMetrics     Feature = 1 << 0 // put/get/delete metrics
	FeatureAlerts      Feature = 1 << 1 // put/get/delete alerts, status transitions
	FeatureAgentStates Feature = 1 << 2 // put/get/delete agent states
	FeatureQuery       Feature = 1 << 3 // queries, for every kind advertised
	FeatureBatch       Feature = 1 << 4 // OpBatch
	FeatureTTL         Feature = 1 << 5 // TTL other than TTLDefault; expiry
	FeatureConcurrency Feature = 1 << 6 // Conditions on agent-state writes
	FeatureRestore     Feature = 1 << 7 // OpRestore (ABI 1.2)
	FeatureTick        Feature = 1 << 8 // OpTick; writes may answer StatusStale (ABI 1.3)
	// FeatureWriteEvents (ABI 1.6): the backend writes the event of each
	// record write itself, in the write's own PostgreSQL transaction
	// (PGEventsTable); the host then publishes none for its writes.
	FeatureWriteEvents Feature = 1 << 9

	featureUnknown Feature = 1 << 31

	knownFeatures = FeatureMetrics | FeatureAlerts | FeatureAgentStates | FeatureQuery |
		FeatureBatch | FeatureTTL | FeatureConcurrency | FeatureRestore | FeatureTick | FeatureWriteEvents
)

var featureNames = []struct {
	f    Feature
	name string
}{
	{FeatureMetrics, "metrics"}, {FeatureAlerts, "alerts"}, {FeatureAgentStates, "agent_states"},
	{FeatureQuery, "query"}, {FeatureBatch, "batch"}, {FeatureTTL, "ttl"}, {FeatureConcurrency, "concurrency"},
	{FeatureRestore, "restore"}, {FeatureTick, "tick"}, {FeatureWriteEvents, "write_events"},
}

// Has reports whether every feature in want is in f.
func (f Feature) Has(want Feature) bool { return f&want == want }

// Names lists the features in f, in bit order.
func (f Feature) Names() []string {
	var names []string
	for _, n := range featureNames {
		if f.Has(n.f) {
			names = append(names, n.name)
		}
	}
	return names
}

// String joins Names with commas.
func (f Feature) String() string { return strings.Join(f.Names(), ",") }

// ParseFeature returns the feature named name.
func ParseFeature(name string) (Feature, bool) {
	for _, n := range featureNames {
		if n.name == name {
			return n.f, true
		}
	}
	return 0, false
}
