// Package natsembed runs a real nats-server with JetStream inside the
// process: for `make run`, for tests, and for benchmarks. It is the only way
// the repository gets a NATS server; nothing mocks NATS.
package natsembed

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server. The zero value is a standalone
// server on a random 127.0.0.1 port with its store in a new temp directory.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 picks a free port
	StoreDir string // JetStream storage; default: a new temp dir removed on Shutdown
	Name     string // server name; required to be unique within a cluster

	// Cluster settings; ClusterPort > 0 turns clustering on.
	ClusterName string
	ClusterPort int
	Routes      []string // nats-route://host:port of the peers

	// TLS, when set, makes the client port TLS-only; with ClientAuth
	// tls.RequireAndVerifyClientCert it requires mutual TLS. The config is
	// read at each (re)start, so SetTLS then Restart rotates the server's
	// certificates and the client CAs it trusts.
	TLS *tls.Config
	// JetStreamDomain names the server's JetStream domain (clients then
	// address its API as $JS.<domain>.API), as a hub across leafnodes has.
	JetStreamDomain string
	// Configure, when set, edits the server options last: for what this
	// package has no field for, such as operator mode with JWT accounts.
	Configure func(*server.Options)

	// Logger receives the server's own log lines at debug level; nil discards them.
	Logger *slog.Logger
}

