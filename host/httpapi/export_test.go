package httpapi

// RouteInfo is a route of the table, for the tests of the OpenAPI
// document.
type RouteInfo struct {
	Method, Path  string
	Query         []string
	Public        bool
	Kind          string
	Write         bool
	NeedsRegistry bool
}

// RouteTable returns the route table.
func RouteTable() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		out[i] = RouteInfo{Method: rt.method, Path: rt.path, Public: rt.access.public, Kind: rt.access.kind,
			Write: rt.access.write, NeedsRegistry: rt.needsRegistry}
		for _, q := range rt.query {
			out[i].Query = append(out[i].Query, q.name)
		}
	}
	return out
}

// OpenAPIDocument is the embedded document.
var OpenAPIDocument = openAPIDocument

// ErrorCodes are the codes of the API's errors.
var ErrorCodes = []string{codeInvalid, codeUnauthorized, codeForbidden, codeNotFound, codeMethodNotAllowed,
	codeConflict, codePreconditionFailed, codeTooLarge, codeLimit, codeInternal, codeUnsupported,
	codeUnavailable, codeNotReady}
