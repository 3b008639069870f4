package abi

import "strconv"

// RecordKind names one of the three kinds of record. It is the one
// vocabulary of record kinds: its value is the u8 OpRestore encodes, Name
// is the word HTTP routes, events, configuration routes and auth scopes
// use, and String is the singular word of log and error messages.
type RecordKind uint8

// Record kinds, as OpRestore numbers them.
const (
	KindMetric     RecordKind = 1
	KindAlert      RecordKind = 2
	KindAgentState RecordKind = 3
)

var (
	recordKindStrings = [...]string{KindMetric: "metric", KindAlert: "alert", KindAgentState: "agent_state"}
	recordKindNames   = [...]string{KindMetric: "metrics", KindAlert: "alerts", KindAgentState: "agent_states"}
)

// RecordKinds returns every record kind, in numbering order.
func RecordKinds() []RecordKind { return []RecordKind{KindMetric, KindAlert, KindAgentState} }

// ParseRecordKind returns the kind whose Name is name, and false when no
// kind has that name.
func ParseRecordKind(name string) (RecordKind, bool) {
	for _, k := range RecordKinds() {
		if recordKindNames[k] == name {
			return k, true
		}
	}
	return 0, false
}

// Valid reports whether k is a known record kind.
func (k RecordKind) Valid() bool { return k >= KindMetric && k <= KindAgentState }

// Name is the kind's plural name ("metrics", "alerts", "agent_states"),
// as HTTP routes, the kinds of the host's events, configuration routes and
// auth scopes spell it; "" for an unknown kind.
func (k RecordKind) Name() string {
	if k.Valid() {
		return recordKindNames[k]
	}
	return ""
}

// String names the kind ("metric", "alert", "agent_state").
func (k RecordKind) String() string {
	if k.Valid() {
		return recordKindStrings[k]
	}
	return "record_kind(" + strconv.Itoa(int(k)) + ")"
}

// Feature returns the feature a backend advertises to store records of
// kind k, or a feature no backend can advertise for an unknown kind.
func (k RecordKind) Feature() Feature {
	switch k {
	case KindMetric:
		return FeatureMetrics
	case KindAlert:
		return FeatureAlerts
	case KindAgentState:
		return FeatureAgentStates
	}
	return featureUnknown
}
