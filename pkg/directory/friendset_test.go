package directory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
)

// seed writes raw keys of the friends bucket: what an earlier release (pair
// keys only) or another language left there.
func seed(t *testing.T, d *directory.Store, kv map[string]string) {
	t.Helper()
	for k, v := range kv {
		if _, err := d.FriendsKV().Put(testCtx(t), k, []byte(v)); err != nil {
			t.Fatalf("seed %s: %v", k, err)
		}
	}
}

// storedSet is the raw set.<user> value, "" when there is none.
func storedSet(t *testing.T, d *directory.Store, user int64) string {
	t.Helper()
	e, err := d.FriendsKV().Get(testCtx(t), "set."+strconv.FormatInt(user, 10))
	if kvutil.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("get set of %d: %v", user, err)
	}
	return string(e.Value())
}

func pairs(ps ...[2]int64) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[fmt.Sprintf("%d.%d", p[0], p[1])] = "2023-12-25T17:00:00Z"
	}
	return m
}

// TestFriendsFormats: Friends reads a user's set, or, in a bucket of an
// earlier release (pair keys only), lists the pair keys and writes the set
// back.
func TestFriendsFormats(t *testing.T) {
	tests := []struct {
		name    string
		seed    map[string]string
		want    []int64
		wantErr bool
		stored  string // set.1 afterwards
	}{
		{name: "set", seed: map[string]string{"set.1": "[2,3,10]"}, want: []int64{2, 3, 10}, stored: "[2,3,10]"},
		{name: "set written by hand, unordered, repeats", seed: map[string]string{"set.1": " [10, 3,2,3] "}, want: []int64{2, 3, 10}, stored: " [10, 3,2,3] "},
		{name: "empty set", seed: map[string]string{"set.1": "[]"}, want: []int64{}, stored: "[]"},
		{name: "pair keys only: listed, set written back", seed: pairs([2]int64{1, 10}, [2]int64{1, 2}, [2]int64{1, 3}, [2]int64{2, 1}), want: []int64{2, 3, 10}, stored: "[2,3,10]"},
		{name: "pair keys of other users only", seed: pairs([2]int64{11, 1}, [2]int64{2, 1}, [2]int64{21, 5}), want: []int64{}, stored: "[]"},
		{name: "pair key prefixes do not match", seed: pairs([2]int64{11, 5}, [2]int64{1, 7}), want: []int64{7}, stored: "[7]"},
		{name: "nothing: no friends, empty set written back", want: []int64{}, stored: "[]"},
		{name: "set and pair keys: the set is the record", seed: merge(map[string]string{"set.1": "[2]"}, pairs([2]int64{1, 2}, [2]int64{1, 3})), want: []int64{2}, stored: "[2]"},
		{name: "not JSON", seed: map[string]string{"set.1": "2,3"}, wantErr: true, stored: "2,3"},
		{name: "not an array", seed: map[string]string{"set.1": `{"2":true}`}, wantErr: true, stored: `{"2":true}`},
		{name: "null", seed: map[string]string{"set.1": "null"}, wantErr: true, stored: "null"},
		{name: "invalid id", seed: map[string]string{"set.1": "[2,0]"}, wantErr: true, stored: "[2,0]"},
		{name: "not an integer", seed: map[string]string{"set.1": "[2.5]"}, wantErr: true, stored: "[2.5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := setup(t)
			seed(t, d, tt.seed)
			got, err := d.Friends(testCtx(t), 1)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Friends = %v, want an error", got)
				}
			} else if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Friends = %v, %v; want %v", got, err, tt.want)
			}
			if s := storedSet(t, d, 1); s != tt.stored {
				t.Errorf("set.1 = %q, want %q", s, tt.stored)
			}
		})
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestFriendSetMigration: AddFriend and RemoveFriend on a bucket of an
// earlier release start each user's set from its pair keys, and keep the
// pair keys in step (their readers: gateways of that release).
func TestFriendSetMigration(t *testing.T) {
	legacy := pairs([2]int64{1, 2}, [2]int64{2, 1}, [2]int64{1, 3}, [2]int64{3, 1})
	tests := []struct {
		name      string
		op        func(context.Context, *directory.Store) error
		want      map[int64][]int64
		pairKeys  []string // present afterwards
		noPairKey []string // absent afterwards
	}{
		{
			name:     "add",
			op:       func(ctx context.Context, d *directory.Store) error { return d.AddFriend(ctx, 1, 4) },
			want:     map[int64][]int64{1: {2, 3, 4}, 2: {1}, 3: {1}, 4: {1}},
			pairKeys: []string{"1.2", "2.1", "1.3", "3.1", "1.4", "4.1"},
		},
		{
			name:     "add existing",
			op:       func(ctx context.Context, d *directory.Store) error { return d.AddFriend(ctx, 2, 1) },
			want:     map[int64][]int64{1: {2, 3}, 2: {1}, 3: {1}},
			pairKeys: []string{"1.2", "2.1", "1.3", "3.1"},
		},
		{
			name:      "remove",
			op:        func(ctx context.Context, d *directory.Store) error { return d.RemoveFriend(ctx, 2, 1) },
			want:      map[int64][]int64{1: {3}, 2: {}, 3: {1}},
			pairKeys:  []string{"1.3", "3.1"},
			noPairKey: []string{"1.2", "2.1"},
		},
		{
			name: "remove absent",
			op:   func(ctx context.Context, d *directory.Store) error { return d.RemoveFriend(ctx, 1, 9) },
			want: map[int64][]int64{1: {2, 3}, 9: {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := setup(t)
			ctx := testCtx(t)
			seed(t, d, legacy)
			must(t, tt.op(ctx, d))
			for user, want := range tt.want {
				if got, err := d.Friends(ctx, user); err != nil || !slices.Equal(got, want) {
					t.Errorf("Friends(%d) = %v, %v; want %v", user, got, err, want)
				}
			}
			for _, k := range tt.pairKeys {
				if _, err := d.FriendsKV().Get(ctx, k); err != nil {
					t.Errorf("pair key %s: %v", k, err)
				}
			}
			for _, k := range tt.noPairKey {
				if _, err := d.FriendsKV().Get(ctx, k); !kvutil.IsNotFound(err) {
					t.Errorf("pair key %s: %v, want it gone", k, err)
				}
			}
		})
	}
}

// TestFriendSetBound: a set holds at most MaxFriends; an AddFriend beyond
// it changes neither side.
func TestFriendSetBound(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	full := make([]string, directory.MaxFriends)
	for i := range full {
		full[i] = strconv.Itoa(1000 + i)
	}
	seed(t, d, map[string]string{"set.1": "[" + strings.Join(full, ",") + "]"})
	for _, tt := range []struct {
		name           string
		user, friendID int64
	}{{"the full user first", 1, 9}, {"the full user second", 9, 1}} {
		if err := d.AddFriend(ctx, tt.user, tt.friendID); !errors.Is(err, directory.ErrTooManyFriends) {
			t.Errorf("%s: AddFriend(%d, %d) = %v, want ErrTooManyFriends", tt.name, tt.user, tt.friendID, err)
		}
		if got, err := d.Friends(ctx, 9); err != nil || len(got) != 0 {
			t.Errorf("%s: Friends(9) = %v, %v; want none", tt.name, got, err)
		}
		if got, err := d.Friends(ctx, 1); err != nil || len(got) != directory.MaxFriends || slices.Contains(got, 9) {
			t.Errorf("%s: Friends(1) has %d friends (9 among them: %v), %v", tt.name, len(got), slices.Contains(got, 9), err)
		}
	}
	must(t, d.RemoveFriend(ctx, 1, 1000))
	must(t, d.AddFriend(ctx, 9, 1))
	if got, _ := d.Friends(ctx, 1); len(got) != directory.MaxFriends || !slices.Contains(got, 9) || slices.Contains(got, 1000) {
		t.Errorf("after making room: Friends(1) has %d friends, 9: %v, 1000: %v", len(got), slices.Contains(got, 9), slices.Contains(got, 1000))
	}
}

// TestFriendSetConcurrent: writers on several connections (on several
// nodes of a cluster, where reads may come from a lagging replica) add and
// remove friends of one user at once, starting from a bucket of an earlier
// release, while readers migrate the same user: the user's set ends exact,
// and so does each friend's.
func TestFriendSetConcurrent(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("servers=%d", nodes), func(t *testing.T) {
			var urls []string
			if nodes == 1 {
				urls = []string{natsembed.Test(t).ClientURL()}
			} else {
				urls = natsembed.TestCluster(t, nodes).ClientURLs()
			}
			testFriendSetConcurrent(t, urls)
		})
	}
}

