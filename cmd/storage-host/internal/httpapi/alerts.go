package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// putAlert creates or replaces the alert {id}; replacing one must be an
// allowed status transition (409 if not).
func (h *Handler) putAlert(w http.ResponseWriter, r *http.Request, q url.Values) error {
	var in alertInput
	if err := h.decodeRecords(w, r, &in, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	if in.ID != nil && *in.ID != id {
		return invalid(fmt.Sprintf("request body: id %s differs from the path's %s", quoted(*in.ID), quoted(id)))
	}
	in.ID = &id
	a, err := in.alert("")
	if err != nil {
		return err
	}
	opts, err := parseTTL("ttl", q.Get("ttl"))
	if err != nil {
		return err
	}
	var out host.Alert
	err = h.do(r, abi.KindAlert, "put_alert", func(st *host.Store) (err error) {
		out, err = st.PutAlert(r.Context(), a, opts...)
		return err
	})
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, alertOut(out), false)
}

func (h *Handler) getAlert(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	id := r.PathValue("id")
	var a host.Alert
	err := h.do(r, abi.KindAlert, "get_alert", func(st *host.Store) (err error) {
		a, err = st.GetAlert(r.Context(), id)
		return err
	})
	stale, err := readOutcome(err)
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, alertOut(a), stale)
}

func (h *Handler) deleteAlert(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	id := r.PathValue("id")
	err := h.do(r, abi.KindAlert, "delete_alert", func(st *host.Store) error {
		return st.DeleteAlert(r.Context(), id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// statusRequest is the body of POST /v1/alerts/{id}/status.
type statusRequest struct {
	Status string `json:"status"`
}

// setAlertStatus moves an alert to another status, keeping its expiry; a
// transition the alert's current status does not allow is 409.
func (h *Handler) setAlertStatus(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req statusRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	status, err := parseAlertStatus("status", req.Status)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var a host.Alert
	err = h.do(r, abi.KindAlert, "set_alert_status", func(st *host.Store) (err error) {
		a, err = st.SetAlertStatus(r.Context(), id, status)
		return err
	})
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, alertOut(a), false)
}

func (h *Handler) queryAlerts(w http.ResponseWriter, r *http.Request, q url.Values) error {
	var (
		query host.AlertQuery
		err   error
	)
	if query.AgentID, err = idFilter(q, "agent_id"); err != nil {
		return err
	}
	for _, s := range splitList(q["severity"]) {
		v, err := parseSeverity("severity", s)
		if err != nil {
			return err
		}
		query.Severities = append(query.Severities, v)
	}
	for _, s := range splitList(q["status"]) {
		v, err := parseAlertStatus("status", s)
		if err != nil {
			return err
		}
		query.Statuses = append(query.Statuses, v)
	}
	if query.Labels, err = parseMatchers(q); err != nil {
		return err
	}
	if query.From, query.To, err = parseRange(q); err != nil {
		return err
	}
	if query.Limit, err = parseLimit(q); err != nil {
		return err
	}
	if query.Cursor, err = parseCursor(q); err != nil {
		return err
	}
	return servePage(h, w, r, abi.KindAlert, "query_alerts", func(st *host.Store) (host.Page[host.Alert], error) {
		return st.QueryAlerts(r.Context(), query)
	}, alertOut)
}

// alertIDsRequest is the body of batch-get and batch-delete.
type alertIDsRequest struct {
	IDs []string `json:"ids"`
}

func (h *Handler) getAlerts(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req alertIDsRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := checkItems("ids", len(req.IDs), req.IDs != nil); err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindAlert, "get_alerts", len(req.IDs), func(st *host.Store) ([]host.Result[host.Alert], error) {
		return st.GetAlerts(r.Context(), req.IDs)
	}, alertOut)
}

// alertsPutRequest is the body of batch-put.
type alertsPutRequest struct {
	Items []alertInput `json:"items"`
	// TTL applies to every item, as the ttl parameter of a single PUT.
	TTL string `json:"ttl"`
}

func (h *Handler) putAlerts(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req alertsPutRequest
	if err := h.decodeRecords(w, r, &req, true); err != nil {
		return err
	}
	as, opts, err := putItems(req.Items, req.TTL, (*alertInput).alert)
	if err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindAlert, "put_alerts", len(as), func(st *host.Store) ([]host.Result[host.Alert], error) {
		return st.PutAlerts(r.Context(), as, opts...)
	}, alertOut)
}

func (h *Handler) deleteAlerts(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req alertIDsRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := checkItems("ids", len(req.IDs), req.IDs != nil); err != nil {
		return err
	}
	return serveDeletes(h, w, r, abi.KindAlert, "delete_alerts", req.IDs, func(st *host.Store) ([]error, error) {
		return st.DeleteAlerts(r.Context(), req.IDs)
	}, func(id string) alertIDJSON { return alertIDJSON{ID: id} })
}
