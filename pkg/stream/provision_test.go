package stream

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

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/provision"
)

// warnings records the warnings logged to it.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	w.mu.Lock()
	w.lines = append(w.lines, line)
	w.mu.Unlock()
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// TestEnsureWithoutAdminRights: a gateway whose NATS user may read stream
// info but not create or update streams gets a stream provisioned by an
// admin as it is (same resume key, no warning); a missing stream fails at
// once with the permission named; a stream provisioned with another window
// is used as it is with one warning naming the update permission. Ensure
// used to update the stream on every call: each of these timed out.
func TestEnsureWithoutAdminRights(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "gw", Password: "gw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.INFO", "$JS.API.STREAM.INFO.*"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	connectAs := func(user string) *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, user))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	admin, gw := connectAs("admin"), connectAs("gw")

	tests := []struct {
		name      string
		provision *Config // what the admin ensures first; nil: nothing
		wantErr   string
		wantWarn  string
	}{
		{name: "provisioned as wanted", provision: &Config{Name: "SAME", Prefix: "same"}},
		{name: "missing", wantErr: "publish $JS.API.STREAM.CREATE.MISSING"},
		{name: "provisioned differently", provision: &Config{Name: "DIFFERS", Prefix: "differs", Window: time.Hour}, wantWarn: "publish $JS.API.STREAM.UPDATE.DIFFERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Name: "MISSING", Prefix: "missing"}
			if tt.provision != nil {
				cfg.Name, cfg.Prefix = tt.provision.Name, tt.provision.Prefix
			}
			var provisioned Info
			if tt.provision != nil {
				if provisioned, err = Ensure(context.Background(), admin, *tt.provision); err != nil {
					t.Fatalf("admin Ensure: %v", err)
				}
			}
			w := &warnings{}
			ctx, cancel := context.WithTimeout(provision.WithObserver(context.Background(), &provision.Observer{Logger: slog.New(w)}), 10*time.Second)
			defer cancel()
			start := time.Now()
			info, err := Ensure(ctx, gw, cfg)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Ensure took %v: waited for a deadline instead of seeing the refusal", took)
			}
			if tt.wantErr != "" {
				var pe *provision.PermissionError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &pe) {
					t.Fatalf("Ensure = %v, want a permission error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if string(info.ResumeKey) != string(provisioned.ResumeKey) {
				t.Error("the resume key differs from the provisioned one")
			}
			got := w.all()
			switch {
			case tt.wantWarn == "" && len(got) > 0:
				t.Errorf("unexpected warnings: %q", got)
			case tt.wantWarn != "" && (len(got) != 1 || !strings.Contains(got[0], tt.wantWarn)):
				t.Errorf("warnings = %q, want one naming %q", got, tt.wantWarn)
			}
		})
	}
}

// TestEnsureFallbackReported: a 2-node JetStream cluster cannot place the
// stream's 3 replicas; Ensure falls back to 1, warns (once: later calls
// keep the existing stream's count) and reports 1 replica. The fallback
// used to be silent.
func TestEnsureFallbackReported(t *testing.T) {
	c := natsembed.TestCluster(t, 2)
	nc := connect(t, strings.Join(c.ClientURLs(), ","))
	w := &warnings{}
	var replicas int
	obs := &provision.Observer{Logger: slog.New(w), Replicas: func(_ string, n int) { replicas = n }}
	ctx, cancel := context.WithTimeout(provision.WithObserver(context.Background(), obs), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		info, err := Ensure(ctx, nc, Config{Window: time.Minute + time.Duration(i)*time.Second}) // the second updates
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != 1 {
			t.Fatalf("replicas = %d", info.Config.Replicas)
		}
	}
	if got := w.all(); replicas != 1 || len(got) != 1 || !strings.Contains(got[0], "fell back to 1") || !strings.Contains(got[0], DefaultName) {
		t.Errorf("replicas reported %d, warnings %q; want 1 and one fallback warning naming %s", replicas, got, DefaultName)
	}
}
