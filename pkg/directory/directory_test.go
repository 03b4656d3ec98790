package directory_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
)

func setup(t *testing.T) (*directory.Store, *nats.Conn) {
	t.Helper()
	srv := natsembed.Test(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := directory.Open(testCtx(t), nc)
	if err != nil {
		t.Fatalf("open directory: %v", err)
	}
	return d, nc
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isMember(t *testing.T, d *directory.Store, ch string, user int64) bool {
	t.Helper()
	ok, err := d.IsMember(testCtx(t), ch, user)
	if err != nil {
		t.Fatalf("IsMember(%s, %d): %v", ch, user, err)
	}
	return ok
}

func TestChannels(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	if ids, err := d.ListChannels(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("ListChannels on an empty directory = %v, %v", ids, err)
	}
	for _, ch := range []string{"ch_general", "ch-b", "a", "ch_general"} { // idempotent
		must(t, d.CreateChannel(ctx, ch))
	}
	ids, err := d.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "ch-b", "ch_general"}; !slices.Equal(ids, want) {
		t.Fatalf("ListChannels = %v, want %v", ids, want)
	}
	for _, tt := range []struct {
		ch   string
		want bool
	}{{"ch_general", true}, {"a", true}, {"nope", false}, {"ch_gen", false}} {
		ok, err := d.ChannelExists(ctx, tt.ch)
		if err != nil || ok != tt.want {
			t.Errorf("ChannelExists(%q) = %v, %v; want %v", tt.ch, ok, err, tt.want)
		}
	}
	must(t, d.DeleteChannel(ctx, "a"))
	if ok, _ := d.ChannelExists(ctx, "a"); ok {
		t.Error("deleted channel still exists")
	}
	if err := d.DeleteChannel(ctx, "a"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("DeleteChannel of a deleted channel = %v, want ErrNotFound", err)
	}
	ids, _ = d.ListChannels(ctx)
	if want := []string{"ch-b", "ch_general"}; !slices.Equal(ids, want) {
		t.Fatalf("ListChannels after delete = %v, want %v", ids, want)
	}
	must(t, d.CreateChannel(ctx, "a")) // re-creatable
	if ok, _ := d.ChannelExists(ctx, "a"); !ok {
		t.Error("re-created channel does not exist")
	}
}

func TestMembers(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	must(t, d.CreateChannel(ctx, "ch_a"))
	must(t, d.CreateChannel(ctx, "ch_ab")) // shares a prefix with ch_a
	must(t, d.AddMember(ctx, "ch_a", 1))
	must(t, d.AddMember(ctx, "ch_a", 1)) // idempotent
	must(t, d.AddMember(ctx, "ch_a", 12))
	must(t, d.AddMember(ctx, "ch_ab", 1))
	for _, tt := range []struct {
		ch   string
		user int64
		want bool
	}{{"ch_a", 1, true}, {"ch_a", 12, true}, {"ch_ab", 1, true}, {"ch_ab", 12, false}, {"ch_a", 2, false}, {"nope", 1, false}} {
		if got := isMember(t, d, tt.ch, tt.user); got != tt.want {
			t.Errorf("IsMember(%s, %d) = %v, want %v", tt.ch, tt.user, got, tt.want)
		}
	}
	chans, err := d.ChannelsOf(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ch_a", "ch_ab"}; !slices.Equal(chans, want) {
		t.Errorf("ChannelsOf(1) = %v, want %v", chans, want)
	}
	if chans, err := d.ChannelsOf(ctx, 99); err != nil || len(chans) != 0 {
		t.Errorf("ChannelsOf(99) = %v, %v", chans, err)
	}
	if err := d.AddMember(ctx, "missing", 1); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("AddMember to a missing channel = %v, want ErrNotFound", err)
	}
	must(t, d.RemoveMember(ctx, "ch_a", 1))
	must(t, d.RemoveMember(ctx, "ch_a", 1))    // idempotent
	must(t, d.RemoveMember(ctx, "missing", 1)) // idempotent even without a channel
	if isMember(t, d, "ch_a", 1) {
		t.Error("removed member is still a member")
	}
	if !isMember(t, d, "ch_ab", 1) || !isMember(t, d, "ch_a", 12) {
		t.Error("RemoveMember removed another membership")
	}
}

