package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/rawcall"
)

func init() { rawcall.Call = rawCall }

// rawCall is rawcall.Call: op and req go to a plugin instance as given,
// past the feature checks and encoders of the typed API, so that the
// conformance suite can check what a plugin answers to requests the host
// never sends. A trap discards the instance, as for any call.
func rawCall(ctx context.Context, store any, op abi.Op, req []byte) (abi.Status, []byte, error) {
	s, ok := store.(*Store)
	if !ok {
		return 0, nil, fmt.Errorf("rawcall: %T is not a *host.Store", store)
	}
	if !s.calls.enter() {
		return 0, nil, ErrClosed
	}
	defer s.calls.leave()
	in, err := s.p.pool.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	body, err := in.call(ctx, op, req, 1)
	s.ticker.called(op, op.Writes())
	if trap, trapped := asTrap(err); err != nil && trapped {
		s.p.traps.Add(1)
		s.p.pool.discard(context.WithoutCancel(ctx), in)
		return 0, nil, fmt.Errorf("backend %s: plugin failed on %s: %w", s.p.name, op, trap.err)
	}
	body = bytes.Clone(body)
	usedKV := in.usedKV
	s.p.pool.put(in, false)
	if err := s.p.syncKV(ctx, usedKV, true); err != nil {
		return 0, nil, err
	}
	var ae *abi.Error
	switch {
	case err == nil:
		return abi.StatusOK, body, nil
	case errors.As(err, &ae) && ae.Status == abi.StatusStale:
		return abi.StatusStale, body, nil
	case errors.As(err, &ae):
		return ae.Status, []byte(ae.Message), nil
	}
	return 0, nil, err
}
