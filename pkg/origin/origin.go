// Package origin matches a browser's Origin header against an allowlist. It
// is the one grammar of both binaries' --allowed-origins: the gateway's
// (a page on a foreign origin must not open a socket with a user's ticket:
// cross-site WebSocket hijacking) and ticketsvc's (CORS).
//
// Both sides are parsed, never matched as strings, globs or regular
// expressions, so a pattern can only ever match what its form says: a
// port wildcard matches a port, never a hostile suffix such as
// localhost:1.evil.example, and a subdomain wildcard matches whole labels,
// never evil.com/.example.com.
//
// # Allowlist entries
//
// Entries are case-insensitive; surrounding spaces are trimmed and blank
// entries skipped (an allowlist with no entry allows no origin):
//
//	https://app.example.com    exactly that origin (the scheme's default port)
//	http://localhost:5173      exactly that port (":443" on https is the same as none)
//	http://localhost:*         that host on any port, or none
//	https://*.example.com      any subdomain, one label or more (not example.com itself)
//	https://*.example.com:*    any subdomain, any port
//	http://[::1]:8080          an IPv6 literal
//	*                          any well-formed origin (never "null")
//
// The scheme may be any URL scheme (http, https, or e.g. chrome-extension);
// an origin matches only a pattern of its own scheme. A "*" stands only
// for a whole port, for the leading labels of a host as "*.", or alone for
// the whole entry; paths, queries, fragments and user info are refused.
//
// # Origins
//
// An origin matches only in the form a browser serializes it (RFC 6454,
// the WHATWG URL standard): scheme://host[:port], where the host is ASCII
// labels of letters, digits, "-" and "_" joined by single dots (browsers
// send international names as punycode) or a bracketed IPv6 address, and
// the port is 1–65535 without leading zeros and never the scheme's default
// (browsers omit it). Letter case is ignored. Everything else matches no
// pattern, not even "*": "null" (sandboxed frames, file pages, some
// redirects), a trailing slash or any path, a query or fragment, user
// info, percent-encoding, non-ASCII hosts, a trailing dot, an empty label,
// an empty, zero or default port.
//
// An empty origin (no Origin header) matches nothing here: whether a
// request without one is allowed is the caller's policy. The gateway
// allows it (non-browser clients send none; the ticket is their
// credential); for CORS no header means no cross-origin caller.
package origin

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Pattern is one parsed allowlist entry.
type Pattern struct {
	any       bool
	scheme    string
	host      string // exact host; the suffix ".example.com" when subdomain
	subdomain bool
	port      string // "" the scheme's default port, "*" any port or none, else digits
}

// List is a parsed allowlist. The zero List allows no origin.
type List []Pattern

// ParseList parses allowlist entries; blank entries are skipped, so an
// empty or all-blank list allows no origin.
func ParseList(entries []string) (List, error) {
	var l List
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, err := Parse(e)
		if err != nil {
			return nil, err
		}
		l = append(l, p)
	}
	return l, nil
}

// Parse parses one allowlist entry (see the package documentation).
func Parse(entry string) (Pattern, error) {
	s := strings.ToLower(strings.TrimSpace(entry))
	if s == "*" {
		return Pattern{any: true}, nil
	}
	p, err := parse(s)
	if err != nil {
		return Pattern{}, fmt.Errorf("allowed origin %q: %w", entry, err)
	}
	return p, nil
}

func parse(s string) (Pattern, error) {
	scheme, host, port, err := split(s)
	if err != nil {
		return Pattern{}, err
	}
	p := Pattern{scheme: scheme, host: host}
	switch {
	case port == "*":
		p.port = "*"
	case port != "":
		if !validPort(port) {
			return Pattern{}, errors.New("the port must be 1-65535 (no leading zeros) or *")
		}
		if port != defaultPort(scheme) {
			p.port = port
		}
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if !validName(rest) {
			return Pattern{}, errors.New(`a wildcard host is "*." followed by a domain name`)
		}
		p.subdomain, p.host = true, "."+rest
		return p, nil
	}
	h, ok := canonicalHost(host)
	if !ok {
		return Pattern{}, errors.New(`the host must be a DNS name, an IPv4 address or a bracketed IPv6 address; a wildcard only as a leading "*."`)
	}
	p.host = h
	return p, nil
}

// Allows reports whether origin (an Origin header's value) matches an
// entry of l. An empty origin matches nothing.
func (l List) Allows(origin string) bool {
	if origin == "" {
		return false
	}
	for _, p := range l {
		if p.Match(origin) {
			return true
		}
	}
	return false
}

// Match reports whether origin (an Origin header's value) matches p.
func (p Pattern) Match(origin string) bool {
	scheme, host, port, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if p.any {
		return true
	}
	if scheme != p.scheme || (p.port != "*" && p.port != port) {
		return false
	}
	if p.subdomain {
		// host is a valid name, so it has no empty label: what precedes the
		// suffix is one label or more.
		return len(host) > len(p.host) && strings.HasSuffix(host, p.host)
	}
	return host == p.host
}

// parseOrigin takes a serialized origin apart: scheme, canonical host and
// port ("" for none). ok is false for anything a browser would not send.
func parseOrigin(origin string) (scheme, host, port string, ok bool) {
	scheme, host, port, err := split(strings.ToLower(origin))
	if err != nil {
		return "", "", "", false
	}
	if port != "" && (!validPort(port) || port == defaultPort(scheme)) {
		return "", "", "", false
	}
	host, ok = canonicalHost(host)
	return scheme, host, port, ok
}

// split takes scheme://host[:port] apart without judging host or port
// beyond their delimiters.
func split(s string) (scheme, host, port string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return "", "", "", errors.New("want scheme://host[:port]")
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@\\%") {
		return "", "", "", errors.New("want scheme://host[:port], with no path, query, fragment, user info or percent-encoding")
	}
	host = rest
	if strings.HasPrefix(rest, "[") { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", errors.New("unterminated IPv6 literal")
		}
		host, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", "", "", errors.New("junk after the IPv6 literal")
			}
			if p == "" {
				return "", "", "", errors.New("empty port")
			}
			port = p
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return "", "", "", errors.New("empty port")
		}
	}
	return scheme, host, port, nil
}

// canonicalHost returns h if it is a valid lower-case DNS name or IPv4
// address, or the canonical form of a bracketed IPv6 address (no zone).
func canonicalHost(h string) (string, bool) {
	if lit, ok := strings.CutPrefix(h, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return "", false
		}
		a, err := netip.ParseAddr(lit)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return "[" + a.String() + "]", true
	}
	return h, validName(h)
}

// validName reports whether h is dot-separated non-empty labels of
// [a-z0-9_-] (lower case: callers lower the input first), at most 253
// bytes: no trailing dot, no empty label, nothing outside ASCII.
func validName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), lower case.
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validPort: 1-65535 in decimal without leading zeros.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
