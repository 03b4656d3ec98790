package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// env is the stack under load and the SDK handles the workloads use.
type env struct {
	natsURL, ticketURL, wsURL, adminURL string
	pidList                             string
	userBase                            int64
	srcAddrs                            int
	compress                            bool // sockets offer permessage-deflate

	pids     []int
	nc       *nats.Conn
	pub      *bus.Publisher
	sessions *session.Store
	tickets  *ticket.Store
	dir      *directory.Store
	nextSrc  atomic.Uint64
	hc       *http.Client
}

func (e *env) flags(fs *flag.FlagSet) {
	fs.StringVar(&e.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS `url` of the stack")
	fs.StringVar(&e.ticketURL, "ticket-url", "http://127.0.0.1:8080", "ticketsvc base `url`")
	fs.StringVar(&e.wsURL, "ws-url", "ws://127.0.0.1:8081/v1/ws", "gateway socket `url`")
	fs.StringVar(&e.adminURL, "admin-url", "http://127.0.0.1:9081", "gateway admin `url` (goroutines, metrics)")
	fs.StringVar(&e.pidList, "pids", "", "server process `ids` to measure (RSS, CPU), comma-separated: the gateway first, then NATS")
	fs.Int64Var(&e.userBase, "user-base", 1_000_000, "first user `id` the workload creates")
	fs.IntVar(&e.srcAddrs, "src-addrs", 200, "number of 127.0.0.x source addresses to spread sockets over")
	fs.BoolVar(&e.compress, "compress", false, "sockets offer permessage-deflate (as browsers do): e.g. idle's memory per connection with compression negotiated")
}

func (e *env) open(ctx context.Context, stack bool) error {
	raiseNoFile()
	for _, p := range strings.Split(e.pidList, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("--pids: %q is not a pid", p)
		}
		e.pids = append(e.pids, pid)
	}
	if !stack {
		return nil
	}
	nc, err := bus.Connect(bus.Config{URLs: []string{e.natsURL}, Name: "ocvr-loadgen"})
	if err != nil {
		return err
	}
	e.nc = nc
	subjects, _ := bus.NewSubjects("")
	e.pub = bus.NewPublisher(nc, subjects)
	if e.sessions, err = session.Open(ctx, nc, "", e.pub); err != nil {
		return err
	}
	if e.tickets, err = ticket.Open(ctx, nc, ""); err != nil {
		return err
	}
	if e.dir, err = directory.Open(ctx, nc); err != nil {
		return err
	}
	e.hc = &http.Client{Transport: &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: 30 * time.Second}, Timeout: 30 * time.Second}
	return nil
}

func (e *env) close() {
	if e.nc != nil {
		_ = e.nc.Drain()
	}
}

// raiseNoFile lifts the soft open-files limit to the hard one.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// srcAddr spreads sockets over loopback source addresses.
func (e *env) srcAddr() net.Addr {
	if e.srcAddrs <= 1 {
		return nil
	}
	i := e.nextSrc.Add(1) % uint64(e.srcAddrs)
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(2+i/253), byte(2+i%253))}
}

// user is a loadgen identity: a session and, for subscribers, a channel.
type user struct {
	id    int64
	name  string
	token string
	ident ticket.Identity
}

