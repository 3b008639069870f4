package abi

import (
	"fmt"
	"strconv"
)

// Status is the first byte of every response. Status values are also
// errors, so callers can test a class of failure with errors.Is:
//
//	errors.Is(err, abi.StatusNotFound)
type Status uint8

// Status codes (ABI 1.0 and later). Codes are never renumbered; new minors may add
// codes, and a host treats a code it does not know as StatusInternal.
const (
	// StatusOK: the request succeeded; the body is the op's result.
	StatusOK Status = 0
	// StatusNotFound: the record does not exist (or has expired). An empty
	// query result is StatusOK with no items, never StatusNotFound.
	StatusNotFound Status = 1
	// StatusConflict: a precondition failed: a stale version, a create-only
	// write of an existing record, or an alert status transition that is not
	// allowed from the current status.
	StatusConflict Status = 2
	// StatusInvalid: the request is malformed or a field is out of range.
	StatusInvalid Status = 3
	// StatusUnavailable: a dependency of the backend (Redis, say) cannot be
	// reached; the request may succeed later.
	StatusUnavailable Status = 4
	// StatusUnsupported: the backend does not implement this operation or
	// feature; see Metadata.Features.
	StatusUnsupported Status = 5
	// StatusInternal: anything else, including a plugin that trapped.
	StatusInternal Status = 6
	// StatusLimit: a host-enforced limit was exceeded (request or response
	// size, pool wait).
	StatusLimit Status = 7
	// StatusStale (ABI 1.1): the request succeeded and the body is the
	// op's result, as with StatusOK, but it was served from a fallback copy
	// that may be behind the primary store (a Redis backend buffering while
	// Redis is unreachable). Only reads answer it.
	StatusStale Status = 8
	// StatusUnknown (ABI 1.3): the outcome is unknown. The request may or
	// may not have taken effect: the backend sent a write to its store (a
	// command to Redis, say) and lost the answer (a timeout or a dropped
	// connection after sending). Only writes answer it. A caller reads the
	// record back, or retries only a write that is safe to repeat.
	StatusUnknown Status = 9
)

var statusNames = [...]string{
	StatusOK:          "ok",
	StatusNotFound:    "not found",
	StatusConflict:    "conflict",
	StatusInvalid:     "invalid",
	StatusUnavailable: "unavailable",
	StatusUnsupported: "unsupported",
	StatusInternal:    "internal",
	StatusLimit:       "limit exceeded",
	StatusStale:       "stale",
	StatusUnknown:     "outcome unknown",
}

// Known reports whether s is a status code of this ABI version.
func (s Status) Known() bool { return int(s) < len(statusNames) }

// String names the status.
func (s Status) String() string {
	if s.Known() {
		return statusNames[s]
	}
	return "status " + strconv.Itoa(int(s))
}

// Error makes a Status usable as a sentinel error.
func (s Status) Error() string { return s.String() }

// Error is a non-OK response: its status and the plugin's message.
// errors.Is(err, StatusX) holds when Status is StatusX.
type Error struct {
	Status  Status
	Message string
}

// Errorf returns an *Error with status s and a formatted message.
func Errorf(s Status, format string, args ...any) *Error {
	return &Error{Status: s, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Message
}

// Unwrap returns the Status, so errors.Is matches the status sentinels.
func (e *Error) Unwrap() error { return e.Status }
