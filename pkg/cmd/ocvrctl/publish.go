package main

import (
	"context"
	"encoding/json"
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// flush waits until NATS has the published event, so that "exit 0" means
// it reached the server (a stream publish has already waited for the
// stream's acknowledgement; a core publish has not).
func flush(ctx context.Context, a *app) error {
	pub, err := a.publisher()
	if err != nil {
		return err
	}
	return pub.Flush(ctx)
}

// streamFlags choose how a publish command publishes a channel or user
// event: through the event stream (the default: stored for the continuity
// window, republished with a position clients resume from) or, with
// --core, straight to the live subject.
type streamFlags struct {
	fs    *flag.FlagSet
	core  *bool
	msgID *string
	// Targeting headers (pkg/README.md "Headers").
	except      *sessionIDFlag
	sessions    *string
	excludeUser *userIDFlag
}

func declareStream(fs *flag.FlagSet) streamFlags {
	return streamFlags{
		fs:          fs,
		core:        fs.Bool("core", false, "publish with core NATS straight to the live subject, without the event stream: no position, so a client that reconnects cannot resume it"),
		msgID:       fs.String("msg-id", "", "`ID` that makes the publish idempotent: the stream stores one event per id within its duplicate window (Nats-Msg-Id), so a retried publish is delivered once (default: none)"),
		except:      sessionIDVar(fs, "except-session", "every connection but this session's (Ocvr-Except-Session): the sender's ready.session_id, so their other devices still get it"),
		sessions:    fs.String("only-sessions", "", "only the connections of these session `ids`, comma-separated (Ocvr-Session)"),
		excludeUser: userIDVar(fs, "exclude-user", "skip every connection of user `ID` (Ocvr-Exclude-User): all their devices"),
	}
}

// sessionList returns --only-sessions, checked.
func (s streamFlags) sessionList() ([]string, error) {
	if !given(s.fs)["only-sessions"] {
		return nil, nil
	}
	ids := splitList(*s.sessions)
	if len(ids) == 0 {
		return nil, usageErrorf("--only-sessions: at least one session id")
	}
	for _, id := range ids {
		if !protocol.ValidSessionID(id) {
			return nil, usageErrorf("--only-sessions: %q is not a session id (ses_…, %s)", id, protocol.IDPattern)
		}
	}
	return ids, nil
}

// check validates the flags; broadcast is true for a publish that is
// always core (broadcasts have no stream).
func (s streamFlags) check(broadcast bool) error {
	if _, err := s.sessionList(); err != nil {
		return err
	}
	if set := given(s.fs); broadcast && (set["except-session"] || set["only-sessions"] || set["exclude-user"]) {
		return usageErrorf("--except-session, --only-sessions and --exclude-user target a channel's or a user's connections, not a broadcast")
	}
	if !given(s.fs)["msg-id"] {
		return nil
	}
	if *s.core {
		return usageErrorf("--msg-id and --core exclude each other: only the event stream deduplicates")
	}
	if broadcast {
		return usageErrorf("--msg-id: a broadcast is a core publish, without the event stream")
	}
	if err := checkText("msg-id", *s.msgID, 128); err != nil {
		return err
	}
	if strings.ContainsFunc(*s.msgID, isControl) {
		return usageErrorf("--msg-id must not hold control characters")
	}
	return nil
}

// publisher is the environment's publisher, or its core variant.
func (s streamFlags) publisher(a *app) (*bus.Publisher, error) {
	pub, err := a.publisher()
	if err != nil || !*s.core {
		return pub, err
	}
	return pub.Core(), nil
}

func (s streamFlags) target() bus.Target {
	ids, _ := s.sessionList() // checked by check
	return bus.Target{MsgID: *s.msgID, ExceptSession: s.except.id, Sessions: ids, ExcludeUser: s.excludeUser.id}
}

// header sets the targeting headers on h, as bus.Target does.
func (s streamFlags) header(h nats.Header) {
	t := s.target()
	if t.ExceptSession != "" {
		h.Set(bus.HeaderExceptSession, t.ExceptSession)
	}
	if len(t.Sessions) > 0 {
		h.Set(bus.HeaderSession, strings.Join(t.Sessions, ","))
	}
	if t.ExcludeUser != 0 {
		h.Set(bus.HeaderExcludeUser, strconv.FormatInt(t.ExcludeUser, 10))
	}
}

func publishMessageCreate(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	author := userIDVar(fs, "author", "author's user `ID`")
	name := fs.String("name", "", "author's display `name`")
	content := fs.String("content", "", "message `text`")
	id := fs.String("id", "", "message `id` (default: a new msg_…)")
	attachments := fs.String("attachments", "", "attachments as a `JSON` array of objects, passed through (default [])")
	sf := declareStream(fs)
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "author", "name", "content"); err != nil {
			return err
		}
		if err := sf.check(false); err != nil {
			return err
		}
		var atts []json.RawMessage
		if given(fs)["attachments"] {
			var err error
			if atts, err = parseAttachments(*attachments); err != nil {
				return err
			}
		}
		if err := checkText("name", *name, 128); err != nil {
			return err
		}
		if err := checkText("content", *content, protocol.MaxEventSize/2); err != nil {
			return err
		}
		if given(fs)["id"] {
			if err := checkText("id", *id, 128); err != nil {
				return err
			}
		} else {
			*id = kvutil.RandomToken("msg_", 12)
		}
		pub, err := sf.publisher(a)
		if err != nil {
			return err
		}
		err = pub.PublishToChannel(ctx, ch.id, protocol.TypeMessageCreate, protocol.MessageCreate{
			ID: *id, ChannelID: ch.id, Author: protocol.Author{ID: author.id, DisplayName: *name},
			Content: *content, CreatedAt: a.now().Unix(), Attachments: atts,
		}, sf.target())
		if err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		subj, _ := a.subjects.Channel(ch.id)
		a.emit(published{Type: protocol.TypeMessageCreate, Subject: subj, ID: *id}, "%s", *id)
		return nil
	}
}

