package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"golang.org/x/time/rate"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/localstore"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// The host capabilities. Each is a host module named abi.ModulePrefix +
// capability, instantiated in the plugin's runtime only when granted.
// Host functions receive the caller's context (its deadline and values are
// the request's) and the calling instance, so one module serves every
// pooled instance. A host function refuses a misbehaving guest by
// panicking, which wazero turns into a trap of that call; the host then
// discards the instance.

func knownCapability(c abi.Capability) bool {
	switch c {
	case abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV, abi.CapabilityRedis, abi.CapabilityEvents,
		abi.CapabilityRedisScripts, abi.CapabilityPostgres:
		return true
	}
	return false
}

// moduleCapability reports whether c is a known capability with a module
// a plugin may import; redis_scripts is a grant only.
func moduleCapability(c abi.Capability) bool {
	return knownCapability(c) && c != abi.CapabilityRedisScripts
}

const i32, i64 = api.ValueTypeI32, api.ValueTypeI64

func (p *plugin) instantiateCapabilities(ctx context.Context, granted []abi.Capability, s *settings, lim *logLimiter) error {
	for _, c := range granted {
		if c == abi.CapabilityRedisScripts {
			// A grant, without a module: the bridge runs the scripts.
			if !p.redisScripts && !s.inspect {
				return fmt.Errorf("%w: capability redis_scripts is granted but the backend's Redis configuration does not grant scripts", ErrIncompatible)
			}
			continue
		}
		b := p.runtime.NewHostModuleBuilder(c.Module())
		switch c {
		case abi.CapabilityLog:
			// write(level i32, ptr i32, len i32)
			maxLine := uint64(p.limits.MaxLogLineBytes)
			b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				p.hostCall(ctx, mod)
				msg := guestBytes(mod, stack[1], stack[2], "log message")
				if uint64(len(msg)) > maxLine {
					msg = msg[:maxLine]
				}
				lim.emit(hclog.Level(int32(stack[0])), string(msg))
			}), []api.ValueType{i32, i32, i32}, nil).WithParameterNames("level", "ptr", "len").Export(abi.FuncLogWrite)
		case abi.CapabilityClock:
			// now() -> i64
			now := s.now
			b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				p.hostCall(ctx, mod)
				stack[0] = uint64(now().UnixNano())
			}), nil, []api.ValueType{i64}).Export(abi.FuncClockNow)
		case abi.CapabilityKV:
			q := localstore.Quota{
				MaxBytes:   p.limits.MaxKVBytes,
				MaxEntries: int(p.limits.MaxKVEntries),
				// A scan answers at most what a reply may hold; a get's
				// one entry is what the guest wrote from its own memory.
				MaxScanBytes: int(min(int64(p.limits.MaxKVScanBytes), p.limits.replyBytes())),
			}
			if p.dataDir == "" {
				p.kv = localstore.New(s.now, time.Second, q)
			} else {
				kv, err := localstore.Open(p.dataDir, s.now, time.Second, q)
				if err != nil {
					// Held by another process: for now. Anything else (a
					// file in the way, no permission): the configuration.
					st := ErrInvalid
					if errors.Is(err, localstore.ErrInUse) {
						st = ErrUnavailable
					}
					return fmt.Errorf("%w: host: backend %s: %w", st, p.name, err)
				}
				if lost := kv.LostCommit(); lost != "" {
					p.log.Error("kv store opened at an older commit", "detail", lost)
				}
				// Callers see their writes refused; the operator is told
				// why (a full disk), and when they are taken again. The
				// store is the data directory's: the backend opened last
				// on it names it.
				log := p.log
				kv.ReportCommits(func(failing error) {
					if failing != nil {
						log.Error("kv store: commits to disk fail; its writes are refused until one succeeds", "dir", p.dataDir, "error", failing)
					} else {
						log.Info("kv store: commits to disk succeed again; writes are taken", "dir", p.dataDir)
					}
				})
				p.kv = kv
			}
			serve := func(ctx context.Context, req []byte, e *abi.Encoder) error { p.serveKV(ctx, req, e); return nil }
			(&exchange{p: p, name: c.Module(), serve: serve, touches: p.kv.Durable(), kv: true}).export(b)
		case abi.CapabilityRedis:
			if p.redis == nil && !s.inspect {
				return fmt.Errorf("%w: capability redis is granted but the backend has no Redis configuration", ErrIncompatible)
			}
			(&exchange{p: p, name: c.Module(), serve: p.serveRedis, remote: true}).export(b)
		case abi.CapabilityPostgres:
			if p.pg == nil && !s.inspect {
				return fmt.Errorf("%w: capability postgres is granted but the backend has no PostgreSQL configuration", ErrIncompatible)
			}
			(&exchange{p: p, name: c.Module(), serve: p.servePostgres, remote: true}).export(b)
		case abi.CapabilityEvents:
			// publish(ptr i32, len i32) -> i32
			gate := &eventGate{rate: rate.NewLimiter(pluginEventsPerSecond, pluginEventsPerSecond)}
			now := s.now
			b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				in := p.hostCall(ctx, mod)
				msg := guestBytes(mod, stack[0], stack[1], "event")
				stack[0] = uint64(p.publishPluginEvent(in, msg, gate, now))
			}), []api.ValueType{i32, i32}, []api.ValueType{i32}).WithParameterNames("ptr", "len").Export(abi.FuncEventsPublish)
		default:
			return fmt.Errorf("%w: capability %q is unknown to this host", ErrIncompatible, c)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("host: capability %s: %w", c, err)
		}
	}
	return nil
}

