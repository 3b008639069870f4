package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redistest"
)

// An append Redis refuses for good (the stream at the greatest ID, a key
// of another type) is counted and surfaced, not retried for ever: once
// the cause is gone, the events after it are appended.
func TestRefusedAppendsAreDroppedNotRetried(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	key := redistest.Prefix(t) + "events"
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	b := events.NewRedis(c, key, events.Options{}, nil)
	defer func() { // bounded: an appender retrying for ever would not drain
		closeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_ = b.Close(closeCtx)
	}()

	for _, poison := range []func(){
		func() { // the greatest ID: every later XADD is refused
			require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "18446744073709551615-18446744073709551615", Values: []any{"k", "x"}}).Err())
		},
		func() { require.NoError(t, c.Set(ctx, key, "not a stream", 0).Err()) }, // WRONGTYPE
	} {
		before := b.Stats()
		poison()
		b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
		redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool { return b.Stats().Refused == before.Refused+1 }, "the event is refused")
		require.ErrorIs(t, b.Err(), events.ErrRefused)
		assert.NotEmpty(t, b.Stats().AppendError)
		assert.Equal(t, before.Dropped+1, b.Stats().Dropped, "refused events are dropped events")

		require.NoError(t, c.Del(ctx, key).Err())
		b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 1))
		redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool { return c.XLen(ctx, key).Val() == 1 }, "the next event is appended")
		redistest.WaitFor(t, time.Second, 10*time.Millisecond, func() bool { return b.Err() == nil }, "a success clears Err")
		assert.Equal(t, before.Published+1, b.Stats().Published)
		require.NoError(t, c.Del(ctx, key).Err())
	}
}

// A Redis that cannot be reached is an outage, not a refusal: the events
// wait and are appended once it is back.
func TestUnreachableRedisIsRetried(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	b := events.NewRedis(c, "events", events.Options{}, nil)
	defer b.Close(ctx)
	srv.Stop()
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	time.Sleep(300 * time.Millisecond)
	assert.Zero(t, b.Stats().Refused)
	assert.NoError(t, b.Err())
	srv.Start()
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool { return b.Stats().Published == 1 }, "appended once Redis is back")
	assert.Equal(t, int64(1), c.XLen(ctx, "events").Val())
}

// A Redis at maxmemory under noeviction (OOM) refuses appends only until
// memory is freed: the events wait, in order, and are appended then, not
// dropped.
func TestOutOfMemoryRedisIsRetried(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	b := events.NewRedis(c, "events", events.Options{}, nil)
	defer b.Close(ctx)
	require.NoError(t, c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "1").Err())
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 1))
	time.Sleep(300 * time.Millisecond)
	assert.Zero(t, b.Stats().Refused, "OOM is not a refusal")
	assert.Zero(t, b.Stats().Dropped)
	assert.Zero(t, c.XLen(ctx, "events").Val())
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool { return b.Stats().Published == 2 }, "appended once Redis has room")
	msgs, err := c.XRange(ctx, "events", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 2)
}

// A password set on a running Redis refuses the log's connection, which
// has not authenticated: NOAUTH, or for an XADD of an event (more than 10
// arguments) a protocol error. The operator fixes that without the events
// at fault: they wait, and are appended once the connection may again.
func TestPasswordSetOnARunningRedisIsRetried(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer c.Close()
	b := events.NewRedis(c, "events", events.Options{}, nil)
	defer b.Close(ctx)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "drill").Err())
	require.NoError(t, admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err()) // the log's connection logs in again
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, b.Stats().Refused, "a connection not allowed to append is not a refusal of the event")
	assert.Zero(t, b.Stats().Dropped)
	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "").Err())
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool { return b.Stats().Published == 1 }, "appended once the password is gone")
	assert.Equal(t, int64(1), admin.XLen(ctx, "events").Val())
}