// TestDeleteChannelRemovesMembers: deleting a channel removes its
// memberships (gateways watching the members bucket see each removal) and no
// other channel's.
func TestDeleteChannelRemovesMembers(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	must(t, d.CreateChannel(ctx, "ch_a"))
	must(t, d.CreateChannel(ctx, "ch_ab"))
	for _, u := range []int64{1, 2, 3} {
		must(t, d.AddMember(ctx, "ch_a", u))
	}
	must(t, d.AddMember(ctx, "ch_ab", 1))

	w, err := d.MembersKV().Watch(ctx, "ch_a.*", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	must(t, d.DeleteChannel(ctx, "ch_a"))
	for _, u := range []int64{1, 2, 3} {
		if isMember(t, d, "ch_a", u) {
			t.Errorf("user %d is still a member of the deleted channel", u)
		}
	}
	if !isMember(t, d, "ch_ab", 1) {
		t.Error("DeleteChannel removed a membership of another channel")
	}
	removed := map[string]bool{}
	for len(removed) < 3 {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValueDelete {
				t.Fatalf("watcher saw %v on %s, want a delete", e.Operation(), e.Key())
			}
			removed[e.Key()] = true
		case <-ctx.Done():
			t.Fatalf("watcher saw %d removals, want 3", len(removed))
		}
	}
	if chans, _ := d.ChannelsOf(ctx, 2); len(chans) != 0 {
		t.Errorf("ChannelsOf(2) after delete = %v", chans)
	}
	// A re-created channel starts without members.
	must(t, d.CreateChannel(ctx, "ch_a"))
	if isMember(t, d, "ch_a", 1) {
		t.Error("re-created channel kept an old membership")
	}
}

func TestFriends(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	friends := func(u int64) []int64 {
		t.Helper()
		ids, err := d.Friends(ctx, u)
		if err != nil {
			t.Fatalf("Friends(%d): %v", u, err)
		}
		slices.Sort(ids)
		return ids
	}
	must(t, d.AddFriend(ctx, 1, 2))
	must(t, d.AddFriend(ctx, 1, 3))
	must(t, d.AddFriend(ctx, 2, 1)) // the same friendship, idempotent
	must(t, d.AddFriend(ctx, 10, 1))
	tests := []struct {
		user int64
		want []int64
	}{{1, []int64{2, 3, 10}}, {2, []int64{1}}, {3, []int64{1}}, {10, []int64{1}}, {4, []int64{}}}
	for _, tt := range tests {
		if got := friends(tt.user); !slices.Equal(got, tt.want) {
			t.Errorf("Friends(%d) = %v, want %v", tt.user, got, tt.want)
		}
	}
	must(t, d.RemoveFriend(ctx, 2, 1)) // from the other side
	must(t, d.RemoveFriend(ctx, 2, 1)) // idempotent
	if got := friends(1); !slices.Equal(got, []int64{3, 10}) {
		t.Errorf("Friends(1) after removal = %v", got)
	}
	if got := friends(2); len(got) != 0 {
		t.Errorf("Friends(2) after removal = %v", got)
	}
	if err := d.AddFriend(ctx, 5, 5); err == nil {
		t.Error("a user befriended themselves")
	}
}

