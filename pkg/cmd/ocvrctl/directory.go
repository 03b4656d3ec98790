package main

import (
	"context"
	"flag"
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
