package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// commands is the command table. To add a command, add an entry here and
// write its setup function: it declares the flags on fs and returns the
// function that validates them (usageErrorf → exit 2, before any NATS
// call), then does the work through a (a.conn, a.publisher, a.sessions,
// a.tickets, a.directory, a.printf). Any other error exits 1.
func commands() []command {
	return []command{
		{path: "session create", synopsis: "--user ID --name NAME [--ttl 24h]",
			summary: "create a bearer session; prints the token sess_… on its own line, then the session id",
			help: `The token is printed once and only its hash is stored: hand it to the
client, which sends it as "Authorization: Bearer sess_…" to ticketsvc.
The first line of output is the token alone, so scripts can read it with
"head -n1".`,
			setup: sessionCreate},
		{path: "session revoke", synopsis: "--session SID [--reason R] | --user ID [--except SID] [--reason R]",
			summary: "revoke one session, or every session of a user; their sockets get session_revoked and close (4003)",
			help: `With --session, revokes that session (reason defaults to "revoked").
With --user, revokes every session of the user but --except (reason defaults
to "logout_all"). The session_revoked event is published to ocvr.user.<id>
either way, so the gateways close the affected sockets.`,
			setup: sessionRevoke},
		{path: "channel create", synopsis: "--channel ID",
			summary: "create a channel (idempotent)", setup: channelCreate},
		{path: "channel delete", synopsis: "--channel ID",
			summary: "delete a channel and its memberships; subscribers get unsubscribed {reason: deleted}",
			setup:   channelDelete},
		{path: "channel list", synopsis: "",
			summary: "list every channel id, one per line", setup: channelList},
		{path: "member add", synopsis: "--channel ID --user ID",
			summary: "make a user a member of a channel (idempotent; the channel must exist)",
			setup:   memberCmd(true)},
		{path: "member remove", synopsis: "--channel ID --user ID",
			summary: "remove a membership (idempotent); the user's subscriptions end with reason removed",
			setup:   memberCmd(false)},
		{path: "friend add", synopsis: "--user ID --friend ID",
			summary: "record a friendship, both directions (idempotent)", setup: friendCmd(true)},
		{path: "friend remove", synopsis: "--user ID --friend ID",
			summary: "remove a friendship, both directions (idempotent)", setup: friendCmd(false)},
		{path: "publish message-create", synopsis: "--channel ID --author ID --name NAME --content TEXT [--attachments JSON] [--id msg_…]",
			summary: "publish message_create to a channel; prints the message id",
			help: `The message id is generated (msg_…) when --id is absent; created_at is
now in unix seconds (a JSON integer); attachments is --attachments, a JSON
array of objects passed through as they are (default []). The event goes to
<prefix>.channel.<id> exactly as clients receive it:
  {"type":"message_create","data":{"id":"msg_…","channel_id":"ch_abc123","author":{"id":12345,"display_name":"Sender"},"content":"Hello world!","created_at":1703523600,"attachments":[]}}`,
			setup: publishMessageCreate},
		{path: "publish message-update", synopsis: "--channel ID --id ID --content TEXT",
			summary: "publish message_update (edited_at now, unix seconds) to a channel", setup: publishMessageUpdate},
		{path: "publish message-delete", synopsis: "--channel ID --id ID",
			summary: "publish message_delete to a channel", setup: publishMessageDelete},
		{path: "publish raw", synopsis: "--channel ID | --user ID | --broadcast --frame JSON [--force]",
			summary: "publish a frame of any type, byte for byte, e.g. a new event type such as channel_update",
			help: `Publishes --frame exactly as given (no re-encoding) to one channel, one
user or every connection, with Ocvr-Published-At set; prints what it
published. Any event type goes, including types the gateway does not know:
they are delivered like any other on the subject they are published on.

The frame is first checked as a gateway checks it (pkg/README.md, "What the
gateway checks"); one a gateway would refuse is a usage error naming the
reason, unless --force publishes it anyway (to watch 'ocvrctl advisories'
report it). Example:
  ocvrctl publish raw --channel ch_abc123 --frame '{"type":"channel_update","data":{"channel_id":"ch_abc123","name":"General"}}'`,
			setup: publishRaw},
		{path: "notify", synopsis: "--user ID --type T --title TITLE [--body BODY] [--data JSON] [--id notif_…]",
			summary: "send a notification to every connection of a user; prints the notification id",
			help: `created_at is now in unix seconds (a JSON integer); the notification's own
data is --data, a JSON object (default {}). Example:
  ocvrctl notify --user 12345 --type friend_request --title "New Friend Request" \
    --body "User123 wants to be your friend" --data '{"from_user_id":456}'`,
			setup: notify},
		{path: "broadcast", synopsis: "--type notification --title TITLE [--body BODY] [--notification-type T] [--data JSON] [--id notif_…]",
			summary: "broadcast a notification to every connection of every gateway; prints its id",
			help: `--type is the frame type; only notification can be broadcast here ('publish
raw --broadcast' sends any other). The notification's own type field is
--notification-type, its data object --data (default {}); created_at is now
in unix seconds.`,
			setup: broadcast},
		{path: "advisories", synopsis: "[--json] [--count N]",
			summary: "print every bus payload a gateway refused, and why, as the gateways report it",
			help: `Subscribes to <prefix>.advisory.rejected, where each gateway pod reports
every bus message it refused (bounded per pod; "+N not reported" counts
what a pod left out). A pod receives, and so checks, only the subjects its
clients use: a payload no one is subscribed to is never reported. Prints
one line per advisory:
  <time> <gateway> <subject>: <reason> | <size> bytes: <payload prefix>
--json prints each advisory's JSON body instead (subject, reason, payload,
truncated, size, gateway, time, suppressed). Runs until Ctrl-C, until
--count advisories were printed, or for --timeout when given (exit 1 if
--count was not reached by then). "listening on <subject>" goes to stderr
once the subscription is live.`,
			setup: advisories, long: true},
		{path: "ticket mint", synopsis: "--session TOKEN",
			summary: "verify a bearer session and mint a 30 s connect ticket; prints the ticket wst_…",
			help: `Does what POST /v1/auth/ws-ticket does, without the HTTP service: for
testing a gateway by hand (GET /v1/ws?ticket=wst_…). The token is visible
in the process list while ocvrctl runs: use it with development sessions.`,
			setup: ticketMint},
		{path: "presence set", synopsis: "--user ID --text TEXT",
			summary: "set a user's status text; online friends get presence_update",
			help: `An empty --text "" clears the status. If the user is online, each friend
receives presence_update {user_id, presence: "online", status_text}.`,
			setup: presenceSet},
		{path: "presence get", synopsis: "--user ID",
			summary: "print a user's presence as JSON: online and status text", setup: presenceGet},
		{path: "connect", synopsis: "--session TOKEN [--subscribe ch_a,ch_b] [--ticket-url URL] [--ws-url URL]",
			summary: "connect to a gateway as a client and print every frame received, one JSON line each",
			help: `Gets a ticket from ticketsvc with the bearer session, opens the socket,
subscribes to the given channels and prints every frame until Ctrl-C or
until the server closes the socket (the close code goes to stderr; exit 1
unless it was a normal close). Heartbeats are sent automatically. Needs
ticketsvc and a gateway, not NATS.`,
			setup: connectCmd, long: true},
	}
}

