package main

import (
	"context"
	"flag"
	"time"
)

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
