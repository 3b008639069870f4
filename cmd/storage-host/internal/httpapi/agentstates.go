package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

func (h *Handler) getAgentState(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	id := r.PathValue("agent_id")
	var s host.AgentState
	err := h.do(r, abi.KindAgentState, "get_agent_state", func(st *host.Store) (err error) {
		s, err = st.GetAgentState(r.Context(), id)
		return err
	})
	stale, err := readOutcome(err)
	if err != nil {
		return err
	}
	w.Header()[etagHeader] = []string{etag(s.Version)}
	if inm := r.Header.Get("If-None-Match"); inm != "" && noneMatch(inm, s.Version) {
		if stale {
			w.Header()[staleHeader] = trueValue
		}
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeAgentState(r.Context(), w, s, stale)
	return nil
}

// putAgentState stores the request body, any JSON document, as the
// agent's state.
func (h *Handler) putAgentState(w http.ResponseWriter, r *http.Request, q url.Values) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	// One scan for the common case; the decoder, which scans twice, only
	// to say what is wrong.
	if !json.Valid(body) {
		var doc json.RawMessage
		if err := decodeStrict(body, &doc); err != nil {
			return err
		}
		return invalid("request body: not a JSON document")
	}
	opts, conditional, err := conditions(r)
	if err != nil {
		return err
	}
	ttl, err := parseTTL("ttl", q.Get("ttl"))
	if err != nil {
		return err
	}
	opts = append(opts, ttl...)
	in := host.AgentState{AgentID: r.PathValue("agent_id"), State: body}
	var s host.AgentState
	err = h.do(r, abi.KindAgentState, "put_agent_state", func(st *host.Store) (err error) {
		s, err = st.PutAgentState(r.Context(), in, opts...)
		return err
	})
	if err != nil {
		if conditional && errors.Is(err, host.ErrConflict) {
			return preconditionFailed(err)
		}
		return err
	}
	w.Header()[etagHeader] = []string{etag(s.Version)}
	writeAgentState(r.Context(), w, s, false)
	return nil
}

func (h *Handler) deleteAgentState(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	opts, conditional, err := conditions(r)
	if err != nil {
		return err
	}
	id := r.PathValue("agent_id")
	err = h.do(r, abi.KindAgentState, "delete_agent_state", func(st *host.Store) error {
		return st.DeleteAgentState(r.Context(), id, opts...)
	})
	if err != nil {
		if conditional && errors.Is(err, host.ErrConflict) {
			return preconditionFailed(err)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) queryAgentStates(w http.ResponseWriter, r *http.Request, q url.Values) error {
	var (
		query host.AgentStateQuery
		err   error
	)
	query.AgentIDPrefix = q.Get("prefix")
	if query.Limit, err = parseLimit(q); err != nil {
		return err
	}
	if query.Cursor, err = parseCursor(q); err != nil {
		return err
	}
	return servePage(h, w, r, abi.KindAgentState, "query_agent_states", func(st *host.Store) (host.Page[host.AgentState], error) {
		return st.QueryAgentStates(r.Context(), query)
	}, agentStateOut)
}

// agentIDsRequest is the body of batch-get and batch-delete.
type agentIDsRequest struct {
	AgentIDs []string `json:"agent_ids"`
}

func (h *Handler) getAgentStates(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req agentIDsRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := checkItems("agent_ids", len(req.AgentIDs), req.AgentIDs != nil); err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindAgentState, "get_agent_states", len(req.AgentIDs), func(st *host.Store) ([]host.Result[host.AgentState], error) {
		return st.GetAgentStates(r.Context(), req.AgentIDs)
	}, agentStateOut)
}

// agentStatesPutRequest is the body of batch-put.
type agentStatesPutRequest struct {
	Items []agentStateInput `json:"items"`
	// TTL applies to every item, as the ttl parameter of a single PUT.
	TTL string `json:"ttl"`
	// Conditional makes each item's write conditional on its version (0
	// or absent: create-only).
	Conditional bool `json:"conditional"`
}

func (h *Handler) putAgentStates(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req agentStatesPutRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	states, opts, err := putItems(req.Items, req.TTL, func(in *agentStateInput, at string) (host.AgentState, error) {
		return in.state(at, req.Conditional)
	})
	if err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindAgentState, "put_agent_states", len(states), func(st *host.Store) ([]host.Result[host.AgentState], error) {
		if req.Conditional {
			return st.PutAgentStatesIf(r.Context(), states, opts...)
		}
		return st.PutAgentStates(r.Context(), states, opts...)
	}, agentStateOut)
}

func (h *Handler) deleteAgentStates(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req agentIDsRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := checkItems("agent_ids", len(req.AgentIDs), req.AgentIDs != nil); err != nil {
		return err
	}
	return serveDeletes(h, w, r, abi.KindAgentState, "delete_agent_states", req.AgentIDs, func(st *host.Store) ([]error, error) {
		return st.DeleteAgentStates(r.Context(), req.AgentIDs)
	}, func(id string) agentIDJSON { return agentIDJSON{AgentID: id} })
}
