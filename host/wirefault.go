package host

import (
	"fmt"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// answerMessages name the message each op's answer body holds
// (abi/README.md), for wirepath.Fault; an op answered with an empty body has
// none.
var answerMessages = map[abi.Op]string{
	abi.OpTick:             "TickResult",
	abi.OpPutMetric:        "Metric",
	abi.OpGetMetric:        "Metric",
	abi.OpQueryMetrics:     "MetricPage",
	abi.OpPutAlert:         "Alert",
	abi.OpGetAlert:         "Alert",
	abi.OpQueryAlerts:      "AlertPage",
	abi.OpSetAlertStatus:   "Alert",
	abi.OpPutAgentState:    "AgentState",
	abi.OpGetAgentState:    "AgentState",
	abi.OpQueryAgentStates: "AgentStatePage",
	abi.OpBatch:            "BatchResults",
	abi.OpRestore:          "RestoreResult",
}

// emptyBody refuses body, the body of an OK answer to op, when op's
// result is empty (ping, configure and the deletes: abi/README.md,
// section 10) and body is not: a body there is most often a region
// packed the wrong way round, or an answer meant for another op.
func emptyBody(op abi.Op, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	return fmt.Errorf("answered OK with %d bytes of body; the OK body of %s is empty (abi/README.md, section 10)", len(body), op)
}

// opDoing names what a caller asked for by an op, in the words of the
// embedding API and the HTTP API rather than the ABI's.
var opDoing = map[abi.Op]string{
	abi.OpPutMetric: "writing metrics", abi.OpGetMetric: "reading metrics", abi.OpDeleteMetric: "deleting metrics",
	abi.OpQueryMetrics: "querying metrics",
	abi.OpPutAlert:     "writing alerts", abi.OpGetAlert: "reading alerts", abi.OpDeleteAlert: "deleting alerts",
	abi.OpQueryAlerts: "querying alerts", abi.OpSetAlertStatus: "changing an alert's status",
	abi.OpPutAgentState: "writing agent states", abi.OpGetAgentState: "reading agent states",
	abi.OpDeleteAgentState: "deleting agent states", abi.OpQueryAgentStates: "querying agent states",
	abi.OpBatch: "batches", abi.OpRestore: "restores", abi.OpTick: "ticks",
}

// unsupported is the refusal of op by a backend whose plugin does not
// advertise every feature op needs: what the caller asked for, the op, and
// the features missing from the plugin's metadata.
func (p *plugin) unsupported(op abi.Op) error {
	doing, ok := opDoing[op]
	if !ok {
		doing = op.String()
	}
	missing, feature := (op.Requires() &^ p.meta.Features).Names(), "feature"
	if len(missing) > 1 {
		feature = "features"
	}
	return abi.Errorf(abi.StatusUnsupported, "backend %s does not support %s (%s): plugin %s does not advertise the %s %s",
		p.name, doing, op, p.meta.Name, strings.Join(missing, " and "), feature)
}

// outsideMemory is the refusal of a region [ptr, +n) a plugin gave that
// does not lie inside its size bytes of memory. A length that would be an
// address in memory, over eight times the pointer, is most often a
// pointer and a length passed the wrong way round: the error says so.
func outsideMemory(what string, ptr, n, size uint32) error {
	hint := ""
	if n < size && uint64(ptr)*8 < uint64(n) {
		hint = fmt.Sprintf(" (a length of %d is an address in memory, a pointer of %d looks like a length: are they swapped? The pointer comes first, abi/README.md, section 5)", n, ptr)
	}
	return fmt.Errorf("%s region [%d, +%d) is outside the plugin's %d bytes of memory%s", what, ptr, n, size, hint)
}
