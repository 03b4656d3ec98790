// Package redact keeps secrets out of logs, metrics labels and error
// messages (DESIGN.md §6): the connect ticket (the ticket query parameter
// and any wst_… token), bearer session tokens (sess_…), and credentials in
// URLs. It is the one redactor for URLs; the Go client, the gateway and the
// services use it wherever a URL or an error that may quote one is written
// out.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// secretParam matches a query parameter whose value is a secret, where a
// query can start (after ?, & or ;), wherever it appears in a string: an
// error message quotes the URL it failed on ("Get \"http://…?ticket=…\"").
// The value runs to the next separator, quote, space or bracket.
var secretParam = regexp.MustCompile(`(?i)([?&;])(ticket|token|access_token|session|resume)=[^&;#\s"'<>\x60]*`)

// secretToken matches the platform's bearer secrets anywhere: connect
// tickets (wst_ + 32 bytes base64url) and session tokens (sess_ + 32
// bytes), resume tokens (rt1_…), even when they appear outside a URL (a response body quoted in
// an error). At least 16 characters, so words like "sess_id" stay.
var secretToken = regexp.MustCompile(`\b(wst|sess|rt1)_[A-Za-z0-9_.-]{16,}`)

// String returns s with every secret query parameter value and every
// ticket or session token replaced by Mask.
func String(s string) string {
	if !strings.Contains(s, "=") && !strings.Contains(s, "_") {
		return s // the common case: nothing that could match
	}
	s = secretParam.ReplaceAllString(s, "${1}${2}="+Mask)
	return secretToken.ReplaceAllString(s, "${1}_"+Mask)
}

// URL returns raw with its secrets replaced by Mask: the values of secret
// query parameters, any ticket or session token, and the URL's userinfo (a
// password; or the user name when there is no password, since nats://token@
// puts the secret there). A string that does not parse as a URL with an
// authority (a typo, or "user:pw@host:4222" without a scheme, which NATS
// accepts) is redacted as text, and everything before its last "@" is
// masked as userinfo.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil || u.Opaque != "" {
			raw = maskUserinfo(raw)
		}
		return String(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Mask)
	} else {
		u.User = url.User(Mask)
	}
	return String(u.String())
}

// URLs redacts each URL (as URL does) and joins them with commas: a server
// list, as logs and errors print it.
func URLs(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = URL(u)
	}
	return strings.Join(out, ",")
}

// maskUserinfo masks what may be userinfo in a URL that did not parse:
// everything after the scheme's "://" (or from the start) up to the last
// "@". It may mask more than the userinfo, never less.
func maskUserinfo(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	at := strings.LastIndexByte(raw[start:], '@')
	if at < 0 {
		return raw
	}
	return raw[:start] + Mask + raw[start+at:]
}

// Error returns err with every message in its chain redacted; err itself
// when no message in its chain holds a secret. The errors in the chain
// that hold none are kept as they are, so errors.Is and errors.As still
// find them (context.DeadlineExceeded, *net.OpError, *net.DNSError, …); a
// *url.Error is kept as a *url.Error with its URL redacted; other errors
// whose message holds a secret are replaced by one that carries the
// redacted message and the redacted causes.
func Error(err error) error {
	if err == nil || !hasSecret(err) {
		return err
	}
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: URL(ue.URL), Err: Error(ue.Err)}
	}
	r := &redacted{msg: String(err.Error())}
	for _, c := range causes(err) {
		r.causes = append(r.causes, Error(c))
	}
	return r
}

func hasSecret(err error) bool {
	msg := err.Error()
	if String(msg) != msg {
		return true
	}
	if ue, ok := err.(*url.Error); ok && URL(ue.URL) != ue.URL {
		return true
	}
	for _, c := range causes(err) {
		if hasSecret(c) {
			return true
		}
	}
	return false
}

func causes(err error) []error {
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		if c := e.Unwrap(); c != nil {
			return []error{c}
		}
	case interface{ Unwrap() []error }:
		return e.Unwrap()
	}
	return nil
}

// redacted stands in for an error whose message held a secret.
type redacted struct {
	msg    string
	causes []error
}

func (e *redacted) Error() string   { return e.msg }
func (e *redacted) Unwrap() []error { return e.causes }
