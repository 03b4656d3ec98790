package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"github.com/ocvr/realtime/pkg/directory"
)

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
		a.emit(channelResult{ch.id, true}, "created channel %s", ch.id)
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
		a.emit(channelResult{ch.id, false}, "deleted channel %s", ch.id)
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
			a.emit(map[string]string{"channel_id": id}, "%s", id)
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
				a.emit(memberResult{ch.id, user.id, true}, "added user %d to channel %s", user.id, ch.id)
				return nil
			}
			if err := d.RemoveMember(ctx, ch.id, user.id); err != nil {
				return err
			}
			a.emit(memberResult{ch.id, user.id, false}, "removed user %d from channel %s", user.id, ch.id)
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
				a.emit(friendResult{user.id, friend.id, true}, "users %d and %d are friends", user.id, friend.id)
				return nil
			}
			if err := d.RemoveFriend(ctx, user.id, friend.id); err != nil {
				return err
			}
			a.emit(friendResult{user.id, friend.id, false}, "users %d and %d are no longer friends", user.id, friend.id)
			return nil
		}
	}
}

// The --json results of the directory commands: the state after the
// command (exists, member, friends), so that add and remove read alike.
type channelResult struct {
	ChannelID string `json:"channel_id"`
	Exists    bool   `json:"exists"`
}

type memberResult struct {
	ChannelID string `json:"channel_id"`
	UserID    int64  `json:"user_id"`
	Member    bool   `json:"member"`
}

type friendResult struct {
	UserID   int64 `json:"user_id"`
	FriendID int64 `json:"friend_id"`
	Friends  bool  `json:"friends"`
}

// memberList lists the members of a channel, or the channels of a user.
func memberList(fs *flag.FlagSet) func(context.Context, *app) error {
	ch := channelIDVar(fs, "channel", "list the members (user ids) of channel `ID`")
	user := userIDVar(fs, "user", "list the channels user `ID` is a member of")
	return func(ctx context.Context, a *app) error {
		set := given(fs)
		if set["channel"] == set["user"] {
			return usageErrorf("give exactly one of --channel or --user")
		}
		d, err := a.directory(ctx)
		if err != nil {
			return err
		}
		if set["user"] {
			ids, err := d.ChannelsOf(ctx, user.id)
			if err != nil {
				return err
			}
			for _, id := range ids {
				a.emit(memberResult{id, user.id, true}, "%s", id)
			}
			return nil
		}
		ok, err := d.ChannelExists(ctx, ch.id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("channel %s: %w", ch.id, directory.ErrNotFound)
		}
		lister, err := d.MembersKV().ListKeysFiltered(ctx, ch.id+".*")
		if err != nil {
			return fmt.Errorf("list members: %w", err)
		}
		var users []int64
		for k := range lister.Keys() {
			if c, u, ok := directory.ParseMemberKey(k); ok && c == ch.id {
				users = append(users, u)
			}
		}
		if err := ctx.Err(); err != nil { // the lister ends early, silently, with ctx
			return fmt.Errorf("list members: %w", err)
		}
		slices.Sort(users)
		for _, u := range slices.Compact(users) {
			a.emit(memberResult{ch.id, u, true}, "%d", u)
		}
		return nil
	}
}

// friendList lists a user's friends (ascending user ids).
func friendList(fs *flag.FlagSet) func(context.Context, *app) error {
	user := userIDVar(fs, "user", "user `ID`")
	return func(ctx context.Context, a *app) error {
		if err := require(fs, "user"); err != nil {
			return err
		}
		d, err := a.directory(ctx)
		if err != nil {
			return err
		}
		ids, err := d.Friends(ctx, user.id)
		if err != nil {
			return err
		}
		for _, id := range ids {
			a.emit(friendResult{user.id, id, true}, "%d", id)
		}
		return nil
	}
}
