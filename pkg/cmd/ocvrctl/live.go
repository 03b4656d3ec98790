package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

func presenceSet(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "user `ID`")
	text := fs.String("text", "", "status `text` (empty clears it)")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user", "text"); err != nil {
			return err
		}
		if len(*text) > presence.MaxStatusText {
			return usageErrorf("--text is longer than %d bytes", presence.MaxStatusText)
		}
		p, err := a.presence(ctx)
		if err != nil {
			return err
		}
		if err := p.SetStatus(ctx, user.id, *text); err != nil {
			return err
		}
		msg := fmt.Sprintf("set the status text of user %d", user.id)
		if *text == "" {
			msg = fmt.Sprintf("cleared the status text of user %d", user.id)
		}
		a.emit(struct {
			UserID     int64  `json:"user_id"`
			StatusText string `json:"status_text"`
		}{user.id, *text}, "%s", msg)
		return nil
	}
}

func presenceGet(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "user `ID`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user"); err != nil {
			return err
		}
		p, err := a.presence(ctx)
		if err != nil {
			return err
		}
		pr, err := p.Get(ctx, user.id)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(pr)
		a.printf("%s", b)
		return nil
	}
}

func connectCmd(fs *flag.FlagSet) func(context.Context, *app) error {
	token := fs.String("session", "", "bearer session `token` (sess_…)")
	subs := fs.String("subscribe", "", "channel `ids` to subscribe to, comma-separated")
	ticketURL := fs.String("ticket-url", "http://127.0.0.1:8080", "ticketsvc base `url`")
	wsURL := fs.String("ws-url", "ws://127.0.0.1:8081/v1/ws", "gateway socket `url`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "session"); err != nil {
			return err
		}
		if !strings.HasPrefix(*token, session.TokenPrefix) {
			return usageErrorf("--session must be a session token sess_…")
		}
		var channels []string
		for _, ch := range splitList(*subs) {
			if !protocol.ValidChannelID(ch) {
				return usageErrorf("--subscribe: invalid channel id %q", ch)
			}
			channels = append(channels, ch)
		}
		conn, err := client.Connect(ctx, *ticketURL, *wsURL, *token, client.Options{})
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.CloseNow()
		a.printf("%s", conn.ReadyFrame().Raw)
		for _, ch := range channels {
			if err := conn.Subscribe(ctx, ch); err != nil {
				return err
			}
		}
		for {
			f, err := conn.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					_ = conn.Close()
					return nil
				}
				var ce *client.CloseError
				if errors.As(err, &ce) && ce.Code == protocol.CloseNormal {
					return nil
				}
				return err
			}
			a.printf("%s", f.Raw)
		}
	}
}
