package clustertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/protocol/protocoltest"
)

// TestDocumentExamplesAcrossPods is the golden conformance test across two
// gateway processes: every event example of the protocol document (and the
// unknown type and extra fields examples), published by a plain NATS
// client on its subject and on the broadcast subject, reaches a client on
// each pod byte for byte, exactly once; a refused payload is reported by both.
func TestDocumentExamplesAcrossPods(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2})
	const userID, channel = 12345, "ch_abc123"
	c.Channel(channel, userID)
	u := c.NewUser(userID, "Sender")
	probes := dialProbes(t, c, []clustertest.User{u, u}) // one on each pod
	for _, p := range probes {
		p.Subscribe(t, channel)
	}

	var want [][]byte
	for _, ex := range protocoltest.Examples(t) {
		if ex.Direction != "server" || ex.Subject == "" || ex.Type() == protocol.TypeSessionRevoked {
			continue
		}
		subject := "ocvr.user.12345"
		if ex.Subject == "channel" {
			subject = "ocvr.channel." + ex.ChannelID()
		}
		for _, s := range []string{subject, "ocvr.broadcast"} {
			if err := c.NC.Publish(s, ex.Wire()); err != nil {
				t.Fatal(err)
			}
			want = append(want, ex.Wire())
		}
	}
	if len(want) < 18 {
		t.Fatalf("%d frames to publish: frames.json lost its examples", len(want))
	}

	adv := make(chan bus.Rejected, 8)
	sub, err := c.NC.Subscribe(advisorySubject(), func(m *nats.Msg) {
		if r, err := bus.ParseRejected(m.Data); err == nil {
			adv <- r
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.NC.Publish("ocvr.channel."+channel, []byte(`{"type":"ready","data":{}}`)); err != nil {
		t.Fatal(err)
	}

	for i, p := range probes {
		clustertest.Eventually(t, 10*time.Second, "every example on pod "+c.Gateways[i].Name, func() bool {
			return len(events(p)) >= len(want)
		})
		// Byte for byte, each exactly once (order is per subject: the
		// three subjects interleave).
		missing := map[string]int{}
		for _, w := range want {
			missing[string(w)]++
		}
		for _, g := range events(p) {
			if missing[string(g)]--; missing[string(g)] < 0 {
				t.Fatalf("pod %d received %s, which was not published (or twice)", i, g)
			}
		}
		for w, n := range missing {
			if n != 0 {
				t.Fatalf("pod %d: %s received %d times too few", i, w, n)
			}
		}
	}
	pods := map[string]bool{}
	for len(pods) < 2 {
		select {
		case r := <-adv:
			if !strings.Contains(r.Reason, "the gateway itself") {
				t.Fatalf("advisory %+v", r)
			}
			pods[r.Gateway] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("advisories from %v, want one from each pod", pods)
		}
	}
}

func advisorySubject() string {
	s, _ := bus.NewSubjects("")
	return s.AdvisoryRejected()
}

// events are the raw frames p received, but for the gateway's own.
func events(p *clustertest.Probe) [][]byte {
	var out [][]byte
	for _, f := range p.Frames() {
		if !protocol.GatewayType(f.Type) {
			out = append(out, f.Raw)
		}
	}
	return out
}
