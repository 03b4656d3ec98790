package gateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/ticket"
)

// fence proves that nothing queued for c before this call is still in
// flight: a heartbeat is answered after every frame queued before it (one
// FIFO per connection). It returns the frames that came before the ack.
func fence(t *testing.T, c *client.Conn) []client.Frame {
	t.Helper()
	mustNoErr(t, c.Heartbeat(context.Background()))
	var before []client.Frame
	for {
		f := next(t, c)
		if f.Type == protocol.TypeHeartbeatAck {
			return before
		}
		before = append(before, f)
	}
}

// noneOf fails if any frame mentions the marker.
func noneOf(t *testing.T, who string, frames []client.Frame, marker string) {
	t.Helper()
	for _, f := range frames {
		if strings.Contains(string(f.Raw), marker) {
			t.Fatalf("%s received %s", who, f.Raw)
		}
	}
}

// TestAuthzLookalikeChannelIDs: a user who is not a member of ch_general
// cannot reach its events through any spelling of its id: case variants
// (distinct channels: NATS subjects and KV keys are case-sensitive),
// JSON escapes (the same id: still checked), unicode look-alikes,
// percent-encoding, wildcards, extra tokens, padding, overlong ids and
// overlong UTF-8. No spelling becomes a subscription, a typing event or a
// KV lookup outside the id grammar.
func TestAuthzLookalikeChannelIDs(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.FrameRate, c.FrameBurst = 1000, 1000 })
	spy := e.spy(t)
	e.channel("ch_general", 2)  // the victim channel: Bob only
	e.channel("Ch_General", 1)  // a different channel Mallory belongs to
	e.channel("ch_general_", 1) // a prefix-extended one
	mallory := e.dial(e.user(1, "Mallory"))
	bob := e.dial(e.user(2, "Bob"))
	subscribe(t, bob, "ch_general")
	ctx := context.Background()

	type want struct{ code string } // "" = subscribed
	cases := []struct {
		name, id string // id is raw JSON
		want     want
	}{
		{"exact", `"ch_general"`, want{protocol.CodeNotMember}},
		{"JSON escape of the same id", `"\u0063h_general"`, want{protocol.CodeNotMember}},
		{"escaped underscore", `"ch\u005fgeneral"`, want{protocol.CodeNotMember}},
		{"upper case, no such channel", `"CH_GENERAL"`, want{protocol.CodeChannelNotFound}},
		{"case variant Mallory belongs to", `"Ch_General"`, want{""}},
		{"longer id Mallory belongs to", `"ch_general_"`, want{""}},
		{"Cyrillic e", `"ch_g\u0435neral"`, want{protocol.CodeInvalidMessage}},
		{"Cyrillic e raw", `"ch_gеneral"`, want{protocol.CodeInvalidMessage}},
		{"fullwidth", `"ｃｈ_general"`, want{protocol.CodeInvalidMessage}},
		{"zero-width space", `"ch_general\u200b"`, want{protocol.CodeInvalidMessage}},
		{"combining mark", `"ch_general\u0301"`, want{protocol.CodeInvalidMessage}},
		{"Kelvin sign for k", `"ch_\u212a"`, want{protocol.CodeInvalidMessage}},
		{"long s", `"ch_\u017f"`, want{protocol.CodeInvalidMessage}},
		{"NUL", `"ch_general\u0000"`, want{protocol.CodeInvalidMessage}},
		{"percent-encoded underscore", `"ch%5Fgeneral"`, want{protocol.CodeInvalidMessage}},
		{"percent-encoded dot", `"ch_general%2E%3E"`, want{protocol.CodeInvalidMessage}},
		{"percent-encoded NUL", `"ch_general%00"`, want{protocol.CodeInvalidMessage}},
		{"trailing space", `"ch_general "`, want{protocol.CodeInvalidMessage}},
		{"leading space", `" ch_general"`, want{protocol.CodeInvalidMessage}},
		{"tail wildcard", `"ch_general.>"`, want{protocol.CodeInvalidMessage}},
		{"token wildcard", `"*"`, want{protocol.CodeInvalidMessage}},
		{"full wildcard", `">"`, want{protocol.CodeInvalidMessage}},
		{"partial star", `"ch_*"`, want{protocol.CodeInvalidMessage}},
		{"extra token", `"ch_general.x"`, want{protocol.CodeInvalidMessage}},
		{"another user's subject", `"x.user.2"`, want{protocol.CodeInvalidMessage}},
		{"escaped dot", `"ch_general\u002e>"`, want{protocol.CodeInvalidMessage}},
		{"65 characters", `"` + strings.Repeat("c", 65) + `"`, want{protocol.CodeInvalidMessage}},
		{"3000 characters", `"` + strings.Repeat("c", 3000) + `"`, want{protocol.CodeInvalidMessage}},
		{"64 characters, no such channel", `"` + strings.Repeat("c", 64) + `"`, want{protocol.CodeChannelNotFound}},
		{"number", `1`, want{protocol.CodeInvalidMessage}},
		{"array", `["ch_general"]`, want{protocol.CodeInvalidMessage}},
		{"object", `{"channel_id":"ch_general"}`, want{protocol.CodeInvalidMessage}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustNoErr(t, mallory.SendRaw(ctx, []byte(`{"type":"subscribe","data":{"channel_id":`+tc.id+`}}`)))
			f := next(t, mallory)
			if tc.want.code == "" {
				if f.Type != protocol.TypeSubscribed {
					t.Fatalf("got %s, want subscribed", f.Raw)
				}
			} else {
				var pe protocol.Error
				_ = f.Decode(&pe)
				if f.Type != protocol.TypeError || pe.Code != tc.want.code {
					t.Fatalf("got %s, want error %s", f.Raw, tc.want.code)
				}
			}
			// typing and unsubscribe with the same spelling never touch the
			// victim channel either.
			for _, typ := range []string{protocol.TypeTyping, protocol.TypeUnsubscribe} {
				mustNoErr(t, mallory.SendRaw(ctx, []byte(`{"type":"`+typ+`","data":{"channel_id":`+tc.id+`}}`)))
			}
			fence(t, mallory)
		})
	}
	// Overlong UTF-8 for "." and ">" (invalid UTF-8: refused before JSON).
	for _, raw := range []string{"\xc0\xae", "\xe0\x80\xae", "\xc0\xbe", "\xf0\x80\x80\xae"} {
		mustNoErr(t, mallory.SendRaw(ctx, []byte(`{"type":"subscribe","data":{"channel_id":"ch_general`+raw+`>"}}`)))
		expectError(t, mallory, protocol.CodeInvalidMessage, "")
	}

	// The victim channel's events and typing reach Bob, never Mallory.
	for i := 0; i < 3; i++ {
		mustNoErr(t, e.pub.MessageCreated(ctx, msg("ch_general", 1000+i)))
	}
	for i := 0; i < 3; i++ {
		expectSeq(t, bob, 1000+i)
	}
	noneOf(t, "Mallory", fence(t, mallory), `"ch_general"`)
	noneOf(t, "Bob", fence(t, bob), "typing_start")
	// Mallory's own case-variant channel does work (control).
	subscribe(t, mallory, "Ch_General")
	mustNoErr(t, e.pub.MessageCreated(ctx, msg("Ch_General", 7)))
	expectSeq(t, mallory, 7)

	subs := e.checkGatewaySubs(t)
	for _, s := range subs {
		if strings.HasPrefix(s, "ocvr.channel.") && s != "ocvr.channel.ch_general" && s != "ocvr.channel.Ch_General" {
			t.Errorf("unexpected channel subscription %q", s)
		}
	}
	noneOf(t, "Mallory", fence(t, mallory), `"ch_general"`)
	if n := spy.check(t); n == 0 {
		t.Fatal("the spy saw nothing")
	}
}