// callBudget is what one call into an instance has used of the budgets
// the host functions keep per call; instance.call resets it.
type callBudget struct {
	logBytes uint64 // read from guest memory by fd_write to stdout and stderr
	events   uint32 // events published
}

// hostCall returns the calling instance after counting one more host
// call against Limits.MaxHostCalls; past the limit it traps the call. It
// ends the call as refuel does (interrupt) once the call is overdue, so a
// guest looping on host calls, each costly to serve, stops at its
// deadline rather than at its next fuel check thousands of calls later.
func (p *plugin) hostCall(ctx context.Context, mod api.Module) *instance {
	v, ok := p.instances.Load(mod)
	if !ok {
		// Not an instance of this plugin's pool (never expected): nothing
		// to count against.
		p.interrupt(ctx, nil)
		return nil
	}
	in := v.(*instance)
	p.interrupt(ctx, in)
	in.hostCalls++
	if limit := uint64(p.limits.MaxHostCalls) * uint64(in.shares); uint64(in.hostCalls) > limit {
		panic(fmt.Errorf("more than %d host calls in one request", limit))
	}
	return in
}

// guestBytes returns the guest memory at (ptr, n), trapping the call when
// the region is outside memory.
func guestBytes(mod api.Module, ptr, n uint64, what string) []byte {
	b, ok := mod.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		panic(outsideMemory(what, uint32(ptr), uint32(n), mod.Memory().Size()))
	}
	return b
}

// exchange is a capability built on one request/response host function
// pair, as kv and redis are:
//
//	call(req_ptr, req_len, out_ptr, out_cap) -> len
//	result(out_ptr, out_cap) -> len
//
// serve reads the request in place from guest memory and appends the
// whole response (status byte and body) to e. A response that does not fit
// in out_cap is kept as the instance's pending result for result.
type exchange struct {
	p    *plugin
	name string // the capability's module, for messages
	// serve's error is the request's refusal for lack of a grant of the
	// backend's configuration (redisbridge.ErrNotGranted); the response
	// in e says it to the plugin.
	serve func(ctx context.Context, req []byte, e *abi.Encoder) error
	// remote (redis, postgres): the instance's remoteBusy is set during
	// the call, and a response other than INVALID or UNAVAILABLE sets its
	// sentRemote.
	remote bool
	// touches marks the calling instance's call as one that used a
	// durable kv store, which it must wait for before it returns.
	touches bool
	// kv (the kv capability): a put, delete or restore answered OK sets
	// the instance's wroteKV.
	kv bool
}

