package abi

// A response, from storage_call or from a capability's call, is one status
// byte followed by a body. When the status is StatusOK the body is the op's
// result; otherwise it is a UTF-8 error message (possibly empty).

// AppendError appends a whole error response to e.
func AppendError(e *Encoder, s Status, msg string) {
	e.U8(uint8(s))
	e.Raw([]byte(msg))
}

// ParseResponse splits a response into its body, or returns an *Error for
// a non-OK status. body aliases resp. For StatusStale it returns both: the
// body, which holds a result, and an *Error saying it may be stale.
func ParseResponse(resp []byte) (body []byte, err error) {
	if len(resp) == 0 {
		return nil, &Error{Status: StatusInternal, Message: "empty response: no status byte (a response is its status, one byte, then its body: abi/README.md, section 8)"}
	}
	s := Status(resp[0])
	switch s {
	case StatusOK:
		return resp[1:], nil
	case StatusStale:
		return resp[1:], &Error{Status: StatusStale, Message: "served from a fallback copy that may be behind"}
	}
	if !s.Known() {
		// Most likely a response without its status byte: say so.
		return nil, Errorf(StatusInternal, "unknown status %d (a response starts with its status, one byte below %d: is it missing?): %s",
			s, len(statusNames), resp[1:])
	}
	return nil, &Error{Status: s, Message: string(resp[1:])}
}
