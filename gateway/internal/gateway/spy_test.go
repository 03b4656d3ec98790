package gateway_test

import (
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The subject grammar of DESIGN.md §2/§3 under the default prefix: only
// validated ids ever become a token, so no client input can form a
// wildcard, an extra token or another user's subject.
var (
	// The event stream's input subjects (<prefix>.in.…) follow the same
	// grammar (DESIGN.md §2a).
	ocvrSubject  = regexp.MustCompile(`^ocvr\.((in\.)?(channel\.[A-Za-z0-9_-]{1,64}|user\.[1-9][0-9]{0,18})|broadcast|fleet\.load)$`) // fleet.load: the pods' load reports (fleet.go)
	channelKey   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	memberKey    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}\.[1-9][0-9]{0,18}$`)
	inboxSubject = regexp.MustCompile(`^_INBOX\.[A-Za-z0-9]+(\.\*|\.[A-Za-z0-9]+)?$`)
)

// subjectSpy records every distinct subject published on the test's NATS
// server (a ">" subscription on its own connection), so a test can assert
// that nothing the gateway published or looked up in KV was formed from an
// invalid id.
type subjectSpy struct {
	mu      sync.Mutex
	seen    map[string]bool
	ignored map[string]bool
}

// spy starts recording.
func (e *env) spy(t testing.TB) *subjectSpy {
	t.Helper()
	nc, err := nats.Connect(e.ns.ClientURL(), nats.Name("subject-spy"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s := &subjectSpy{seen: map[string]bool{}, ignored: map[string]bool{}}
	_, err = nc.Subscribe(">", func(m *nats.Msg) {
		s.mu.Lock()
		if len(s.seen) < 100000 {
			s.seen[m.Subject] = true
		}
		s.mu.Unlock()
	})
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ignore exempts a subject the test itself published (hostile subjects a
// backend might send).
func (s *subjectSpy) ignore(subjects ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range subjects {
		s.ignored[x] = true
	}
}

// check asserts the grammar on every subject seen so far: ocvr.* subjects,
// and the keys of the directory buckets wherever a KV subject carries them.
func (s *subjectSpy) check(t testing.TB) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for subj := range s.seen {
		if s.ignored[subj] {
			continue
		}
		if bad := badSubject(subj); bad != "" {
			t.Errorf("subject %q on the bus: %s", subj, bad)
		}
	}
	return len(s.seen)
}

// badSubject says what is wrong with a subject, "" when nothing.
func badSubject(subj string) string {
	if strings.HasPrefix(subj, "ocvr.") && !ocvrSubject.MatchString(subj) {
		return "outside the ocvr subject grammar"
	}
	for bucket, re := range map[string]*regexp.Regexp{"ocvr_channels": channelKey, "ocvr_members": memberKey} {
		if _, key, ok := strings.Cut(subj, "$KV."+bucket+"."); ok && !re.MatchString(key) {
			return "invalid " + bucket + " key " + key
		}
	}
	return ""
}

// gatewaySubs lists the subjects the gateway connection named name has
// subscribed to on the server.
func (e *env) gatewaySubs(t testing.TB, name string) []string {
	t.Helper()
	ns := e.ns.NATS()
	if ns == nil {
		t.Fatal("NATS server stopped")
	}
	cz, err := ns.Connz(&server.ConnzOptions{Subscriptions: true, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	found := false
	for _, c := range cz.Conns {
		if c.Name == name {
			found = true
			out = append(out, c.Subs...)
		}
	}
	if !found {
		t.Fatalf("no NATS connection named %q", name)
	}
	sort.Strings(out)
	return out
}

// checkGatewaySubs asserts that every subscription of the test gateway is
// an ocvr subject of the grammar or one of the client library's inboxes
// (request replies, KV watchers): no client input became a subscription
// other than a validated channel subject.
func (e *env) checkGatewaySubs(t testing.TB) []string {
	t.Helper()
	subs := e.gatewaySubs(t, "gateway-test")
	for _, s := range subs {
		if !ocvrSubject.MatchString(s) && !inboxSubject.MatchString(s) {
			t.Errorf("gateway subscription %q is outside the allowed grammar", s)
		}
	}
	return subs
}
