package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// publishRaw publishes a frame of any type exactly as given: how a backend
// engineer tries a new event type, or a payload the gateways refuse.
func publishRaw(fs *flag.FlagSet) func(context.Context, *app) error {
	tf := declareTarget(fs, "publish to")
	frame := fs.String("frame", "-", "the frame, `JSON` {\"type\":…,\"data\":{…}}, published byte for byte; - (the default): read it from standard input")
	force := fs.Bool("force", false, "publish a frame even when the gateways would refuse it")
	sf := declareStream(fs)
	return func(ctx context.Context, a *app) error {
		t, err := tf.resolve(a, false)
		if err != nil {
			return err
		}
		if err := sf.check(t.scope == protocol.ScopeBroadcast); err != nil {
			return err
		}
		payload, err := readFrame(a, *frame)
		if err != nil {
			return err
		}
		typ, refused := protocol.ValidateEvent(t.scope, t.channelID, payload)
		if refused != nil && !*force {
			return withKind(errRefused, fmt.Errorf("the gateways would refuse the frame: %w (--force publishes it anyway; 'ocvrctl advisories' shows their report)", refused))
		}
		nc, err := a.conn()
		if err != nil {
			return err
		}
		msg := nats.NewMsg(t.subject)
		msg.Data = payload
		msg.Header.Set(bus.HeaderPublishedAt, strconv.FormatInt(a.now().UnixNano(), 10))
		sf.header(msg.Header)
		res := published{Type: typ, Subject: t.subject, Bytes: len(payload)}
		if refused != nil {
			res.Refused = refused.Error()
		}
		where := ""
		if *sf.core || t.scope == protocol.ScopeBroadcast {
			if err := nc.PublishMsg(msg); err != nil {
				return fmt.Errorf("publish to %s: %w", t.subject, err)
			}
			if err := flush(ctx, a); err != nil {
				return err
			}
		} else {
			ack, err := publishToStream(ctx, nc, a.subjects.Prefix(), msg, *sf.msgID)
			if err != nil {
				return err
			}
			res.Stream, res.Seq, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
			where = fmt.Sprintf(", stream %s seq %d", ack.Stream, ack.Sequence)
			if ack.Duplicate {
				a.emit(res, "not published again: --msg-id %s is already stored in stream %s at seq %d (a duplicate within the stream's duplicate window)", *sf.msgID, ack.Stream, ack.Sequence)
				return nil
			}
		}
		if refused != nil {
			a.emit(res, "published %d bytes to %s%s; the gateways will refuse them: %v", len(payload), t.subject, where, refused)
			return nil
		}
		a.emit(res, "published %s to %s (%d bytes%s)", typ, t.subject, len(payload), where)
		return nil
	}
}

// targetFlags choose the subject of a frame: --channel, --user,
// --broadcast, or (validate only) --subject.
type targetFlags struct {
	fs        *flag.FlagSet
	ch        *channelIDFlag
	user      *userIDFlag
	broadcast *bool
	subject   *string
}

func declareTarget(fs *flag.FlagSet, verb string) targetFlags {
	return targetFlags{
		fs:        fs,
		ch:        channelIDVar(fs, "channel", verb+" <prefix>.channel.<`ID`>"),
		user:      userIDVar(fs, "user", verb+" <prefix>.user.<`ID`>"),
		broadcast: fs.Bool("broadcast", false, verb+" <prefix>.broadcast (every connection)"),
	}
}

// target is a resolved targetFlags.
type target struct {
	subject   string // the live subject
	scope     protocol.Scope
	channelID string
}

// resolve checks that exactly one target was given and returns it;
// withSubject allows --subject (a live or stream input subject).
func (tf targetFlags) resolve(a *app, withSubject bool) (target, error) {
	set := given(tf.fs)
	n := 0
	for _, on := range []bool{set["channel"], set["user"], *tf.broadcast, set["subject"]} {
		if on {
			n++
		}
	}
	if n != 1 {
		if withSubject {
			return target{}, usageErrorf("give exactly one of --channel, --user, --broadcast or --subject")
		}
		return target{}, usageErrorf("give exactly one of --channel, --user or --broadcast")
	}
	var (
		t   target
		err error
	)
	switch {
	case set["channel"]:
		t.subject, err = a.subjects.Channel(tf.ch.id)
		t.scope, t.channelID = protocol.ScopeChannel, tf.ch.id
	case set["user"]:
		t.subject, err = a.subjects.User(tf.user.id)
		t.scope = protocol.ScopeUser
	case set["subject"]:
		t.subject = *tf.subject
		t.scope, t.channelID, err = a.subjects.Scope(*tf.subject)
	default:
		t.subject, t.scope = a.subjects.Broadcast(), protocol.ScopeBroadcast
	}
	if err != nil {
		return target{}, usageErrorf("%v", err)
	}
	return t, nil
}