func testFriendSetConcurrent(t *testing.T, urls []string) {
	const (
		hot     = int64(1)
		writers = 6
		owned   = 5  // friends of hot each writer adds and removes
		ops     = 25 // per writer
		readers = 2
	)
	ctx := testCtx(t)
	stores := make([]*directory.Store, writers+readers)
	for i := range stores {
		stores[i] = openOn(t, urls[i%len(urls)], nil)
	}
	// Friends of an earlier release, which no writer touches: the
	// migration must keep them.
	seed(t, stores[0], pairs([2]int64{hot, 7}, [2]int64{7, hot}, [2]int64{hot, 8}, [2]int64{8, hot}))

	want := map[int64]bool{7: true, 8: true}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	stop := make(chan struct{})
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(d *directory.Store) { // owner: this test; ends at stop
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := d.Friends(ctx, hot); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("reader: %w", err))
					mu.Unlock()
				}
			}
		}(stores[writers+r])
	}
	var writersWG sync.WaitGroup
	final := make([]map[int64]bool, writers)
	for w := 0; w < writers; w++ {
		writersWG.Add(1)
		go func(w int, d *directory.Store) { // owner: this test; ends after ops
			defer writersWG.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			mine := map[int64]bool{}
			for i := 0; i < ops; i++ {
				f := int64(100*(w+1) + rnd.IntN(owned) + 1)
				add := rnd.IntN(3) > 0
				a, b := hot, f
				if rnd.IntN(2) == 0 {
					a, b = f, hot // either side names the friendship
				}
				var err error
				if add {
					err = d.AddFriend(ctx, a, b)
				} else {
					err = d.RemoveFriend(ctx, a, b)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %d: add=%v %d,%d: %w", w, add, a, b, err))
					mu.Unlock()
					continue
				}
				mine[f] = add
			}
			final[w] = mine
		}(w, stores[w])
	}
	writersWG.Wait()
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for _, mine := range final {
		for f, in := range mine {
			want[f] = in
		}
	}
	var wantHot []int64
	for f, in := range want {
		if in {
			wantHot = append(wantHot, f)
		}
	}
	slices.Sort(wantHot)
	// Every write was acknowledged; a direct get on another node may lag it
	// by a moment.
	eventually(t, fmt.Sprintf("Friends(%d)", hot), func() ([]int64, error) { return stores[0].Friends(ctx, hot) }, wantHot)
	for f, in := range want {
		var wantF []int64
		if in {
			wantF = []int64{hot}
		}
		eventually(t, fmt.Sprintf("Friends(%d)", f), func() ([]int64, error) { return stores[1%len(stores)].Friends(ctx, f) }, wantF)
	}
	t.Logf("user %d ends with %d friends after %d concurrent changes", hot, len(wantHot), writers*ops)
}

func eventually(t *testing.T, what string, get func() ([]int64, error), want []int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := get()
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s = %v, %v; want %v", what, got, err, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFriendSetKeysAreValid: the set key cannot be mistaken for a pair key
// and is a valid KV key (a KV write of it succeeds); FriendsKV holds both.
func TestFriendSetKeysAreValid(t *testing.T) {
	d, _ := setup(t)
	ctx := testCtx(t)
	must(t, d.AddFriend(ctx, 42, 9223372036854775807))
	l, err := d.FriendsKV().ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"42.9223372036854775807", "9223372036854775807.42", "set.42", "set.9223372036854775807"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if _, err := d.FriendsKV().Get(ctx, "set.42"); errors.Is(err, jetstream.ErrInvalidKey) {
		t.Error(err)
	}
}
