// Package clustertest runs a real OCVR cluster on 127.0.0.1 for tests and
// benchmarks: the gateway and ticketsvc binaries, built once from this
// repository, as separate processes against an embedded NATS server (one
// node or a 3-node cluster). Any process can be stopped with SIGTERM,
// killed with SIGKILL, frozen, or restarted.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Options shape a cluster.
type Options struct {
	Gateways    int      // default 1
	Ticketsvcs  int      // default 1
	NATSNodes   int      // 1 (default) or 3
	GatewayArgs []string // extra flags for every gateway
	TicketArgs  []string // extra flags for every ticketsvc
}

// Cluster is a running cluster plus the backend-side stores a test uses to
// create sessions, channels and events.
type Cluster struct {
	t          testing.TB
	dir        string
	NATS       []*natsembed.Server
	NATSURLs   []string
	Gateways   []*Process
	Ticketsvcs []*Process

	NC        *nats.Conn // the "backend" connection
	Publisher *bus.Publisher
	Sessions  *session.Store
	Tickets   *ticket.Store
	Directory *directory.Store
	Presence  *presence.Store
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// RepoRoot finds the repository root (the directory holding go.work).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Binaries builds gateway and ticketsvc once per test process into the
// git-ignored .cache/clustertest and returns that directory.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir = filepath.Join(root, ".cache", "clustertest")
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./gateway/cmd/gateway", "./ticketsvc/cmd/ticketsvc")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build binaries: %v\n%s", err, out)
		}
	})
	return binDir, buildErr
}

// Start starts a cluster for t; everything stops when t ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Gateways <= 0 {
		o.Gateways = 1
	}
	if o.Ticketsvcs <= 0 {
		o.Ticketsvcs = 1
	}
	bins, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	if o.NATSNodes >= 3 {
		cl, err := natsembed.StartCluster(o.NATSNodes, filepath.Join(c.dir, "nats"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Shutdown)
		// Every node a JetStream peer before the buckets are made, so that
		// they get their 3 replicas at once (and creation is not slowed by
		// a peer still joining).
		if err := cl.WaitPeers(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		c.NATS = cl.Servers
		c.NATSURLs = cl.ClientURLs()
	} else {
		ns, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(c.dir, "nats")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.Shutdown)
		c.NATS = []*natsembed.Server{ns}
		c.NATSURLs = []string{ns.ClientURL()}
	}
	natsURL := strings.Join(c.NATSURLs, ",")

	c.NC, err = bus.Connect(bus.Config{URLs: c.NATSURLs, Name: "clustertest-backend"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.NC.Close)
	subjects, _ := bus.NewSubjects("")
	c.Publisher = bus.NewPublisher(c.NC, subjects)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // R3 buckets on a loaded machine
	defer cancel()
	if c.Sessions, err = session.Open(ctx, c.NC, "", c.Publisher); err != nil {
		t.Fatal(err)
	}
	if c.Tickets, err = ticket.Open(ctx, c.NC, ""); err != nil {
		t.Fatal(err)
	}
	if c.Directory, err = directory.Open(ctx, c.NC); err != nil {
		t.Fatal(err)
	}
	if c.Presence, err = presence.Open(ctx, c.NC, "", c.Directory, c.Publisher); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < o.Ticketsvcs; i++ {
		p := c.newProcess(filepath.Join(bins, "ticketsvc"), fmt.Sprintf("ticketsvc-%d", i+1), func(p *Process) []string {
			return append([]string{"--listen", p.Public, "--admin-listen", p.Admin, "--nats-url", natsURL, "--log-level", "debug"}, o.TicketArgs...)
		})
		c.Ticketsvcs = append(c.Ticketsvcs, p)
	}
	for i := 0; i < o.Gateways; i++ {
		p := c.newProcess(filepath.Join(bins, "gateway"), fmt.Sprintf("gateway-%d", i+1), func(p *Process) []string {
			return append([]string{"--listen", p.Public, "--admin-listen", p.Admin, "--nats-url", natsURL,
				"--pod-name", p.Name, "--log-level", "debug"}, o.GatewayArgs...)
		})
		c.Gateways = append(c.Gateways, p)
	}
	all := append(append([]*Process(nil), c.Ticketsvcs...), c.Gateways...)
	for _, p := range all {
		if err := c.launch(p); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range all {
			wg.Add(1)
			go func(p *Process) { defer wg.Done(); p.Kill() }(p)
		}
		wg.Wait()
		if t.Failed() {
			for _, p := range all {
				t.Logf("--- last lines of %s ---\n%s", p.Name, p.Tail(40))
			}
		}
	})
	return c
}

