package host

// ShareEveryCall makes st send every single record operation as a batch
// of its own, the path calls that find every slot taken take, so that
// a test can run the conformance suite through it: its gets too, which
// the reads a plugin declared would otherwise answer.
func ShareEveryCall(st *Store) {
	st.shareEvery = true
	ReadThroughPlugin(st)
}

// ReadThroughPlugin turns off the kv, redis and postgres reads st's
// plugin declared (kvreads.go, redisreads.go, pgreads.go): its gets reach the plugin, as if it
// declared none, which
// its Metadata then says (the conformance suite checks declared reads).
func ReadThroughPlugin(st *Store) {
	st.p.kvReads = kvReads{}
	st.p.meta.KVReads = nil
	st.p.redisReads = redisReads{}
	st.p.meta.RedisReads = nil
	st.p.pgReads = pgReads{}
	st.p.meta.PGReads = nil
}

// HoldSharedSlots takes every slot of st's shared calls, so that the
// single operations made until release queue; release hands the slots
// to flushers, which send the queued operations as shared batches.
func HoldSharedSlots(st *Store) (release func()) {
	for range st.shared.Slots() {
		st.shared.Start()
	}
	return func() {
		for range st.shared.Slots() {
			st.shared.Finish()
		}
	}
}

// SharedQueued is how many of st's single operations wait for a slot.
func SharedQueued(st *Store) int { return st.shared.Queued() }

// The pacing of ticks (tick.go): the ticks of one round, the tick
// interval, and the bound on the events of the writes ticks report.
const (
	MoreTicks           = moreTicks
	TickInterval        = tickInterval
	TickEventsPerSecond = tickEventsPerSecond
	TickEventsBurst     = tickEventsBurst
	CloseFlush          = closeFlush
)

// HaltTicks stops st's background ticks, waits for the one under way, and
// returns how many ticks st has made: what Close ticks after it is the
// flush's own.
func HaltTicks(st *Store) uint64 {
	st.ticker.halt()
	<-st.ticker.done
	return st.ticker.ticks.Load()
}

// CrashAtReportedWrites makes st's ticker halt at the first tick that
// reports writes, before it publishes their events, as a crash would.
func CrashAtReportedWrites(st *Store) { st.ticker.crashAtWrites.Store(true) }

// LogText is logText, for tests outside the package that compare a
// plugin's message as callers receive it.
var LogText = logText
