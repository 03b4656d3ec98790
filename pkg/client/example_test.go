package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// ExampleStartSession connects, subscribes to a channel and prints the
// messages a backend publishes to it.
func ExampleStartSession() {
	ticketURL, wsURL, token := exampleServers() // ticketsvc, a gateway, a signed-in user's sess_… token
	ctx := context.Background()

	s, err := client.StartSession(ctx, client.SessionConfig{
		TicketURLs: []string{ticketURL},
		WSURLs:     []string{wsURL},
		Token:      token,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// Read Frames on a goroutine of its own: Subscribe waits for the
	// server's answer, which arrives there.
	got := make(chan struct{})
	go func() {
		for f := range s.Frames() {
			switch f.Type {
			case protocol.TypeReady:
				fmt.Println("connected; resumed after a reconnect:", f.Continuity.Reconnect && f.Continuity.Resumed)
			case protocol.TypeSubscribed:
				fmt.Println("subscribed to", f.Continuity.ChannelID)
			case protocol.TypeMessageCreate:
				var m protocol.MessageCreate
				if f.Decode(&m) == nil {
					fmt.Printf("%s in %s: %s\n", m.Author.DisplayName, m.ChannelID, m.Content)
					close(got)
				}
			default:
				// Event types this app does not know: ignore them.
			}
		}
	}()

	if err := s.Subscribe(ctx, "ch_general"); err != nil {
		log.Fatal(err)
	}
	examplePublish("ch_general", "Hello!") // what the chat backend does (pkg/bus)
	<-got
	// Output:
	// connected; resumed after a reconnect: false
	// subscribed to ch_general
	// Backend in ch_general: Hello!
}

// A subscribe the server refuses fails with its code; the channel leaves
// the session (it is not resubscribed after a reconnect).
func ExampleSession_Subscribe_refused() {
	ticketURL, wsURL, token := exampleServers()
	ctx := context.Background()
	s, err := client.StartSession(ctx, client.SessionConfig{TicketURLs: []string{ticketURL}, WSURLs: []string{wsURL}, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	err = s.Subscribe(ctx, "ch_staff") // a channel of other users
	var refused *client.SubscribeError
	switch {
	case errors.As(err, &refused):
		fmt.Println("refused:", refused.Code) // gateway/README.md "Error codes" says what to do
	case errors.Is(err, client.ErrSubscribeTimeout):
		fmt.Println("no answer in time; the session keeps trying")
	case err != nil:
		fmt.Println("session ended:", err)
	}
	sub, _ := s.Subscription("ch_staff")
	fmt.Println("state:", sub.State)
	// Output:
	// refused: NOT_MEMBER
	// state: unsubscribed
}

// TokenFunc hands the session the current session token before every
// ticket request, e.g. from the app's auth state after a refresh.
func ExampleSessionConfig_tokenFunc() {
	ticketURL, wsURL, token := exampleServers()
	auth := &struct {
		sync.Mutex
		token string
	}{token: token}

	s, err := client.StartSession(context.Background(), client.SessionConfig{
		TicketURLs: []string{ticketURL},
		WSURLs:     []string{wsURL},
		TokenFunc: func(ctx context.Context) (string, error) {
			auth.Lock()
			defer auth.Unlock()
			return auth.token, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	f := <-s.Frames()
	var r protocol.Ready
	if f.Decode(&r) == nil {
		fmt.Println(f.Type, "for user", r.UserID)
	}
	// Output:
	// ready for user 1
}

// After a reconnect every subscription says whether it resumed without
// loss; when it did not, refetch that state from the backend before
// applying the events that follow.
func ExampleContinuity_Lost() {
	ticketURL, wsURL, token := exampleServers()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.StartSession(ctx, client.SessionConfig{TicketURLs: []string{ticketURL}, WSURLs: []string{wsURL}, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	go func() {
		if err := s.Subscribe(ctx, "ch_general"); err != nil {
			log.Print(err)
		}
	}()
	for f := range s.Frames() {
		switch f.Type {
		case protocol.TypeReady:
			if f.Continuity.Lost() {
				fmt.Println("refetch the user's notifications and friends' presence")
			}
		case protocol.TypeSubscribed:
			if f.Continuity.Lost() {
				fmt.Println("refetch the history of", f.Continuity.ChannelID)
			}
			fmt.Println(f.Continuity.ChannelID, "is live")
			return
		}
	}
	// Output:
	// ch_general is live
}

// The examples' cluster: the real gateway and ticketsvc on an embedded
// NATS (pkg/clustertest), started by the first example and stopped by
// TestMain.
var examples struct {
	once  sync.Once
	tb    *exampleTB
	c     *clustertest.Cluster
	token string
}

// exampleServers returns ticketsvc's URL, a gateway's socket URL and the
// session token of user 1 (Alice), a member of ch_general; ch_staff is
// user 2's.
func exampleServers() (ticketURL, wsURL, token string) {
	examples.once.Do(func() {
		examples.tb = &exampleTB{}
		examples.c = clustertest.Start(examples.tb, clustertest.Options{})
		examples.token = examples.c.NewUser(1, "Alice").Token
		examples.c.Channel("ch_general", 1)
		examples.c.Channel("ch_staff", 2)
	})
	return examples.c.TicketURLs()[0], examples.c.WSURLs()[0], examples.token
}

// examplePublish publishes a message as the chat backend would.
func examplePublish(ch, text string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := protocol.MessageCreate{ID: "msg_1", ChannelID: ch, Author: protocol.Author{ID: 999, DisplayName: "Backend"}, Content: text, CreatedAt: 1764417600}
	if err := examples.c.Publisher.MessageCreated(ctx, m); err != nil {
		log.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if examples.tb != nil {
		examples.tb.stop()
	}
	os.Exit(code)
}

// exampleTB is the testing.TB of the examples' cluster, which outlives
// any one example: it runs its cleanups when TestMain stops it. A fatal
// error panics (the example fails). Methods clustertest does not use are
// the nil embedded TB's: they panic too.
type exampleTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

func (e *exampleTB) Helper()                   {}
func (e *exampleTB) Logf(string, ...any)       {}
func (e *exampleTB) Failed() bool              { return false }
func (e *exampleTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (e *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleTB) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *exampleTB) TempDir() string {
	dir, err := os.MkdirTemp("", "ocvr-client-examples-")
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirs = append(e.dirs, dir)
	return dir
}

func (e *exampleTB) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		_ = os.RemoveAll(d)
	}
}