// Server is a running embedded nats-server. Restart brings it back on the
// same port and store, so clients reconnect as they would to a restarted
// production server.
type Server struct {
	opts    Options
	tempDir bool

	mu sync.Mutex
	ns *server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	s := &Server{opts: opts}
	if s.opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "natsembed-*")
		if err != nil {
			return nil, fmt.Errorf("natsembed: store dir: %w", err)
		}
		s.opts.StoreDir, s.tempDir = dir, true
	}
	if s.opts.Port == 0 {
		p, err := FreePort(s.opts.Host)
		if err != nil {
			return nil, err
		}
		s.opts.Port = p
	}
	if err := s.start(); err != nil {
		if s.tempDir {
			os.RemoveAll(s.opts.StoreDir)
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	o := &server.Options{
		ServerName: s.opts.Name,
		Host:       s.opts.Host,
		Port:       s.opts.Port,
		JetStream:  true,
		StoreDir:   s.opts.StoreDir,
		NoSigs:     true, // else SIGTERM to the process would os.Exit from inside the server
		NoLog:      s.opts.Logger == nil,
		// Generous enough for load tests; the gateway enforces its own limits.
		MaxPayload:      1 << 20,
		JetStreamDomain: s.opts.JetStreamDomain,
	}
	s.mu.Lock()
	tc := s.opts.TLS
	s.mu.Unlock()
	if tc != nil {
		o.TLS = true
		o.TLSConfig = tc.Clone()
		o.TLSVerify = tc.ClientAuth == tls.RequireAndVerifyClientCert
	}
	if s.opts.Configure != nil {
		s.opts.Configure(o)
	}
	if s.opts.ClusterPort > 0 {
		o.Cluster.Name = s.opts.ClusterName
		o.Cluster.Host = s.opts.Host
		o.Cluster.Port = s.opts.ClusterPort
		for _, r := range s.opts.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return fmt.Errorf("natsembed: route %q: %w", r, err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	// nats-server reports a failed listen only when ReadyForConnections
	// times out (10 s): probe the ports first, so a taken port fails at once
	// (and Restart's retry loop retries quickly).
	ports := []int{s.opts.Port}
	if s.opts.ClusterPort > 0 {
		ports = append(ports, s.opts.ClusterPort)
	}
	if o.LeafNode.Port > 0 { // set by Configure
		ports = append(ports, o.LeafNode.Port)
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("natsembed: port %d: %w", p, err)
		}
		l.Close()
	}
	ns, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("natsembed: new server: %w", err)
	}
	if s.opts.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{l: s.opts.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("natsembed: server not ready after 10s")
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
	return nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// RouteURL is the nats-route:// URL cluster peers use, or "" when not clustered.
func (s *Server) RouteURL() string {
	if s.opts.ClusterPort == 0 {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.ClusterPort))
}

// NATS returns the underlying server (nil while stopped).
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// Stop shuts the server down but keeps its store, so Restart can resume it.
func (s *Server) Stop() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// SetTLS replaces the TLS configuration the server gets at its next
// Restart: how a test rotates the server's certificates.
func (s *Server) SetTLS(tc *tls.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.TLS = tc
}

// Restart starts a stopped server again on the same port and store.
func (s *Server) Restart() error {
	s.Stop()
	// The port can linger briefly in the kernel after shutdown.
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Shutdown stops the server and removes a temp store directory.
func (s *Server) Shutdown() {
	s.Stop()
	if s.tempDir {
		os.RemoveAll(s.opts.StoreDir)
	}
}

// FreePort returns a TCP port on host that was free a moment ago.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("natsembed: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Cluster is a set of clustered embedded servers sharing one JetStream domain.
type Cluster struct {
	Servers []*Server

	tempDir string // removed on Shutdown when StartCluster made it
}

// StartCluster starts n clustered servers (n ≥ 3 for a JetStream quorum) with
// their stores under dir (a temp dir when empty) and waits for all of them.
func StartCluster(n int, dir string) (*Cluster, error) {
	c := &Cluster{}
	if dir == "" {
		d, err := os.MkdirTemp("", "natsembed-cluster-*")
		if err != nil {
			return nil, fmt.Errorf("natsembed: cluster dir: %w", err)
		}
		dir, c.tempDir = d, d
	}
	type ports struct{ client, cluster int }
	ps := make([]ports, n)
	routes := make([]string, n)
	for i := range ps {
		cp, err := FreePort("127.0.0.1")
		if err != nil {
			c.Shutdown()
			return nil, err
		}
		rp, err := FreePort("127.0.0.1")
		if err != nil {
			c.Shutdown()
			return nil, err
		}
		ps[i] = ports{cp, rp}
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(rp)
	}
	errc := make(chan error, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := Start(Options{
				Port:        ps[i].client,
				StoreDir:    filepath.Join(dir, fmt.Sprintf("n%d", i)),
				Name:        fmt.Sprintf("n%d", i),
				ClusterName: "ocvr-test",
				ClusterPort: ps[i].cluster,
				Routes:      routes,
			})
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			c.Servers = append(c.Servers, s)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// ClientURLs lists every node's client URL, for a client's server list.
func (c *Cluster) ClientURLs() []string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return urls
}

// WaitJetStream waits until the cluster has a JetStream meta leader.
func (c *Cluster) WaitJetStream(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if ns := s.NATS(); ns != nil && ns.JetStreamIsLeader() {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("natsembed: no JetStream meta leader")
}

// WaitPeers waits until the JetStream meta leader counts every node of the
// cluster as an online JetStream peer. A meta leader alone is not enough to
// place a 3-replica stream: until the last peer has reported, creating one
// fails with "insufficient resources", and kvutil.Open would quietly fall
// back to a single replica.
func (c *Cluster) WaitPeers(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if ns := s.NATS(); ns != nil && ns.JetStreamIsLeader() && len(ns.JetStreamClusterPeers()) >= len(c.Servers) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("natsembed: fewer than %d JetStream peers online after %v", len(c.Servers), timeout)
}

// StreamLeader is the running node that leads stream (in the global
// account, which the embedded servers use), or nil while none does.
func (c *Cluster) StreamLeader(stream string) *Server {
	for _, s := range c.Servers {
		if ns := s.NATS(); ns != nil && ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s
		}
	}
	return nil
}

// Shutdown stops every node and removes a temp store directory.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	if c.tempDir != "" {
		os.RemoveAll(c.tempDir)
	}
}

// slogAdapter forwards nats-server logs to slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}
