package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/pgbridge"
	"github.com/storage-host/storage-host/host/pgtest"
)

// BenchmarkPostgresEvents compares the two ways of carrying a PostgreSQL
// backend's events between hosts (RATIONALE.md, "Why a log table for
// PostgreSQL events, and NOTIFY only to wake readers?"), each from one
// host's publisher to another host's subscriber:
//
//   - log: the Bus's event table, a NOTIFY per append as a wake-up;
//   - notify: the event itself as a NOTIFY payload, nothing stored (what
//     LISTEN/NOTIFY alone would be), sent in batches of 512 per round trip
//     as the Bus appends.
//
// throughput publishes b.N events and waits for the last to arrive
// (events/s); latency publishes one and waits for it (ns/op).
func BenchmarkPostgresEvents(b *testing.B) {
	url := pgtest.URL(b)
	// open gives each sub-benchmark a schema and two hosts of its own.
	open := func(b *testing.B) (*events.Bus, *events.Subscription) {
		schema := pgtest.Schema(b, pgbridge.RolePrefix)
		pub, sub := benchBus(b, url, schema), benchBus(b, url, schema)
		s, err := sub.Subscribe(context.Background(), events.Filter{}, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		return pub, s
	}
	b.Run("log", func(b *testing.B) {
		e := ev(abi.KindAgentState.Name(), events.OpPut, "agent-1", "agent-1", 1)
		b.Run("throughput", func(b *testing.B) {
			pub, s := open(b)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				e.Version = uint64(i)
				pub.Publish(e)
			}
			for range b.N {
				<-s.Events()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
		b.Run("latency", func(b *testing.B) {
			pub, s := open(b)
			b.ResetTimer()
			for range b.N {
				pub.Publish(e)
				<-s.Events()
			}
		})
	})
	b.Run("notify", func(b *testing.B) {
		ctx := context.Background()
		pub, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer pub.Close(ctx)
		listener, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer listener.Close(ctx)
		if _, err := listener.Exec(ctx, "LISTEN bench_events"); err != nil {
			b.Fatal(err)
		}
		got := make(chan events.Event, 1<<16)
		go func() {
			for {
				n, err := listener.WaitForNotification(ctx)
				if err != nil {
					close(got)
					return
				}
				var e events.Event
				_ = json.Unmarshal([]byte(n.Payload), &e)
				got <- e
			}
		}()
		e := ev(abi.KindAgentState.Name(), events.OpPut, "agent-1", "agent-1", 1)
		send := func(n int) {
			batch := &pgx.Batch{}
			for i := range n {
				e.Version = uint64(i)
				payload, _ := json.Marshal(e)
				batch.Queue("SELECT pg_notify('bench_events', $1)", string(payload))
			}
			if err := pub.SendBatch(ctx, batch).Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("throughput", func(b *testing.B) {
			start := time.Now()
			for left := b.N; left > 0; left -= 512 {
				send(min(left, 512))
			}
			for range b.N {
				<-got
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
		b.Run("latency", func(b *testing.B) {
			for range b.N {
				send(1)
				<-got
			}
		})
		_ = listener.PgConn().Close(ctx) // ends the reading goroutine
	})
}

func benchBus(b *testing.B, url, schema string) *events.Bus {
	ctx := context.Background()
	br, err := pgbridge.Open(ctx, pgbridge.Config{AdminURL: url, Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	bus, err := events.NewPostgres(ctx, bridgeSQL(br), schema, br.ConnConfig(), events.Options{Buffer: 1 << 20, Queue: 1 << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close(ctx); br.Close() })
	return bus
}
