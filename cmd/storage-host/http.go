package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

type handler struct {
	st  *host.Store
	log hclog.Logger
}

func newHandler(st *host.Store, log hclog.Logger) http.Handler {
	h := &handler{st: st, log: log.Named("http")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /v1/agents/{id}/state", h.getState)
	mux.HandleFunc("PUT /v1/agents/{id}/state", h.putState)
	mux.HandleFunc("DELETE /v1/agents/{id}/state", h.deleteState)
	return mux
}

// agentStateJSON is the HTTP form of an agent state; State is the stored
// document, which must be JSON.
type agentStateJSON struct {
	AgentID   string          `json:"agent_id"`
	State     json.RawMessage `json:"state"`
	Version   string          `json:"version"`
	UpdatedAt time.Time       `json:"updated_at"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

func toJSON(s host.AgentState) agentStateJSON {
	out := agentStateJSON{AgentID: s.AgentID, State: s.State, Version: strconv.FormatUint(s.Version, 10), UpdatedAt: s.UpdatedAt}
	if !s.ExpiresAt.IsZero() {
		out.ExpiresAt = &s.ExpiresAt
	}
	return out
}

func (h *handler) getState(w http.ResponseWriter, r *http.Request) {
	s, err := h.st.GetAgentState(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(s.Version, 10)))
	writeJSON(w, http.StatusOK, toJSON(s))
}

// putState stores the request body as the agent's state. If-Match with a
// version makes the write conditional; If-None-Match: * makes it
// create-only; the ttl query parameter (a Go duration, or "persist") sets
// the expiry.
func (h *handler) putState(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		h.fail(w, abi.Errorf(abi.StatusInvalid, "read body: %v", err))
		return
	}
	if !json.Valid(body) {
		h.fail(w, abi.Errorf(abi.StatusInvalid, "body is not valid JSON"))
		return
	}
	opts, err := writeOptions(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	s, err := h.st.PutAgentState(r.Context(), host.AgentState{AgentID: r.PathValue("id"), State: body}, opts...)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(s.Version, 10)))
	writeJSON(w, http.StatusOK, toJSON(s))
}

func (h *handler) deleteState(w http.ResponseWriter, r *http.Request) {
	opts, err := writeOptions(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.st.DeleteAgentState(r.Context(), r.PathValue("id"), opts...); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeOptions(r *http.Request) ([]host.WriteOption, error) {
	var opts []host.WriteOption
	if m := r.Header.Get("If-Match"); m != "" {
		v, err := strconv.ParseUint(strings.Trim(m, `"`), 10, 64)
		if err != nil {
			return nil, abi.Errorf(abi.StatusInvalid, "If-Match %q is not a version", m)
		}
		opts = append(opts, host.IfVersion(v))
	}
	if r.Header.Get("If-None-Match") == "*" {
		opts = append(opts, host.IfAbsent())
	}
	switch ttl := r.URL.Query().Get("ttl"); ttl {
	case "":
	case "persist":
		opts = append(opts, host.WithPersist())
	case "keep":
		opts = append(opts, host.WithKeepTTL())
	default:
		d, err := time.ParseDuration(ttl)
		if err != nil {
			return nil, abi.Errorf(abi.StatusInvalid, "ttl %q: %v", ttl, err)
		}
		opts = append(opts, host.WithTTL(d))
	}
	return opts, nil
}

// errorJSON is the body of every error response: a stable code, from the
// ABI status, and the backend's message.
type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var httpStatus = map[abi.Status]int{
	abi.StatusNotFound:    http.StatusNotFound,
	abi.StatusConflict:    http.StatusConflict,
	abi.StatusInvalid:     http.StatusBadRequest,
	abi.StatusUnavailable: http.StatusServiceUnavailable,
	abi.StatusUnsupported: http.StatusNotImplemented,
	abi.StatusLimit:       http.StatusTooManyRequests,
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	status := abi.StatusInternal
	var s abi.Status
	if errors.As(err, &s) {
		status = s
	}
	code, ok := httpStatus[status]
	if !ok {
		code = http.StatusInternalServerError
		h.log.Error("request failed", "error", err)
	}
	writeJSON(w, code, errorJSON{Code: strings.ReplaceAll(status.String(), " ", "_"), Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
