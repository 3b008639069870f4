package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// token is a Token ready for comparison: only the digest of its secret is
// kept, so every comparison is between two 32-byte values whatever the
// lengths of the secrets.
type token struct {
	name   string
	digest [sha256.Size]byte
	scopes []Scope
}

// compileTokens checks ts and digests their secrets.
func compileTokens(ts []Token) ([]token, error) {
	out := make([]token, len(ts))
	seen := make(map[[sha256.Size]byte]string, len(ts))
	for i, t := range ts {
		if t.Secret == "" {
			return nil, fmt.Errorf("httpapi: token %q: empty secret", t.Name)
		}
		for _, s := range t.Scopes {
			switch {
			case s.AllKinds && s.Kind != 0:
				return nil, fmt.Errorf("httpapi: token %q: a scope names both %s and every kind", t.Name, s.Kind)
			case !s.AllKinds && !s.Kind.Valid():
				return nil, fmt.Errorf("httpapi: token %q: scope kind %s is not a record kind", t.Name, s.Kind)
			}
		}
		d := sha256.Sum256([]byte(t.Secret))
		if other, dup := seen[d]; dup {
			return nil, fmt.Errorf("httpapi: tokens %q and %q have the same secret", other, t.Name)
		}
		seen[d] = t.Name
		out[i] = token{name: t.Name, digest: d, scopes: append([]Scope(nil), t.Scopes...)}
	}
	return out, nil
}

// allows reports whether t may read (write false) or write records of
// kind. A write scope does not allow reads, nor the reverse.
func (t *token) allows(kind abi.RecordKind, write bool) bool {
	for _, s := range t.scopes {
		if (s.AllKinds || s.Kind == kind) && s.Write == write {
			return true
		}
	}
	return false
}

// authorize checks r's bearer token against a route's access. It runs
// before the body is read, so a refused request writes nothing.
func (h *Handler) authorize(r *http.Request, a access) error {
	ts := *h.tokens.Load()
	if a.public || len(ts) == 0 {
		return nil
	}
	secret, ok := bearer(r)
	if !ok {
		return &apiError{status: http.StatusUnauthorized, code: codeUnauthorized,
			msg:          "this route needs an Authorization: Bearer token",
			authenticate: `Bearer realm="storage-host"`}
	}
	// Compare against every token, without stopping at a match, in time
	// independent of the secrets: both sides are SHA-256 digests.
	d := sha256.Sum256([]byte(secret))
	match := -1
	for i := range ts {
		eq := subtle.ConstantTimeCompare(d[:], ts[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return &apiError{status: http.StatusUnauthorized, code: codeUnauthorized,
			msg:          "the bearer token is not valid",
			authenticate: `Bearer realm="storage-host", error="invalid_token"`}
	}
	t := &ts[match]
	if a.kind == 0 || t.allows(a.kind, a.write) {
		return nil
	}
	verb := "read"
	if a.write {
		verb = "write"
	}
	return &apiError{status: http.StatusForbidden, code: codeForbidden,
		msg:          fmt.Sprintf("token %q may not %s %s", t.name, verb, a.kind.Name()),
		authenticate: fmt.Sprintf(`Bearer realm="storage-host", error="insufficient_scope", scope="%s:%s"`, a.kind.Name(), verb)}
}

// bearer returns the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 7235).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