func (c *Cluster) newProcess(bin, name string, args func(*Process) []string) *Process {
	p := &Process{Name: name, bin: bin, logPath: filepath.Join(c.dir, name+".log")}
	c.assignPorts(p, args)
	return p
}

func (c *Cluster) assignPorts(p *Process, args func(*Process) []string) {
	p.Public = "127.0.0.1:" + strconv.Itoa(freePort(c.t))
	p.Admin = "127.0.0.1:" + strconv.Itoa(freePort(c.t))
	p.args = args(p)
	p.argsFor = args
}

// launch starts p and waits until it is ready. A free port can be taken by
// another test's process between the pick and the bind (go test runs
// packages in parallel); then p exits, and another process may even answer
// its /readyz: p is started again on new ports.
func (c *Cluster) launch(p *Process) error {
	for attempt := 1; ; attempt++ {
		if err := p.Start(); err != nil {
			return err
		}
		err := p.WaitReady(30 * time.Second)
		if err == nil {
			time.Sleep(50 * time.Millisecond) // a bind failure ends the process at once
			if !p.exited() {
				return nil
			}
			err = fmt.Errorf("%s exited after its ports answered; log:\n%s", p.Name, p.Tail(5))
		}
		if attempt == 3 || !p.exited() || !strings.Contains(p.Tail(5), "address already in use") {
			return err
		}
		c.t.Logf("%s: a port was taken before it bound it; again on new ports", p.Name)
		c.assignPorts(p, p.argsFor)
	}
}

func freePort(t testing.TB) int {
	p, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TicketURLs lists every ticketsvc base URL.
func (c *Cluster) TicketURLs() []string {
	var out []string
	for _, p := range c.Ticketsvcs {
		out = append(out, "http://"+p.Public)
	}
	return out
}

// WSURLs lists every gateway socket URL.
func (c *Cluster) WSURLs() []string {
	var out []string
	for _, p := range c.Gateways {
		out = append(out, p.WSURL())
	}
	return out
}

// User is a signed-in user: a session token.
type User struct {
	ID      int64
	Name    string
	Token   string
	Session session.Session
}

// NewUser creates a session for user id.
func (c *Cluster) NewUser(id int64, name string) User {
	c.t.Helper()
	tok, s, err := c.Sessions.Create(context.Background(), id, name, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return User{ID: id, Name: name, Token: tok, Session: s}
}

// Channel creates a channel with members.
func (c *Cluster) Channel(id string, members ...int64) {
	c.t.Helper()
	ctx := context.Background()
	if err := c.Directory.CreateChannel(ctx, id); err != nil {
		c.t.Fatal(err)
	}
	for _, m := range members {
		if err := c.Directory.AddMember(ctx, id, m); err != nil {
			c.t.Fatal(err)
		}
	}
}

// Dial connects u to gateway i (mod the gateway count) with a ticket from
// ticketsvc i (mod the ticketsvc count).
func (c *Cluster) Dial(u User, i int) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tsvc := c.Ticketsvcs[i%len(c.Ticketsvcs)]
	gw := c.Gateways[i%len(c.Gateways)]
	return client.Connect(ctx, "http://"+tsvc.Public, gw.WSURL(), u.Token, client.Options{})
}
