package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/stream"
)

// bare is a NATS server without the event stream, and a connection to it.
func bare(t *testing.T) (*natsembed.Server, *nats.Conn) {
	t.Helper()
	srv := natsembed.Test(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}

func streamState(t *testing.T, nc *nats.Conn, name string) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestStreamCommands: stream ensure creates the event stream as a gateway
// would (and updates it, keeping its resume key); stream info shows its
// configuration and what it holds.
func TestStreamCommands(t *testing.T) {
	srv, nc := bare(t)

	r := ctl(t, "--nats-url", srv.ClientURL(), "stream", "info")
	if r.code != exitNotFound || !strings.Contains(r.stderr, "no stream OCVR_EVENTS") || !strings.Contains(r.stderr, "ocvrctl stream ensure") {
		t.Fatalf("stream info without a stream:\n%s", r)
	}

	r = ok(t, srv, "stream", "ensure", "--window", "5m", "--max-bytes", "1048576")
	if want := "stream OCVR_EVENTS ready: 1 replica(s), window 5m0s, max bytes 1048576 (1.0 MiB), subjects ocvr.in.channel.* ocvr.in.user.*\n"; r.stdout != want {
		t.Errorf("ensure output %q, want %q", r.stdout, want)
	}
	info := streamState(t, nc, stream.DefaultName)
	if info.Config.MaxAge != 5*time.Minute || info.Config.MaxBytes != 1<<20 || !info.Config.AllowDirect || info.Config.RePublish == nil {
		t.Errorf("stream config %+v", info.Config)
	}
	key := info.Config.Metadata[stream.MetaResumeKey]
	if key == "" {
		t.Fatal("no resume key")
	}

	r = ok(t, srv, "stream", "info")
	for _, want := range []string{
		"stream:       OCVR_EVENTS\n",
		"subjects:     ocvr.in.channel.* ocvr.in.user.*\n",
		"republish:    ocvr.in.*.* -> ocvr.{{wildcard(1)}}.{{wildcard(2)}}\n",
		"replicas:     1",
		"storage:      file\n",
		"window:       5m0s (MaxAge)\n",
		"max bytes:    1048576 (1.0 MiB)\n",
		"duplicates:   2m0s (Nats-Msg-Id window)\n",
		"messages:     0\n",
		"first event:  none\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stream info lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, key) || strings.Contains(r.stdout, "note:") {
		t.Errorf("stream info shows the resume key or a note:\n%s", r.stdout)
	}

	// Two events through the stream, then what info says about them.
	ok(t, srv, "publish", "message-delete", "--channel", "ch_a", "--id", "m1")
	ok(t, srv, "notify", "--user", "7", "--type", "t", "--title", "T")
	r = ok(t, srv, "stream", "info")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^messages:     2$`),
		regexp.MustCompile(`(?m)^bytes:        [1-9][0-9]* \([0-9.]+ (B|KiB)\)$`),
		regexp.MustCompile(`(?m)^first seq:    1$`),
		regexp.MustCompile(`(?m)^last seq:     2$`),
		regexp.MustCompile(`(?m)^first event:  20[0-9-]+T[0-9:]+Z \([0-9]+s ago\)$`),
		regexp.MustCompile(`(?m)^last event:   20[0-9-]+T[0-9:]+Z \([0-9]+s ago\)$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("stream info does not match %s:\n%s", want, r.stdout)
		}
	}

	// Ensure again, as a gateway restarting with the default window: the
	// configuration follows, the key and the events stay.
	r = ok(t, srv, "stream", "ensure")
	if !strings.Contains(r.stdout, "window 2m0s, max bytes unlimited") {
		t.Errorf("second ensure: %q", r.stdout)
	}
	info = streamState(t, nc, stream.DefaultName)
	if info.Config.MaxAge != 2*time.Minute || info.Config.Metadata[stream.MetaResumeKey] != key || info.State.Msgs != 2 {
		t.Errorf("after the second ensure: window %v, key kept %v, %d events", info.Config.MaxAge,
			info.Config.Metadata[stream.MetaResumeKey] == key, info.State.Msgs)
	}

	// Another environment: its own prefix and stream name (environment
	// variables as for the other global flags).
	env := map[string]string{"OCVR_NATS_URL": srv.ClientURL(), "OCVR_SUBJECT_PREFIX": "staging", "OCVR_STREAM_NAME": "STAGING_EVENTS"}
	if r := ctlEnv(t, env, "stream", "ensure"); r.code != 0 || !strings.Contains(r.stdout, "stream STAGING_EVENTS ready") ||
		!strings.Contains(r.stdout, "staging.in.channel.* staging.in.user.*") {
		t.Errorf("staging ensure:\n%s", r)
	}
	// Info of a stream made for another prefix says so.
	r = ctl(t, "--nats-url", srv.ClientURL(), "--subject-prefix", "eu", "stream", "info")
	if r.code != 0 || !strings.Contains(r.stdout, `note:         its subjects are not those of prefix "eu"`) {
		t.Errorf("info with another prefix:\n%s", r)
	}
}

