package bus

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
)

func mustSubjects(t *testing.T, prefix string) Subjects {
	t.Helper()
	s, err := NewSubjects(prefix)
	if err != nil {
		t.Fatalf("NewSubjects(%q): %v", prefix, err)
	}
	return s
}

func TestNewSubjects(t *testing.T) {
	tests := []struct {
		prefix string
		want   string // "" = rejected
	}{
		{"", "ocvr"},
		{"ocvr", "ocvr"},
		{"staging", "staging"},
		{"eu-1.ocvr", "eu-1.ocvr"},
		{"a.b.c", "a.b.c"},
		{"a..b", ""},
		{".ocvr", ""},
		{"ocvr.", ""},
		{"ocvr.*", ""},
		{">", ""},
		{"oc vr", ""},
		{"ocvr.>", ""},
		{"ocvr\n", ""},
		{strings.Repeat("p", 65), ""},
	}
	for _, tt := range tests {
		s, err := NewSubjects(tt.prefix)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NewSubjects(%q) = %q, want an error", tt.prefix, s.Prefix())
			}
			continue
		}
		if err != nil || s.Prefix() != tt.want {
			t.Errorf("NewSubjects(%q) = %q, %v; want %q", tt.prefix, s.Prefix(), err, tt.want)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := mustSubjects(t, "")
	chTests := []struct {
		id   string
		want string // "" = rejected
	}{
		{"ch_general", "ocvr.channel.ch_general"},
		{"A-z_09", "ocvr.channel.A-z_09"},
		{strings.Repeat("c", 64), "ocvr.channel." + strings.Repeat("c", 64)},
		{"", ""},
		{"ch.>", ""},
		{"*", ""},
		{">", ""},
		{"a b", ""},
		{"a.b", ""},
		{"ch\r\nPUB x 1", ""},
		{"caf\u00e9", ""},
		{strings.Repeat("c", 65), ""},
	}
	for _, tt := range chTests {
		got, err := s.Channel(tt.id)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("Channel(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
		if tt.want == "" {
			continue
		}
		if id, ok := s.ParseChannel(got); !ok || id != tt.id {
			t.Errorf("ParseChannel(%q) = %q, %v; want %q", got, id, ok, tt.id)
		}
	}
	userTests := []struct {
		id   int64
		want string
	}{
		{1, "ocvr.user.1"},
		{9223372036854775807, "ocvr.user.9223372036854775807"},
		{0, ""},
		{-1, ""},
	}
	for _, tt := range userTests {
		got, err := s.User(tt.id)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("User(%d) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
		if tt.want == "" {
			continue
		}
		if id, ok := s.ParseUser(got); !ok || id != tt.id {
			t.Errorf("ParseUser(%q) = %d, %v; want %d", got, id, ok, tt.id)
		}
	}
	if got := s.Broadcast(); got != "ocvr.broadcast" {
		t.Errorf("Broadcast() = %q", got)
	}
	if got := mustSubjects(t, "eu.staging").Broadcast(); got != "eu.staging.broadcast" {
		t.Errorf("Broadcast() with a prefix = %q", got)
	}
}

func TestParseSubjects(t *testing.T) {
	s := mustSubjects(t, "ocvr")
	for _, subj := range []string{
		"ocvr.channel.", "ocvr.channel.a.b", "ocvr.channel.*", "ocvr.channel.>", "other.channel.a",
		"ocvr.user.1", "ocvr.channelx.a", "ocvr.broadcast",
	} {
		if id, ok := s.ParseChannel(subj); ok {
			t.Errorf("ParseChannel(%q) = %q, want not a channel subject", subj, id)
		}
	}
	for _, subj := range []string{
		"ocvr.user.", "ocvr.user.0", "ocvr.user.01", "ocvr.user.-1", "ocvr.user.1.2", "ocvr.user.*",
		"ocvr.user.9223372036854775808", "staging.user.1", "ocvr.channel.1",
	} {
		if id, ok := s.ParseUser(subj); ok {
			t.Errorf("ParseUser(%q) = %d, want not a user subject", subj, id)
		}
	}
}

// TestSubjectsNeverWildcard throws random strings at Channel: whatever it
// accepts must give exactly prefix + "channel" + one literal token.
func TestSubjectsNeverWildcard(t *testing.T) {
	s := mustSubjects(t, "ocvr")
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aZ09_-.*> \t\r\n\x00$/\\\xff\xc3\xa9")
	accepted := 0
	for i := 0; i < 20000; i++ {
		b := make([]byte, r.IntN(70))
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		subj, err := s.Channel(string(b))
		if err != nil {
			if subj != "" {
				t.Fatalf("Channel(%q) returned %q with error %v", b, subj, err)
			}
			continue
		}
		accepted++
		toks := strings.Split(subj, ".")
		if len(toks) != 3 || toks[0] != "ocvr" || toks[1] != "channel" || toks[2] != string(b) {
			t.Fatalf("Channel(%q) = %q: not three literal tokens", b, subj)
		}
		if strings.ContainsAny(subj, "*> \t\r\n\x00") {
			t.Fatalf("Channel(%q) = %q contains a wildcard or whitespace", b, subj)
		}
	}
	if accepted == 0 {
		t.Fatal("no random id was accepted: the generator is broken")
	}
}

func TestConnectUnreachableFailsFast(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	nc, err := Connect(Config{URLs: []string{url}})
	if err == nil {
		nc.Close()
		t.Fatal("Connect to a closed port succeeded")
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name %s", err, url)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Connect took %v to fail", d)
	}
}

func TestConnectRetryOnFailedConnect(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var reconnects atomic.Int32
	nc, err := Connect(Config{
		URLs:                 []string{"nats://127.0.0.1:" + strconv.Itoa(port)},
		RetryOnFailedConnect: true,
		OnReconnect:          func() { reconnects.Add(1) },
	})
	if err != nil {
		t.Fatalf("Connect with RetryOnFailedConnect: %v", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected with no server running")
	}
	srv, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	waitFor(t, 10*time.Second, "first connection", nc.IsConnected)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConnectNeverShowsCredentials: a token or password in a server URL
// reaches neither the connect and reconnect logs nor a connect error
// (nats.go's own ConnectedUrlRedacted masks a password but not a token).
func TestConnectNeverShowsCredentials(t *testing.T) {
	const token, password = "s3cr3tt0ken", "s3cr3tpassw0rd"
	srv := natsembed.Test(t)
	hostPort := strings.TrimPrefix(srv.ClientURL(), "nats://")
	var logs lockedBuffer
	var reconnects atomic.Int32
	nc, err := Connect(Config{
		URLs:        []string{"nats://" + token + "@" + hostPort},
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		OnReconnect: func() { reconnects.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reconnect", func() bool { return reconnects.Load() > 0 })
	got := logs.String()
	if strings.Contains(got, token) || !strings.Contains(got, "nats://REDACTED@"+hostPort) || !strings.Contains(got, "nats reconnected") {
		t.Errorf("logs:\n%s", got)
	}

	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead := "127.0.0.1:" + strconv.Itoa(port)
	_, err = Connect(Config{URLs: []string{"nats://ops:" + password + "@" + dead, token + "@" + dead}})
	if err == nil || strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) ||
		!strings.Contains(err.Error(), "nats://ops:REDACTED@"+dead+",REDACTED@"+dead) {
		t.Errorf("connect error %v", err)
	}
}

// TestConnectReconnects restarts the server under a connection: the hooks
// fire, and a subscription made before the restart works after it.
func TestConnectReconnects(t *testing.T) {
	srv := natsembed.Test(t)
	var disconnects, reconnects atomic.Int32
	nc, err := Connect(Config{
		URLs:         []string{srv.ClientURL()},
		Name:         "bus-test",
		OnDisconnect: func() { disconnects.Add(1) },
		OnReconnect:  func() { reconnects.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("ocvr.broadcast")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reconnect", func() bool { return reconnects.Load() > 0 })
	if disconnects.Load() == 0 {
		t.Error("OnDisconnect did not fire")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish("ocvr.broadcast", []byte("after")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("subscription lost across the restart: %v", err)
	}
	if string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
}

func TestConnectTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing CA file", Config{TLSCAFile: filepath.Join(dir, "nope.pem")}, "read NATS CA file"},
		{"CA file without PEM", Config{TLSCAFile: notPEM}, "holds no PEM certificate"},
		{"missing client cert", Config{TLSCertFile: filepath.Join(dir, "c.pem"), TLSKeyFile: filepath.Join(dir, "k.pem")}, "load NATS client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := Connect(tt.cfg)
			if err == nil {
				nc.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
