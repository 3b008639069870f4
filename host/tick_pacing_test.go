package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redistest"
)

// Plugins whose ticks always answer More, through
// testdata/plugins/hostile/tickspin (no write) and tickflood (4096 writes
// it never received, each tick). Nobody calls the backend.

func openTickHostile(t *testing.T, name string) (*host.Store, time.Time) {
	t.Helper()
	st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath(name)}, host.WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st, time.Now() // the first tick is a tick interval away

}

// requireClosesSoon requires Close to return well before its flush's
// bound: ticks that answer More but leave no fewer writes pending are no
// progress.
func requireClosesSoon(t *testing.T, st *host.Store) {
	t.Helper()
	start := time.Now()
	require.NoError(t, st.Close(context.Background()))
	require.Less(t, time.Since(start), host.CloseFlush*7/10, "Close does not flush for its whole bound")
}

// TestTickMoreIsPaced: ticks answered More follow at once only a few
// times a tick interval, not as fast as the plugin answers.
func TestTickMoreIsPaced(t *testing.T) {
	st, started := openTickHostile(t, "tickspin")
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool {
		return st.Stats().Ticks >= 2*host.MoreTicks && time.Since(started) >= time.Second
	}, "ticking for a second; %d ticks", st.Stats().Ticks)
	ticks := st.Stats().Ticks
	elapsed := time.Since(started)
	rounds := uint64(elapsed/host.TickInterval) + 2
	t.Logf("%d ticks in %v", ticks, elapsed.Round(time.Millisecond))
	require.LessOrEqual(t, ticks, host.MoreTicks*rounds, "at most %d ticks a round, a round a tick interval", host.MoreTicks)
	requireClosesSoon(t, st)
}

// TestTickEventsAreRateLimited: the events of the writes ticks report are
// published at most at the bucket's rate after its burst, however many
// writes the ticks report; the ticks wait for them.
func TestTickEventsAreRateLimited(t *testing.T) {
	st, started := openTickHostile(t, "tickflood")
	want := uint64(host.TickEventsBurst + 12*abi.MaxTickWrites)
	redistest.WaitFor(t, 30*time.Second, 10*time.Millisecond, func() bool { return st.Stats().Events.Published >= want },
		"events past the burst are published; %d", st.Stats().Events.Published)
	s := st.Stats()
	elapsed := time.Since(started)
	published := s.Events.Published + s.Events.Dropped
	allowed := uint64(host.TickEventsBurst + host.TickEventsPerSecond*elapsed.Seconds() + abi.MaxTickWrites)
	t.Logf("%d events in %d ticks in %v", published, s.Ticks, elapsed.Round(time.Millisecond))
	require.LessOrEqual(t, published, allowed, "at most the burst and the rate")
	require.LessOrEqual(t, s.Ticks, allowed/abi.MaxTickWrites+1, "a tick waits for its events before the next")
	requireClosesSoon(t, st)
}

// TestTickEventsKeepAPromptSubscriber: a tick's events are published a
// chunk at a time, so a subscriber that reads as they come keeps up with
// ticks of a full report each; published at once, 4 096 events ended it
// slow_subscriber at the first tick, with room for 1 024.
func TestTickEventsKeepAPromptSubscriber(t *testing.T) {
	st, _ := openTickHostile(t, "tickflood")
	sub, err := st.Subscribe(t.Context(), events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	want := 3 * abi.MaxTickWrites
	got := 0
	for got < want {
		select {
		case _, ok := <-sub.Events():
			require.True(t, ok, "the subscription ended after %d events: %v", got, sub.Err())
			got++
		case <-time.After(10 * time.Second):
			require.Failf(t, "events stopped", "%d of %d", got, want)
		}
	}
	requireClosesSoon(t, st)
}

// TestFailingTicksBackOff: a plugin whose every tick traps, with nobody
// calling it, is ticked less and less often (maxTickBackoff): a few ticks
// in three seconds, not thirty, and its discards' log stays within its
// rate. A tick interval's worth of ticks, then a doubling wait each.
func TestFailingTicksBackOff(t *testing.T) {
	var log foreignLog
	st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath("ticktrap")}, host.WithCompilationCache(""), host.WithLogger(log.logger()))
	require.NoError(t, err)
	started := time.Now()
	time.Sleep(3 * time.Second)
	s := st.Stats()
	elapsed := time.Since(started)
	require.NoError(t, st.Close(context.Background()))
	t.Logf("%d ticks, %d failed, %d traps in %v", s.Ticks, s.TickFailures, s.Traps, elapsed.Round(time.Millisecond))
	require.GreaterOrEqual(t, s.Ticks, uint64(3), "the plugin is still ticked")
	require.Equal(t, s.Ticks, s.TickFailures)
	// 0, 0.1, 0.3, 0.7, 1.5 and 3.1 s: six ticks in three seconds, and
	// one more for a slow machine; thirty without the backoff.
	require.LessOrEqual(t, s.Ticks, uint64(7), "ticks that keep failing back off")
	discards := strings.Count(log.String(), "plugin instance discarded")
	require.LessOrEqual(t, discards, int(2*elapsed.Seconds())+2, "the discards' log is rate-limited")
}

