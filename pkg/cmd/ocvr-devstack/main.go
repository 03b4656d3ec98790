// Command ocvr-devstack runs the whole OCVR Realtime stack on one machine for
// development (`make run`): an embedded NATS server with JetStream, ticketsvc
// and one or more gateways as child processes, demo data, and the demo chat
// page with the TypeScript client (demo.go; development only). Ctrl-C stops
// everything cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
)

type options struct {
	bin, data                       string
	natsPort                        int
	ticketsvcAddr, ticketsvcAdmin   string
	gatewayPort, gatewayAdminPort   int
	gateways                        int
	seed                            bool
	extraGatewayArgs, extraTSVCArgs string
	demoAddr, demoDir               string
}

func main() {
	var o options
	fs := flag.NewFlagSet("ocvr-devstack", flag.ExitOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding the gateway and ticketsvc binaries")
	fs.StringVar(&o.data, "data", ".data", "directory for NATS storage and process logs")
	fs.IntVar(&o.natsPort, "nats-port", 4222, "NATS client port")
	fs.StringVar(&o.ticketsvcAddr, "ticketsvc-addr", "127.0.0.1:8080", "ticketsvc public address")
	fs.StringVar(&o.ticketsvcAdmin, "ticketsvc-admin", "127.0.0.1:9080", "ticketsvc admin address")
	fs.IntVar(&o.gatewayPort, "gateway-port", 8081, "first gateway's public port (replica i uses port+i)")
	fs.IntVar(&o.gatewayAdminPort, "gateway-admin-port", 9081, "first gateway's admin port (replica i uses port+i)")
	fs.IntVar(&o.gateways, "gateways", 1, "number of gateway replicas")
	fs.BoolVar(&o.seed, "seed", true, "create demo users, sessions, a channel and a friendship")
	fs.StringVar(&o.extraGatewayArgs, "gateway-args", "", "extra flags for every gateway, space-separated (e.g. \"--presence-grace 2s\")")
	fs.StringVar(&o.extraTSVCArgs, "ticketsvc-args", "", "extra flags for ticketsvc, space-separated (e.g. \"--rate-limit 0\")")
	fs.StringVar(&o.demoAddr, "demo-addr", "127.0.0.1:8090", "loopback address of the demo chat page and its DEVELOPMENT-ONLY sign-in API (empty: off)")
	fs.StringVar(&o.demoDir, "demo-dir", "pkg/js", "the TypeScript client package: the demo page (demo/) and the built client (dist/)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ocvr-devstack [flags]\n\nRuns NATS (embedded), ticketsvc and the gateway(s) locally. Normally started by `make run`.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ocvr-devstack:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logs := filepath.Join(o.data, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	ns, err := natsembed.Start(natsembed.Options{Port: o.natsPort, StoreDir: filepath.Join(o.data, "nats"), Name: "devstack"})
	if err != nil {
		return fmt.Errorf("start NATS on port %d (is another stack running?): %w", o.natsPort, err)
	}
	defer ns.Shutdown()
	natsURL := ns.ClientURL()
	fmt.Printf("NATS (JetStream)   %s   data in %s\n", natsURL, filepath.Join(o.data, "nats"))

	var procs []*proc
	defer func() { stopAll(procs) }()
	p, err := start(filepath.Join(o.bin, "ticketsvc"), filepath.Join(logs, "ticketsvc.log"),
		append([]string{"--listen", o.ticketsvcAddr, "--admin-listen", o.ticketsvcAdmin, "--nats-url", natsURL},
			strings.Fields(o.extraTSVCArgs)...)...)
	if err != nil {
		return err
	}
	procs = append(procs, p)
	admins := []string{"http://" + o.ticketsvcAdmin}
	fmt.Printf("ticketsvc          http://%s   admin http://%s   log %s\n", o.ticketsvcAddr, o.ticketsvcAdmin, p.logPath)
	var wsURLs []string
	for i := 0; i < o.gateways; i++ {
		pub := "127.0.0.1:" + strconv.Itoa(o.gatewayPort+i)
		adm := "127.0.0.1:" + strconv.Itoa(o.gatewayAdminPort+i)
		name := fmt.Sprintf("gateway-%d", i+1)
		p, err := start(filepath.Join(o.bin, "gateway"), filepath.Join(logs, name+".log"),
			append([]string{"--listen", pub, "--admin-listen", adm, "--nats-url", natsURL, "--pod-name", name,
				"--readiness-delay", "1s", "--drain-window", "2s"}, strings.Fields(o.extraGatewayArgs)...)...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		admins = append(admins, "http://"+adm)
		wsURLs = append(wsURLs, "ws://"+pub+"/v1/ws")
		fmt.Printf("%-18s ws://%s/v1/ws   admin http://%s   log %s\n", name, pub, adm, p.logPath)
	}
	if err := waitReady(ctx, admins, procs); err != nil {
		return err
	}
	// Before anything publishes (the demo page, the commands printed
	// below): the event stream channel and user events go through.
	if err := provisionStream(ctx, natsURL); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	if o.seed {
		if err := seed(ctx, natsURL, o); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}
	if o.demoAddr != "" {
		srv, err := serveDemo(ctx, natsURL, o, wsURLs)
		switch {
		case errors.Is(err, errDemoListen):
			// The demo page is optional: a busy port must not stop the stack.
			fmt.Fprintf(os.Stderr, "\nocvr-devstack: no demo page: %v (choose another with --demo-addr)\n", err)
		case err != nil:
			return err
		default:
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
		}
	}
	fmt.Println("\nThe stack is up. Ctrl-C stops it.")
	select {
	case <-ctx.Done():
	case p := <-exited(procs):
		fmt.Fprintf(os.Stderr, "%s exited unexpectedly; see %s\n", p.name, p.logPath)
	}
	fmt.Println("\nstopping…")
	return nil
}

type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func start(bin, logPath string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (did `make build` run?): %w", bin, err)
	}
	p := &proc{name: filepath.Base(logPath[:len(logPath)-4]), logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func exited(procs []*proc) <-chan *proc {
	ch := make(chan *proc, len(procs))
	for _, p := range procs {
		go func(p *proc) { <-p.done; ch <- p }(p)
	}
	return ch
}

// stopAll sends SIGTERM to every process (gateways drain) and waits.
func stopAll(procs []*proc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}(p)
	}
	wg.Wait()
}

func waitReady(ctx context.Context, admins []string, procs []*proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range admins {
		for {
			resp, err := http.Get(a + "/readyz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case p := <-exited(procs):
				return fmt.Errorf("%s exited during start; see %s", p.name, p.logPath)
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return errors.New("services not ready after 30s: " + a + "/readyz")
			}
		}
	}
	return nil
}

// provisionStream makes sure an event stream holds the environment's
// channel and user events and says which. The gateways create it at start
// (with their --stream-name and --continuity-window, which may come from
// --gateway-args): the one they made is kept. Without it (no gateway, or
// gateways run with --no-continuity) the devstack creates the default one,
// so that its publishers (the demo page, ocvrctl) still reach the clients.
func provisionStream(ctx context.Context, natsURL string) error {
	nc, err := bus.Connect(bus.Config{URLs: []string{natsURL}, Name: "devstack-stream", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	prefix := bus.DefaultPrefix
	by := "the gateways"
	name, err := js.StreamNameBySubject(ctx, stream.InputChannel(prefix, "ch_general"))
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		info, err := stream.Ensure(ctx, nc, stream.Config{Prefix: prefix})
		if err != nil {
			return err
		}
		name, by = info.Config.Name, "ocvr-devstack (no gateway made one: with --no-continuity, nothing resumes)"
	case err != nil:
		return err
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	sc := s.CachedInfo().Config
	fmt.Printf("event stream       %s   window %s, %d replica(s), made by %s\n", sc.Name, sc.MaxAge, sc.Replicas, by)
	return nil
}

func seed(ctx context.Context, natsURL string, o options) error {
	nc, err := bus.Connect(bus.Config{URLs: []string{natsURL}, Name: "devstack-seed", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer nc.Close()
	subjects, _ := bus.NewSubjects("")
	sessions, err := session.Open(ctx, nc, "", bus.NewPublisher(nc, subjects))
	if err != nil {
		return err
	}
	dir, err := directory.Open(ctx, nc)
	if err != nil {
		return err
	}
	if err := dir.CreateChannel(ctx, "ch_general"); err != nil {
		return err
	}
	for _, u := range []int64{1, 2} {
		if err := dir.AddMember(ctx, "ch_general", u); err != nil {
			return err
		}
	}
	if err := dir.AddFriend(ctx, 1, 2); err != nil {
		return err
	}
	alice, aliceSess, err := sessions.Create(ctx, 1, "Alice", 24*time.Hour)
	if err != nil {
		return err
	}
	bob, _, err := sessions.Create(ctx, 2, "Bob", 24*time.Hour)
	if err != nil {
		return err
	}
	ws := fmt.Sprintf("ws://127.0.0.1:%d/v1/ws", o.gatewayPort)
	tsvc := "http://" + o.ticketsvcAddr
	fmt.Printf(`
Demo data: users 1 (Alice) and 2 (Bob), friends, both members of channel ch_general.
  Alice's session token: %s   (session id %s)
  Bob's session token:   %s

Try it (in another terminal, from the repository root):
  # a connect ticket with curl
  curl -s -X POST -H "Authorization: Bearer %s" %s/v1/auth/ws-ticket
  # connect as Alice and subscribe to ch_general (prints every frame as a JSON line)
  bin/ocvrctl connect --session %s --subscribe ch_general --ticket-url %s --ws-url %s
  # publish a chat message as a backend would (through the event stream: a client that
  # reconnects within the window receives it; --core publishes it live only)
  bin/ocvrctl publish message-create --channel ch_general --author 2 --name Bob --content "hello from the bus"
  # what the event stream holds
  bin/ocvrctl stream info
  # an event type the gateway does not know: delivered like any other
  bin/ocvrctl publish raw --channel ch_general --frame '{"type":"channel_update","data":{"channel_id":"ch_general","name":"General"}}'
  # why a payload was refused (run it in its own terminal; Ctrl-C stops it)
  bin/ocvrctl advisories
  # a notification to Alice, then revoke her session (her socket closes with 4003)
  bin/ocvrctl notify --user 1 --type friend_request --title "New friend request" --body "Bob wants to be friends" --data '{"from_user_id":2}'
  bin/ocvrctl session revoke --session %s --reason logout
`, alice, aliceSess.ID, bob, alice, tsvc, alice, tsvc, ws, aliceSess.ID)
	return nil
}

// serveDemo starts the demo page server (demo.go) with its own NATS
// connection, closed when ctx ends.
func serveDemo(ctx context.Context, natsURL string, o options, wsURLs []string) (*http.Server, error) {
	nc, err := bus.Connect(bus.Config{URLs: []string{natsURL}, Name: "devstack-demo", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, nc.Close)
	cfg := demoConfig{TicketURL: "http://" + o.ticketsvcAddr, WSURLs: wsURLs, Users: []demoUser{}, DevOnly: devOnlyNote}
	if cfg.WSURLs == nil {
		cfg.WSURLs = []string{}
	}
	if o.seed {
		cfg.Users = []demoUser{{ID: 1, Name: "Alice"}, {ID: 2, Name: "Bob"}}
	}
	srv, err := startDemo(ctx, o.demoAddr, o.demoDir, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	built := ""
	if _, err := os.Stat(filepath.Join(o.demoDir, "dist", "index.js")); err != nil {
		built = "   (build the client first: cd pkg/js && npm ci && npm run build)"
	}
	fmt.Printf("\nDemo chat page     http://%s/   DEVELOPMENT ONLY: signs in any user id without a password%s\n", o.demoAddr, built)
	return srv, nil
}
