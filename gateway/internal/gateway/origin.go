package gateway

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// originMatcher checks a browser's Origin header against the allowlist, so a
// page on a foreign origin cannot open a socket with a user's ticket
// (cross-site WebSocket hijacking).
type originMatcher struct {
	patterns []string
}

func newOriginMatcher(patterns []string) (*originMatcher, error) {
	m := &originMatcher{}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("allowed origin %q: %w", p, err)
		}
		m.patterns = append(m.patterns, p)
	}
	return m, nil
}

// allowed reports whether origin (the raw header, "" when absent) may
// connect. Non-browser clients send no Origin and are allowed: the ticket
// is their credential.
func (m *originMatcher) allowed(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" || u.User != nil {
		return false
	}
	o := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, p := range m.patterns {
		if p == "*" {
			return true
		}
		if ok, _ := path.Match(p, o); ok {
			return true
		}
	}
	return false
}