var exchangeEncoders = sync.Pool{New: func() any { return new(abi.Encoder) }}

func (x *exchange) export(b wazero.HostModuleBuilder) {
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(x.call),
		[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("req_ptr", "req_len", "out_ptr", "out_cap").Export(abi.FuncKVCall)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(x.result),
		[]api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").Export(abi.FuncKVResult)
}

func (x *exchange) call(ctx context.Context, mod api.Module, stack []uint64) {
	in := x.p.hostCall(ctx, mod)
	req, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if !ok { // the message is built only here: a kv call must not allocate
		panic(outsideMemory(x.name+" request", uint32(stack[0]), uint32(stack[1]), mod.Memory().Size()))
	}
	outPtr, outCap := uint32(stack[2]), uint32(stack[3])
	if _, ok := mod.Memory().Read(outPtr, outCap); !ok {
		// Refused before the request is served: a call that traps must
		// not have written.
		panic(outsideMemory(x.name+" output", outPtr, outCap, mod.Memory().Size()))
	}
	e := exchangeEncoders.Get().(*abi.Encoder)
	defer func() {
		if e != nil {
			exchangeEncoders.Put(e)
		}
	}()
	e.Reset()
	var started time.Time
	if x.remote && in != nil {
		in.remoteBusy.Store(true)
		var cancel context.CancelFunc
		ctx, cancel = in.boundedByCall(ctx)
		defer cancel()
		started = time.Now()
	}
	if err := x.serve(ctx, req, e); err != nil && in != nil && in.notGranted == nil {
		in.notGranted = err
	}
	resp := e.Bytes()
	// A kv request answered UNAVAILABLE was refused (a failing disk): it
	// applied and read nothing the call must wait to be durable.
	if x.touches && in != nil && (len(resp) == 0 || abi.Status(resp[0]) != abi.StatusUnavailable) {
		in.usedKV = true
	}
	if x.kv && in != nil && len(req) > 0 && len(resp) > 0 && abi.Status(resp[0]) == abi.StatusOK {
		switch abi.KVOp(req[0]) {
		case abi.KVPut, abi.KVDelete, abi.KVRestore:
			in.wroteKV.Store(true)
		}
	}
	if x.remote && in != nil {
		// Ended by the deadline, or by a timeout of the bridge's own that
		// came as late (a dial's): the store did not answer in time.
		if ctx.Err() != nil || !in.deadline.IsZero() && !time.Now().Before(in.deadline) {
			in.remoteLate.Store(true)
		}
		if len(resp) > 0 {
			if st := abi.Status(resp[0]); st != abi.StatusInvalid && st != abi.StatusUnavailable {
				in.sentRemote.Store(true)
			}
			switch abi.Status(resp[0]) {
			case abi.StatusUnavailable:
				// Waiting on a store that is away, not making it work.
				in.remoteWait.Add(int64(time.Since(started)))
			case abi.StatusUnknown:
				// Sent, and the answer lost: the store may have worked, and
				// the connection is gone (a plugin can end its own session),
				// or it was silent (a Redis frozen for seconds answers
				// nothing until the read timeout): the ticker tells them
				// apart by how often it happens (ticker.loop).
				in.lostWait.Add(int64(time.Since(started)))
				in.remoteLost.Store(true)
			}
		}
		in.remoteBusy.Store(false)
	}
	if uint32(len(resp)) <= outCap {
		if !mod.Memory().Write(outPtr, resp) {
			panic(outsideMemory(x.name+" output", outPtr, outCap, mod.Memory().Size()))
		}
	} else {
		if in == nil {
			panic(fmt.Errorf("%s result of %d bytes does not fit in %d during initialisation", x.name, len(resp), outCap))
		}
		// The encoder becomes the instance's, and the one it held goes
		// back to the pool: a large result (a kv value of many MiB) is
		// not copied again, even by a guest asking for it in a loop.
		in.pending = resp
		e, in.held = in.held, e
	}
	stack[0] = uint64(len(resp))
}

func (x *exchange) result(ctx context.Context, mod api.Module, stack []uint64) {
	in := x.p.hostCall(ctx, mod)
	if in == nil || in.pending == nil {
		panic(fmt.Errorf("%s.result called with no pending result", x.name))
	}
	resp := in.pending
	in.pending = nil
	outPtr, outCap := uint32(stack[0]), uint32(stack[1])
	if uint32(len(resp)) > outCap {
		panic(fmt.Errorf("%s.result: %d bytes do not fit in %d", x.name, len(resp), outCap))
	}
	if !mod.Memory().Write(outPtr, resp) {
		panic(outsideMemory(x.name+" output", outPtr, outCap, mod.Memory().Size()))
	}
	stack[0] = uint64(len(resp))
}

// serveRedis decodes a redis request and runs it through the bridge, with
// the caller's context: its deadline bounds the Redis round trip. A plugin
// of ABI 1.2 or older does not know StatusUnknown: it is answered
// UNAVAILABLE instead, which for it still means the outcome may be
// unknown (ABI section 12.3).
//
// Its error is the bridge's refusal of a request the backend's
// configuration does not grant (a script without scripts, a command
// outside allow_commands), which the plugin is answered INVALID like any
// refused request: Store.callPlugin makes the call's INVALID answers
// ErrInternal, so that the caller is not told its request was at fault.
func (p *plugin) serveRedis(ctx context.Context, reqBytes []byte, e *abi.Encoder) error {
	if p.redis == nil { // only while inspecting
		abi.AppendError(e, abi.StatusUnavailable, "redis: no connection while the plugin is inspected")
		return nil
	}
	start := len(e.Bytes())
	err := p.redis.Serve(ctx, reqBytes, e)
	p.redisStatusFor(e.Bytes()[start:])
	return err
}

// servePostgres runs a postgres request through the bridge, with the
// caller's context: its deadline becomes the statements' timeout in the
// server, and its end cancels them there.
func (p *plugin) servePostgres(ctx context.Context, reqBytes []byte, e *abi.Encoder) error {
	if p.pg == nil { // only while inspecting
		abi.AppendError(e, abi.StatusUnavailable, "postgres: no connection while the plugin is inspected")
		return nil
	}
	p.pg.Serve(ctx, reqBytes, e)
	return nil
}

// redisStatusFor rewrites the status of a redis response the plugin does
// not know: StatusUnknown becomes StatusUnavailable for a plugin of ABI
// 1.2 or older.
func (p *plugin) redisStatusFor(resp []byte) {
	if p.meta.ABI.Minor < unknownSince && len(resp) > 0 && resp[0] == byte(abi.StatusUnknown) {
		resp[0] = byte(abi.StatusUnavailable)
	}
}

// pluginEventsPerSecond rate-limits the events one backend's plugin
// publishes, with bursts of as many; past it publish answers LIMIT.
const pluginEventsPerSecond = 1000

// pluginEventRoom bounds the bytes a backend's plugin's own events may
// hold in its log, per event the log retains: each event's first
// pluginEventRoom bytes are free (a host's own events take 80 to 200), and
// the bytes past them may add up to pluginEventRoom times the retention.
// A log of 100 000 events then holds at most 51.2 MB of the plugin's
// events from one host, however large each may be.
const pluginEventRoom = 256

// eventGate admits the events a backend's plugin publishes: at most
// pluginEventsPerSecond, and within the plugin's room in its log. The
// room counts the bytes past pluginEventRoom of the plugin's events the
// log may still hold, those among the last Retention events the bus took
// from this host; an event that would make them more than pluginEventRoom
// times Retention is refused. The room comes back as later events, the
// host's or the plugin's (small events always fit), push the older ones
// out of the log. RATIONALE.md, "Why are a plugin's own events weighed
// against the log's retention?".
type eventGate struct {
	rate *rate.Limiter

	mu    sync.Mutex
	bus   *events.Bus
	held  []heldEvent // the plugin's large events the log may hold, oldest first
	bytes int         // their weights' sum
}

// heldEvent is a large event a plugin published: taken is the bus's
// count of taken events once it was published, weight its encoded length
// past pluginEventRoom.
type heldEvent struct {
	taken  uint64
	weight int
}

// publish publishes ev, whose encoding is size bytes long, on bus if it
// fits in the room the plugin has in bus's log and the rate allows it,
// and reports whether it did. An event refused for its room takes none
// of the rate.
func (r *eventGate) publish(bus *events.Bus, ev events.Event, size int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bus != bus { // a new bus: a new log
		r.bus, r.held, r.bytes = bus, nil, 0
	}
	retention := bus.Retention()
	for len(r.held) > 0 && bus.Taken()-r.held[0].taken >= uint64(retention) {
		r.bytes -= r.held[0].weight
		r.held = r.held[1:]
	}
	weight := max(size-pluginEventRoom, 0)
	if r.bytes+weight > retention*pluginEventRoom || !r.rate.Allow() {
		return false
	}
	bus.Publish(ev)
	if weight > 0 {
		// Read after Publish, the count is at or past the event's own
		// place in the log: it leaves the room no earlier than the log.
		r.held = append(r.held, heldEvent{taken: bus.Taken(), weight: weight})
		r.bytes += weight
	}
	return true
}

// maxPluginEventBytes is the longest encoded PluginEvent that can pass
// Check: kind, op, agent ID, key and data at their longest, each with its
// length prefix. A longer message is refused before it is decoded, so a
// guest cannot make the host copy megabytes of a string it will refuse.
const maxPluginEventBytes = 2*abi.MaxEventNameLength + 2*abi.MaxIDLength + abi.MaxEventData + 5*binary.MaxVarintLen32

// publishPluginEvent decodes, checks and publishes an event a plugin sent
// through storagehost_events.publish from the calling instance in (nil
// only during initialisation), and returns the status publish answers.
// The bus is the store's, set once it is open: an instance publishing
// while the store is still being opened (from its configure call) is
// answered UNAVAILABLE.
func (p *plugin) publishPluginEvent(in *instance, msg []byte, gate *eventGate, now func() time.Time) abi.Status {
	if len(msg) > maxPluginEventBytes {
		return abi.StatusLimit
	}
	var ev abi.PluginEvent
	d := abi.NewDecoder(msg)
	ev.Decode(d)
	if err := d.Finish(); err != nil {
		return abi.StatusInvalid
	}
	if err := ev.Check(); err != nil {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return ae.Status
		}
		return abi.StatusInvalid
	}
	bus := p.events.Load()
	if bus == nil {
		return abi.StatusUnavailable
	}
	if in != nil && uint64(in.budget.events) >= uint64(p.limits.MaxEventsPerCall)*uint64(in.shares) {
		return abi.StatusLimit
	}
	published := events.Event{Kind: ev.Kind, Op: ev.Op, AgentID: ev.AgentID, Key: ev.Key, Time: now(), Data: bytes.Clone(ev.Data)}
	if !gate.publish(bus, published, len(msg)) {
		return abi.StatusLimit
	}
	if in != nil {
		in.budget.events++
	}
	return abi.StatusOK
}

