package abi

// CapabilityEvents is the "storagehost_events" module (ABI 1.2): a plugin
// publishes events of its own on the backend's change feed, beside the
// events the host publishes for every write.
//
//	publish(ptr i32, len i32) -> i32
//
// publishes the PluginEvent of len bytes at ptr and returns a status code:
// StatusOK, StatusInvalid (malformed, a reserved kind, a bad ID),
// StatusLimit (too large, or over the backend's rate) or
// StatusUnavailable (the feed cannot take it now).
const CapabilityEvents Capability = "events"

// FuncEventsPublish is the function of the events capability module.
const FuncEventsPublish = "publish"

// Limits of a PluginEvent.
const (
	// MaxEventNameLength bounds an event's Kind and Op.
	MaxEventNameLength = 64
	// MaxEventData bounds an event's Data.
	MaxEventData = 16 << 10
)

// PluginEvent is what storagehost_events.publish takes: kind string, op
// string, agent_id string, key string, data bytes. Kind and Op name the
// event; AgentID and Key, either of which may be empty, say what it is
// about, so that subscribers can filter; Data is opaque to the host.
type PluginEvent struct {
	Kind    string
	Op      string
	AgentID string
	Key     string
	Data    []byte
}

// Encode appends ev.
func (ev *PluginEvent) Encode(e *Encoder) {
	e.String(ev.Kind)
	e.String(ev.Op)
	e.String(ev.AgentID)
	e.String(ev.Key)
	e.BytesField(ev.Data)
}

// Decode reads what Encode wrote.
func (ev *PluginEvent) Decode(d *Decoder) {
	ev.Kind = d.String()
	ev.Op = d.String()
	ev.AgentID = d.String()
	ev.Key = d.String()
	ev.Data = d.BytesField()
}

// Check returns a StatusInvalid error unless Kind and Op are names
// (1 to MaxEventNameLength bytes of [a-z0-9_.-]), Kind is not one the host
// publishes itself (metrics, alerts, agent_states), and AgentID and Key
// are empty or identifiers (CheckID); and a StatusLimit error when Data
// holds more than MaxEventData bytes.
func (ev *PluginEvent) Check() error {
	if err := checkEventName("event kind", ev.Kind); err != nil {
		return err
	}
	if err := checkEventName("event op", ev.Op); err != nil {
		return err
	}
	// The host's own events are of the record kinds, by Name.
	if _, reserved := ParseRecordKind(ev.Kind); reserved {
		return Errorf(StatusInvalid, "event kind %q is reserved for the host's own events", ev.Kind)
	}
	if ev.AgentID != "" {
		if err := CheckID("event agent id", ev.AgentID); err != nil {
			return err
		}
	}
	if ev.Key != "" {
		if err := CheckID("event key", ev.Key); err != nil {
			return err
		}
	}
	if len(ev.Data) > MaxEventData {
		return Errorf(StatusLimit, "event data of %d bytes is over %d", len(ev.Data), MaxEventData)
	}
	return nil
}

func checkEventName(what, name string) error {
	if name == "" || len(name) > MaxEventNameLength {
		return Errorf(StatusInvalid, "%s must be 1 to %d bytes long", what, MaxEventNameLength)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return Errorf(StatusInvalid, "%s %q holds %q; allowed are a-z, 0-9, '_', '.' and '-'", what, name, c)
		}
	}
	return nil
}