func publishMessageUpdate(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	id := fs.String("id", "", "`id` of the message")
	content := fs.String("content", "", "new message `text`")
	sf := declareStream(fs)
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "id", "content"); err != nil {
			return err
		}
		if err := sf.check(false); err != nil {
			return err
		}
		if err := checkText("id", *id, 128); err != nil {
			return err
		}
		if err := checkText("content", *content, protocol.MaxEventSize/2); err != nil {
			return err
		}
		pub, err := sf.publisher(a)
		if err != nil {
			return err
		}
		err = pub.PublishToChannel(ctx, ch.id, protocol.TypeMessageUpdate, protocol.MessageUpdate{
			ID: *id, ChannelID: ch.id, Content: *content, EditedAt: a.now().Unix(),
		}, sf.target())
		if err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		subj, _ := a.subjects.Channel(ch.id)
		a.emit(published{Type: protocol.TypeMessageUpdate, Subject: subj, ID: *id}, "published message_update %s to channel %s", *id, ch.id)
		return nil
	}
}

func publishMessageDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	id := fs.String("id", "", "`id` of the message")
	sf := declareStream(fs)
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "id"); err != nil {
			return err
		}
		if err := sf.check(false); err != nil {
			return err
		}
		if err := checkText("id", *id, 128); err != nil {
			return err
		}
		pub, err := sf.publisher(a)
		if err != nil {
			return err
		}
		if err := pub.PublishToChannel(ctx, ch.id, protocol.TypeMessageDelete, protocol.MessageDelete{ID: *id, ChannelID: ch.id}, sf.target()); err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		subj, _ := a.subjects.Channel(ch.id)
		a.emit(published{Type: protocol.TypeMessageDelete, Subject: subj, ID: *id}, "published message_delete %s to channel %s", *id, ch.id)
		return nil
	}
}

