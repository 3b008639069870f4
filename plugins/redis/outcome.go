package main

import (
	"errors"
	"fmt"
	"time"

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
	if !it.Op.Writes() && errors.Is(err, sdk.ErrOutcomeUnknown) {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return abi.Errorf(abi.StatusUnavailable, "%s", ae.Message)
		}
		return abi.Errorf(abi.StatusUnavailable, "%v", err)
	}
	return err
}

// fallBack serves it from the fallback buffer (fallback=buffer) after its
// request to Redis failed UNAVAILABLE: nothing was sent (afterUnavailable).
//
// A write whose outcome is unknown is never acknowledged from the buffer:
// its commands may still reach Redis at any later time (a pipeline a
// flusher holds, bytes a network or a proxy delivers late), after the
// buffer's replay of the same write and after later writes of its record
// that the replay let through. Acknowledged, such a late copy would
// overwrite them: an acknowledged write lost. It stays UNKNOWN, as the
// caller must be told.
func (b *backend) fallBack(it *item) {
	if errors.Is(it.Err, sdk.ErrUnavailable) {
		b.afterUnavailable(it)
	}
}

// isLimit reports whether err is the host's LIMIT for a request whose
// replies passed the backend's reply bound (the response bound, at most
// an eighth of the instance's memory): the commands ran, their replies
// were dropped. A read then asks for fewer records at a time.
func isLimit(err error) bool {
	var ae *abi.Error
	return errors.As(err, &ae) && ae.Status == abi.StatusLimit
}

// tooLarge is the error of a read of one record whose reply alone passed
// the backend's reply bound (err): LIMIT, naming the record. Asking again
// gets the same answer.
func tooLarge(it *item, err error) error {
	return abi.Errorf(abi.StatusLimit, "%s is larger than one read may answer: %s", it.record(), limitMessage(err))
}

// limitMessage is the message of the host's LIMIT err.
func limitMessage(err error) string {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

// record names the item's record.
func (it *item) record() string {
	switch it.kind() {
	case 'm':
		return fmt.Sprintf("metric %q/%q at %s", it.Metric.AgentID, it.Metric.Name, it.Metric.Timestamp.UTC().Format(time.RFC3339Nano))
	case 'a':
		return fmt.Sprintf("alert %q", it.Alert.ID)
	case 's':
		return fmt.Sprintf("agent state %q", it.State.AgentID)
	}
	return it.Op.String()
}
