package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
)

// loadDocument parses and validates the embedded document once.
var loadDocument = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIDocument)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return doc, nil
})

// loadRouter is a router over the document with its servers dropped, so
// that it matches the test server's URLs by path.
var loadRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIDocument)
	if err != nil {
		return nil, err
	}
	doc.Servers = nil
	return legacy.NewRouter(doc)
})

func TestOpenAPIDocumentIsValid(t *testing.T) {
	_, err := loadDocument()
	require.NoError(t, err)
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIMatchesRoutes holds the document and the route table to the
// same operations, parameters and security.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := loadDocument()
	require.NoError(t, err)

	var documented, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	for _, rt := range httpapi.RouteTable() {
		served = append(served, rt.Method+" "+rt.Path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	require.Equal(t, served, documented, "the document's operations are the route table's")

	for _, rt := range httpapi.RouteTable() {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			item := doc.Paths.Value(rt.Path)
			op := item.GetOperation(rt.Method)
			require.NotNil(t, op)
			params := map[string][]string{}
			for _, list := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, p := range list {
					params[p.Value.In] = append(params[p.Value.In], p.Value.Name)
				}
			}
			var wantPath []string
			for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
				wantPath = append(wantPath, m[1])
			}
			require.ElementsMatch(t, wantPath, params["path"], "path parameters")
			require.ElementsMatch(t, rt.Query, params["query"], "query parameters")

			public := op.Security != nil && len(*op.Security) == 0
			require.Equal(t, rt.Public, public, "open routes, and only they, have security: []")
			if !rt.Public {
				require.NotNil(t, op.Responses.Status(http.StatusUnauthorized), "401 documented")
				if rt.Kind != "" {
					require.NotNil(t, op.Responses.Status(http.StatusForbidden), "403 documented")
				}
			}
			takesBody := rt.Method == "POST" || rt.Method == "PUT"
			require.Equal(t, takesBody, op.RequestBody != nil, "request body documented")
			if takesBody {
				require.NotNil(t, op.Responses.Status(http.StatusRequestEntityTooLarge), "413 documented")
			}
			if strings.HasPrefix(rt.Path, "/v1/") {
				for _, code := range []int{400, 429, 500, 501, 503} {
					require.NotNil(t, op.Responses.Status(code), "%d documented", code)
				}
			}
		})
	}
}

// checkExchange validates a request the handler accepted (2xx) and every
// response against the document: status codes, headers and bodies must be
// documented, with additionalProperties false throughout the schemas.
func checkExchange(t *testing.T, sent *http.Request, body []byte, res *response) {
	t.Helper()
	router, err := loadRouter()
	require.NoError(t, err)
	req, err := http.NewRequest(sent.Method, sent.URL.String(), bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = sent.Header.Clone()
	if res.code == http.StatusMethodNotAllowed || (res.code == http.StatusNotFound && bytes.Contains(res.body, []byte(`"no route for `))) {
		return // no operation answered; the document describes these only in its introduction
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		require.Failf(t, "undocumented route", "%s %s is not in the document but was answered %s", sent.Method, sent.URL.Path, res)
		return
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if res.code >= 200 && res.code < 300 {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in),
			"the handler accepted %s %s %s, which the document refuses", sent.Method, sent.URL, body)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.code,
		Header:                 res.header,
		Body:                   io.NopCloser(bytes.NewReader(res.body)),
		Options:                opts,
	}
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), out),
		"response to %s %s does not fit the document: %s", sent.Method, sent.URL, res)
}

// TestOpenAPIErrorCodes keeps the document's list of error codes equal to
// the codes the handler can answer.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc, err := loadDocument()
	require.NoError(t, err)
	var documented []string
	for _, v := range doc.Components.Schemas["ErrorBody"].Value.Properties["code"].Value.Enum {
		documented = append(documented, v.(string))
	}
	want := slices.Clone(httpapi.ErrorCodes)
	slices.Sort(documented)
	slices.Sort(want)
	require.Equal(t, want, documented)
}

// TestOpenAPIEndCodes keeps the document's list of the codes of a
// stream's end event equal to the codes the handler can send.
func TestOpenAPIEndCodes(t *testing.T) {
	doc, err := loadDocument()
	require.NoError(t, err)
	var documented []string
	for _, v := range doc.Components.Schemas["StreamEnd"].Value.Properties["code"].Value.Enum {
		documented = append(documented, v.(string))
	}
	want := slices.Clone(httpapi.EndCodes)
	slices.Sort(documented)
	slices.Sort(want)
	require.Equal(t, want, documented)
}
