package main

import (
	"errors"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// When the host's redis capability answers that a request's outcome is
// unknown (sdk.ErrOutcomeUnknown: the request was sent, or may have been,
// and its reply was lost), a write answers it as it is: the caller must
// not take the write for "not applied". A read answers UNAVAILABLE: it
// changed nothing, and the caller may simply ask again.

// failedWith is the error of item it whose request to Redis failed with
// err.
func failedWith(it *item, err error) error {
	if !it.op.Writes() && errors.Is(err, sdk.ErrOutcomeUnknown) {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return abi.Errorf(abi.StatusUnavailable, "%s", ae.Message)
		}
		return abi.Errorf(abi.StatusUnavailable, "%v", err)
	}
	return err
}

// fallBack serves it from the fallback buffer (fallback=buffer) after its
// request to Redis failed: as afterUnavailable does when Redis could not
// be reached, and also for an unconditional write whose outcome is
// unknown, which the buffer replays later (rewriting what may already be
// there, which is harmless for the writes bufferable admits). Such a
// write that the buffer does not take stays unknown.
func (b *backend) fallBack(it *item) {
	switch {
	case errors.Is(it.err, sdk.ErrUnavailable):
		b.afterUnavailable(it)
	case errors.Is(it.err, sdk.ErrOutcomeUnknown) && bufferable(it):
		lost := it.err
		b.afterUnavailable(it)
		if it.err != nil && !errors.Is(it.err, sdk.ErrStale) { // STALE: buffered
			it.err = lost
		}
	}
}
