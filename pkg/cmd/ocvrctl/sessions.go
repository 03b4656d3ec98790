package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
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
		if a.g.json {
			a.emit(struct {
				Token       string `json:"token"`
				SessionID   string `json:"session_id"`
				UserID      int64  `json:"user_id"`
				DisplayName string `json:"display_name"`
				ExpiresAt   int64  `json:"expires_at"`
			}{token, s.ID, s.UserID, s.DisplayName, s.ExpiresAt.Unix()}, "")
			return nil
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
			a.emit(revoked{Revoked: 1, SessionID: sid.id, Reason: r}, "revoked session %s", sid.id)
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
		a.emit(revoked{Revoked: n, UserID: user.id, Except: except.id, Reason: r}, "revoked %d session(s) of user %d", n, user.id)
		return nil
	}
}

// revoked is the --json result of session revoke.
type revoked struct {
	Revoked   int    `json:"revoked"`
	SessionID string `json:"session_id,omitempty"`
	UserID    int64  `json:"user_id,omitempty"`
	Except    string `json:"except_session_id,omitempty"`
	Reason    string `json:"reason"`
}

// sessionList lists a user's live sessions from the per-user index of the
// sessions bucket (u.<user_id>.<session_id>, pkg/README.md "State in NATS
// KV"). Token hashes are never printed.
func sessionList(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "list the sessions of this user `ID`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user"); err != nil {
			return err
		}
		nc, err := a.conn()
		if err != nil {
			return err
		}
		js, err := provision.JetStream(ctx, nc) // in --jetstream-domain
		if err != nil {
			return err
		}
		kv, err := js.KeyValue(ctx, a.g.sessions)
		if err != nil {
			return fmt.Errorf("sessions bucket %s: %w", a.g.sessions, err)
		}
		lister, err := kv.ListKeysFiltered(ctx, "u."+strconv.FormatInt(user.id, 10)+".*")
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		if err := ctx.Err(); err != nil { // the lister ends early, silently, with ctx
			return fmt.Errorf("list sessions: %w", err)
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // revoked or expired meanwhile
			}
			if err != nil {
				return fmt.Errorf("list sessions: %w", err)
			}
			var s session.Session
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				return fmt.Errorf("list sessions: corrupt record %s: %w", k, err)
			}
			if !a.now().Before(s.ExpiresAt) {
				continue
			}
			a.emit(struct {
				SessionID   string `json:"session_id"`
				UserID      int64  `json:"user_id"`
				DisplayName string `json:"display_name"`
				CreatedAt   int64  `json:"created_at"`
				ExpiresAt   int64  `json:"expires_at"`
			}{s.ID, s.UserID, s.DisplayName, s.CreatedAt.Unix(), s.ExpiresAt.Unix()},
				"%s\t%s\tcreated %s\texpires %s", s.ID, s.DisplayName, s.CreatedAt.UTC().Format(time.RFC3339), s.ExpiresAt.UTC().Format(time.RFC3339))
		}
		return nil
	}
}
