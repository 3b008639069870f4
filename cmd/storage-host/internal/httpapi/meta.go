package httpapi

import (
	"context"
	_ "embed"
	"net/http"
	"net/url"
)

// openAPIDocument is the API's contract, served at /openapi.yaml.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// healthz answers as long as the process serves HTTP.
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request, _ url.Values) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readyz answers 204 when every routed backend answers, else 503 naming
// the ones that do not.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.backends.Ready(ctx); err != nil {
		h.log.Debug("not ready", "error", err)
		return &apiError{status: http.StatusServiceUnavailable, code: codeNotReady, msg: err.Error()}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ url.Values) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
	return nil
}

// prometheus serves Options.Registry.
func (h *Handler) prometheus(w http.ResponseWriter, r *http.Request, _ url.Values) error {
	h.promhttp.ServeHTTP(w, r)
	return nil
}
