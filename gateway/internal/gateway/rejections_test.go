package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

// advisories subscribes to the rejected-payload advisories as a backend
// engineer (ocvrctl advisories) would.
func advisories(t *testing.T, nc *nats.Conn) <-chan bus.Rejected {
	t.Helper()
	ch := make(chan bus.Rejected, 1024)
	sub, err := nc.Subscribe("ocvr.advisory.rejected", func(m *nats.Msg) {
		r, err := bus.ParseRejected(m.Data)
		if err != nil {
			t.Errorf("advisory %q: %v", m.Data, err)
			return
		}
		ch <- r
	})
	mustNoErr(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	mustNoErr(t, nc.Flush())
	return ch
}

func nextAdvisory(t *testing.T, ch <-chan bus.Rejected) bus.Rejected {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no advisory within 5 s")
		return bus.Rejected{}
	}
}

// TestRefusedBusPayloads: each rule of what the gateway checks refuses its
// payload (never delivered), and the refusal is never silent: it is
// counted and reported on the advisory subject with the subject, the
// reason and the payload's first bytes; the next valid event still
// arrives.
func TestRefusedBusPayloads(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1)
	c := e.dial(e.user(1, "Alice"))
	subscribe(t, c, "ch_x")
	nc, pub := e.backend()
	adv := advisories(t, nc)
	bad := []struct {
		name, subject, payload, reason string
		header                         nats.Header
	}{
		{"oversize", "ocvr.channel.ch_x", `{"type":"x","data":{"b":"` + strings.Repeat("x", protocol.MaxEventSize) + `"}}`, "limit 65536", nil},
		{"invalid UTF-8", "ocvr.channel.ch_x", "{\"type\":\"message_delete\",\"data\":{\"id\":\"\xff\",\"channel_id\":\"ch_x\"}}", "not valid UTF-8", nil},
		{"not JSON", "ocvr.channel.ch_x", `{"type":"message_create","data":`, "not JSON", nil},
		{"not an object", "ocvr.channel.ch_x", `[1,2,3]`, "not a JSON object", nil},
		{"no type", "ocvr.user.1", `{"data":{}}`, `missing "type"`, nil},
		{"no data", "ocvr.channel.ch_x", `{"type":"message_delete"}`, `needs a "data" object`, nil},
		{"case-variant key", "ocvr.channel.ch_x", `{"type":"message_delete","data":{"channel_id":"ch_x","Channel_ID":"ch_y"}}`, "keys are case-sensitive", nil},
		{"duplicate key", "ocvr.channel.ch_x", `{"type":"message_delete","data":{"channel_id":"ch_x","channel_id":"ch_y"}}`, "appears twice", nil},
		{"a gateway frame", "ocvr.channel.ch_x", `{"type":"ready","data":{"user_id":1}}`, "the gateway itself", nil},
		{"a client frame", "ocvr.user.1", `{"type":"subscribe","data":{"channel_id":"ch_x"}}`, "the gateway itself", nil},
		{"session_revoked on a channel", "ocvr.channel.ch_x", `{"type":"session_revoked","data":{"reason":"x"}}`, "only be published on a user subject", nil},
		{"session_revoked on broadcast", "ocvr.broadcast", `{"type":"session_revoked","data":{"reason":"x"}}`, "only be published on a user subject", nil},
		{"channel_id mismatch", "ocvr.channel.ch_x", string(protocol.MustEncode(protocol.TypeMessageCreate, msg("ch_other", 1))), `"ch_other" does not name the subject's channel`, nil},
		{"unknown type, other channel", "ocvr.channel.ch_x", `{"type":"channel_update","data":{"channel_id":"ch_y"}}`, "does not name the subject's channel", nil},
		{"bad presence", "ocvr.user.1", `{"type":"presence_update","data":{"user_id":2,"presence":"away"}}`, `"presence" must be`, nil},
		{"presence without user", "ocvr.user.1", `{"type":"presence_update","data":{"presence":"online"}}`, `"user_id" must be`, nil},
		{"bad header", "ocvr.user.1", `{"type":"notification","data":{}}`, "invalid header Ocvr-Exclude-User", nats.Header{bus.HeaderExcludeUser: {"-1"}}},
	}
	for _, b := range bad {
		m := nats.NewMsg(b.subject)
		m.Data, m.Header = []byte(b.payload), b.header
		mustNoErr(t, nc.PublishMsg(m))
		r := nextAdvisory(t, adv)
		if r.Subject != b.subject || !strings.Contains(r.Reason, b.reason) || r.Gateway != "test" || r.Size != len(b.payload) {
			t.Errorf("%s: advisory %+v, want subject %s, a reason with %q, gateway test, size %d", b.name, r, b.subject, b.reason, len(b.payload))
		}
		quote := b.payload
		if len(quote) > bus.MaxAdvisoryPayload {
			quote = quote[:bus.MaxAdvisoryPayload]
		}
		if want := strings.ToValidUTF8(quote, "\uFFFD"); r.Payload != want || r.Truncated != (len(b.payload) > bus.MaxAdvisoryPayload) {
			t.Errorf("%s: advisory quotes %q (truncated %v), want %q", b.name, r.Payload, r.Truncated, want)
		}
		if now := time.Now().Unix(); r.Time < now-5 || r.Time > now+5 {
			t.Errorf("%s: advisory time %d", b.name, r.Time)
		}
	}
	mustNoErr(t, pub.MessageCreated(context.Background(), msg("ch_x", 1)))
	expectSeq(t, c, 1)
	quiet(t, c, 100*time.Millisecond)
	alive(t, c)
	if got := e.metric("ocvr_gateway_invalid_bus_payloads_total"); got != float64(len(bad)) {
		t.Fatalf("invalid_bus_payloads_total %v, want %d", got, len(bad))
	}
}

// TestAdvisoriesAreRateLimited: a flood of bad payloads is counted in full
// but reported at a bounded rate; the next advisory says how many were
// not reported.
func TestAdvisoriesAreRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.user(1, "Alice"))
	nc, _ := e.backend()
	adv := advisories(t, nc)
	const flood = 500
	for i := 0; i < flood; i++ {
		mustNoErr(t, nc.Publish("ocvr.user.1", []byte(`{"type":"heartbeat_ack","data":{}}`)))
	}
	mustNoErr(t, nc.Flush())
	waitFor(t, 5*time.Second, func() bool { return e.metric("ocvr_gateway_invalid_bus_payloads_total") == flood })
	quiet(t, c, 50*time.Millisecond)
	published := e.metric(`ocvr_gateway_bus_advisories_total{result="published"}`)
	suppressed := e.metric(`ocvr_gateway_bus_advisories_total{result="suppressed"}`)
	if published+suppressed != flood || published < 20 || published > 60 {
		t.Fatalf("published %v, suppressed %v advisories of %d refusals: want the burst (20) plus 10/s", published, suppressed, flood)
	}
	for i := 0; i < int(published); i++ {
		nextAdvisory(t, adv)
	}
	// The limiter refills (10/s on the gateway's clock): the next advisory
	// counts what was not reported.
	e.clock.Advance(time.Second)
	mustNoErr(t, nc.Publish("ocvr.user.1", []byte(`{"type":"error","data":{}}`)))
	if r := nextAdvisory(t, adv); r.Suppressed != int64(suppressed) {
		t.Fatalf("advisory after the flood says %d suppressed, want %v", r.Suppressed, suppressed)
	}
}
