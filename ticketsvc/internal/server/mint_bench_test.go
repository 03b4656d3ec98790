package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
)

// Environment of the benchmark's child process (see TestMain): the test
// binary started again as a bare ticketsvc, so the server's own CPU and
// allocations can be read apart from the client's and NATS's.
const (
	benchChildNATS       = "OCVR_TICKETSVC_BENCH_CHILD_NATS"
	benchChildCPUProfile = "OCVR_TICKETSVC_BENCH_CHILD_CPUPROFILE"
)

// benchClients is how many requests the benchmark keeps in flight: a
// reconnect storm's worth of parallel clients for two cores, well under
// DefaultMaxInflight so none is refused.
const benchClients = 32

func TestMain(m *testing.M) {
	if url := os.Getenv(benchChildNATS); url != "" {
		os.Exit(runBenchChild(url))
	}
	os.Exit(m.Run())
}

// benchConfig is the production configuration but for the addresses: JSON
// logs at info written to a file, as to stderr in production (formatting
// and the write per request are counted), and a rate limit that is checked
// on every request but never refuses.
func benchConfig(logTo io.Writer, natsURL string) Config {
	cfg := DefaultConfig()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATSURLs = []string{natsURL}
	cfg.Logger = slog.New(slog.NewJSONHandler(logTo, nil))
	cfg.RateLimit = 1 << 30
	return cfg
}

// runBenchChild serves as ticketsvc until its stdin closes. It prints
// "<addr> <admin addr>" once listening.
func runBenchChild(natsURL string) int {
	if path := os.Getenv(benchChildCPUProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	defer devNull.Close()
	srv, err := New(benchConfig(devNull, natsURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println(srv.Addr(), srv.AdminAddr())
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

// BenchmarkTicketMint is POST /v1/auth/ws-ticket as clients see it: a real
// embedded NATS with JetStream, ticketsvc on 127.0.0.1, benchClients
// keep-alive clients in parallel, each request a session verify (leader
// read) and a ticket Create. ns/op is wall time per ticket at that
// concurrency (the inverse of throughput).
//
//   - server=in-process: everything in this process, so -cpuprofile and
//     -memprofile see ticketsvc's code; proc-cpu-ns/op and allocs/op are the
//     whole process's (client, NATS server and ticketsvc).
//   - server=own-process: ticketsvc in a child process (this test binary,
//     see TestMain); server-cpu-ns/op, server-allocs/op and server-B/op are
//     the child's alone, read from its /metrics. Set
//     OCVR_TICKETSVC_BENCH_CHILD_CPUPROFILE=file for the child's CPU profile.
//
// dials/op shows keep-alive at work (it should be ~benchClients/N).
func BenchmarkTicketMint(b *testing.B) {
	b.Run("server=in-process", func(b *testing.B) { benchMint(b, false) })
	b.Run("server=own-process", func(b *testing.B) { benchMint(b, true) })
}

func benchMint(b *testing.B, ownProcess bool) {
	ns := natsembed.Test(b)
	var base, admin string
	if ownProcess {
		base, admin = startBenchChild(b, ns.ClientURL())
	} else {
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { devNull.Close() })
		srv, err := New(benchConfig(devNull, ns.ClientURL()))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("Run: %v", err)
			}
		})
		base, admin = "http://"+srv.Addr(), "http://"+srv.AdminAddr()
	}

	var dials atomic.Int64
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		MaxIdleConns:        benchClients,
		MaxIdleConnsPerHost: benchClients,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	b.Cleanup(client.CloseIdleConnections)
	adminClient := &http.Client{Timeout: 15 * time.Second} // not counted in dials/op
	b.Cleanup(adminClient.CloseIdleConnections)
	waitReady(b, adminClient, admin)
	tokens := benchSessions(b, ns.ClientURL(), benchClients)

	// Warm up: every client's connection open, buckets and caches hot.
	runMint(b, client, base, tokens, 4*benchClients)
	dials.Store(0)

	var before serverStats
	if ownProcess {
		// The scrape allocates too; measuring one lets it be subtracted
		// (not the first: it allocates more than the later ones).
		scrapeStats(b, adminClient, admin)
		s1 := scrapeStats(b, adminClient, admin)
		before = scrapeStats(b, adminClient, admin)
		before.mallocs += before.mallocs - s1.mallocs
		before.bytes += before.bytes - s1.bytes
	}
	cpu0 := processCPU(b)
	b.ReportAllocs()
	b.ResetTimer()
	runMint(b, client, base, tokens, b.N)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(processCPU(b)-cpu0)/n, "proc-cpu-ns/op")
	b.ReportMetric(float64(dials.Load())/n, "dials/op")
	// The child's figures are counters of a whole process: over a handful of
	// requests its background work drowns them (make test runs -benchtime=1x).
	if ownProcess && b.N >= 1000 {
		after := scrapeStats(b, adminClient, admin)
		b.ReportMetric((after.cpu-before.cpu)*1e9/n, "server-cpu-ns/op")
		b.ReportMetric((after.mallocs-before.mallocs)/n, "server-allocs/op")
		b.ReportMetric((after.bytes-before.bytes)/n, "server-B/op")
	}
}

// runMint sends n ticket requests from benchClients goroutines, each with
// its own session, and fails on anything but 200. Bodies are read to the end
// so every connection goes back to the pool.
func runMint(b *testing.B, client *http.Client, base string, tokens []string, n int) {
	var next atomic.Int64
	done := make(chan struct{}, len(tokens))
	for _, token := range tokens {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(n) {
				req, err := http.NewRequest(http.MethodPost, base+TicketPath, nil)
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					b.Errorf("ticket: status %d, read %v", res.StatusCode, err)
					return
				}
			}
		}()
	}
	for range tokens {
		<-done
	}
}

func waitReady(b *testing.B, client *http.Client, admin string) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get(admin + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("ticketsvc not ready after 20 s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func benchSessions(b *testing.B, natsURL string, n int) []string {
	b.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := session.Open(ctx, nc, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, n)
	for i := range tokens {
		if tokens[i], _, err = st.Create(ctx, int64(i+1), "Bench", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	return tokens
}

func startBenchChild(b *testing.B, natsURL string) (base, admin string) {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchChildNATS+"="+natsURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child shuts down gracefully on EOF
		if err := cmd.Wait(); err != nil {
			b.Errorf("bench child: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addrs := strings.Fields(line)
	if err != nil || len(addrs) != 2 {
		b.Fatalf("bench child printed %q: %v", line, err)
	}
	return "http://" + addrs[0], "http://" + addrs[1]
}

// serverStats are the child's cumulative counters from its /metrics.
type serverStats struct{ cpu, mallocs, bytes float64 }

func scrapeStats(b *testing.B, client *http.Client, admin string) serverStats {
	b.Helper()
	res, err := client.Get(admin + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var s serverStats
	found := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		dst := map[string]*float64{
			"process_cpu_seconds_total":     &s.cpu,
			"go_memstats_mallocs_total":     &s.mallocs,
			"go_memstats_alloc_bytes_total": &s.bytes,
		}[name]
		if dst == nil {
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			b.Fatalf("metric %s: %v", name, err)
		}
		found++
	}
	if found != 3 {
		b.Fatalf("child /metrics: found %d of the 3 stats", found)
	}
	return s
}

// processCPU is this process's user+system CPU time in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