// TestInvalidIDsNeverTouchNATS runs every call with invalid ids on a store
// whose connection is closed: a call that reached NATS would fail with
// nats.ErrConnectionClosed, one that validated first fails with the id error
// (or answers false for the yes/no questions).
func TestInvalidIDsNeverTouchNATS(t *testing.T) {
	d, nc := setup(t)
	nc.Close()
	ctx := testCtx(t)
	badChannels := []string{"", "ch.>", "*", ">", "a b", "a.b", strings.Repeat("c", 65), "café"}
	badUsers := []int64{0, -1}
	for _, ch := range badChannels {
		for name, err := range map[string]error{
			"CreateChannel": d.CreateChannel(ctx, ch),
			"DeleteChannel": d.DeleteChannel(ctx, ch),
			"AddMember":     d.AddMember(ctx, ch, 1),
			"RemoveMember":  d.RemoveMember(ctx, ch, 1),
		} {
			if !errors.Is(err, protocol.ErrInvalidChannelID) {
				t.Errorf("%s(%q) = %v, want ErrInvalidChannelID", name, ch, err)
			}
		}
		if ok, err := d.ChannelExists(ctx, ch); ok || err != nil {
			t.Errorf("ChannelExists(%q) = %v, %v; want false, nil", ch, ok, err)
		}
		if ok, err := d.IsMember(ctx, ch, 1); ok || err != nil {
			t.Errorf("IsMember(%q, 1) = %v, %v; want false, nil", ch, ok, err)
		}
	}
	for _, u := range badUsers {
		_, friendsErr := d.Friends(ctx, u)
		_, chansErr := d.ChannelsOf(ctx, u)
		for name, err := range map[string]error{
			"AddMember":       d.AddMember(ctx, "ch", u),
			"RemoveMember":    d.RemoveMember(ctx, "ch", u),
			"AddFriend":       d.AddFriend(ctx, u, 1),
			"AddFriend(to)":   d.AddFriend(ctx, 1, u),
			"RemoveFriend":    d.RemoveFriend(ctx, u, 1),
			"RemoveFriend(b)": d.RemoveFriend(ctx, 1, u),
			"Friends":         friendsErr,
			"ChannelsOf":      chansErr,
		} {
			if !errors.Is(err, protocol.ErrInvalidUserID) {
				t.Errorf("%s(%d) = %v, want ErrInvalidUserID", name, u, err)
			}
		}
		if ok, err := d.IsMember(ctx, "ch", u); ok || err != nil {
			t.Errorf("IsMember(ch, %d) = %v, %v; want false, nil", u, ok, err)
		}
	}
	// And a valid call does reach NATS (and fails, the connection is closed).
	if err := d.CreateChannel(ctx, "ch"); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("CreateChannel on a closed connection = %v, want ErrConnectionClosed", err)
	}
}

// TestListingHonoursContext: a canceled listing is an error, never a
// silently partial list.
func TestListingHonoursContext(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	must(t, d.CreateChannel(ctx, "ch"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if ids, err := d.ListChannels(canceled); err == nil {
		t.Errorf("ListChannels with a canceled context = %v, nil", ids)
	}
	if _, err := d.ChannelsOf(canceled, 1); err == nil {
		t.Error("ChannelsOf with a canceled context succeeded")
	}
	if _, err := d.Friends(canceled, 1); err == nil {
		t.Error("Friends with a canceled context succeeded")
	}
}

func TestParseMemberKey(t *testing.T) {
	tests := []struct {
		key  string
		ch   string
		user int64
		ok   bool
	}{
		{"ch_general.42", "ch_general", 42, true},
		{"a.1", "a", 1, true},
		{"ch_general", "", 0, false},
		{"ch_general.", "", 0, false},
		{".42", "", 0, false},
		{"ch_general.0", "", 0, false},
		{"ch_general.01", "", 0, false},
		{"ch_general.x", "", 0, false},
		{"a.b.1", "", 0, false},
	}
	for _, tt := range tests {
		ch, user, ok := directory.ParseMemberKey(tt.key)
		if ok != tt.ok || (ok && (ch != tt.ch || user != tt.user)) {
			t.Errorf("ParseMemberKey(%q) = %q, %d, %v; want %q, %d, %v", tt.key, ch, user, ok, tt.ch, tt.user, tt.ok)
		}
	}
}
