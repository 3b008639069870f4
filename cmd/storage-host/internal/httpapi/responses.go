package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// staleHeader marks a read answered from a backend's fallback copy, which
// may be behind (host.ErrStale): the value is valid.
const staleHeader = "Storage-Stale"

// pageJSON is the response of a query route.
type pageJSON[J any] struct {
	Items []J `json:"items"`
	// NextCursor is the cursor parameter of the next page, omitted on the
	// last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func pageOut[T, J any](p host.Page[T], conv func(T) J) pageJSON[J] {
	out := pageJSON[J]{Items: make([]J, len(p.Items))}
	for i := range p.Items {
		out.Items[i] = conv(p.Items[i])
	}
	if len(p.Next) > 0 {
		out.NextCursor = formatCursor(p.Next)
	}
	return out
}

// resultJSON is the outcome of one bulk item: a value (marked stale when
// it may be behind) or an error.
type resultJSON struct {
	Value any        `json:"value,omitempty"`
	Stale bool       `json:"stale,omitempty"`
	Error *errorBody `json:"error,omitempty"`
}

// resultsJSON is the response of a bulk route, one result per item in
// request order.
type resultsJSON struct {
	Results []resultJSON `json:"results"`
}

// resultsOut converts bulk results; stale reports whether any item was
// served stale.
func resultsOut[T, J any](rs []host.Result[T], conv func(T) J, itemError func(error) *errorBody) (out resultsJSON, stale bool) {
	out.Results = make([]resultJSON, len(rs))
	for i, r := range rs {
		switch {
		case r.Err == nil:
			out.Results[i].Value = conv(r.Value)
		case errors.Is(r.Err, host.ErrStale):
			out.Results[i].Value, out.Results[i].Stale = conv(r.Value), true
			stale = true
		default:
			out.Results[i].Error = itemError(r.Err)
		}
	}
	return out, stale
}

// deletesOut converts the errors of a bulk delete; a deleted item's value
// is its key.
func deletesOut[K, J any](keys []K, errs []error, conv func(K) J, itemError func(error) *errorBody) resultsJSON {
	out := resultsJSON{Results: make([]resultJSON, len(errs))}
	for i, err := range errs {
		if err != nil {
			out.Results[i].Error = itemError(err)
		} else {
			out.Results[i].Value = conv(keys[i])
		}
	}
	return out
}

// agentIDJSON and alertIDJSON are the values of deleted items.
type agentIDJSON struct {
	AgentID string `json:"agent_id"`
}

type alertIDJSON struct {
	ID string `json:"id"`
}

// respond writes v as the JSON response, with the stale header when the
// value may be behind.
func respond(ctx context.Context, w http.ResponseWriter, status int, v any, stale bool) error {
	if stale {
		w.Header()[staleHeader] = trueValue
	}
	writeJSON(ctx, w, status, v)
	return nil
}

// readOutcome separates a stale read, which carries a valid value, from a
// failure.
func readOutcome(err error) (stale bool, _ error) {
	if err != nil && errors.Is(err, host.ErrStale) {
		return true, nil
	}
	return false, err
}

// checkItems bounds the item list of a bulk request; a missing list is a
// bad request, an empty one is answered with no results.
func checkItems(name string, n int, present bool) error {
	if !present {
		return invalid(fmt.Sprintf("request body: %s is required", name))
	}
	if n > maxBulkItems {
		return invalid(fmt.Sprintf("request body: %s has %d items; at most %d per request", name, n, maxBulkItems))
	}
	return nil
}

// putItems reads the items and ttl of a batch-put body: it bounds the
// items (checkItems), parses the ttl, then converts each item with
// convert, which is given the item's path for its errors.
func putItems[In, Out any](items []In, ttl string, convert func(*In, string) (Out, error)) ([]Out, []host.WriteOption, error) {
	if err := checkItems("items", len(items), items != nil); err != nil {
		return nil, nil, err
	}
	opts, err := parseTTL("request body: ttl", ttl)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Out, len(items))
	for i := range items {
		if out[i], err = convert(&items[i], itemPath("items", i)); err != nil {
			return nil, nil, err
		}
	}
	return out, opts, nil
}

