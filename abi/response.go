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
// a non-OK status. body aliases resp.
func ParseResponse(resp []byte) (body []byte, err error) {
	if len(resp) == 0 {
		return nil, &Error{Status: StatusInternal, Message: "empty response"}
	}
	s := Status(resp[0])
	if s == StatusOK {
		return resp[1:], nil
	}
	if !s.Known() {
		return nil, Errorf(StatusInternal, "unknown status %d: %s", s, resp[1:])
	}
	return nil, &Error{Status: s, Message: string(resp[1:])}
}
