// Package rawcall lets the conformance suite (host/storetest) send a
// plugin requests that the typed API of host.Store never sends: malformed
// bodies, unknown ops, fields out of range, ops behind features the
// plugin does not advertise. The host package sets Call when it is
// initialised; nothing else may.
package rawcall

import (
	"context"

	"github.com/storage-host/storage-host/abi"
)

// Call sends op with the request body req, exactly as given, to a plugin
// instance of store (a *host.Store), with none of the host's own checks,
// and returns the plugin's status and body (a copy). err is set only when
// no answer came back (the store is closed, the instance trapped or ran
// out of time); a plugin's error answer is a status, not an err.
var Call func(ctx context.Context, store any, op abi.Op, req []byte) (status abi.Status, body []byte, err error)