// makeUsers creates n sessions (and memberships of channel(i)) in parallel.
func (e *env) makeUsers(ctx context.Context, n int, channel func(i int) string) ([]user, error) {
	users := make([]user, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := e.userBase + int64(i)
				name := "load" + strconv.Itoa(i)
				tok, s, err := e.sessions.Create(ctx, id, name, 2*time.Hour)
				if err == nil && channel != nil {
					if ch := channel(i); ch != "" {
						err = e.dir.AddMember(ctx, ch, id)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				users[i] = user{id: id, name: name, token: tok, ident: ticket.Identity{SessionID: s.ID, UserID: id, DisplayName: name}}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("create users: %w", first)
	}
	return users, ctx.Err()
}

// dial mints a ticket directly in KV (setup, not measured) and connects.
func (e *env) dial(ctx context.Context, u user) (*client.Lite, error) {
	tk, err := e.tickets.Mint(ctx, u.ident)
	if err != nil {
		return nil, err
	}
	return e.dialTicket(ctx, tk)
}

func (e *env) dialTicket(ctx context.Context, tk string) (*client.Lite, error) {
	l, err := client.DialLite(ctx, e.wsURL, tk, client.LiteOptions{LocalAddr: e.srcAddr(), Compression: e.compress})
	if err != nil {
		return nil, err
	}
	if l.Compressed() != e.compress {
		l.CloseNow()
		return nil, fmt.Errorf("--compress %v, but compression negotiated: %v", e.compress, l.Compressed())
	}
	_ = l.NetConn().SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := l.ReadText()
	if err != nil {
		l.CloseNow()
		return nil, fmt.Errorf("read ready: %w", err)
	}
	if !strings.HasPrefix(string(f), `{"type":"ready"`) {
		l.CloseNow()
		return nil, fmt.Errorf("expected ready, got %.120s", f)
	}
	_ = l.NetConn().SetReadDeadline(time.Time{})
	return l, nil
}

// subscribe sends subscribe and waits for subscribed (other frames before
// it are skipped).
func subscribe(l *client.Lite, ch string) error {
	if err := l.WriteText([]byte(`{"type":"subscribe","data":{"channel_id":"` + ch + `"}}`)); err != nil {
		return err
	}
	_ = l.NetConn().SetReadDeadline(time.Now().Add(30 * time.Second))
	defer l.NetConn().SetReadDeadline(time.Time{})
	for {
		f, err := l.ReadText()
		if err != nil {
			return err
		}
		s := string(f)
		if strings.HasPrefix(s, `{"type":"subscribed"`) {
			return nil
		}
		if strings.HasPrefix(s, `{"type":"error"`) {
			return errors.New(s)
		}
	}
}

// keepAlive sends a heartbeat on every connection every interval, spread
// over the interval, until ctx ends: like real clients, so that runs longer
// than the gateway's 75 s silence limit are not cut short by it.
func keepAlive(ctx context.Context, lites []*client.Lite, interval time.Duration) {
	hb := []byte(`{"type":"heartbeat"}`)
	gap := interval / time.Duration(max(len(lites), 1))
	t := time.NewTicker(max(gap, time.Millisecond))
	defer t.Stop()
	for i := 0; ; i = (i + 1) % max(len(lites), 1) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if i < len(lites) && lites[i] != nil {
			_ = lites[i].WriteText(hb)
		}
	}
}

// procStat is a sample of the measured processes.
type procStat struct {
	at       time.Time
	rssBytes int64 // summed
	cpuTicks int64 // utime+stime, summed, in clock ticks (100 Hz)
	gwRSS    int64 // the first pid (the gateway) alone
	cpuByPid []int64
}

func (e *env) sample() procStat {
	s := procStat{at: time.Now()}
	for i, pid := range e.pids {
		rss := readRSS(pid)
		s.rssBytes += rss
		if i == 0 {
			s.gwRSS = rss
		}
		c := readCPU(pid)
		s.cpuTicks += c
		s.cpuByPid = append(s.cpuByPid, c)
	}
	return s
}

// pidCPUSeconds is the CPU time the i-th measured process used between a
// and b.
func pidCPUSeconds(a, b procStat, i int) float64 {
	if i >= len(a.cpuByPid) || i >= len(b.cpuByPid) {
		return 0
	}
	return float64(b.cpuByPid[i]-a.cpuByPid[i]) / 100
}

// cpuSeconds is the CPU time the measured processes used between a and b.
func cpuSeconds(a, b procStat) float64 { return float64(b.cpuTicks-a.cpuTicks) / 100 }

// waitQuiet waits (at most max) until the measured processes use less
// than limit of a core over a second: the work a setup phase leaves behind
// (presence announcements of thousands of new connections) is not measured
// as part of the next step. It reports whether they went quiet.
func (e *env) waitQuiet(ctx context.Context, limit float64, max time.Duration) bool {
	if len(e.pids) == 0 {
		return true
	}
	deadline := time.Now().Add(max)
	prev := e.sample()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
		cur := e.sample()
		if cpuSeconds(prev, cur)/cur.at.Sub(prev.at).Seconds() < limit {
			return true
		}
		prev = cur
	}
	return false
}

func readRSS(pid int) int64 { return readStatus(pid, "VmRSS:") }

// readPeakRSS is the process's peak RSS so far (VmHWM).
func readPeakRSS(pid int) int64 { return readStatus(pid, "VmHWM:") }

// readStatus reads a kB field of /proc/<pid>/status, in bytes.
func readStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func readCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// goroutines reads go_goroutines from the gateway's /metrics.
func (e *env) goroutines() float64 {
	v, _ := e.metric("go_goroutines")
	return v
}

// metric reads an unlabelled metric (or the sum of a labelled one).
func (e *env) metric(name string) (float64, error) {
	resp, err := e.hc.Get(e.adminURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// parseRates parses a --rates list of events per second.
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, r := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("--rates: bad rate %q", r)
		}
		rates = append(rates, v)
	}
	return rates, nil
}

// percentile returns the p-th percentile (0..100) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func sortFloats(v []float64) []float64 { sort.Float64s(v); return v }

// connectMany opens n connections with k in flight, calling open for each.
func connectMany(ctx context.Context, n, k int, open func(i int) error) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, k)
	var mu sync.Mutex
	var first error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := open(i); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