// notificationFlags declares the flags a notification payload needs.
type notificationFlags struct {
	title, body, id, data *string
}

func declareNotification(fs *flag.FlagSet) notificationFlags {
	return notificationFlags{
		title: fs.String("title", "", "notification `title`"),
		body:  fs.String("body", "", "notification `body`"),
		id:    fs.String("id", "", "notification `id` (default: a new notif_…)"),
		data:  fs.String("data", "", "the notification's own data, a `JSON` object such as {\"from_user_id\":456} (default {})"),
	}
}

func (n notificationFlags) build(fs *flag.FlagSet, typ string, now time.Time) (protocol.Notification, error) {
	if err := checkText("title", *n.title, 1024); err != nil {
		return protocol.Notification{}, err
	}
	if *n.body != "" {
		if err := checkText("body", *n.body, protocol.MaxEventSize/2); err != nil {
			return protocol.Notification{}, err
		}
	}
	var data json.RawMessage
	if given(fs)["data"] {
		var err error
		if data, err = parseObject("data", *n.data); err != nil {
			return protocol.Notification{}, err
		}
	}
	id := *n.id
	if given(fs)["id"] {
		if err := checkText("id", id, 128); err != nil {
			return protocol.Notification{}, err
		}
	} else {
		id = kvutil.RandomToken("notif_", 12)
	}
	return protocol.Notification{ID: id, Type: typ, Title: *n.title, Body: *n.body, CreatedAt: now.Unix(), Data: data}, nil
}

func notify(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "recipient's user `ID`")
	typ := fs.String("type", "", "notification `type`, e.g. friend_request (the payload's type field)")
	nf := declareNotification(fs)
	sf := declareStream(fs)
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user", "type", "title"); err != nil {
			return err
		}
		if err := sf.check(false); err != nil {
			return err
		}
		if err := checkText("type", *typ, 64); err != nil {
			return err
		}
		n, err := nf.build(fs, *typ, a.now())
		if err != nil {
			return err
		}
		pub, err := sf.publisher(a)
		if err != nil {
			return err
		}
		if err := pub.PublishToUser(ctx, user.id, protocol.TypeNotification, n, sf.target()); err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		subj, _ := a.subjects.User(user.id)
		a.emit(published{Type: protocol.TypeNotification, Subject: subj, ID: n.ID}, "%s", n.ID)
		return nil
	}
}

func broadcast(fs *flag.FlagSet) func(context.Context, *app) error {
	typ := fs.String("type", protocol.TypeNotification, "frame `type` to broadcast (only notification)")
	ntype := fs.String("notification-type", "announcement", "the notification's own `type` field")
	nf := declareNotification(fs)
	return func(ctx context.Context, a *app) error {
		if *typ != protocol.TypeNotification {
			return usageErrorf("--type %q cannot be broadcast: only %q", *typ, protocol.TypeNotification)
		}
		if err := require(fs, "title"); err != nil {
			return err
		}
		if err := checkText("notification-type", *ntype, 64); err != nil {
			return err
		}
		n, err := nf.build(fs, *ntype, a.now())
		if err != nil {
			return err
		}
		pub, err := a.publisher()
		if err != nil {
			return err
		}
		if err := pub.Broadcast(ctx, protocol.TypeNotification, n); err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		a.emit(published{Type: protocol.TypeNotification, Subject: a.subjects.Broadcast(), ID: n.ID}, "%s", n.ID)
		return nil
	}
}

// published is the --json result of a publish command.
type published struct {
	Type      string `json:"published"` // the frame type
	Subject   string `json:"subject"`   // the live subject
	ID        string `json:"id,omitempty"`
	Bytes     int    `json:"bytes,omitempty"`
	Stream    string `json:"stream,omitempty"` // through the event stream: its name and the event's position
	Seq       uint64 `json:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"` // --msg-id already stored: not published again
	Refused   string `json:"refused,omitempty"`   // --force: why the gateways will refuse it
}
