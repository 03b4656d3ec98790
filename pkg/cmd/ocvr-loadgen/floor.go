package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// The floor workloads measure what this machine's kernel allows, with no
// gateway, WebSocket, JSON or NATS in the way: floor-server (pinned where
// the gateway runs) accepts S plain TCP connections and writes one 256-byte
// message with a send timestamp to each of them per event, in one loop, at
// the fan-out workload's rates; floor (pinned where the load generator
// runs) reads them like fanout's subscribers do. What it reports is the
// least a one-core fan-out to S sockets can cost here: no server design can
// deliver an event to S sockets faster than S write syscalls, nor a
// one-core client read them faster than S reads.

const floorMsgSize = 256

func floorFlags(fs *flag.FlagSet) (addr *string, subs *int, rates *string, step *time.Duration) {
	addr = fs.String("addr", "127.0.0.1:18099", "TCP `address` of floor-server")
	subs = fs.Int("subs", 5000, "connections (the fan-out's subscribers)")
	rates = fs.String("rates", "10", "events/s to step through, comma-separated")
	step = fs.Duration("step", 10*time.Second, "duration of each rate step")
	return
}

// floorServerWorkload accepts the connections, writes the steps, and
// reports its own write-loop time per event.
func floorServerWorkload(ctx context.Context, _ *env, fs *flag.FlagSet) func() (*report, error) {
	addr, subs, ratesFlag, step := floorFlags(fs)
	wait := fs.Duration("accept-timeout", 2*time.Minute, "give up if the connections have not all arrived by then")
	return func() (*report, error) {
		rates, err := parseRates(*ratesFlag)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return nil, fmt.Errorf("floor-server: %w", err)
		}
		defer ln.Close()
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(*wait))
		conns := make([]net.Conn, 0, *subs)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for len(conns) < *subs {
			c, err := ln.Accept()
			if err != nil {
				return nil, fmt.Errorf("floor-server: %d of %d connections: %w", len(conns), *subs, err)
			}
			conns = append(conns, c)
		}
		time.Sleep(time.Second) // the client starts its readers
		rep := &report{
			Params:  map[string]any{"subs": *subs, "step": step.String(), "size": floorMsgSize},
			Columns: []string{"rate ev/s", "events", "write loop per event ms", "µs per write", "CPU µs per write"},
		}
		msg := make([]byte, floorMsgSize)
		for si, rate := range rates {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			end := time.Now().Add(*step)
			var busy time.Duration
			events := 0
			cpu0 := processCPU()
			for now := range tick.C {
				if now.After(end) || ctx.Err() != nil {
					break
				}
				t0 := time.Now()
				msg[0] = byte(si)
				binary.LittleEndian.PutUint64(msg[1:], uint64(t0.UnixNano()))
				for _, c := range conns {
					if _, err := c.Write(msg); err != nil {
						tick.Stop()
						return nil, fmt.Errorf("floor-server: write: %w", err)
					}
				}
				busy += time.Since(t0)
				events++
			}
			tick.Stop()
			if events > 0 {
				per := busy / time.Duration(events)
				writes := float64(events * *subs)
				rep.Rows = append(rep.Rows, []any{rate, events, float64(per.Microseconds()) / 1e3, float64(per.Nanoseconds()) / 1e3 / float64(*subs),
					(processCPU() - cpu0).Seconds() * 1e6 / writes})
			}
		}
		return rep, nil
	}
}

// floorWorkload connects, reads every message and reports latency and the
// server's CPU per delivery like fanout does.
func floorWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	addr, subs, ratesFlag, _ := floorFlags(fs)
	return func() (*report, error) {
		rates, err := parseRates(*ratesFlag)
		if err != nil {
			return nil, err
		}
		conns := make([]net.Conn, 0, *subs)
		for len(conns) < *subs {
			d := net.Dialer{LocalAddr: e.srcAddr()}
			c, err := d.DialContext(ctx, "tcp", *addr)
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return nil, fmt.Errorf("floor: dial: %w", err)
			}
			conns = append(conns, c)
		}
		nSteps := len(rates)
		lat := make([][][]float64, len(conns)) // per reader, per step, µs
		var wg sync.WaitGroup
		var firstErr error
		var errOnce sync.Once
		for i, c := range conns {
			lat[i] = make([][]float64, nSteps)
			wg.Add(1)
			go func(i int, c net.Conn) {
				defer wg.Done()
				defer c.Close()
				b := make([]byte, floorMsgSize)
				for {
					if _, err := io.ReadFull(c, b); err != nil {
						if !errors.Is(err, io.EOF) {
							errOnce.Do(func() { firstErr = err })
						}
						return
					}
					now := time.Now().UnixNano()
					if si := int(b[0]); si < nSteps {
						lat[i][si] = append(lat[i][si], float64(now-int64(binary.LittleEndian.Uint64(b[1:])))/1e3)
					}
				}
			}(i, c)
		}
		stop := context.AfterFunc(ctx, func() {
			for _, c := range conns {
				c.Close()
			}
		})
		defer stop()
		wg.Wait() // the server closes every connection after its last step
		if firstErr != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("floor: read: %w", firstErr)
		}
		rep := &report{
			Params:  map[string]any{"subs": *subs, "size": floorMsgSize},
			Columns: []string{"rate ev/s", "target deliveries/s", "delivered", "p50 ms", "p99 ms", "max ms"},
		}
		for si, rate := range rates {
			var all []float64
			for i := range lat {
				all = append(all, lat[i][si]...)
			}
			sortFloats(all)
			rep.Rows = append(rep.Rows, []any{rate, rate * *subs, len(all), percentile(all, 50) / 1e3, percentile(all, 99) / 1e3, percentile(all, 100) / 1e3})
		}
		return rep, nil
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
