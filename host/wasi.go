package host

import (
	"context"
	"crypto/rand"
	"encoding/binary"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Three WASI functions whose work grows with what the guest asks are the
// host's own, fd_write (instantiateWASI), random_get and poll_oneoff: each
// stops at its call's deadline, context and plugin close (interrupt)
// while it works. So are the path functions (noPaths), which answer
// EBADF without reading their path. Others of wazero's
// wasi_snapshot_preview1 also do work that grows with their arguments
// (fd_read and fd_pread walk every iovec they are given, empty ones too,
// in the guest's memory); what bounds a loop around them is the fuel
// every call to an import costs an untrusted guest
// (wasmcheck.ImportCallCost), which brings the deadline check within a
// few such calls.

// More WASI errno values (wasi_snapshot_preview1).
const (
	errnoInval  = 28
	errnoNotsup = 58
	errnoNomem  = 48
)

// randomChunk is what random_get fills between two checks of its call's
// deadline: about 0.2 ms of the kernel's random source here, and short
// enough that the Go scheduler is not held up by one fill, which it
// cannot preempt (a fill of 60 MiB paused the whole process for 250 ms).
const randomChunk = 64 << 10

// randomGet fills the guest's buffer (buf, n) with random bytes, as WASI's
// random_get, randomChunk at a time, ending the call (interrupt) once it
// is overdue.
func (p *plugin) randomGet(ctx context.Context, mod api.Module, buf, n uint32) uint64 {
	b, ok := mod.Memory().Read(buf, n)
	if !ok {
		return errnoFault
	}
	in := p.instanceOf(mod)
	for len(b) > 0 {
		p.interrupt(ctx, in)
		k := min(len(b), randomChunk)
		_, _ = rand.Read(b[:k]) // never fails (crypto/rand)
		b = b[k:]
	}
	return 0
}

// maxPollSubscriptions bounds the subscriptions of one poll_oneoff: Go's
// runtime asks for one clock and one per descriptor it waits on, and a
// plugin has no descriptor to wait on but its standard streams.
const maxPollSubscriptions = 1024

// WASI's subscription and event layouts (wasi_snapshot_preview1): a
// subscription is 48 bytes (userdata, tag at 8, its union from 16), an
// event 32 (userdata, errno at 8, type at 10).
const (
	pollSubscription = 48
	pollEvent        = 32
	eventClock       = 0
	eventFDRead      = 1
	eventFDWrite     = 2
)

// pollOneoff is WASI's poll_oneoff for the module the host makes, as
// wazero answers it there, with at most maxPollSubscriptions
// subscriptions (ENOMEM past them): a relative clock is answered at once
// (the module's sleeps do not sleep), an absolute one is not supported;
// a read of a standard stream is ready (stdin is empty: ready to read
// nothing), answered after the others; a write to one is not supported;
// any other descriptor is EBADF.
func (p *plugin) pollOneoff(ctx context.Context, mod api.Module, subsAt, eventsAt, n, neventsAt uint32) uint64 {
	p.interrupt(ctx, p.instanceOf(mod))
	switch {
	case n == 0:
		return errnoInval
	case n > maxPollSubscriptions:
		return errnoNomem
	}
	mem := mod.Memory()
	subs, ok := mem.Read(subsAt, n*pollSubscription)
	if !ok {
		return errnoFault
	}
	events, ok := mem.Read(eventsAt, n*pollEvent)
	if !ok {
		return errnoFault
	}
	clear(events)
	if !mem.WriteUint32Le(neventsAt, n) {
		return errnoFault
	}
	next := 0 // the next event's index
	event := func(sub []byte, errno uint16) {
		e := events[next*pollEvent:]
		copy(e, sub[:8])
		binary.LittleEndian.PutUint16(e[8:], errno)
		e[10] = sub[8]
		next++
	}
	for i := range n {
		sub := subs[i*pollSubscription:]
		switch sub[8] {
		case eventClock:
			switch binary.LittleEndian.Uint16(sub[40:]) {
			case 0: // relative
			case 1: // subscription_clock_abstime
				return errnoNotsup
			default:
				return errnoInval
			}
			event(sub, 0)
		case eventFDRead, eventFDWrite:
			fd := int32(binary.LittleEndian.Uint32(sub[16:]))
			switch {
			case fd < 0:
				return errnoBadf
			case fd > 2:
				event(sub, errnoBadf)
			case sub[8] == eventFDWrite:
				event(sub, errnoNotsup)
			}
		default:
			return errnoInval
		}
	}
	for i := range n { // reads of the standard streams: ready
		sub := subs[i*pollSubscription:]
		if fd := int32(binary.LittleEndian.Uint32(sub[16:])); sub[8] == eventFDRead && fd >= 0 && fd <= 2 {
			event(sub, 0)
		}
	}
	return 0
}

// noPaths are WASI's path functions, with their parameters: each names a
// path from a directory's descriptor, and the host opens no directory for
// a plugin, so each answers EBADF, reading nothing. wazero's own copy and
// clean the guest's path before they look at the descriptor: an outside
// check's plugin calling path_open in a loop on a path of 62 MiB made
// the host allocate twice that a call, outside the plugin's memory, and
// eight such instances took a daemon from 190 MB to 744 MB.
var noPaths = []struct {
	name   string
	params []api.ValueType
}{
	{"path_create_directory", []api.ValueType{i32, i32, i32}},
	{"path_filestat_get", []api.ValueType{i32, i32, i32, i32, i32}},
	{"path_filestat_set_times", []api.ValueType{i32, i32, i32, i32, i64, i64, i32}},
	{"path_link", []api.ValueType{i32, i32, i32, i32, i32, i32, i32}},
	{"path_open", []api.ValueType{i32, i32, i32, i32, i32, i64, i64, i32, i32}},
	{"path_readlink", []api.ValueType{i32, i32, i32, i32, i32, i32}},
	{"path_remove_directory", []api.ValueType{i32, i32, i32}},
	{"path_rename", []api.ValueType{i32, i32, i32, i32, i32, i32}},
	{"path_symlink", []api.ValueType{i32, i32, i32, i32, i32}},
	{"path_unlink_file", []api.ValueType{i32, i32, i32}},
}

// exportNoPaths exports noPaths to b, over wazero's.
func exportNoPaths(b wazero.HostModuleBuilder) {
	for _, f := range noPaths {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			stack[0] = errnoBadf
		}), f.params, []api.ValueType{i32}).Export(f.name)
	}
}
