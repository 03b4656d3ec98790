package main

import (
	"flag"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Flag values that validate ids as they are parsed, so a bad id is a usage
// error (exit 2) that never reaches NATS.

// userIDFlag is a user id: a positive 64-bit integer.
type userIDFlag struct{ id int64 }

func (f *userIDFlag) String() string {
	if f == nil || f.id == 0 {
		return ""
	}
	return strconv.FormatInt(f.id, 10)
}

func (f *userIDFlag) Set(s string) error {
	id, err := protocol.ParseUserID(s)
	if err != nil {
		return fmt.Errorf("want a positive integer user id")
	}
	f.id = id
	return nil
}

// channelIDFlag is a channel id: ^[A-Za-z0-9_-]{1,64}$.
type channelIDFlag struct{ id string }

func (f *channelIDFlag) String() string {
	if f == nil {
		return ""
	}
	return f.id
}

func (f *channelIDFlag) Set(s string) error {
	if !protocol.ValidChannelID(s) {
		return fmt.Errorf("want a channel id matching %s", protocol.IDPattern)
	}
	f.id = s
	return nil
}

// sessionIDFlag is a public session id (ses_…), not a bearer token.
type sessionIDFlag struct{ id string }

func (f *sessionIDFlag) String() string {
	if f == nil {
		return ""
	}
	return f.id
}

func (f *sessionIDFlag) Set(s string) error {
	if !protocol.ValidSessionID(s) {
		return fmt.Errorf("want a session id (ses_…, %s), not a token", protocol.IDPattern)
	}
	f.id = s
	return nil
}

// userIDVar, channelIDVar and sessionIDVar declare id flags on fs.
func userIDVar(fs *flag.FlagSet, name, usage string) *userIDFlag {
	f := &userIDFlag{}
	fs.Var(f, name, usage)
	return f
}

func channelIDVar(fs *flag.FlagSet, name, usage string) *channelIDFlag {
	f := &channelIDFlag{}
	fs.Var(f, name, usage)
	return f
}

func sessionIDVar(fs *flag.FlagSet, name, usage string) *sessionIDFlag {
	f := &sessionIDFlag{}
	fs.Var(f, name, usage)
	return f
}

// given reports which of names were set on the command line.
func given(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// require returns a usage error naming the first of names not given.
func require(fs *flag.FlagSet, names ...string) error {
	set := given(fs)
	for _, n := range names {
		if !set[n] {
			return usageErrorf("missing required flag --%s", n)
		}
	}
	return nil
}

// checkText returns a usage error unless s is 1..max bytes of UTF-8.
func checkText(flagName, s string, max int) error {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return usageErrorf("--%s must be 1–%d bytes of UTF-8", flagName, max)
	}
	return nil
}
