package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

const compressionChannel = "ch_bench_z"

// compressionWorkload: the same chat corpus to the same subscribers, once
// with sockets that do not offer permessage-deflate and once with sockets
// that do (against a gateway run with --compression), rate by rate, in the
// same run: bytes on the wire and server CPU per delivery, side by side.
//
// The subscribers read each frame's bytes without inflating them (a
// loadgen core could not inflate 10^5 frames a second); one frame in
// --sample is inflated and parsed for its latency.
func compressionWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	subs := fs.Int("subs", 2000, "subscribers of the channel")
	ratesFlag := fs.String("rates", "20,80,160", "publish rates to step through, events/s")
	step := fs.Duration("step", 10*time.Second, "duration of each rate step")
	modesFlag := fs.String("modes", "plain,deflate,deflate,plain", "the order of the passes: plain (no offer) or deflate (offered); each pass connects the subscribers afresh")
	corpusN := fs.Int("corpus", 3000, "events in the chat corpus (published round-robin)")
	notify := fs.Float64("notify", 0.2, "share of notifications (to one subscriber each) in the corpus; the rest are messages to the channel")
	sample := fs.Int("sample", 16, "inflate and time one frame in this many per subscriber")
	inflight := fs.Int("inflight", 200, "connection attempts in flight during setup")
	quiet := fs.Duration("quiet", 60*time.Second, "after connecting, wait up to this long for the server to go quiet (< 5% CPU)")
	return func() (*report, error) {
		rates, err := parseRates(*ratesFlag)
		if err != nil {
			return nil, err
		}
		modes := strings.Split(*modesFlag, ",")
		for _, m := range modes {
			if m != "plain" && m != "deflate" {
				return nil, fmt.Errorf("--modes: bad mode %q", m)
			}
		}
		if err := e.dir.CreateChannel(ctx, compressionChannel); err != nil {
			return nil, err
		}
		users, err := e.makeUsers(ctx, *subs, func(int) string { return compressionChannel })
		if err != nil {
			return nil, err
		}
		corpus := chatCorpus(*corpusN, *notify, compressionChannel, 1)
		rep := &report{
			Params: map[string]any{"subs": *subs, "step": step.String(), "corpus": *corpusN, "notify": *notify, "modes": *modesFlag},
			Columns: []string{"pass", "rate ev/s", "deliveries/s", "delivered/expected", "wire B/delivery", "JSON B/delivery",
				"p50 ms", "p99 ms", "server CPU µs/delivery", "server CPU %", "loadgen CPU %"},
		}
		type key struct {
			mode string
			rate int
		}
		wire, cpu := map[key][]float64{}, map[key][]float64{}
		for pi, mode := range modes {
			rows, err := compressionPass(ctx, e, users, corpus, mode, pi, rates, *step, *sample, *inflight, *quiet)
			if err != nil {
				return nil, fmt.Errorf("pass %d (%s): %w", pi+1, mode, err)
			}
			for _, r := range rows {
				rep.Rows = append(rep.Rows, r.cells)
				k := key{mode, r.rate}
				wire[k], cpu[k] = append(wire[k], r.wirePer), append(cpu[k], r.cpuPer)
			}
		}
		for _, r := range rates {
			p, d := key{"plain", r}, key{"deflate", r}
			if len(wire[p]) > 0 && len(wire[d]) > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%d ev/s: deflate/plain wire bytes per delivery %.3f, server CPU per delivery %.3f (medians of the passes)",
					r, median(wire[d])/median(wire[p]), median(cpu[d])/median(cpu[p])))
			}
		}
		rep.Notes = append(rep.Notes, "wire B/delivery: data frames as read (header + payload, compressed or not) over frames read; JSON B/delivery: the gateway's frames uncompressed (its frame_payload_bytes_total, with deflated_source_bytes_total for the compressed ones) over deliveries; server CPU: gateway + nats-server (+ ticketsvc) per delivery")
		return rep, nil
	}
}

func median(v []float64) float64 { return percentile(sortFloats(append([]float64(nil), v...)), 50) }

// passRow is one rate step of a pass.
type passRow struct {
	rate            int
	wirePer, cpuPer float64
	cells           []any
}