// serveKV decodes a kv request and runs it on the backend's store.
func (p *plugin) serveKV(_ context.Context, reqBytes []byte, e *abi.Encoder) {
	var req abi.KVRequest
	d := abi.NewDecoder(reqBytes)
	req.Decode(d)
	if d.Finish() != nil {
		abi.AppendError(e, abi.StatusInvalid, "kv request: "+wirepath.Fault("KVRequest", reqBytes, d))
		return
	}
	p.kv.Do(&req, e)
}

// logLimiter writes plugin log lines to the backend's logger, at most
// perSecond a second; dropped lines are counted and reported.
type logLimiter struct {
	log     hclog.Logger
	limit   *rate.Limiter
	maxLine int // Limits.MaxLogLineBytes: a line's bytes once escaped
	dropped atomic.Int64
}

func newLogLimiter(log hclog.Logger, perSecond float64, maxLine int) *logLimiter {
	burst := max(int(perSecond), 1)
	return &logLimiter{log: log, limit: rate.NewLimiter(rate.Limit(perSecond), burst), maxLine: maxLine}
}

func (l *logLimiter) emit(level hclog.Level, msg string) {
	if level < hclog.Trace || level > hclog.Error {
		level = hclog.Info
	}
	if min := l.log.GetLevel(); min == hclog.Off || level < min {
		return // filtered out: costs no token
	}
	if !l.limit.Allow() {
		l.dropped.Add(1)
		return
	}
	if n := l.dropped.Swap(0); n > 0 {
		l.log.Warn("plugin log lines dropped by the rate limit", "dropped", n)
	}
	// Escaping makes a control byte four: the line is bounded as the
	// log writes it (an outside check's plugin wrote lines of 4 096
	// escape bytes, 16 KiB each once escaped, 1.6 MB of log a second).
	l.log.Log(level, oneLine(msg, l.maxLine))
}

