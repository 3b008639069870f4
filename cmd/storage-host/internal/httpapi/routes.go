package httpapi

import (
	"net/http"
	"net/url"

	"github.com/storage-host/storage-host/abi"
)

// route is one operation of the API. The table below registers the mux
// and is what the OpenAPI test compares the document with, so a route
// added here and not documented (or the reverse) fails the tests.
type route struct {
	method string
	// path is the ServeMux path pattern and, identically, the OpenAPI
	// path template: wildcards are {name}, named as the JSON field they
	// carry.
	path   string
	access access
	// query lists the query parameters the route accepts; any other is
	// refused.
	query []queryParam
	// conditional write routes honour If-Match and If-None-Match; other
	// write routes refuse them.
	conditional bool
	// needsRegistry routes exist only with Options.Registry.
	needsRegistry bool
	serve         func(h *Handler, w http.ResponseWriter, r *http.Request, q url.Values) error
}

// access says who may call a route.
type access struct {
	// public routes need no token.
	public bool
	// kind is the record kind a scope must name; 0 with public false
	// means any valid token will do.
	kind abi.RecordKind
	// write routes need a write scope, others a read scope.
	write bool
}

// queryParam is a query parameter a route accepts.
type queryParam struct {
	name string
	// repeatable parameters may be given more than once.
	repeatable bool
}

func (rt *route) pattern() string { return rt.method + " " + rt.path }

var (
	public = access{public: true}
	anyKey = access{}

	readStates   = access{kind: abi.KindAgentState}
	writeStates  = access{kind: abi.KindAgentState, write: true}
	readMetrics  = access{kind: abi.KindMetric}
	writeMetrics = access{kind: abi.KindMetric, write: true}
	readAlerts   = access{kind: abi.KindAlert}
	writeAlerts  = access{kind: abi.KindAlert, write: true}
)

var (
	pTTL      = queryParam{name: "ttl"}
	pLimit    = queryParam{name: "limit"}
	pCursor   = queryParam{name: "cursor"}
	pPrefix   = queryParam{name: "prefix"}
	pAgentID  = queryParam{name: "agent_id"}
	pName     = queryParam{name: "name"}
	pFrom     = queryParam{name: "from"}
	pTo       = queryParam{name: "to"}
	pLabel    = queryParam{name: "label", repeatable: true}
	pSeverity = queryParam{name: "severity", repeatable: true}
	pStatus   = queryParam{name: "status", repeatable: true}

	pKinds       = queryParam{name: "kind", repeatable: true}
	pAgentIDs    = queryParam{name: "agent_id", repeatable: true}
	pOps         = queryParam{name: "op", repeatable: true}
	pLastEventID = queryParam{name: "last_event_id"}
	pOnLoss      = queryParam{name: "on_loss"}
)

// routes is every route the Handler serves.
var routes = []route{
	{method: "GET", path: "/healthz", access: public, serve: (*Handler).healthz},
	{method: "GET", path: "/readyz", access: public, serve: (*Handler).readyz},
	{method: "GET", path: "/openapi.yaml", access: public, serve: (*Handler).openAPI},
	{method: "GET", path: "/metrics", access: anyKey, needsRegistry: true, serve: (*Handler).prometheus},

	{method: "GET", path: "/v1/agents/{agent_id}/state", access: readStates, serve: (*Handler).getAgentState},
	{method: "PUT", path: "/v1/agents/{agent_id}/state", access: writeStates, query: []queryParam{pTTL}, conditional: true, serve: (*Handler).putAgentState},
	{method: "DELETE", path: "/v1/agents/{agent_id}/state", access: writeStates, conditional: true, serve: (*Handler).deleteAgentState},
	{method: "GET", path: "/v1/agent-states", access: readStates, query: []queryParam{pPrefix, pLimit, pCursor}, serve: (*Handler).queryAgentStates},
	{method: "POST", path: "/v1/agent-states/batch-get", access: readStates, serve: (*Handler).getAgentStates},
	{method: "POST", path: "/v1/agent-states/batch-put", access: writeStates, serve: (*Handler).putAgentStates},
	{method: "POST", path: "/v1/agent-states/batch-delete", access: writeStates, serve: (*Handler).deleteAgentStates},

	{method: "POST", path: "/v1/metrics", access: writeMetrics, query: []queryParam{pTTL}, serve: (*Handler).putMetric},
	{method: "GET", path: "/v1/agents/{agent_id}/metrics/{name}/{timestamp}", access: readMetrics, serve: (*Handler).getMetric},
	{method: "DELETE", path: "/v1/agents/{agent_id}/metrics/{name}/{timestamp}", access: writeMetrics, serve: (*Handler).deleteMetric},
	{method: "GET", path: "/v1/metrics", access: readMetrics, query: []queryParam{pAgentID, pName, pFrom, pTo, pLabel, pLimit, pCursor}, serve: (*Handler).queryMetrics},
	{method: "POST", path: "/v1/metrics/batch-get", access: readMetrics, serve: (*Handler).getMetrics},
	{method: "POST", path: "/v1/metrics/batch-put", access: writeMetrics, serve: (*Handler).putMetrics},
	{method: "POST", path: "/v1/metrics/batch-delete", access: writeMetrics, serve: (*Handler).deleteMetrics},

	{method: "PUT", path: "/v1/alerts/{id}", access: writeAlerts, query: []queryParam{pTTL}, serve: (*Handler).putAlert},
	{method: "GET", path: "/v1/alerts/{id}", access: readAlerts, serve: (*Handler).getAlert},
	{method: "DELETE", path: "/v1/alerts/{id}", access: writeAlerts, serve: (*Handler).deleteAlert},
	{method: "POST", path: "/v1/alerts/{id}/status", access: writeAlerts, serve: (*Handler).setAlertStatus},
	{method: "GET", path: "/v1/alerts", access: readAlerts, query: []queryParam{pAgentID, pSeverity, pStatus, pLabel, pFrom, pTo, pLimit, pCursor}, serve: (*Handler).queryAlerts},
	{method: "POST", path: "/v1/alerts/batch-get", access: readAlerts, serve: (*Handler).getAlerts},
	{method: "POST", path: "/v1/alerts/batch-put", access: writeAlerts, serve: (*Handler).putAlerts},
	{method: "POST", path: "/v1/alerts/batch-delete", access: writeAlerts, serve: (*Handler).deleteAlerts},

	// The read scopes events need depend on the kinds asked for: the
	// handler checks them.
	{method: "GET", path: "/v1/events", access: anyKey, query: []queryParam{pKinds, pAgentIDs, pOps, pLastEventID, pOnLoss}, serve: (*Handler).streamEvents},
}
