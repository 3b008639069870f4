package httpapi

import (
	"net/http"
	"net/url"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// putMetric stores one metric, replacing the sample with the same agent,
// name and timestamp.
func (h *Handler) putMetric(w http.ResponseWriter, r *http.Request, q url.Values) error {
	var in metricInput
	if err := h.decodeRecords(w, r, &in, false); err != nil {
		return err
	}
	m, err := in.metric("")
	if err != nil {
		return err
	}
	opts, err := parseTTL("ttl", q.Get("ttl"))
	if err != nil {
		return err
	}
	var out host.Metric
	err = h.do(r, abi.KindMetric, "put_metric", func(st *host.Store) (err error) {
		out, err = st.PutMetric(r.Context(), m, opts...)
		return err
	})
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, metricOut(out), false)
}

// pathMetricKey reads the metric key of /v1/agents/{agent_id}/metrics/{name}/{timestamp}.
func pathMetricKey(r *http.Request) (host.MetricKey, error) {
	ts, err := parseMetricTime("timestamp", r.PathValue("timestamp"))
	if err != nil {
		return host.MetricKey{}, err
	}
	return host.MetricKey{AgentID: r.PathValue("agent_id"), Name: r.PathValue("name"), Timestamp: ts}, nil
}

func (h *Handler) getMetric(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	k, err := pathMetricKey(r)
	if err != nil {
		return err
	}
	var m host.Metric
	err = h.do(r, abi.KindMetric, "get_metric", func(st *host.Store) (err error) {
		m, err = st.GetMetric(r.Context(), k)
		return err
	})
	stale, err := readOutcome(err)
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, metricOut(m), stale)
}

func (h *Handler) deleteMetric(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	k, err := pathMetricKey(r)
	if err != nil {
		return err
	}
	err = h.do(r, abi.KindMetric, "delete_metric", func(st *host.Store) error {
		return st.DeleteMetric(r.Context(), k)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) queryMetrics(w http.ResponseWriter, r *http.Request, q url.Values) error {
	var (
		query host.MetricQuery
		err   error
	)
	if query.AgentID, err = idFilter(q, "agent_id"); err != nil {
		return err
	}
	if query.Name, err = idFilter(q, "name"); err != nil {
		return err
	}
	if query.From, query.To, err = parseRange(q); err != nil {
		return err
	}
	if query.Labels, err = parseMatchers(q); err != nil {
		return err
	}
	if query.Limit, err = parseLimit(q); err != nil {
		return err
	}
	if query.Cursor, err = parseCursor(q); err != nil {
		return err
	}
	return servePage(h, w, r, abi.KindMetric, "query_metrics", func(st *host.Store) (host.Page[host.Metric], error) {
		return st.QueryMetrics(r.Context(), query)
	}, metricOut)
}

// metricKeysRequest is the body of batch-get and batch-delete.
type metricKeysRequest struct {
	Keys []metricKeyInput `json:"keys"`
}

func (req *metricKeysRequest) keys() ([]host.MetricKey, error) {
	if err := checkItems("keys", len(req.Keys), req.Keys != nil); err != nil {
		return nil, err
	}
	keys := make([]host.MetricKey, len(req.Keys))
	for i := range req.Keys {
		var err error
		if keys[i], err = req.Keys[i].key(itemPath("keys", i)); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (h *Handler) getMetrics(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req metricKeysRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	keys, err := req.keys()
	if err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindMetric, "get_metrics", len(keys), func(st *host.Store) ([]host.Result[host.Metric], error) {
		return st.GetMetrics(r.Context(), keys)
	}, metricOut)
}

// metricsPutRequest is the body of batch-put.
type metricsPutRequest struct {
	Items []metricInput `json:"items"`
	// TTL applies to every item, as the ttl parameter of a single put.
	TTL string `json:"ttl"`
}

func (h *Handler) putMetrics(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req metricsPutRequest
	if err := h.decodeRecords(w, r, &req, true); err != nil {
		return err
	}
	ms, opts, err := putItems(req.Items, req.TTL, (*metricInput).metric)
	if err != nil {
		return err
	}
	return serveResults(h, w, r, abi.KindMetric, "put_metrics", len(ms), func(st *host.Store) ([]host.Result[host.Metric], error) {
		return st.PutMetrics(r.Context(), ms, opts...)
	}, metricOut)
}

func (h *Handler) deleteMetrics(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	var req metricKeysRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	keys, err := req.keys()
	if err != nil {
		return err
	}
	return serveDeletes(h, w, r, abi.KindMetric, "delete_metrics", keys, func(st *host.Store) ([]error, error) {
		return st.DeleteMetrics(r.Context(), keys)
	}, metricKeyOut)
}
