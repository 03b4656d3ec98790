package kvutil

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/provision"
)

// logRecorder keeps the messages and attributes logged to it.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.HasPrefix(l, "WARN") {
			out = append(out, l)
		}
	}
	return out
}

// observed is an observer that records warnings and replica counts.
type observed struct {
	log      *logRecorder
	mu       sync.Mutex
	replicas map[string]int
	obs      *provision.Observer
}

func newObserved() *observed {
	o := &observed{log: &logRecorder{}, replicas: map[string]int{}}
	o.obs = &provision.Observer{Logger: slog.New(o.log), Replicas: func(stream string, n int) {
		o.mu.Lock()
		o.replicas[stream] = n
		o.mu.Unlock()
	}}
	return o
}

func (o *observed) replicasOf(stream string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.replicas[stream]
}

// serviceUser may use buckets but not create, update or delete them: the
// permissions deploy/README.md gives a service's NATS user for its KV.
var serviceUser = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.DIRECT.GET.>", "$KV.>",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
}

// startWithUsers starts a server with an admin user and a service user.
func startWithUsers(t *testing.T) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "svc", Password: "svc", Permissions: serviceUser},
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func connectAs(t *testing.T, srv *natsembed.Server, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestOpenWithoutAdminRights: a user that may not create or update
// streams opens a provisioned bucket without a write; a missing bucket
// fails at once with an error naming the permission and the fix; a bucket
// provisioned with another configuration is used as it is, with one
// warning naming the permission. Open used to CreateOrUpdate every time:
// each of these waited out its deadline and failed with a bare timeout.
func TestOpenWithoutAdminRights(t *testing.T) {
	srv := startWithUsers(t)
	admin, svc := connectAs(t, srv, "admin"), connectAs(t, srv, "svc")
	want := jetstream.KeyValueConfig{Bucket: "lp_same", Description: "d", History: 1, TTL: time.Minute, LimitMarkerTTL: time.Second}

	tests := []struct {
		name      string
		provision *jetstream.KeyValueConfig // what the admin creates first; nil: nothing
		wantErr   string                    // "" = Open succeeds
		wantWarn  string                    // a warning that must be logged ("" = none at all)
	}{
		{name: "provisioned as wanted", provision: &want},
		{name: "missing", wantErr: `publish $JS.API.STREAM.CREATE.KV_lp_missing`},
		{name: "provisioned differently", provision: &jetstream.KeyValueConfig{Description: "old", History: 2},
			wantWarn: "publish $JS.API.STREAM.UPDATE.KV_lp_differs"},
	}
	buckets := map[string]string{"provisioned as wanted": "lp_same", "missing": "lp_missing", "provisioned differently": "lp_differs"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := want
			cfg.Bucket = buckets[tt.name]
			if tt.provision != nil {
				p := *tt.provision
				p.Bucket = cfg.Bucket
				if _, err := Open(context.Background(), admin, p); err != nil {
					t.Fatalf("admin Open: %v", err)
				}
			}
			o := newObserved()
			ctx, cancel := context.WithTimeout(provision.WithObserver(context.Background(), o.obs), 10*time.Second)
			defer cancel()
			start := time.Now()
			kv, err := Open(ctx, svc, cfg)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Open took %v: waited for a deadline instead of seeing the refusal", took)
			}
			if tt.wantErr != "" {
				var pe *provision.PermissionError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "ocvrctl setup") || !errors.As(err, &pe) {
					t.Fatalf("Open = %v, want a permission error naming %q and ocvrctl setup", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatalf("Put through the service user: %v", err)
			}
			if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
				t.Fatalf("Get through the service user: %v", err)
			}
			warns := o.log.warnings()
			switch {
			case tt.wantWarn == "" && len(warns) > 0:
				t.Errorf("unexpected warnings: %q", warns)
			case tt.wantWarn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tt.wantWarn)):
				t.Errorf("warnings = %q, want one naming %q", warns, tt.wantWarn)
			}
			if got := o.replicasOf("KV_" + cfg.Bucket); got != 1 {
				t.Errorf("replicas reported = %d, want 1", got)
			}
		})
	}
}

// TestOpenFallbackReported: a 2-node JetStream cluster cannot place 3
// replicas; Open falls back to 1, warns once (not once per Open) and
// reports 1 replica. The fallback used to be silent.
func TestOpenFallbackReported(t *testing.T) {
	c := natsembed.TestCluster(t, 2)
	nc, err := nats.Connect(strings.Join(c.ClientURLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	o := newObserved()
	ctx, cancel := context.WithTimeout(provision.WithObserver(context.Background(), o.obs), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ { // twice: the warning is once per process and bucket
		if _, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "fb_r1"}); err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	if got := o.replicasOf("KV_fb_r1"); got != 1 {
		t.Errorf("replicas reported = %d, want 1", got)
	}
	warns := o.log.warnings()
	if len(warns) != 1 || !strings.Contains(warns[0], "fell back to 1") || !strings.Contains(warns[0], "KV_fb_r1") {
		t.Errorf("warnings = %q, want exactly one fallback warning for KV_fb_r1", warns)
	}
}