// interactive reports whether r is a terminal: reading a frame from it
// would wait for the user's Ctrl-D, a surprise when --frame was forgotten.
func interactive(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// readFrame returns the frame given to --frame, or standard input's whole
// content for "-" (one trailing newline removed: what echo and heredocs
// add). It is published byte for byte, so nothing else is changed.
func readFrame(a *app, frame string) ([]byte, error) {
	payload := []byte(frame)
	if frame == "-" {
		if interactive(a.in) {
			return nil, usageErrorf("no frame: give --frame JSON or pipe one into standard input")
		}
		b, err := io.ReadAll(io.LimitReader(a.in, protocol.MaxEventSize+2))
		if err != nil {
			return nil, fmt.Errorf("read the frame from standard input: %w", err)
		}
		payload = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		if frame == "-" {
			return nil, usageErrorf("no frame: give --frame JSON or pipe one into standard input")
		}
		return nil, usageErrorf("--frame is empty")
	}
	return payload, nil
}

// publishToStream publishes msg, addressed to a live subject, into the
// event stream's input subject with a JetStream publish and returns the
// stream's acknowledgement (what bus.Publisher does for encoded events).
func publishToStream(ctx context.Context, nc *nats.Conn, prefix string, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	live := msg.Subject
	msg.Subject = stream.InputSubject(prefix, live)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := js.PublishMsg(ctx, msg, opts...)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("publish to %s: %w", live, bus.ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("publish to %s (through %s): %w", live, msg.Subject, err)
	}
	return ack, nil
}

// parseObject returns s, a JSON object given to --name, compacted.
func parseObject(name, s string) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, usageErrorf(`--%s must be a JSON object, e.g. {"from_user_id":456}`, name)
	}
	if buf.Len() > protocol.MaxEventSize/2 {
		return nil, usageErrorf("--%s is longer than %d bytes", name, protocol.MaxEventSize/2)
	}
	return buf.Bytes(), nil
}

// parseAttachments returns s, a JSON array of objects given to
// --attachments, as compacted elements (an empty, non-nil slice for []).
func parseAttachments(s string) ([]json.RawMessage, error) {
	bad := usageErrorf(`--attachments must be a JSON array of objects, e.g. [{"id":"att_1","url":"https://…"}]`)
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '[' {
		return nil, bad
	}
	if buf.Len() > protocol.MaxEventSize/2 {
		return nil, usageErrorf("--attachments is longer than %d bytes", protocol.MaxEventSize/2)
	}
	atts := []json.RawMessage{}
	if err := json.Unmarshal(buf.Bytes(), &atts); err != nil {
		return nil, bad
	}
	for _, att := range atts {
		if att[0] != '{' {
			return nil, bad
		}
	}
	return atts, nil
}

// advisories prints the gateways' reports of refused bus payloads.
func advisories(fs *flag.FlagSet) func(context.Context, *app) error {
	count := fs.Int("count", 0, "exit after `N` advisories (0: run until interrupted)")
	return func(ctx context.Context, a *app) error {
		if *count < 0 {
			return usageErrorf("--count must not be negative")
		}
		nc, err := a.conn()
		if err != nil {
			return err
		}
		subject := a.subjects.AdvisoryRejected()
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := flush(ctx, a); err != nil {
			return err
		}
		fmt.Fprintf(a.errOut, "listening on %s\n", subject)
		for n := 0; *count == 0 || n < *count; n++ {
			m, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				if ctx.Err() == nil {
					return fmt.Errorf("read %s: %w", subject, err)
				}
				if *count > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("timed out after %d of %d advisories", n, *count)
				}
				return nil // interrupted, or --timeout ended the watch
			}
			if a.g.json { // the advisory's body as received
				a.printf("%s", oneLine(string(m.Data)))
				continue
			}
			a.printf("%s", formatRejected(m.Data, a.now()))
		}
		return nil
	}
}

// formatRejected renders one advisory body as one line:
//
//	<time> <gateway> <subject>: <reason> | <size> bytes[, first <n>][; +<k> not reported]: <payload>
func formatRejected(body []byte, received time.Time) string {
	r, err := bus.ParseRejected(body)
	if err != nil {
		return received.UTC().Format(time.RFC3339) + " unreadable advisory (" + oneLine(err.Error()) + "): " + oneLine(truncate(string(body), bus.MaxAdvisoryPayload))
	}
	at := received
	if r.Time > 0 {
		at = time.Unix(r.Time, 0)
	}
	gw := r.Gateway
	if gw == "" {
		gw = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s: %s | %d bytes", at.UTC().Format(time.RFC3339), oneLine(gw), oneLine(r.Subject), oneLine(r.Reason), r.Size)
	if r.Truncated {
		fmt.Fprintf(&b, ", first %d", len(r.Payload))
	}
	if r.Suppressed > 0 {
		fmt.Fprintf(&b, "; +%d not reported", r.Suppressed)
	}
	b.WriteString(": ")
	b.WriteString(oneLine(r.Payload))
	return b.String()
}

// oneLine escapes control characters (newlines included) and invalid
// UTF-8, so that text from the bus stays on one line of the terminal.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
