// Package origin matches browser Origin headers against the configured CORS
// allow-list. It parses both sides instead of matching strings or regular
// expressions, so a pattern like http://localhost:* can only ever match a
// port, never a hostile suffix such as localhost:1.evil.example.
package origin

import (
	"fmt"
	"strings"
)

// Pattern is one parsed allow-list entry.
//
// Accepted forms:
//
//   - any origin (no credentials are involved, but prefer a list)
//     https://app.example.com    exactly that origin (default port)
//     http://localhost:5173      exactly that port
//     http://localhost:*         any port, or none
//     https://*.example.com      any subdomain (not the apex), default port
type Pattern struct {
	any       bool
	scheme    string
	host      string // exact host, or the suffix ".example.com" when subdomains is set
	subdomain bool
	port      string // "" default port, "*" any port, else digits
}

// List is a parsed allow-list.
type List []Pattern

// ParseList parses allow-list entries; blank entries are skipped.
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

// Parse parses one allow-list entry.
func Parse(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{any: true}, nil
	}
	scheme, host, port, err := split(strings.ToLower(s))
	if err != nil {
		return Pattern{}, fmt.Errorf("allowed origin %q: %w", s, err)
	}
	p := Pattern{scheme: scheme, host: host, port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		p.subdomain, p.host = true, "."+rest
		host = rest
	}
	if host == "" || strings.Contains(host, "*") {
		return Pattern{}, fmt.Errorf("allowed origin %q: a host wildcard is only allowed as a leading \"*.\"", s)
	}
	if port != "*" && port != "" && !digits(port) {
		return Pattern{}, fmt.Errorf("allowed origin %q: port must be digits or *", s)
	}
	return p, nil
}

// Allows reports whether origin (an Origin header value) matches l.
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

// Match reports whether origin matches p.
func (p Pattern) Match(origin string) bool {
	if p.any {
		return true
	}
	scheme, host, port, err := split(strings.ToLower(origin))
	if err != nil || scheme != p.scheme || host == "" || strings.Contains(host, "*") || (port != "" && !digits(port)) {
		return false
	}
	if p.subdomain {
		if !strings.HasSuffix(host, p.host) || len(host) == len(p.host) || host[0] == '.' {
			return false
		}
	} else if host != p.host {
		return false
	}
	return p.port == "*" || p.port == port
}

// split takes scheme://host[:port] apart, dropping a default port so
// "https://a.example:443" and "https://a.example" compare equal (browsers
// send the latter).
func split(s string) (scheme, host, port string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || !validScheme(scheme) {
		return "", "", "", fmt.Errorf("want scheme://host[:port]")
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \\") {
		return "", "", "", fmt.Errorf("want scheme://host[:port] with no path, query or user info")
	}
	host = rest
	if strings.HasPrefix(rest, "[") { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", fmt.Errorf("unterminated IPv6 literal")
		}
		host, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", "", "", fmt.Errorf("junk after IPv6 literal")
			}
			port = p
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return "", "", "", fmt.Errorf("empty port")
		}
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	return scheme, host, port, nil
}

func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func digits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
