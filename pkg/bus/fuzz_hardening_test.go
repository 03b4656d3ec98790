package bus_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// FuzzSubjects: whatever prefix, channel id and user id text it is given,
// Subjects either refuses them or builds exactly prefix.channel.<id> /
// prefix.user.<id>: literal tokens of the id grammar (no wildcard, no extra
// token, no whitespace), which parse back to the same id; and a subject
// parses only when it is exactly such a subject.
func FuzzSubjects(f *testing.F) {
	for _, s := range [][3]string{
		{"", "ch_general", "42"}, {"ocvr", "ch.>", "01"}, {"ocvr.staging", "*", "-1"}, {"a.b.c", ">", "+7"},
		{"ocvr.", "ch general", "9223372036854775808"}, {"ocvr.*", "ch_\u00e9", "1 "}, {" ", "", ""},
		{"ocvr", strings.Repeat("x", 65), "18446744073709551617"}, {"ocvr>", "ch\x00", "0"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, prefix, channel, user string) {
		s, err := bus.NewSubjects(prefix)
		if prefix == "" {
			prefix = bus.DefaultPrefix
		}
		toks := strings.Split(prefix, ".")
		validPrefix := true
		for _, tok := range toks {
			validPrefix = validPrefix && tokenRe.MatchString(tok)
		}
		if (err == nil) != validPrefix {
			t.Fatalf("NewSubjects(%q): %v, grammar says valid=%v", prefix, err, validPrefix)
		}
		if err != nil {
			return
		}
		if s.Prefix() != prefix || s.Broadcast() != prefix+".broadcast" {
			t.Fatalf("prefix %q broadcast %q", s.Prefix(), s.Broadcast())
		}

		subj, err := s.Channel(channel)
		if (err == nil) != protocol.ValidChannelID(channel) || (err == nil) != tokenRe.MatchString(channel) {
			t.Fatalf("Channel(%q) = %q, %v", channel, subj, err)
		}
		if err == nil {
			literal(t, subj, len(toks)+2)
			if subj != prefix+".channel."+channel {
				t.Fatalf("Channel(%q) = %q", channel, subj)
			}
		} else if subj != "" {
			t.Fatalf("Channel(%q) returned %q with error %v", channel, subj, err)
		}
		got, ok := s.ParseChannel(prefix + ".channel." + channel)
		if ok != (err == nil) || (ok && got != channel) {
			t.Fatalf("ParseChannel(%q) = %q %v", prefix+".channel."+channel, got, ok)
		}
		if bus.ValidSessionID(channel) != protocol.ValidChannelID(channel) {
			t.Fatalf("ValidSessionID(%q) disagrees with the id grammar", channel)
		}

		id, perr := protocol.ParseUserID(user)
		got64, ok := s.ParseUser(prefix + ".user." + user)
		if ok != (perr == nil) || (ok && got64 != id) {
			t.Fatalf("ParseUser(%q) = %d %v, ParseUserID %d %v", prefix+".user."+user, got64, ok, id, perr)
		}
		if perr == nil {
			usubj, err := s.User(id)
			if err != nil || usubj != prefix+".user."+strconv.FormatInt(id, 10) || usubj != prefix+".user."+user {
				t.Fatalf("User(%d) = %q, %v", id, usubj, err)
			}
			literal(t, usubj, len(toks)+2)
		}
		// Any int64: User refuses exactly the non-positive ones.
		var n int64
		for _, b := range []byte(user) {
			n = n*31 + int64(b) - 1<<20
		}
		if usubj, err := s.User(n); (err == nil) != (n > 0) || (err == nil && usubj != prefix+".user."+strconv.FormatInt(n, 10)) {
			t.Fatalf("User(%d) = %q, %v", n, usubj, err)
		}
	})
}

// literal fails unless subj has exactly n tokens, none empty, none a
// wildcard, and no whitespace or control byte.
func literal(t *testing.T, subj string, n int) {
	t.Helper()
	toks := strings.Split(subj, ".")
	if len(toks) != n {
		t.Fatalf("subject %q has %d tokens, want %d", subj, len(toks), n)
	}
	for _, tok := range toks {
		if !tokenRe.MatchString(tok) || tok == "*" || tok == ">" {
			t.Fatalf("subject %q has token %q", subj, tok)
		}
	}
}
