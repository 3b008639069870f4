package host

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// answerMessages name the message each op's answer body holds
// (abi/README.md), for wireFault; an op answered with an empty body has
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

// wireFault is wirepath.Fault: the error d met decoding b, a message of
// type msg, with the field it met it in.
func wireFault(msg string, b []byte, d *abi.Decoder) string { return wirepath.Fault(msg, b, d) }