// conditions reads If-Match and If-None-Match on a single agent-state
// write: If-Match with an ETag makes the write or delete conditional on
// that version, If-None-Match: * makes a PUT create-only.
func conditions(r *http.Request) (opts []host.WriteOption, conditional bool, err error) {
	im := strings.Join(r.Header.Values("If-Match"), ",")
	inm := strings.Join(r.Header.Values("If-None-Match"), ",")
	switch {
	case im != "" && inm != "":
		return nil, false, invalid("give If-Match or If-None-Match, not both")
	case im != "":
		v, err := parseETag("If-Match", im)
		if err != nil {
			return nil, false, err
		}
		return []host.WriteOption{host.IfVersion(v)}, true, nil
	case inm != "":
		if r.Method != http.MethodPut {
			return nil, false, invalid("If-None-Match applies to PUT only")
		}
		if strings.TrimSpace(inm) != "*" {
			return nil, false, invalid("If-None-Match on PUT takes only * (create-only)")
		}
		return []host.WriteOption{host.IfAbsent()}, true, nil
	}
	return nil, false, nil
}

// refuseConditions refuses If-Match and If-None-Match on a write route
// that cannot honour them, rather than ignoring a precondition.
func refuseConditions(r *http.Request) error {
	if r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != "" {
		return invalid("If-Match and If-None-Match apply only to PUT and DELETE /v1/agents/{agent_id}/state")
	}
	return nil
}

// preconditionFailed is a conflict caused by If-Match or If-None-Match.
func preconditionFailed(err error) error {
	return &apiError{status: http.StatusPreconditionFailed, code: codePreconditionFailed, msg: message(err)}
}

// servePage runs a query on the store serving kind and writes the page.
func servePage[T, J any](h *Handler, w http.ResponseWriter, r *http.Request, kind abi.RecordKind, op string,
	query func(*host.Store) (host.Page[T], error), conv func(T) J) error {
	var p host.Page[T]
	err := h.do(r, kind, op, func(st *host.Store) (err error) {
		p, err = query(st)
		return err
	})
	stale, err := readOutcome(err)
	if err != nil {
		return err
	}
	return respond(r.Context(), w, http.StatusOK, pageOut(p, conv), stale)
}

// serveResults runs a bulk operation of n items on the store serving kind
// (none for n = 0) and writes its per-item results.
func serveResults[T, J any](h *Handler, w http.ResponseWriter, r *http.Request, kind abi.RecordKind, op string, n int,
	bulk func(*host.Store) ([]host.Result[T], error), conv func(T) J) error {
	var rs []host.Result[T]
	if n > 0 {
		err := h.do(r, kind, op, func(st *host.Store) (err error) {
			rs, err = bulk(st)
			return err
		})
		if err != nil {
			return err
		}
	}
	out, stale := resultsOut(rs, conv, func(err error) *errorBody { return h.itemError(r, err) })
	return respond(r.Context(), w, http.StatusOK, out, stale)
}

// serveDeletes runs a bulk delete of keys on the store serving kind (none
// for no keys) and writes an outcome per key.
func serveDeletes[K, J any](h *Handler, w http.ResponseWriter, r *http.Request, kind abi.RecordKind, op string, keys []K,
	del func(*host.Store) ([]error, error), conv func(K) J) error {
	var errs []error
	if len(keys) > 0 {
		err := h.do(r, kind, op, func(st *host.Store) (err error) {
			errs, err = del(st)
			return err
		})
		if err != nil {
			return err
		}
	}
	return respond(r.Context(), w, http.StatusOK, deletesOut(keys, errs, conv, func(err error) *errorBody { return h.itemError(r, err) }), false)
}
