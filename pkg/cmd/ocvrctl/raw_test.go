package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/natsembed"
)

// running is an ocvrctl command running in the background.
type running struct {
	out, err syncBuffer
	done     chan int
	cancel   context.CancelFunc
}

// start runs ocvrctl against srv in the background.
func start(t *testing.T, srv *natsembed.Server, args ...string) *running {
	t.Helper()
	r := &running{done: make(chan int, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r.cancel = cancel
	t.Cleanup(cancel)
	args = append([]string{"--nats-url", srv.ClientURL()}, args...)
	go func() { r.done <- runEnv(ctx, args, &r.out, &r.err, func(string) string { return "" }) }()
	return r
}

// listening waits until the command's subscription to subject is live.
func (r *running) listening(t *testing.T, subject string) {
	t.Helper()
	clustertest.Eventually(t, 10*time.Second, "listening", func() bool {
		return r.err.String() == "listening on "+subject+"\n"
	})
}

func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(15 * time.Second):
		t.Fatalf("ocvrctl did not exit; stdout:\n%s\nstderr:\n%s", r.out.String(), r.err.String())
		return -1
	}
}

func TestAdvisories(t *testing.T) {
	srv, s := setup(t)
	const subject = "ocvr.advisory.rejected"
	publish := func(body []byte) {
		t.Helper()
		if err := s.nc.Publish(subject, body); err != nil {
			t.Fatal(err)
		}
		if err := s.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	marshal := func(r bus.Rejected) []byte {
		t.Helper()
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// A refusal, then a long multi-line payload with refusals left out.
	one := bus.NewRejected("ocvr.channel.ch_abc123", "invalid event: session_revoked: may only be published on a user subject",
		[]byte(`{"type":"session_revoked","data":{"reason":"logout_all"}}`))
	one.Gateway, one.Time = "gateway-7f9c", 1703523600
	long := "{\"type\":\"channel_update\",\n\"data\":\"" + strings.Repeat("x", 300) + "\"}"
	two := bus.NewRejected("ocvr.user.12345", `invalid event: channel_update: needs a "data" object`, []byte(long))
	two.Gateway, two.Time, two.Suppressed = "gateway-2b1d", 1703523700, 3

	r := start(t, srv, "advisories", "--count", "2")
	r.listening(t, subject)
	publish(marshal(one))
	publish(marshal(two))
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, r.err.String())
	}
	want := []string{
		`2023-12-25T17:00:00Z gateway-7f9c ocvr.channel.ch_abc123: invalid event: session_revoked: may only be published on a user subject | 57 bytes: {"type":"session_revoked","data":{"reason":"logout_all"}}`,
		`2023-12-25T17:01:40Z gateway-2b1d ocvr.user.12345: invalid event: channel_update: needs a "data" object | 336 bytes, first 256; +3 not reported: ` + strings.Replace(long[:256], "\n", `\u000a`, 1),
	}
	if got := strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("output:\n%s\nwant:\n%s", r.out.String(), strings.Join(want, "\n"))
	}

	// --json prints the body as received; an unreadable body is shown, not fatal.
	r = start(t, srv, "advisories", "--json", "--count", "1")
	r.listening(t, subject)
	publish(marshal(one))
	if code := r.wait(t); code != 0 || r.out.String() != string(marshal(one))+"\n" {
		t.Errorf("--json: exit %d, output %q", code, r.out.String())
	}
	r = start(t, srv, "advisories")
	r.listening(t, subject)
	publish([]byte("not an advisory"))
	clustertest.Eventually(t, 10*time.Second, "unreadable advisory printed", func() bool {
		return strings.Contains(r.out.String(), " unreadable advisory (parse rejected-payload advisory: ") &&
			strings.HasSuffix(r.out.String(), "): not an advisory\n")
	})
	// Without --count it runs until interrupted: exit 0.
	r.cancel()
	if code := r.wait(t); code != 0 {
		t.Errorf("interrupted: exit %d, stderr %s", code, r.err.String())
	}

	// --timeout bounds it: exit 0 without --count, 1 when --count was not reached.
	if r := ctl(t, "--nats-url", srv.ClientURL(), "advisories", "--timeout", "200ms"); r.code != 0 || r.stdout != "" {
		t.Errorf("--timeout alone:\n%s", r)
	}
	if r := ctl(t, "--nats-url", srv.ClientURL(), "--timeout", "200ms", "advisories", "--count", "1"); r.code != 1 ||
		!strings.HasSuffix(r.stderr, "ocvrctl advisories: timed out after 0 of 1 advisories\n") {
		t.Errorf("--count not reached:\n%s", r)
	}
	// The environment's default timeout does not bound it.
	r = start(t, srv, "advisories", "--count", "1")
	r.listening(t, subject)
	time.Sleep(100 * time.Millisecond)
	select {
	case code := <-r.done:
		t.Fatalf("exited (%d) without an advisory", code)
	default:
	}
	publish(marshal(one))
	if code := r.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}

	// Another environment's prefix, another subject.
	r = start(t, srv, "--subject-prefix", "staging", "advisories", "--count", "1")
	r.listening(t, "staging.advisory.rejected")
	publish(marshal(one)) // ocvr's: not seen
	if err := s.nc.Publish("staging.advisory.rejected", marshal(two)); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 0 || !strings.Contains(r.out.String(), " gateway-2b1d ocvr.user.12345: ") || strings.Count(r.out.String(), "\n") != 1 {
		t.Errorf("staging: exit %d, output %q", code, r.out.String())
	}
}

// TestPublishRawForce: --force publishes a frame the gateways refuse, byte
// for byte, and says so.
func TestPublishRawForce(t *testing.T) {
	srv, s := setup(t)
	sub := s.subscribe(t, "ocvr.>")
	frame := `{"type":"session_revoked","data":{"reason":"x"}}`
	r := ok(t, srv, "publish", "raw", "--channel", "ch_abc123", "--frame", frame, "--force")
	if want := "published 48 bytes to ocvr.channel.ch_abc123, stream OCVR_EVENTS seq 1; the gateways will refuse them: invalid event: session_revoked: may only be published on a user subject\n"; r.stdout != want {
		t.Errorf("output %q, want %q", r.stdout, want)
	}
	if m := next(t, sub); m.Subject != "ocvr.channel.ch_abc123" || string(m.Data) != frame || m.Header.Get(bus.HeaderPublishedAt) == "" {
		t.Errorf("published %s on %s, headers %v", m.Data, m.Subject, m.Header)
	}
}
