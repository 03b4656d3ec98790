package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
)

// violationRe finds a permission violation in a service's log.
var violationRe = regexp.MustCompile(`(?i)permissions? (violation|missing)[^\n]*`)

// TestNATSSecurity runs the install path of deploy/README.md ("NATS
// security") against a NATS server with mutual TLS and operator-mode JWT
// auth: `ocvrctl setup` with the admin user, then ticketsvc and a gateway
// (real processes) each with its own user holding exactly
// provision.Grants of its role, and a backend with its own. Everything
// works — ticket, connect, subscribe, publish through the stream, delivery,
// presence between friends, revocation — with no permission violation in
// any log. Then each missing permission fails loudly with a log line that
// names it: a gateway started before setup names the create permission
// and the fix; a ticketsvc without the tickets bucket's write permission
// answers 503 and names it.
func TestNATSSecurity(t *testing.T) {
	bins, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := ocvrctlBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	certs := newPKI(t, c.dir)
	op := newOperator(t)
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(c.dir, "nats"), TLS: certs.server, Configure: op.configure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.ClientURL()
	names := provision.Names{}
	creds := func(name string, g provision.Grant) []string {
		return []string{"--nats-url", url, "--nats-creds", op.creds(t, c.dir, name, g),
			"--nats-tls-ca", certs.caFile, "--nats-tls-cert", certs.certFile, "--nats-tls-key", certs.keyFile}
	}
	gatewayArgs := creds("gateway", provision.Grants(provision.RoleGateway, names))
	gateway := func(name string) *Process {
		return c.newProcess(filepath.Join(bins, "gateway"), name, func(p *Process) []string {
			return append([]string{"--listen", p.Public, "--admin-listen", p.Admin, "--pod-name", p.Name, "--log-level", "debug",
				"--presence-grace", "1s"}, gatewayArgs...)
		})
	}
	ticketsvc := func(name string, args []string) *Process {
		return c.newProcess(filepath.Join(bins, "ticketsvc"), name, func(p *Process) []string {
			return append([]string{"--listen", p.Public, "--admin-listen", p.Admin, "--log-level", "debug"}, args...)
		})
	}
	var all []*Process
	t.Cleanup(func() {
		for _, p := range all {
			p.Kill()
			if t.Failed() {
				t.Logf("--- last lines of %s ---\n%s", p.Name, p.Tail(30))
			}
		}
	})

	// Before setup: the buckets do not exist and the gateway may not
	// create them. It stays unready and says which permission and what to do.
	early := gateway("gateway-before-setup")
	all = append(all, early)
	if err := early.Start(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "the gateway's log naming the missing create permission", func() bool {
		log := early.Log()
		return strings.Contains(log, "bucket ocvr_tickets does not exist and this NATS user may not create it (NATS permission missing: publish $JS.API.") &&
			strings.Contains(log, "ocvrctl setup")
	})
	if ready, _ := early.Ready(); ready {
		t.Fatal("a gateway without its buckets reports ready")
	}
	early.Kill()

	// The install step, with the admin user.
	out, err := exec.Command(ctl, append(creds("admin", provision.Grants(provision.RoleAdmin, names)), "setup")...).CombinedOutput()
	if err != nil || strings.Count(string(out), " ready: ") != 8 {
		t.Fatalf("ocvrctl setup: %v\n%s", err, out)
	}

	tsvc := ticketsvc("ticketsvc", creds("ticketsvc", provision.Grants(provision.RoleTicketsvc, names)))
	gw := gateway("gateway")
	all = append(all, tsvc, gw)
	for _, p := range []*Process{tsvc, gw} {
		if err := c.launch(p); err != nil {
			t.Fatal(err)
		}
	}

	// The backend: its own user, in-process through the SDK.
	backend, err := bus.Connect(bus.Config{URLs: []string{url}, CredsFile: op.creds(t, c.dir, "backend", provision.Grants(provision.RoleBackend, names)),
		TLSCAFile: certs.caFile, TLSCertFile: certs.certFile, TLSKeyFile: certs.keyFile, Name: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	subjects, _ := bus.NewSubjects("")
	pub := bus.NewPublisher(backend, subjects)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions, err := session.Open(ctx, backend, "", pub)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(ctx, backend)
	if err != nil {
		t.Fatal(err)
	}
	c.Sessions, c.Directory = sessions, dir
	c.Channel("ch_sec", 1)
	if err := dir.AddFriend(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	alice := c.NewUser(1, "Alice") // through the backend's own session store
	// Bob's session through ticketsvc's session service: a plain NATS
	// request, with the backend's and ticketsvc's permissions.
	var created struct {
		Data struct {
			Token     string `json:"token"`
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	reply, err := backend.Request("ocvr.svc.sessions.create", []byte(`{"user_id":2,"display_name":"Bob","ttl_seconds":3600}`), 5*time.Second)
	if err != nil {
		t.Fatalf("session service create: %v", err)
	}
	if json.Unmarshal(reply.Data, &created) != nil || created.Data.Token == "" {
		t.Fatalf("session service create: %s", reply.Data)
	}
	bob := User{ID: 2, Name: "Bob", Token: created.Data.Token}
	dial := func(u User) *Probe {
		conn, err := client.Connect(ctx, "http://"+tsvc.Public, gw.WSURL(), u.Token, client.Options{})
		if err != nil {
			t.Fatalf("connect %s: %v", u.Name, err)
		}
		t.Cleanup(func() { conn.Close() })
		return NewProbe(u, conn)
	}
	a := dial(alice)
	a.Subscribe(t, "ch_sec")
	m := protocol.MessageCreate{ID: "msg_sec", ChannelID: "ch_sec", Author: protocol.Author{ID: 9, DisplayName: "Bot"},
		Content: "over TLS and JWT", CreatedAt: time.Now().Unix()}
	if err := pub.MessageCreated(ctx, m); err != nil {
		t.Fatalf("publish through the stream: %v", err)
	}
	Eventually(t, 10*time.Second, "the event delivered", func() bool { return a.Count(protocol.TypeMessageCreate, "over TLS and JWT") == 1 })
	b := dial(bob)
	Eventually(t, 10*time.Second, "Bob online, told to his friend", func() bool {
		return a.Count(protocol.TypePresenceUpdate, `"user_id":2`, `"online"`) >= 1
	})
	b.Conn.Close()
	Eventually(t, 15*time.Second, "Bob offline after the grace, told to his friend", func() bool {
		return a.Count(protocol.TypePresenceUpdate, `"user_id":2`, `"offline"`) >= 1
	})
	if _, err := backend.Request("ocvr.svc.sessions.revoke_user", []byte(`{"user_id":1,"reason":"logout_all"}`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	err, closed := a.WaitClosed(10 * time.Second)
	var ce *client.CloseError
	if !closed || !errors.As(err, &ce) || ce.Code != protocol.CloseSessionRevoked {
		t.Fatalf("revoked: closed=%v err=%v, want 4003", closed, err)
	}
	// The replicas each opened asset got (1: a single server), as the
	// services export them.
	for _, r := range []struct {
		p      *Process
		metric string
		stream string
	}{
		{gw, "ocvr_gateway_jetstream_replicas", "KV_ocvr_tickets"},
		{gw, "ocvr_gateway_jetstream_replicas", "OCVR_EVENTS"},
		{tsvc, "ocvr_ticketsvc_jetstream_replicas", "KV_ocvr_sessions"},
	} {
		if v, err := r.p.Metric(r.metric, `stream="`+r.stream+`"`); err != nil || v != 1 {
			t.Errorf("%s{stream=%q} = %v, %v; want 1", r.metric, r.stream, v, err)
		}
	}
	for _, p := range []*Process{tsvc, gw} {
		if m := violationRe.FindString(p.Log()); m != "" {
			t.Errorf("%s with its documented permissions logged: %s", p.Name, m)
		}
	}

	// A ticketsvc whose user lacks the tickets bucket's write permission
	// answers 503 and names the permission in its log.
	missing := "$KV." + "ocvr_tickets" + ".>"
	broken := ticketsvc("ticketsvc-missing-kv-write", creds("ticketsvc-broken", without(provision.Grants(provision.RoleTicketsvc, names), missing)))
	all = append(all, broken)
	if err := c.launch(broken); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetTicket(ctx, nil, "http://"+broken.Public, c.NewUser(3, "Carol").Token)
	if err == nil {
		t.Fatal("a ticketsvc that may not write tickets issued one")
	}
	Eventually(t, 10*time.Second, "the log line naming the missing permission", func() bool {
		// The JSON log escapes the quotes around the subject.
		return strings.Contains(broken.Log(), `Permissions Violation for Publish to \"$KV.ocvr_tickets.`)
	})
}

// The permission sets of server-side users (nats-server's own config)
// and JWT users are the same lists: keep the compiler honest about the
// server package being linked for operator mode.
var _ = server.MemAccResolver{}
