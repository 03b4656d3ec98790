package clustertest

import (
	"context"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
)

// TestGatewayOnLeafnode: a gateway and ticketsvc whose NATS is a leafnode
// server with a JetStream of its own use the hub's buckets and event
// stream with --jetstream-domain hub (real processes, set up by
// `ocvrctl --jetstream-domain hub setup` from the edge), each as a leaf
// user holding exactly its role's grants in domain hub — no permission
// violation is logged. A backend on the
// hub creates the session and the channel and publishes through the hub's
// stream; the client at the edge gets its ticket, connects, subscribes and
// receives the event with its stream position. The leaf's own JetStream
// holds nothing.
func TestGatewayOnLeafnode(t *testing.T) {
	bins, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := ocvrctlBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	var leafPort int
	var hub *natsembed.Server
	for attempt := 1; ; attempt++ {
		// The free port may be taken before the hub binds it (go test runs
		// packages in parallel): then again on another.
		leafPort = freePort(t)
		hub, err = natsembed.Start(natsembed.Options{StoreDir: filepath.Join(c.dir, "hub", strconv.Itoa(attempt)), JetStreamDomain: "hub", Configure: func(o *server.Options) {
			o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", leafPort
		}})
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Shutdown)
	remote, _ := url.Parse("nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort))
	// The leaf's users hold exactly their role's grants as a leafnode
	// user reaches the hub's domain (provision.Names.Domain).
	users := []*server.User{{Username: "probe", Password: "pw"}} // the test's own look at the leaf
	for _, r := range []provision.Role{provision.RoleGateway, provision.RoleTicketsvc, provision.RoleAdmin} {
		g := provision.Grants(r, provision.Names{Domain: "hub"})
		perms := &server.Permissions{Publish: &server.SubjectPermission{Allow: g.Publish}, Subscribe: &server.SubjectPermission{Allow: g.Subscribe}}
		if g.Responses {
			perms.Response = &server.ResponsePermission{MaxMsgs: 1}
		}
		users = append(users, &server.User{Username: string(r), Password: "pw", Permissions: perms})
	}
	leaf, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(c.dir, "leaf"), JetStreamDomain: "leaf", Configure: func(o *server.Options) {
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}
		o.Users = users
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	Eventually(t, 10*time.Second, "the leafnode connection", func() bool { return leaf.NATS().NumLeafNodes() == 1 })

	edge := func(user string) []string {
		return []string{"--nats-url", strings.Replace(leaf.ClientURL(), "nats://", "nats://"+user+":pw@", 1), "--jetstream-domain", "hub"}
	}
	if out, err := exec.Command(ctl, append(edge("admin"), "setup")...).CombinedOutput(); err != nil || strings.Count(string(out), " ready: ") != 8 {
		t.Fatalf("ocvrctl setup from the edge: %v\n%s", err, out)
	}
	tsvc := c.newProcess(filepath.Join(bins, "ticketsvc"), "ticketsvc-edge", func(p *Process) []string {
		return append([]string{"--listen", p.Public, "--admin-listen", p.Admin}, edge("ticketsvc")...)
	})
	gw := c.newProcess(filepath.Join(bins, "gateway"), "gateway-edge", func(p *Process) []string {
		return append([]string{"--listen", p.Public, "--admin-listen", p.Admin, "--pod-name", p.Name}, edge("gateway")...)
	})
	for _, p := range []*Process{tsvc, gw} {
		if err := c.launch(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				t.Logf("--- last lines of %s ---\n%s", p.Name, p.Tail(30))
			}
		})
	}

	// The backend, at the hub.
	backend, err := bus.Connect(bus.Config{URLs: []string{hub.ClientURL()}, Name: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subjects, _ := bus.NewSubjects("")
	pub := bus.NewPublisher(backend, subjects)
	if c.Sessions, err = session.Open(ctx, backend, "", pub); err != nil {
		t.Fatal(err)
	}
	if c.Directory, err = directory.Open(ctx, backend); err != nil {
		t.Fatal(err)
	}
	c.Channel("ch_edge", 1)
	u := c.NewUser(1, "Edge")
	conn, err := client.Connect(ctx, "http://"+tsvc.Public, gw.WSURL(), u.Token, client.Options{})
	if err != nil {
		t.Fatalf("connect at the edge: %v", err)
	}
	defer conn.Close()
	p := NewProbe(u, conn)
	p.Subscribe(t, "ch_edge")
	m := protocol.MessageCreate{ID: "msg_edge", ChannelID: "ch_edge", Author: protocol.Author{ID: 9, DisplayName: "Hub"},
		Content: "from the hub", CreatedAt: time.Now().Unix()}
	if err := pub.MessageCreated(ctx, m); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the hub's event at the edge, with its position", func() bool {
		return p.Count(protocol.TypeMessageCreate, "from the hub", `"seq":`) == 1
	})

	for _, p := range []*Process{tsvc, gw} {
		if m := violationRe.FindString(p.Log()); m != "" {
			t.Errorf("%s with its role's grants in domain hub logged: %s", p.Name, m)
		}
	}

	// Nothing was provisioned in the leaf's own JetStream.
	leafNC, err := nats.Connect(leaf.ClientURL(), nats.UserInfo("probe", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer leafNC.Close()
	leafJS, _ := jetstream.New(leafNC)
	names := leafJS.StreamNames(ctx)
	var local []string
	for n := range names.Name() {
		local = append(local, n)
	}
	if len(local) > 0 || names.Err() != nil {
		t.Errorf("the leaf's own JetStream holds %v (%v); want nothing", local, names.Err())
	}
}
