package main

import (
	"context"
	"encoding/json"
	"flag"
	"time"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

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