// WASI errno values fd_write answers (wasi_snapshot_preview1).
const (
	errnoBadf     = 8
	errnoFault    = 21
	errnoFbig     = 22
	errnoTimedout = 73
)

// iovecCost is what each iovec costs the fd_write budget beyond its bytes:
// the descriptor the host reads, so that a write of many empty iovecs is
// bounded too.
const iovecCost = 8

// instantiateWASI instantiates WASI (wasi_snapshot_preview1) with an
// fd_write of the host's own: stdout and stderr go to lim, one log line per
// line, within the call's budget (Limits.MaxLogBytesPerCall) and deadline.
// The other descriptors have nothing to write to (the module config mounts
// no files). random_get, poll_oneoff and the path functions are the
// host's too (wasi.go).
func (p *plugin) instantiateWASI(ctx context.Context, lim *logLimiter) error {
	b := p.runtime.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	out := lim.writer(hclog.Info, int(p.limits.MaxLogLineBytes))
	errOut := lim.writer(hclog.Warn, int(p.limits.MaxLogLineBytes))
	// fd_write(fd i32, iovs i32, iovs_len i32, result.nwritten i32) -> errno i32
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		var w io.Writer
		switch uint32(stack[0]) {
		case 1:
			w = out
		case 2:
			w = errOut
			if in := p.instanceOf(mod); in != nil && in.initOut != nil {
				w = io.MultiWriter(errOut, in.initOut)
			}
		default:
			stack[0] = errnoBadf
			return
		}
		stack[0] = p.fdWrite(ctx, mod, w, uint32(stack[1]), uint32(stack[2]), uint32(stack[3]))
	}), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("fd", "iovs", "iovs_len", "result.nwritten").Export("fd_write")
	// random_get(buf i32, buf_len i32) -> errno i32 (wasi.go)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = p.randomGet(ctx, mod, uint32(stack[0]), uint32(stack[1]))
	}), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("buf", "buf_len").Export("random_get")
	// poll_oneoff(in i32, out i32, nsubscriptions i32, result.nevents i32) -> errno i32 (wasi.go)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = p.pollOneoff(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]))
	}), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").Export("poll_oneoff")
	exportNoPaths(b)
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host: wasi: %w", err)
	}
	return nil
}