// compressionPass connects the subscribers (offering compression or not),
// steps through the rates, and disconnects them.
func compressionPass(ctx context.Context, e *env, users []user, corpus []corpusEvent, mode string, pass int, rates []int, step time.Duration, sample, inflight int, quiet time.Duration) ([]passRow, error) {
	offer := mode == "deflate"
	n := len(users)
	lites := make([]*client.Lite, n)
	if err := connectMany(ctx, n, inflight, func(i int) error {
		tk, err := e.tickets.Mint(ctx, users[i].ident)
		if err != nil {
			return err
		}
		l, err := client.DialLite(ctx, e.wsURL, tk, client.LiteOptions{LocalAddr: e.srcAddr(), Compression: offer})
		if err != nil {
			return err
		}
		if l.Compressed() != offer {
			l.CloseNow()
			return fmt.Errorf("compression negotiated: %v, offered: %v (is the gateway run with --compression?)", l.Compressed(), offer)
		}
		if _, err := readFrame(l, "ready", time.Now().Add(30*time.Second)); err != nil {
			l.CloseNow()
			return err
		}
		if err := subscribe(l, compressionChannel); err != nil {
			l.CloseNow()
			return err
		}
		lites[i] = l
		return nil
	}); err != nil {
		return nil, err
	}
	var ending atomic.Bool
	defer func() {
		ending.Store(true)
		for _, l := range lites {
			if l != nil {
				l.CloseNow()
			}
		}
	}()
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go keepAlive(hbCtx, lites, 25*time.Second)

	frames := make([]atomic.Int64, n)
	lat := make([][]float64, n) // sampled latencies, µs, of the current step (read after the step)
	var latMu sync.Mutex
	var readErr atomic.Pointer[error]
	for i, l := range lites {
		go func(i int, l *client.Lite) {
			for k := 0; ; k++ {
				p, z, err := l.ReadRaw()
				if err != nil {
					if !ending.Load() && ctx.Err() == nil {
						readErr.CompareAndSwap(nil, &err)
					}
					return
				}
				frames[i].Add(1)
				if k%sample != 0 {
					continue
				}
				now := time.Now().UnixNano()
				if z {
					if p, err = l.Inflate(p); err != nil {
						readErr.CompareAndSwap(nil, &err)
						return
					}
				}
				if _, _, ts, ok := parseEventID(p); ok {
					latMu.Lock()
					lat[i] = append(lat[i], float64(now-ts)/1e3)
					latMu.Unlock()
				}
			}
		}(i, l)
	}
	if !e.waitQuiet(ctx, 0.05, quiet) {
		fmt.Fprintf(os.Stderr, "pass %d: the server was still busy %v after connecting\n", pass+1, quiet)
	}
	sumFrames := func() (f, w int64) {
		for i := range frames {
			f += frames[i].Load()
			w += lites[i].WireBytes()
		}
		return f, w
	}
	var rows []passRow
	for _, rate := range rates {
		f0, w0 := sumFrames()
		sent0, src0 := e.metricOr("ocvr_gateway_frame_payload_bytes_total"), e.metricOr("ocvr_gateway_deflated_source_bytes_total")
		z0 := e.metricOr(`ocvr_gateway_frame_payload_bytes_total{encoding="deflate"}`)
		before := e.sample()
		self0 := readCPU(os.Getpid())
		t0 := time.Now()
		expected, err := publishCorpus(ctx, e, users, corpus, pass, rate, step)
		if err != nil {
			return nil, err
		}
		pubDur := time.Since(t0)
		var got int64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if f, _ := sumFrames(); f-f0 >= expected {
				break
			}
		}
		after := e.sample()
		selfCPU := float64(readCPU(os.Getpid())-self0) / 100
		f1, w1 := sumFrames()
		got = f1 - f0
		sent, src := e.metricOr("ocvr_gateway_frame_payload_bytes_total")-sent0, e.metricOr("ocvr_gateway_deflated_source_bytes_total")-src0
		zsent := e.metricOr(`ocvr_gateway_frame_payload_bytes_total{encoding="deflate"}`) - z0
		if err := readErr.Load(); err != nil {
			return nil, *err
		}
		latMu.Lock()
		var all []float64
		for i := range lat {
			all, lat[i] = append(all, lat[i]...), lat[i][:0]
		}
		latMu.Unlock()
		sortFloats(all)
		elapsed := after.at.Sub(t0).Seconds()
		cpu := cpuSeconds(before, after)
		d := float64(max(got, 1))
		row := passRow{rate: rate, wirePer: float64(w1-w0) / d, cpuPer: cpu / d * 1e6}
		row.cells = []any{strconv.Itoa(pass+1) + " " + mode, rate, float64(got) / pubDur.Seconds(), float64(got) / float64(max(expected, 1)),
			row.wirePer, (sent - zsent + src) / d, percentile(all, 50) / 1e3, percentile(all, 99) / 1e3,
			row.cpuPer, 100 * cpu / elapsed, 100 * selfCPU / elapsed}
		rows = append(rows, row)
		if ctx.Err() != nil {
			break
		}
	}
	return rows, nil
}

// metricOr is the gateway metric's value, 0 when it cannot be read.
func (e *env) metricOr(name string) float64 {
	v, _ := e.metric(name)
	return v
}

// publishCorpus publishes rate events/s from the corpus for d (messages
// to the channel, notifications to one subscriber each) through the
// stream, from 16 goroutines; it returns the deliveries expected.
func publishCorpus(ctx context.Context, e *env, users []user, corpus []corpusEvent, stepIdx, rate int, d time.Duration) (int64, error) {
	total := int(float64(rate) * d.Seconds())
	work := make(chan int, 16)
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				ev := corpus[k%len(corpus)]
				id := "b" + strconv.Itoa(stepIdx) + "_" + strconv.Itoa(k) + "_" + strconv.FormatInt(time.Now().UnixNano(), 10)
				var err error
				if ev.notify {
					ev.note.ID = id
					err = e.pub.PublishToUser(ctx, users[k%len(users)].id, protocol.TypeNotification, ev.note, bus.Target{})
				} else {
					ev.msg.ID = id
					err = e.pub.MessageCreated(ctx, ev.msg)
				}
				if err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	var expected int64
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	for k := 0; k < total && ctx.Err() == nil; {
		<-tick.C
		due := min(total, int(time.Since(start).Seconds()*float64(rate)))
		for ; k < due; k++ {
			if corpus[k%len(corpus)].notify {
				expected++
			} else {
				expected += int64(len(users))
			}
			work <- k
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
	if err := first.Load(); err != nil {
		return expected, *err
	}
	if ctx.Err() != nil {
		return expected, errors.New("interrupted")
	}
	return expected, nil
}
