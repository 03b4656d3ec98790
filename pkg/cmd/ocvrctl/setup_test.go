package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
	"github.com/ocvr/realtime/pkg/typing"
)

// warnCounter counts warnings.
type warnCounter struct{ n *int }

func (w warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnCounter) Handle(context.Context, slog.Record) error    { *w.n++; return nil }
func (w warnCounter) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w warnCounter) WithGroup(string) slog.Handler                { return w }

// openAsService opens every store a gateway opens, as a user with no
// stream-admin permission, and returns the warnings and the first error.
func openAsService(t *testing.T, nc *nats.Conn) (warnings int, err error) {
	t.Helper()
	var warns int
	ctx, cancel := context.WithTimeout(provision.WithObserver(context.Background(), &provision.Observer{Logger: slog.New(warnCounter{&warns})}), 10*time.Second)
	defer cancel()
	if _, err := session.Open(ctx, nc, "", nil); err != nil {
		return warns, err
	}
	if _, err := ticket.Open(ctx, nc, ""); err != nil {
		return warns, err
	}
	dir, err := directory.Open(ctx, nc)
	if err != nil {
		return warns, err
	}
	if _, err := presence.Open(ctx, nc, "", dir, nil); err != nil {
		return warns, err
	}
	if _, err := typing.Open(ctx, nc, ""); err != nil {
		return warns, err
	}
	_, err = stream.Ensure(ctx, nc, stream.Config{})
	return warns, err
}

// TestSetupProvisionsWhatServicesOpen: `ocvrctl setup` with an admin user
// creates every bucket and the event stream, idempotently, so that a user
// that may not create or update streams then opens all of them as a
// gateway does, with no write and no warning; before setup the same user
// fails at once, naming the permission.
func TestSetupProvisionsWhatServicesOpen(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "pw"},
			{Username: "svc", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{"$JS.API.INFO", "$JS.API.STREAM.INFO.*",
					"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>", "$KV.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := func(user string) string {
		return strings.Replace(srv.ClientURL(), "nats://", "nats://"+user+":pw@", 1)
	}
	svc, err := nats.Connect(url("svc"))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	if _, err := openAsService(t, svc); err == nil || !strings.Contains(err.Error(), "$JS.API.STREAM.CREATE.KV_ocvr_sessions") || !strings.Contains(err.Error(), "ocvrctl setup") {
		t.Fatalf("before setup: %v; want the missing create permission named", err)
	}

	want := []string{
		`{"kind":"bucket","name":"ocvr_sessions","replicas":1}`, `{"kind":"bucket","name":"ocvr_tickets","replicas":1}`,
		`{"kind":"bucket","name":"ocvr_channels","replicas":1}`, `{"kind":"bucket","name":"ocvr_members","replicas":1}`,
		`{"kind":"bucket","name":"ocvr_friends","replicas":1}`, `{"kind":"bucket","name":"ocvr_presence","replicas":1}`,
		`{"kind":"bucket","name":"ocvr_typing","replicas":1}`, `{"kind":"stream","name":"OCVR_EVENTS","replicas":1}`,
	}
	for run := 1; run <= 2; run++ { // idempotent
		r := ctl(t, "--nats-url", url("admin"), "--json", "setup")
		if r.code != 0 || r.stderr != "" || strings.Join(r.lines(), "\n") != strings.Join(want, "\n") {
			t.Fatalf("setup run %d:\n%s\nwant stdout:\n%s", run, r, strings.Join(want, "\n"))
		}
	}
	if warns, err := openAsService(t, svc); err != nil || warns != 0 {
		t.Fatalf("after setup, a service user: %v, %d warnings; want every store open, no warning", err, warns)
	}
	if r := ctl(t, "--nats-url", url("admin"), "setup", "--stream-replicas", "9"); r.code != 2 {
		t.Errorf("setup --stream-replicas 9: %s; want a usage error", r)
	}
}

// TestSetupInDomain: --jetstream-domain addresses the domain's API
// ($JS.<domain>.API): against a server whose domain is hub, setup in hub
// provisions everything and setup in another domain reaches no JetStream
// (no responders: exit 3). A domain that is not one subject token is a
// usage error.
func TestSetupInDomain(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), JetStreamDomain: "hub"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	tests := []struct {
		domain string
		code   int
		lines  int
	}{
		{"hub", 0, 8},
		{"elsewhere", exitUnreachable, 0},
		{"hub.eu", exitUsage, 0},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			r := ctl(t, "--nats-url", srv.ClientURL(), "--jetstream-domain", tt.domain, "--timeout", "3s", "setup")
			if r.code != tt.code || len(r.lines()) != tt.lines {
				t.Fatalf("setup --jetstream-domain %s:\n%s\nwant exit %d and %d lines", tt.domain, r, tt.code, tt.lines)
			}
		})
	}
}

// TestPermissions: `ocvrctl permissions` prints provision.Grants for the
// environment the global flags name, without NATS (the URL is dead).
func TestPermissions(t *testing.T) {
	dead := "nats://127.0.0.1:1"
	staging := provision.Names{Prefix: "staging", Stream: "STAGING", Tickets: "st_tickets", Domain: "hub"}
	tests := []struct {
		name string
		args []string
		want string // stdout; "" with code 2
		code int
	}{
		{"every role, default names", nil, func() string {
			var b strings.Builder
			for _, r := range []provision.Role{provision.RoleGateway, provision.RoleTicketsvc, provision.RoleBackend, provision.RoleAdmin} {
				b.WriteString("# " + string(r) + "\n" + provision.Grants(r, provision.Names{}).Config())
			}
			return b.String()
		}(), 0},
		{"one role, the environment's names", []string{"--subject-prefix", "staging", "--stream-name", "STAGING", "--tickets-bucket", "st_tickets", "--jetstream-domain", "hub", "--role", "ticketsvc"},
			"# ticketsvc\n" + provision.Grants(provision.RoleTicketsvc, staging).Config(), 0},
		{"unknown role", []string{"--role", "root"}, "", exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, append([]string{"--nats-url", dead, "permissions"}, tt.args...)...)
			if r.code != tt.code || r.stdout != tt.want {
				t.Fatalf("%s\nwant exit %d and stdout:\n%s", r, tt.code, tt.want)
			}
		})
	}
	r := ctl(t, "--nats-url", dead, "--json", "permissions", "--role", "admin")
	g := provision.Grants(provision.RoleAdmin, provision.Names{})
	var got rolePermissions
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.Role != "admin" || !slices.Equal(got.Publish, g.Publish) || !slices.Equal(got.Subscribe, g.Subscribe) {
		t.Fatalf("--json permissions --role admin:\n%s", r)
	}
}
