package stream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
)

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestRepublishCarriesPositions(t *testing.T) {
	s := natsembed.Test(t)
	nc := connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := Ensure(ctx, nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.ResumeKey) != 32 {
		t.Fatalf("resume key of %d bytes", len(info.ResumeKey))
	}
	if info.Config.Replicas != 1 {
		t.Fatalf("replicas = %d on one server", info.Config.Replicas)
	}
	sub, err := nc.SubscribeSync("ocvr.*.*")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := nc.JetStream()
	for _, subj := range []string{"ocvr.in.channel.a", "ocvr.in.user.7", "ocvr.in.channel.a"} {
		if _, err := js.Publish(subj, []byte(`{"type":"x","data":{}}`)); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct{ subj, seq, last string }{
		{"ocvr.channel.a", "1", "0"}, {"ocvr.user.7", "2", "0"}, {"ocvr.channel.a", "3", "1"},
	}
	for _, w := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %v", m.Subject, m.Header)
		if m.Subject != w.subj || m.Header.Get("Nats-Sequence") != w.seq || m.Header.Get("Nats-Last-Sequence") != w.last {
			t.Fatalf("got %s seq=%s last=%s, want %+v", m.Subject, m.Header.Get("Nats-Sequence"), m.Header.Get("Nats-Last-Sequence"), w)
		}
	}
	// Ensure again: idempotent, and the key is kept.
	again, err := Ensure(ctx, nc, Config{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if string(again.ResumeKey) != string(info.ResumeKey) || again.Config.MaxAge != time.Minute {
		t.Fatalf("second Ensure: key kept %v, max age %v", string(again.ResumeKey) == string(info.ResumeKey), again.Config.MaxAge)
	}
}