// fdWrite writes the iovecs at iovs to w, as WASI's fd_write, until the
// call's budget is spent or its deadline has passed: a write cut short
// reports the bytes it took (a short write, which the guest's runtime
// retries), and one that could take nothing fails with EFBIG or
// ETIMEDOUT. So one fd_write of thousands of iovecs over a large region
// costs the host at most the budget, not what the guest asked.
func (p *plugin) fdWrite(ctx context.Context, mod api.Module, w io.Writer, iovs, n, resultPtr uint32) uint64 {
	mem := mod.Memory()
	if uint64(n)*8 > uint64(mem.Size()) {
		return errnoFault
	}
	descs, ok := mem.Read(iovs, n*8)
	if !ok {
		return errnoFault
	}
	in := p.instanceOf(mod)
	var spent *uint64
	budget := uint64(p.limits.MaxLogBytesPerCall)
	if in != nil {
		spent = &in.budget.logBytes
		budget *= uint64(in.shares)
	} else {
		spent = new(uint64) // not a pooled instance: this write alone
	}
	var written uint32
	errno := uint64(0)
	for i := range n {
		if p.overdue(ctx, in) {
			errno = errnoTimedout
			break
		}
		ptr := binary.LittleEndian.Uint32(descs[8*i:])
		size := binary.LittleEndian.Uint32(descs[8*i+4:])
		if *spent+iovecCost > budget {
			errno = errnoFbig
			break
		}
		*spent += iovecCost
		b, ok := mem.Read(ptr, size)
		if !ok {
			return errnoFault
		}
		take := min(uint64(len(b)), budget-*spent)
		*spent += take
		_, _ = w.Write(b[:take]) // lineWriter never fails
		written += uint32(take)
		if take < uint64(len(b)) {
			break
		}
	}
	if written == 0 && errno != 0 {
		return errno
	}
	if !mem.WriteUint32Le(resultPtr, written) {
		return errnoFault
	}
	return 0
}