func sessionCreate(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "user `ID` the session belongs to")
	name := fs.String("name", "", "display `name` shown to other users (typing, messages)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the session is valid")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user", "name"); err != nil {
			return err
		}
		if err := checkText("name", *name, 128); err != nil {
			return err
		}
		if *ttl < time.Second {
			return usageErrorf("--ttl must be at least 1s")
		}
		store, err := a.sessions(ctx)
		if err != nil {
			return err
		}
		token, s, err := store.Create(ctx, user.id, *name, *ttl)
		if err != nil {
			return err
		}
		a.printf("%s", token)
		a.printf("session_id: %s", s.ID)
		a.printf("user_id: %d", s.UserID)
		a.printf("expires_at: %s", s.ExpiresAt.Format(time.RFC3339))
		return nil
	}
}

func sessionRevoke(fs *flag.FlagSet) func(context.Context, *app) error {
	sid := sessionIDVar(fs, "session", "session `SID` to revoke (ses_…)")
	user := userIDVar(fs, "user", "revoke every session of this user `ID`")
	except := sessionIDVar(fs, "except", "with --user: keep this session `SID`")
	reason := fs.String("reason", "", "`reason` in the session_revoked event (default revoked with --session, logout_all with --user)")
	return func(ctx context.Context, a *app) error {
		set := given(fs)
		switch {
		case set["session"] && set["user"]:
			return usageErrorf("give --session or --user, not both")
		case !set["session"] && !set["user"]:
			return usageErrorf("missing required flag --session or --user")
		case set["except"] && !set["user"]:
			return usageErrorf("--except needs --user")
		}
		if set["reason"] {
			if err := checkText("reason", *reason, 128); err != nil {
				return err
			}
		}
		store, err := a.sessions(ctx)
		if err != nil {
			return err
		}
		if set["session"] {
			r := *reason
			if r == "" {
				r = "revoked"
			}
			if err := store.Revoke(ctx, sid.id, r); err != nil {
				return err
			}
			a.printf("revoked session %s", sid.id)
			return nil
		}
		r := *reason
		if r == "" {
			r = "logout_all"
		}
		n, err := store.RevokeAll(ctx, user.id, r, except.id)
		if err != nil {
			return err
		}
		a.printf("revoked %d session(s) of user %d", n, user.id)
		return nil
	}
}