// TestAuthzOversizedID: an id too big for a frame closes with 1009 before
// anything is looked up.
func TestAuthzOversizedID(t *testing.T) {
	e := newEnv(t, nil)
	spy := e.spy(t)
	c := e.dial(e.user(1, "Mallory"))
	_ = c.SendRaw(context.Background(), []byte(`{"type":"subscribe","data":{"channel_id":"`+strings.Repeat("c", 5000)+`"}}`))
	closed(t, c, protocol.CloseMessageTooBig, 10*time.Second)
	spy.check(t)
}

// TestAuthzUserSubjects: a connection gets its own user's events only:
// never another user's subject, nor look-alike subjects a careless backend
// might publish (leading zero, extra token, sign, case), whatever
// targeting header they carry.
func TestAuthzUserSubjects(t *testing.T) {
	e := newEnv(t, nil)
	spy := e.spy(t)
	alice, bob := e.user(1, "Alice"), e.user(2, "Bob")
	ca, cb := e.dial(alice), e.dial(bob)
	nc, pub := e.backend()
	ctx := context.Background()
	note := func(id string) []byte {
		return protocol.MustEncode(protocol.TypeNotification, protocol.Notification{ID: id, Type: "t"})
	}
	hostile := []string{"ocvr.user.01", "ocvr.user.1.x", "ocvr.user.+1", "ocvr.user.-1", "ocvr.User.1", "OCVR.user.1",
		"ocvr.user.18446744073709551617", "ocvr.user.1\u0000", "ocvr.users.1", "ocvr.user"}
	spy.ignore(hostile...)
	for i, subj := range hostile {
		_ = nc.Publish(subj, note("hostile"+strconv.Itoa(i)))
	}
	// Bob's events, including ones naming Alice's session or excepting Bob's.
	mustNoErr(t, pub.Notify(ctx, 2, protocol.Notification{ID: "bob-only", Type: "t"}))
	mustNoErr(t, pub.PublishToUser(ctx, 2, protocol.TypeNotification, protocol.Notification{ID: "bob-alice-session", Type: "t"}, bus.Target{Sessions: []string{alice.sess.ID}}))
	mustNoErr(t, pub.PublishToUser(ctx, 2, protocol.TypeNotification, protocol.Notification{ID: "bob-except", Type: "t"}, bus.Target{ExceptSession: bob.sess.ID}))
	mustNoErr(t, pub.Notify(ctx, 1, protocol.Notification{ID: "alice-own", Type: "t"}))
	mustNoErr(t, nc.Flush())

	if got := receive(t, ca, []string{"alice-own"}, 300*time.Millisecond); len(got) != 1 {
		t.Fatalf("Alice got %d frames, want exactly her own notification: %s", len(got), raws(got))
	}
	if got := receive(t, cb, []string{"bob-only"}, 300*time.Millisecond); len(got) != 1 {
		t.Fatalf("Bob got %d frames, want only bob-only: %s", len(got), raws(got))
	}
	e.checkGatewaySubs(t)
	spy.check(t)
}