// TestPublishWithoutStream: with no event stream, a publish fails at once
// with exit 3 (unreachable) and says how to fix it; --core still publishes, without a
// position; broadcasts never need the stream.
func TestPublishWithoutStream(t *testing.T) {
	srv, nc := bare(t)
	// Nothing subscribes to the input subjects: the publish gets "no
	// responders" at once.
	for _, args := range [][]string{
		{"publish", "message-delete", "--channel", "ch_a", "--id", "m1"},
		{"publish", "raw", "--user", "7", "--frame", `{"type":"x","data":{}}`},
		{"notify", "--user", "7", "--type", "t", "--title", "T"},
	} {
		start := time.Now()
		r := ctl(t, append([]string{"--nats-url", srv.ClientURL()}, args...)...)
		if r.code != exitUnreachable || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, "the event stream did not answer") || !strings.Contains(r.stderr, "'ocvrctl stream ensure'") ||
			!strings.Contains(r.stderr, "--core") {
			t.Errorf("ocvrctl %s without a stream:\n%s", strings.Join(args, " "), r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v to fail", d)
		}
	}

	sub, err := nc.SubscribeSync("ocvr.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		subject string
	}{
		{[]string{"publish", "message-create", "--channel", "ch_a", "--author", "1", "--name", "A", "--content", "hi", "--core"}, "ocvr.channel.ch_a"},
		{[]string{"publish", "message-update", "--channel", "ch_a", "--id", "m1", "--content", "hi", "--core"}, "ocvr.channel.ch_a"},
		{[]string{"publish", "message-delete", "--channel", "ch_a", "--id", "m1", "--core"}, "ocvr.channel.ch_a"},
		{[]string{"notify", "--user", "7", "--type", "t", "--title", "T", "--core"}, "ocvr.user.7"},
		{[]string{"publish", "raw", "--user", "7", "--frame", `{"type":"x","data":{}}`, "--core"}, "ocvr.user.7"},
		{[]string{"publish", "raw", "--broadcast", "--frame", `{"type":"x","data":{}}`}, "ocvr.broadcast"},
		{[]string{"broadcast", "--title", "T"}, "ocvr.broadcast"},
	} {
		r := ok(t, srv, tc.args...)
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("ocvrctl %s: nothing published: %v", strings.Join(tc.args, " "), err)
		}
		if m.Subject != tc.subject || m.Header.Get(stream.HeaderStream) != "" || m.Header.Get(bus.HeaderPublishedAt) == "" {
			t.Errorf("ocvrctl %s: published on %s with headers %v, want a core publish on %s", strings.Join(tc.args, " "), m.Subject, m.Header, tc.subject)
		}
		if strings.Contains(r.stdout, "stream") {
			t.Errorf("ocvrctl %s: output %q mentions a stream", strings.Join(tc.args, " "), r.stdout)
		}
	}
}

// TestPublishMsgID: --msg-id makes a publish idempotent: a retry within the
// duplicate window is stored, and so delivered, once.
func TestPublishMsgID(t *testing.T) {
	srv, s := setup(t)
	sub := s.subscribe(t, "ocvr.>")

	args := []string{"publish", "raw", "--channel", "ch_a", "--frame", `{"type":"x","data":{"n":1}}`, "--msg-id", "order-42"}
	r := ok(t, srv, args...)
	if want := "published x to ocvr.channel.ch_a (27 bytes, stream OCVR_EVENTS seq 1)\n"; r.stdout != want {
		t.Errorf("first publish: %q, want %q", r.stdout, want)
	}
	r = ok(t, srv, args...)
	if want := "not published again: --msg-id order-42 is already stored in stream OCVR_EVENTS at seq 1 (a duplicate within the stream's duplicate window)\n"; r.stdout != want {
		t.Errorf("retry: %q, want %q", r.stdout, want)
	}

	// The SDK path (bus.Target.MsgID): the second message-create with the
	// same --msg-id is acknowledged and not stored again.
	create := []string{"publish", "message-create", "--channel", "ch_a", "--author", "1", "--name", "A", "--content", "once", "--id", "msg_1", "--msg-id", "create-msg_1"}
	ok(t, srv, create...)
	ok(t, srv, create...)
	// Without --msg-id every call is a new event.
	ok(t, srv, "notify", "--user", "7", "--type", "t", "--title", "T", "--id", "notif_1")
	ok(t, srv, "notify", "--user", "7", "--type", "t", "--title", "T", "--id", "notif_1")

	var got []string
	for {
		m, err := nextLive(sub, 300*time.Millisecond)
		if err != nil {
			break
		}
		p, ok := stream.PositionOf(m.Header, stream.DefaultName)
		if !ok {
			t.Errorf("event on %s without a position: %v", m.Subject, m.Header)
		}
		got = append(got, m.Subject+"@"+strconv.FormatUint(p.Seq, 10))
	}
	want := []string{"ocvr.channel.ch_a@1", "ocvr.channel.ch_a@2", "ocvr.user.7@3", "ocvr.user.7@4"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if n := streamState(t, s.nc, stream.DefaultName).State.Msgs; n != 4 {
		t.Errorf("the stream holds %d events, want 4", n)
	}
}
