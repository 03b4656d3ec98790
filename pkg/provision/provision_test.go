package provision_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/provision"
)

// TestGuard: a JetStream request the server refuses for want of a
// permission ends at once with a *PermissionError naming the subject; an
// allowed one succeeds even while another part of the process has a
// publish refused (not the request's cause).
func TestGuard(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.Users = []*server.User{{Username: "u", Password: "p", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.INFO"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("u", "p"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	tests := []struct {
		name    string
		run     func(ctx context.Context) error
		subject string // "" = success expected
	}{
		{"allowed", func(ctx context.Context) error { _, err := js.AccountInfo(ctx); return err }, ""},
		{"allowed while a live publish is refused", func(ctx context.Context) error {
			if err := nc.Publish("ocvr.channel.x", nil); err != nil {
				return err
			}
			_ = nc.Flush()
			time.Sleep(50 * time.Millisecond) // the refusal arrives
			_, err := js.AccountInfo(ctx)
			return err
		}, ""},
		{"refused", func(ctx context.Context) error { _, err := js.Stream(ctx, "S"); return err }, "$JS.API.STREAM.INFO.S"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := provision.Guard(ctx, nc, tt.run)
			var pe *provision.PermissionError
			switch {
			case tt.subject == "" && err != nil:
				t.Fatalf("Guard = %v, want success", err)
			case tt.subject != "" && (!errors.As(err, &pe) || pe.Subject != tt.subject || pe.Op != "publish"):
				t.Fatalf("Guard = %v, want a publish permission error on %s", err, tt.subject)
			case time.Since(start) > 5*time.Second:
				t.Fatalf("Guard took %v", time.Since(start))
			}
		})
	}
}