// instanceOf returns the pooled instance of mod, or nil, without counting
// a host call.
func (p *plugin) instanceOf(mod api.Module) *instance {
	if v, ok := p.instances.Load(mod); ok {
		return v.(*instance)
	}
	return nil
}

// overdue reports whether the call in which a host function runs should
// stop: its context has ended, or it has run past Limits.CallTimeout (which
// refuel enforces in untrusted guest code only, and not at all in trusted
// plugins).
func (p *plugin) overdue(ctx context.Context, in *instance) bool {
	if ctx.Err() != nil {
		return true
	}
	if in == nil {
		return false
	}
	// An abandoned trusted call is past its deadline by definition, and its
	// start time is cleared when its caller was released.
	if in.timedOut.Load() || in.state.Load() == guestAbandoned {
		return true
	}
	started := in.started.Load()
	return started != 0 && monoNow()-started > int64(p.limits.CallTimeout)
}

// writer adapts the limiter to WASI stdout/stderr, one log line per line,
// each cut to maxLine bytes.
func (l *logLimiter) writer(level hclog.Level, maxLine int) io.Writer {
	return &lineWriter{max: maxLine, emit: func(line string) { l.emit(level, line) }}
}

// firstLine keeps the first line of text written to it that is not
// blank, up to maxFirstLine bytes: what a failed _initialize said on
// stderr (Go prints "panic: …" there first, then the goroutines).
type firstLine struct {
	buf  []byte
	done bool
}

const maxFirstLine = 512

func (f *firstLine) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !f.done {
		if len(f.buf) == 0 {
			p = bytes.TrimLeft(p, "\r\n")
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p)
		} else {
			f.done = len(f.buf)+i > 0
		}
		f.buf = append(f.buf, p[:min(i, maxFirstLine-len(f.buf))]...)
		f.done = f.done || len(f.buf) == maxFirstLine
		p = p[i:]
	}
	return n, nil
}

// said returns the line, made fit for one line of a log (logText).
func (f *firstLine) said() string { return logText(string(bytes.TrimSpace(f.buf))) }

// lineWriter splits writes into lines. A line reaching max bytes is
// emitted at once, cut there, and the rest of it dropped up to the next
// newline, so a guest writing megabytes with no newline costs the host max
// bytes, not megabytes.
type lineWriter struct {
	mu       sync.Mutex
	buf      []byte
	max      int
	skipping bool // the current line was emitted cut; drop to its end
	emit     func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.skipping {
			w.buf = append(w.buf, chunk[:min(len(chunk), w.max-len(w.buf))]...)
			if len(w.buf) == w.max && len(chunk) > 0 {
				w.emit(string(w.buf))
				w.buf, w.skipping = w.buf[:0], true
			}
		}
		if i < 0 {
			break
		}
		if !w.skipping {
			w.emit(string(w.buf))
		}
		w.buf, w.skipping = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}
