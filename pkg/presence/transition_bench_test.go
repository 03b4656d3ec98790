package presence

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
)

// BenchmarkTransition measures the KV/NATS work of one pod's presence
// reconciliation, against a real embedded NATS (one server, and a 3-node
// cluster where the buckets get 3 replicas). Each iteration is one online
// and one offline reconciliation of a user with benchFriends friends, done
// synchronously by the worker's own code (reconcile), with no lease loop or
// watch running, so every message on the connection belongs to it:
//
//   - transition: the user goes from offline cluster-wide to online and back
//     (this pod wins both and announces them);
//   - reconnect: another pod holds the user online, so this pod's 0→1 and
//     1→0 are no transitions (a reconnect storm's common case).
//
// Reported per online / offline reconciliation: msgs (messages the client
// sent: KV writes, gets, JetStream API requests and the announce
// publishes), in (messages it received: replies, one per listed key), jsapi
// (JetStream API requests the servers counted: consumer creates and
// deletes, stream purges, error answers such as a STREAM.MSG.GET that found
// nothing; they count neither direct gets nor a STREAM.MSG.GET that found
// its message), ns, and missed/op (iterations whose transitions were not
// the expected ones).
//
// Heavy: run as
//
//	flock /tmp/ocvr-bench.lock go test ./pkg/presence/ -run '^$' -bench Transition -benchtime 200x -count 3
func BenchmarkTransition(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers=%d", nodes), func(b *testing.B) {
			env := newBenchEnv(b, nodes)
			b.Run("transition", func(b *testing.B) { env.run(b, false) })
			b.Run("reconnect", func(b *testing.B) { env.run(b, true) })
		})
	}
}

const (
	benchFriends = 20 // friends per user: the announce publishes of a transition
	benchUsers   = 64 // users cycled through, each warmed up once (returning users)
)

type benchEnv struct {
	servers []*natsembed.Server
	nc      *nats.Conn
	mine    *Tracker // the measured pod
	other   *Tracker // holds users online for the reconnect case
	won     atomic.Int64
}

func newBenchEnv(b *testing.B, nodes int) *benchEnv {
	b.Helper()
	env := &benchEnv{}
	if nodes == 1 {
		env.servers = []*natsembed.Server{natsembed.Test(b)}
	} else {
		env.servers = natsembed.TestCluster(b, nodes).Servers
	}
	ctx := context.Background()
	open := func() *Store {
		nc, err := bus.Connect(bus.Config{URLs: []string{env.servers[0].ClientURL()}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		// The directory on the same connection: the friends read counts.
		dir, err := directory.Open(ctx, nc)
		if err != nil {
			b.Fatal(err)
		}
		subj, _ := bus.NewSubjects("")
		s, err := Open(ctx, nc, "", dir, bus.NewPublisher(nc, subj))
		if err != nil {
			b.Fatal(err)
		}
		if env.nc == nil {
			env.nc = nc
		}
		return s
	}
	s := open()
	for u := int64(1); u <= benchUsers; u++ {
		for f := int64(0); f < benchFriends; f++ {
			if err := s.dir.AddFriend(ctx, u, 1_000_000+f); err != nil {
				b.Fatal(err)
			}
		}
	}
	cfg := TrackerConfig{Pod: "bench", Grace: time.Second, LeaseTTL: time.Minute, Workers: 1,
		OnTransition: func(string) { env.won.Add(1) }}
	env.mine = s.NewTracker(cfg)
	cfg.Pod, cfg.OnTransition = "other", nil
	env.other = open().NewTracker(cfg)
	// Warm up: every user has been online once (u.<user> holds a delete
	// marker, as for any returning user) and the friends reads have
	// whatever per-user state they keep.
	for u := int64(1); u <= benchUsers; u++ {
		env.online(b, env.mine, u)
		env.offline(b, env.mine, u)
	}
	return env
}

// online reconciles user's first local connection on t, as the worker does
// after Connected.
func (env *benchEnv) online(b *testing.B, t *Tracker, user int64) {
	sh := t.shard(user)
	sh.mu.Lock()
	st := sh.state(user)
	st.local, st.assert, st.downAt = 1, true, time.Time{}
	sh.mu.Unlock()
	t.reconcile(context.Background(), sh, user)
}

// offline reconciles user's last local connection closed longer than the
// grace ago.
func (env *benchEnv) offline(b *testing.B, t *Tracker, user int64) {
	sh := t.shard(user)
	sh.mu.Lock()
	st := sh.state(user)
	st.local, st.downAt = 0, time.Now().Add(-2*t.cfg.Grace)
	sh.mu.Unlock()
	t.reconcile(context.Background(), sh, user)
}

type benchCount struct{ out, in, api uint64 }

func (env *benchEnv) count(b *testing.B) benchCount {
	st := env.nc.Stats()
	c := benchCount{out: st.OutMsgs, in: st.InMsgs}
	for _, s := range env.servers {
		info, err := s.NATS().Jsz(&server.JSzOptions{})
		if err != nil {
			b.Fatal(err)
		}
		c.api += info.API.Total
	}
	return c
}

func (env *benchEnv) run(b *testing.B, reconnect bool) {
	if reconnect {
		for u := int64(1); u <= benchUsers; u++ {
			env.online(b, env.other, u)
		}
		defer func() {
			for u := int64(1); u <= benchUsers; u++ {
				env.offline(b, env.other, u)
			}
		}()
	}
	var on, off benchCount
	var onNS, offNS time.Duration
	add := func(acc *benchCount, before, after benchCount) {
		acc.out += after.out - before.out
		acc.in += after.in - before.in
		acc.api += after.api - before.api
	}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	want := int64(2) // an online and an offline transition, both won here
	if reconnect {
		want = 0
	}
	var missed int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		user := int64(i%benchUsers) + 1
		won := env.won.Load()
		c0 := env.count(b)
		onNS += timed(func() { env.online(b, env.mine, user) })
		c1 := env.count(b)
		offNS += timed(func() { env.offline(b, env.mine, user) })
		c2 := env.count(b)
		add(&on, c0, c1)
		add(&off, c1, c2)
		if got := env.won.Load() - won; got != want {
			missed++
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(on.out)/n, "msgs/online")
	b.ReportMetric(float64(on.in)/n, "in/online")
	b.ReportMetric(float64(on.api)/n, "jsapi/online")
	b.ReportMetric(float64(onNS.Nanoseconds())/n, "ns/online")
	b.ReportMetric(float64(off.out)/n, "msgs/offline")
	b.ReportMetric(float64(off.in)/n, "in/offline")
	b.ReportMetric(float64(off.api)/n, "jsapi/offline")
	b.ReportMetric(float64(offNS.Nanoseconds())/n, "ns/offline")
	// Iterations whose transitions were not as expected: a decision taken
	// on a replica's stale answer (a user left online with no connection).
	b.ReportMetric(float64(missed)/n, "missed/op")
}