// TestLongTicksRest: a plugin whose every tick spins and succeeds,
// reporting nothing, with nobody calling it, rests nine times what its
// round ran past 5 ms: for 400 ms spins (tickslow), two ticks in four
// seconds, not ten; for 48 ms spins (tickbrief), just under the bound of
// a round, about nine, not forty.
func TestLongTicksRest(t *testing.T) {
	for _, c := range []struct {
		plugin string
		most   uint64
	}{{"tickslow", 2}, {"tickbrief", 11}} {
		t.Run(c.plugin, func(t *testing.T) {
			t.Parallel()
			st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath(c.plugin), Capabilities: []abi.Capability{abi.CapabilityClock}},
				host.WithCompilationCache(""))
			require.NoError(t, err)
			time.Sleep(4 * time.Second)
			s := st.Stats()
			require.NoError(t, st.Close(context.Background()))
			t.Logf("%d ticks, %d failed", s.Ticks, s.TickFailures)
			require.Zero(t, s.TickFailures, "its ticks succeed")
			require.GreaterOrEqual(t, s.Ticks, uint64(1))
			require.LessOrEqual(t, s.Ticks, c.most, "its rounds rest nine times what they ran past 5 ms")
		})
	}
}

// TestTicksLosingTheirSessionBackOff: a plugin whose every tick ends its
// own PostgreSQL session (testdata/plugins/hostile/tickterm), with nobody
// calling it, backs off as after a fault: a few ticks in three seconds,
// not thirty, and as few new sessions.
func TestTicksLosingTheirSessionBackOff(t *testing.T) {
	s := postgresTicksIn(t, "tickterm", 3*time.Second)
	require.GreaterOrEqual(t, s.Ticks, uint64(2), "the plugin is still ticked")
	// 0, 0.1, 0.3, 0.7, 1.5 s and 3.1 s: about five ticks in three
	// seconds, and a few more for a slow machine; thirty without.
	require.LessOrEqual(t, s.Ticks, uint64(8), "ticks that lose their session back off")
}

// TestTicksLosingTheirAnswerAfterWorkRest: a plugin whose every tick
// holds its PostgreSQL session 0.3 s and then ends it
// (testdata/plugins/hostile/tickwork), with nobody calling it. The first
// round to lose an answer rests the backoff alone (the wait may have been
// a store's silence, which must not hold a replay back); the next ones
// rest nine times it, as for the tick's own time: ticks at about 0, 0.4,
// 3.7 and 7 s, three in six seconds; six if the store's time passed for a
// wait every time.
func TestTicksLosingTheirAnswerAfterWorkRest(t *testing.T) {
	s := postgresTicksIn(t, "tickwork", 6*time.Second)
	require.GreaterOrEqual(t, s.Ticks, uint64(2), "the plugin is still ticked")
	require.LessOrEqual(t, s.Ticks, uint64(4), "a store's time before a lost answer is the round's own but the first in a minute")
}

// postgresTicksIn opens the hostile postgres plugin fixture, lets it tick
// with nobody calling it for d (the window its ticks are counted in), and
// returns its stats once closed.
func postgresTicksIn(t *testing.T, fixture string, d time.Duration) host.Stats {
	t.Helper()
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	cfg := postgresConfig(t)
	cfg.Plugin = hostilePath(fixture)
	st, err := host.Open(context.Background(), cfg, host.WithCompilationCache(""))
	require.NoError(t, err)
	time.Sleep(d)
	s := st.Stats()
	require.NoError(t, st.Close(context.Background()))
	t.Logf("%d ticks, %d failed", s.Ticks, s.TickFailures)
	return s
}
