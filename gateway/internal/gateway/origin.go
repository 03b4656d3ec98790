package gateway

import "github.com/ocvr/realtime/pkg/origin"

// originMatcher checks a browser's Origin header against the allowlist, so a
// page on a foreign origin cannot open a socket with a user's ticket
// (cross-site WebSocket hijacking). The grammar is pkg/origin's, shared
// with ticketsvc's CORS allowlist.
type originMatcher struct {
	list origin.List
}

func newOriginMatcher(patterns []string) (*originMatcher, error) {
	l, err := origin.ParseList(patterns)
	if err != nil {
		return nil, err
	}
	return &originMatcher{list: l}, nil
}

// allowed reports whether origin (the raw header, "" when absent) may
// connect. Non-browser clients send no Origin and are allowed: the ticket
// is their credential.
func (m *originMatcher) allowed(origin string) bool {
	return origin == "" || m.list.Allows(origin)
}
