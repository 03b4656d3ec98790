package gateway_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/ticket"
)

// BenchmarkFanout publishes events to one channel with N local subscribers
// (real sockets on 127.0.0.1, lean readers in this process) and reports the
// time per delivery: bus message → validation → N queued writes → batched
// socket writes. The readers share the CPU, so this is a relative figure;
// BENCHMARKS.md has the pinned, cross-process ones from ocvr-loadgen.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run("subs="+strconv.Itoa(n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, subs int) {
	e := newEnv(b, func(c *gateway.Config) { c.QueueSize = 1 << 16 })
	ctx := context.Background()
	members := make([]int64, subs)
	for i := range members {
		members[i] = int64(i + 1)
	}
	e.channel("ch_bench", members...)
	var received atomic.Int64
	var wg sync.WaitGroup
	lites := make([]*client.Lite, subs)
	for i := range lites {
		u := e.user(int64(i+1), "u")
		tk, err := e.tickets.Mint(ctx, ticket.Identity{SessionID: u.sess.ID, UserID: u.id, DisplayName: u.name})
		if err != nil {
			b.Fatal(err)
		}
		l, err := client.DialLite(ctx, e.wsURL, tk, client.LiteOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.ReadText(); err != nil { // ready
			b.Fatal(err)
		}
		if err := l.WriteText([]byte(`{"type":"subscribe","data":{"channel_id":"ch_bench"}}`)); err != nil {
			b.Fatal(err)
		}
		if _, err := l.ReadText(); err != nil { // subscribed
			b.Fatal(err)
		}
		lites[i] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := l.ReadText(); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	b.Cleanup(func() {
		for _, l := range lites {
			l.CloseNow()
		}
		wg.Wait()
	})
	m := protocol.MessageCreate{ID: "msg_bench", ChannelID: "ch_bench", Author: protocol.Author{ID: 1, DisplayName: "Bench"},
		Content:   "a typical chat message of a few dozen words, about two hundred and fifty bytes on the wire once framed by the gateway",
		CreatedAt: 1764417600}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := e.pub.MessageCreated(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * int64(subs)
	deadline := time.Now().Add(time.Minute)
	for received.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d deliveries", received.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(want), "ns/delivery")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}
