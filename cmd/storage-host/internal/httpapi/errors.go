package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// The error codes of the API, stable across versions; openapi.yaml lists
// them with their HTTP statuses.
const (
	codeInvalid            = "invalid"             // 400
	codeUnauthorized       = "unauthorized"        // 401
	codeForbidden          = "forbidden"           // 403
	codeNotFound           = "not_found"           // 404
	codeMethodNotAllowed   = "method_not_allowed"  // 405
	codeConflict           = "conflict"            // 409
	codeEventsLost         = "events_lost"         // 410
	codePreconditionFailed = "precondition_failed" // 412
	codeTooLarge           = "too_large"           // 413
	codeLimit              = "limit"               // 429
	codeInternal           = "internal"            // 500
	codeUnsupported        = "unsupported"         // 501
	codeUnavailable        = "unavailable"         // 503
	codeNotReady           = "not_ready"           // 503
	codeOutcomeUnknown     = "outcome_unknown"     // 504
)

// statusCodes maps the ABI statuses a store reports to the API's.
var statusCodes = map[abi.Status]struct {
	http int
	code string
}{
	abi.StatusNotFound:    {http.StatusNotFound, codeNotFound},
	abi.StatusConflict:    {http.StatusConflict, codeConflict},
	abi.StatusInvalid:     {http.StatusBadRequest, codeInvalid},
	abi.StatusUnavailable: {http.StatusServiceUnavailable, codeUnavailable},
	abi.StatusUnsupported: {http.StatusNotImplemented, codeUnsupported},
	abi.StatusInternal:    {http.StatusInternalServerError, codeInternal},
	abi.StatusLimit:       {http.StatusTooManyRequests, codeLimit},
	// A write that may or may not have been applied: the backend's store
	// took it, or may have, and did not answer in time (RATIONALE.md).
	abi.StatusUnknown: {http.StatusGatewayTimeout, codeOutcomeUnknown},
}

// apiError is an error whose HTTP status and code the handler decided
// itself, rather than a store.
type apiError struct {
	status int
	code   string
	msg    string
	// authenticate is the WWW-Authenticate header of a 401 or 403.
	authenticate string
}

func (e *apiError) Error() string { return e.msg }

// invalid returns a 400 error with message msg.
func invalid(msg string) error {
	return &apiError{status: http.StatusBadRequest, code: codeInvalid, msg: msg}
}

// errorBody is the "error" member of an error response and of a failed
// bulk item.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorResponse struct {
	Error errorBody `json:"error"`
}

// internalMessage is all a client is told of an internal failure: its
// detail (a plugin's trap, a wasm stack trace, a decode error) is for the
// log, under the request ID the message carries.
const internalMessage = "internal error"

// classify returns the HTTP status, code and message for err, and whether
// it is an internal failure worth logging. The message of an internal
// failure is internalMessage, never err's text.
func classify(err error) (status int, body errorBody, internal bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.status == http.StatusInternalServerError {
			return ae.status, errorBody{Code: ae.code, Message: internalMessage}, true
		}
		return ae.status, errorBody{Code: ae.code, Message: ae.msg}, false
	}
	var s abi.Status
	if errors.As(err, &s) {
		c, ok := statusCodes[s]
		if !ok { // unknown statuses are internal, as the ABI says
			c = statusCodes[abi.StatusInternal]
		}
		// A write whose plugin failed after it reached the store is
		// outcome_unknown, and its failure's detail is kept from the
		// client as an internal one's is.
		if c.http == http.StatusInternalServerError || errors.Is(err, abi.StatusInternal) {
			return c.http, errorBody{Code: c.code, Message: internalMessage}, true
		}
		return c.http, errorBody{Code: c.code, Message: message(err)}, false
	}
	switch {
	case errors.Is(err, host.ErrClosed):
		return http.StatusServiceUnavailable, errorBody{Code: codeUnavailable, Message: err.Error()}, false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorBody{Code: codeUnavailable, Message: err.Error()}, false
	}
	return http.StatusInternalServerError, errorBody{Code: codeInternal, Message: internalMessage}, true
}

// requestID names one failed request in the log and in its response, so
// an operator can find the detail a client was not shown.
func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withRequestID is an internal failure's message: internalMessage and the
// ID it is logged under.
func withRequestID(id string) string { return internalMessage + " (request id " + id + ")" }

// message is the text of a store error: a bare *abi.Error's own message,
// since the code already says its status, else the whole chain.
func message(err error) string {
	if ae, ok := err.(*abi.Error); ok && ae.Message != "" {
		return ae.Message
	}
	return err.Error()
}

// fail answers err as a JSON error, logging internal failures.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, body, internal := classify(err)
	if internal {
		id := requestID()
		h.log.Error("request failed", "method", r.Method, "route", r.Pattern, "request_id", id, "error", err)
		body.Message = withRequestID(id)
		w.Header().Set("X-Request-Id", id)
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.authenticate != "" {
		w.Header().Set("WWW-Authenticate", ae.authenticate)
	}
	writeError(w, status, body.Code, body.Message)
}

// itemError is the error of one bulk item; an internal one is logged, its
// detail kept from the client like a request's.
func (h *Handler) itemError(r *http.Request, err error) *errorBody {
	_, body, internal := classify(err)
	if internal {
		id := requestID()
		h.log.Error("bulk item failed", "method", r.Method, "route", r.Pattern, "request_id", id, "error", err)
		body.Message = withRequestID(id)
	}
	return &body
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(context.Background(), w, status, errorResponse{Error: errorBody{Code: code, Message: msg}})
}