// receive reads c until a frame containing each marker (a quoted string)
// has arrived (within 10 s), then for quietAfter more, and returns every
// frame read.
func receive(t *testing.T, c *client.Conn, markers []string, quietAfter time.Duration) []client.Frame {
	t.Helper()
	var got []client.Frame
	missing := map[string]bool{}
	for _, m := range markers {
		missing[m] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(missing) > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		f, err := c.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %v: %v (got %s)", markers, err, raws(got))
		}
		got = append(got, f)
		for m := range missing {
			if strings.Contains(string(f.Raw), `"`+m+`"`) {
				delete(missing, m)
			}
		}
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quietAfter)
		f, err := c.Next(ctx)
		cancel()
		if err != nil {
			return got
		}
		got = append(got, f)
	}
}

func raws(fs []client.Frame) string {
	var b strings.Builder
	for _, f := range fs {
		b.Write(f.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestAuthzSessionTargeting: a targeted event reaches exactly the named
// sessions: not a session whose id differs in case, is a prefix or an
// extension, not a wildcard or a glob, not another user's session named on
// this user's subject; on channel subjects too. Each targeted event is
// followed by an untargeted sentinel on the same subject: events of one
// subject reach a connection in order, so a connection that got the
// sentinel without the event never will.
func TestAuthzSessionTargeting(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	s1, s2, other := e.user(1, "Alice"), e.user(1, "Alice"), e.user(2, "Bob")
	c1, c2, co := e.dial(s1), e.dial(s2), e.dial(other)
	all := []*client.Conn{c1, c2, co}
	for _, c := range all {
		subscribe(t, c, "ch_x")
	}
	nc, _ := e.backend()
	id1 := s1.sess.ID
	type set = []*client.Conn
	cases := []struct {
		name, header, value string
		user, channel       set // who gets it on ocvr.user.1, on ocvr.channel.ch_x
	}{
		{"exact", bus.HeaderSession, id1, set{c1}, set{c1}},
		{"upper case", bus.HeaderSession, strings.ToUpper(id1), nil, nil},
		{"prefix", bus.HeaderSession, id1[:len(id1)-1], nil, nil},
		{"extension", bus.HeaderSession, id1 + "x", nil, nil},
		{"wildcard", bus.HeaderSession, "*", nil, nil},
		{"glob", bus.HeaderSession, "ses_*", nil, nil},
		{"empty items", bus.HeaderSession, ",,", nil, nil},
		{"percent-encoded", bus.HeaderSession, strings.Replace(id1, "_", "%5F", 1), nil, nil},
		{"another user's session", bus.HeaderSession, other.sess.ID, nil, set{co}},
		{"list", bus.HeaderSession, id1 + "," + s2.sess.ID, set{c1, c2}, set{c1, c2}},
		{"except upper case", bus.HeaderExceptSession, strings.ToUpper(id1), set{c1, c2}, set{c1, c2, co}},
		{"except exact", bus.HeaderExceptSession, id1, set{c2}, set{c2, co}},
		{"exclude another user", bus.HeaderExcludeUser, "2", set{c1, c2}, set{c1, c2}},
		{"exclude with sign", bus.HeaderExcludeUser, "+2", nil, nil}, // invalid header: dropped
		{"exclude leading zero", bus.HeaderExcludeUser, "02", nil, nil},
	}
	for i, tc := range cases {
		for _, onUser := range []bool{true, false} {
			subj, want, receivers := "ocvr.channel.ch_x", tc.channel, all
			if onUser {
				subj, want, receivers = "ocvr.user.1", tc.user, set{c1, c2}
			}
			t.Run(tc.name+" "+subj, func(t *testing.T) {
				marker := "t" + strconv.Itoa(i) + "_" + strconv.FormatBool(onUser)
				sentinel := marker + "_end"
				event := func(id string) []byte {
					if onUser {
						return protocol.MustEncode(protocol.TypeNotification, protocol.Notification{ID: id, Type: "t"})
					}
					m := msg("ch_x", i)
					m.ID = id
					return protocol.MustEncode(protocol.TypeMessageCreate, m)
				}
				m := nats.NewMsg(subj)
				m.Data = event(marker)
				m.Header.Set(tc.header, tc.value)
				mustNoErr(t, nc.PublishMsg(m))
				mustNoErr(t, nc.Publish(subj, event(sentinel)))
				mustNoErr(t, nc.Flush())
				for _, c := range receivers {
					got := receive(t, c, []string{sentinel}, 0)
					has := strings.Contains(raws(got), `"`+marker+`"`)
					wanted := false
					for _, w := range want {
						wanted = wanted || w == c
					}
					if has != wanted {
						t.Errorf("connection %d: got %s = %v, want %v", indexOf(all, c), marker, has, wanted)
					}
				}
			})
		}
	}
	// Bob never got anything of Alice's subject.
	noneOf(t, "Bob", fence(t, co), `"t`)
	quiet(t, co, 200*time.Millisecond)
}

func indexOf(all []*client.Conn, c *client.Conn) int {
	for i, x := range all {
		if x == c {
			return i
		}
	}
	return -1
}

// TestAuthzSubscribeRacesMembershipRemoval: a subscribe racing the removal
// of the membership it depends on, many times with varied timing, never
// ends with a live subscription: the client gets NOT_MEMBER, or unsubscribed
// "removed" (after subscribed, or instead of it); and an event published after that
// never reaches it. Each round uses a fresh channel, so the subscribe also
// creates the pod's NATS subscription: the widest window there is between
// the membership check and the connection joining the channel's fan-out.
//
// It found a defect (fixed): when the directory watcher ended the
// subscription while the subscribe re-checked the membership, the client
// got two answers, unsubscribed "removed" and then NOT_MEMBER; the
// fence below fails on any frame after the one answer.
func TestAuthzSubscribeRacesMembershipRemoval(t *testing.T) {
	onEachNATS(t, authzSubscribeRacesMembershipRemoval)
}

func authzSubscribeRacesMembershipRemoval(t *testing.T, newE envFunc) {
	rounds := 80
	e := newE(t, func(c *gateway.Config) { c.FrameRate, c.FrameBurst = 1000, 1000 })
	if testing.Short() || e.cluster != nil {
		rounds = 20 // a cluster round costs several times more
	}
	victim := e.dial(e.user(1, "Alice"))
	witness := e.dial(e.user(2, "Bob"))
	ctx := context.Background()
	var refused, ended, endedEarly int
	for round := 0; round < rounds; round++ {
		ch := "ch_race_" + strconv.Itoa(round)
		e.channel(ch, 1, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		// Both orders, with delays around the few milliseconds a subscribe
		// takes (two KV lookups, a NATS subscription, a re-check), so the
		// removal lands before, inside and after the subscribe's window.
		delay := time.Duration(rand.IntN(4000)) * time.Microsecond
		removeFirst := rand.IntN(2) == 0
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			if !removeFirst {
				time.Sleep(delay)
			}
			if err := e.dir.RemoveMember(ctx, ch, 1); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			if removeFirst {
				time.Sleep(delay)
			}
			if err := victim.Subscribe(ctx, ch); err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		f := next(t, victim)
		switch {
		case f.Type == protocol.TypeError && strings.Contains(string(f.Raw), protocol.CodeNotMember):
			refused++
		case f.Type == protocol.TypeSubscribed || f.Type == protocol.TypeUnsubscribed:
			// The watcher may end the subscription before it was
			// acknowledged: unsubscribed is then the only answer.
			u := f
			if f.Type == protocol.TypeSubscribed {
				// The removal reaches the pod through its directory
				// watch: on a loaded cluster that may take seconds.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var err error
				u, err = victim.Next(ctx)
				cancel()
				if err != nil || u.Type != protocol.TypeUnsubscribed {
					t.Fatalf("round %d: after subscribed: %s %v, want unsubscribed", round, u.Raw, err)
				}
			} else {
				endedEarly++
			}
			var us protocol.Unsubscribed
			mustNoErr(t, u.Decode(&us))
			if us.ChannelID != ch || us.Reason != protocol.ReasonRemoved {
				t.Fatalf("round %d: %s, want unsubscribed removed", round, u.Raw)
			}
			ended++
		default:
			t.Fatalf("round %d: got %s", round, f.Raw)
		}
		// The witness joins the channel, then an event and a sentinel are
		// published: once the witness has the sentinel, the event was
		// dispatched to every connection of the channel on this pod; the
		// victim must not have it.
		subscribe(t, witness, ch)
		e.settle()
		mustNoErr(t, e.pub.MessageCreated(ctx, msg(ch, round)))
		mustNoErr(t, e.pub.MessageCreated(ctx, msg(ch, 100000+round)))
		for _, n := range []int{round, 100000 + round} {
			if f := next(t, witness); seqOf(t, f) != n {
				t.Fatalf("round %d: witness got %s, want event %d", round, f.Raw, n)
			}
		}
		noneOf(t, "the removed member", fence(t, victim), `"`+ch+`"`)
		mustNoErr(t, witness.Unsubscribe(ctx, ch))
		expect(t, witness, protocol.TypeUnsubscribed)
	}
	t.Logf("%d rounds: %d refused with NOT_MEMBER, %d ended as removed (%d before the acknowledgement)", rounds, refused, ended, endedEarly)
	if got := e.metric("ocvr_gateway_subscriptions"); got != 0 {
		t.Errorf("subscriptions gauge %v, want 0", got)
	}
}

// TestCSWSH: a page on a foreign origin cannot open a socket with a
// victim's ticket, however the origin is disguised, and the refused ticket
// stays unconsumed for its owner.
func TestCSWSH(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.ocvr.example"} })
	alice := e.user(1, "Alice")
	for _, o := range []string{
		"https://evil.example",
		"https://app.ocvr.example.evil.example",
		"https://app.ocvr.example@evil.example",
		"https://evil.example#https://app.ocvr.example",
		"https://evil.example/https://app.ocvr.example",
		"https://evil.example?https://app.ocvr.example",
		"https://app.ocvr.example:443",
		"https://app.ocvr.example.",
		"https://app%2eocvr.example",
		"https://аpp.ocvr.example", // Cyrillic а
		"https://xn--pp-8cd.ocvr.example",
		"http://app.ocvr.example",
		"wss://app.ocvr.example",
		"file://",
		"null",
		"https://*.ocvr.example",
	} {
		tk := e.ticket(alice)
		ws, resp, err := e.rawDial(t, "ticket="+tk, http.Header{"Origin": {o}})
		if err == nil || ws != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("origin %q: upgrade not refused with 403 (status %d, err %v)", o, status, err)
			continue
		}
		// Unconsumed: the owner can still use it.
		ws, _, err = e.rawDial(t, "ticket="+tk, nil)
		mustNoErr(t, err)
		if f := rawRead(t, ws); f.Type != protocol.TypeReady {
			t.Errorf("origin %q: the refused ticket no longer works (%s)", o, f.Type)
		}
		ws.CloseNow()
		waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })
	}
	// Two Origin headers (no browser sends that): the first one decides,
	// and a foreign first one is refused.
	_, resp, err := e.rawDial(t, "ticket="+e.ticket(alice), http.Header{"Origin": {"https://evil.example", "https://app.ocvr.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("two origins, foreign first: %v", err)
	}
	ws, _, err := e.rawDial(t, "ticket="+e.ticket(alice), http.Header{"Origin": {"https://app.ocvr.example"}})
	mustNoErr(t, err)
	if f := rawRead(t, ws); f.Type != protocol.TypeReady {
		t.Fatalf("allowed origin: %s", f.Type)
	}
}

// TestTicketsUselessFromKVStream: whoever reads the raw ticket stream (the
// KV bucket's JetStream stream: subjects, payloads, headers) learns no
// ticket: every string found there, and every obvious transformation of
// it, is refused with 4001, and the real tickets still work afterwards.
// Tickets are 256-bit, single-use and live 30 s.
func TestTicketsUselessFromKVStream(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := e.user(1, "Alice")
	var tickets []string
	for i := 0; i < 5; i++ {
		tk := e.ticket(alice)
		body, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimPrefix(tk, ticket.Prefix))
		if !strings.HasPrefix(tk, ticket.Prefix) || err != nil || len(body) != 32 {
			t.Fatalf("ticket %q is not wst_ + 256 bits of base64url", tk)
		}
		tickets = append(tickets, tk)
	}

	js, err := jetstream.New(e.nc)
	mustNoErr(t, err)
	stream, err := js.Stream(ctx, "KV_"+ticket.DefaultBucket)
	mustNoErr(t, err)
	info, err := stream.Info(ctx)
	mustNoErr(t, err)
	var found []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		raw := m.Subject + "\n" + string(m.Data)
		for k, vs := range m.Header {
			raw += "\n" + k + ": " + strings.Join(vs, ",")
		}
		for _, tk := range tickets {
			body := strings.TrimPrefix(tk, ticket.Prefix)
			if strings.Contains(raw, body) || strings.Contains(raw, body[:16]) {
				t.Fatalf("the stream holds ticket material in clear: %q", raw)
			}
		}
		key := strings.TrimPrefix(m.Subject, "$KV."+ticket.DefaultBucket+".")
		found = append(found, key, ticket.Prefix+key, ticket.Prefix+key[:43], m.Subject)
		var rec map[string]any
		if json.Unmarshal(m.Data, &rec) == nil {
			for _, v := range rec {
				if s, ok := v.(string); ok {
					found = append(found, s, ticket.Prefix+s)
				}
			}
		}
		// The key is the hash of a ticket: it matches one, and only by hashing.
		matched := false
		for _, tk := range tickets {
			sum := sha256.Sum256([]byte(tk))
			if hex.EncodeToString(sum[:]) == key {
				matched = true
			}
		}
		if !matched {
			t.Errorf("stream key %q is no ticket's SHA-256", key)
		}
	}
	if len(found) < 4*len(tickets) {
		t.Fatalf("read %d candidates from the stream, want at least %d", len(found), 4*len(tickets))
	}
	for _, cand := range found {
		ws, _, err := e.rawDial(t, "ticket="+urlQueryEscape(cand), nil)
		mustNoErr(t, err)
		if code := rawClose(t, ws); code != protocol.CloseInvalidTicket {
			t.Fatalf("candidate %q from the stream: close %d, want 4001", cand, code)
		}
	}
	// The real tickets were not disturbed, and work exactly once.
	for _, tk := range tickets {
		e.dial0(t, tk).CloseNow()
		_, err := e.dialTicket("", tk)
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CloseInvalidTicket {
			t.Fatalf("second use of a ticket: %v, want 4001", err)
		}
	}
	// 30 s, checked at redeem time from the issue time kept in the record.
	for _, c := range []struct {
		age time.Duration
		ok  bool
	}{{-25 * time.Second, true}, {-31 * time.Second, false}, {-10 * time.Minute, false}} {
		st, err := ticket.Open(ctx, e.nc, "")
		mustNoErr(t, err)
		st.Now = func() time.Time { return time.Now().Add(c.age) }
		tk, err := st.Mint(ctx, ticket.Identity{SessionID: alice.sess.ID, UserID: 1, DisplayName: "Alice"})
		mustNoErr(t, err)
		conn, err := e.dialTicket("", tk)
		if c.ok != (err == nil) {
			t.Errorf("ticket issued %v ago: dial %v, want ok=%v", -c.age, err, c.ok)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "#", "%23", " ", "%20", "$", "%24")
	return r.Replace(s)
}

// TestTicketRaceOneWinner: any number of concurrent upgrades with one
// ticket: exactly one opens a socket, the others get INVALID_TICKET (4001),
// on one server and on a replicated cluster.
func TestTicketRaceOneWinner(t *testing.T) { onEachNATS(t, ticketRaceOneWinner) }

func ticketRaceOneWinner(t *testing.T, newE envFunc) {
	e := newE(t, nil)
	u := e.user(1, "Alice")
	for round := 0; round < 5; round++ {
		tk := e.ticket(u)
		const racers = 8
		errs := make(chan error, racers)
		start := make(chan struct{})
		for i := 0; i < racers; i++ {
			go func() {
				<-start
				_, err := e.dialTicket("", tk)
				errs <- err
			}()
		}
		close(start)
		won := 0
		for i := 0; i < racers; i++ {
			err := <-errs
			var ce *client.CloseError
			switch {
			case err == nil:
				won++
			case errors.As(err, &ce) && ce.Code == protocol.CloseInvalidTicket:
			default:
				t.Fatalf("round %d: %v, want a socket or 4001", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d upgrades won one ticket", round, won)
		}
	}
}