func channelCreate(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID` ([A-Za-z0-9_-], at most 64)")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel"); err != nil {
			return err
		}
		d, err := a.directory(ctx)
		if err != nil {
			return err
		}
		if err := d.CreateChannel(ctx, ch.id); err != nil {
			return err
		}
		a.printf("created channel %s", ch.id)
		return nil
	}
}

func channelDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel"); err != nil {
			return err
		}
		d, err := a.directory(ctx)
		if err != nil {
			return err
		}
		if err := d.DeleteChannel(ctx, ch.id); err != nil {
			return err
		}
		a.printf("deleted channel %s", ch.id)
		return nil
	}
}

func channelList(fs *flag.FlagSet) func(context.Context, *app) error {
	return func(ctx context.Context, a *app) error {
		d, err := a.directory(ctx)
		if err != nil {
			return err
		}
		ids, err := d.ListChannels(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			a.printf("%s", id)
		}
		return nil
	}
}

func memberCmd(add bool) func(fs *flag.FlagSet) func(context.Context, *app) error {
	return func(fs *flag.FlagSet) func(context.Context, *app) error {
		ch := channelIDVar(fs, "channel", "channel `ID`")
		user := userIDVar(fs, "user", "user `ID`")
		return func(ctx context.Context, a *app) error {
			if err := require(fs, "channel", "user"); err != nil {
				return err
			}
			d, err := a.directory(ctx)
			if err != nil {
				return err
			}
			if add {
				if err := d.AddMember(ctx, ch.id, user.id); err != nil {
					return err
				}
				a.printf("added user %d to channel %s", user.id, ch.id)
				return nil
			}
			if err := d.RemoveMember(ctx, ch.id, user.id); err != nil {
				return err
			}
			a.printf("removed user %d from channel %s", user.id, ch.id)
			return nil
		}
	}
}

func friendCmd(add bool) func(fs *flag.FlagSet) func(context.Context, *app) error {
	return func(fs *flag.FlagSet) func(context.Context, *app) error {
		user := userIDVar(fs, "user", "user `ID`")
		friend := userIDVar(fs, "friend", "the friend's user `ID`")
		return func(ctx context.Context, a *app) error {
			if err := require(fs, "user", "friend"); err != nil {
				return err
			}
			if user.id == friend.id {
				return usageErrorf("--user and --friend are the same user")
			}
			d, err := a.directory(ctx)
			if err != nil {
				return err
			}
			if add {
				if err := d.AddFriend(ctx, user.id, friend.id); err != nil {
					return err
				}
				a.printf("users %d and %d are friends", user.id, friend.id)
				return nil
			}
			if err := d.RemoveFriend(ctx, user.id, friend.id); err != nil {
				return err
			}
			a.printf("users %d and %d are no longer friends", user.id, friend.id)
			return nil
		}
	}
}

// flush waits until NATS has the published event, so that "exit 0" means
// it reached the server.
func flush(ctx context.Context, a *app) error {
	pub, err := a.publisher()
	if err != nil {
		return err
	}
	return pub.Flush(ctx)
}

func publishMessageCreate(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	author := userIDVar(fs, "author", "author's user `ID`")
	name := fs.String("name", "", "author's display `name`")
	content := fs.String("content", "", "message `text`")
	id := fs.String("id", "", "message `id` (default: a new msg_…)")
	attachments := fs.String("attachments", "", "attachments as a `JSON` array of objects, passed through (default [])")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "author", "name", "content"); err != nil {
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
		pub, err := a.publisher()
		if err != nil {
			return err
		}
		err = pub.MessageCreated(ctx, protocol.MessageCreate{
			ID: *id, ChannelID: ch.id, Author: protocol.Author{ID: author.id, DisplayName: *name},
			Content: *content, CreatedAt: a.now().Unix(), Attachments: atts,
		})
		if err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		a.printf("%s", *id)
		return nil
	}
}

func publishMessageUpdate(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	id := fs.String("id", "", "`id` of the message")
	content := fs.String("content", "", "new message `text`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "id", "content"); err != nil {
			return err
		}
		if err := checkText("id", *id, 128); err != nil {
			return err
		}
		if err := checkText("content", *content, protocol.MaxEventSize/2); err != nil {
			return err
		}
		pub, err := a.publisher()
		if err != nil {
			return err
		}
		err = pub.MessageUpdated(ctx, protocol.MessageUpdate{
			ID: *id, ChannelID: ch.id, Content: *content, EditedAt: a.now().Unix(),
		})
		if err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		a.printf("published message_update %s to channel %s", *id, ch.id)
		return nil
	}
}

func publishMessageDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "channel `ID`")
	id := fs.String("id", "", "`id` of the message")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "channel", "id"); err != nil {
			return err
		}
		if err := checkText("id", *id, 128); err != nil {
			return err
		}
		pub, err := a.publisher()
		if err != nil {
			return err
		}
		if err := pub.MessageDeleted(ctx, protocol.MessageDelete{ID: *id, ChannelID: ch.id}); err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		a.printf("published message_delete %s to channel %s", *id, ch.id)
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
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user", "type", "title"); err != nil {
			return err
		}
		if err := checkText("type", *typ, 64); err != nil {
			return err
		}
		n, err := nf.build(fs, *typ, a.now())
		if err != nil {
			return err
		}
		pub, err := a.publisher()
		if err != nil {
			return err
		}
		if err := pub.Notify(ctx, user.id, n); err != nil {
			return err
		}
		if err := flush(ctx, a); err != nil {
			return err
		}
		a.printf("%s", n.ID)
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
		a.printf("%s", n.ID)
		return nil
	}
}

func ticketMint(fs *flag.FlagSet) func(context.Context, *app) error {
	token := fs.String("session", "", "bearer session `token` (sess_…)")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "session"); err != nil {
			return err
		}
		if !kvutil.ValidToken(*token, session.TokenPrefix, 32) {
			return usageErrorf("--session must be a bearer token sess_… (as printed by 'ocvrctl session create')")
		}
		sessions, err := a.sessions(ctx)
		if err != nil {
			return err
		}
		s, err := sessions.Verify(ctx, *token)
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		tickets, err := a.tickets(ctx)
		if err != nil {
			return err
		}
		t, err := tickets.Mint(ctx, ticket.Identity{SessionID: s.ID, UserID: s.UserID, DisplayName: s.DisplayName})
		if err != nil {
			return err
		}
		a.printf("%s", t)
		return nil
	}
}
