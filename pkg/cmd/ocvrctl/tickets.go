package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

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
		a.emit(struct {
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}{t, int(ticket.TTL / time.Second)}, "%s", t)
		return nil
	}
}
