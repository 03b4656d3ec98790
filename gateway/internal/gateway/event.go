package gateway

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/deflate"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// filter is what a message's headers say about who gets it.
type filter struct {
	excludeUser   int64
	sessions      string // comma-separated session ids, "" for all
	exceptSession string
}

func (f *filter) pass(c *conn) bool {
	if f.excludeUser != 0 && c.userID == f.excludeUser {
		return false
	}
	if f.exceptSession != "" && c.sessionID == f.exceptSession {
		return false
	}
	if f.sessions != "" && !containsToken(f.sessions, c.sessionID) {
		return false
	}
	return true
}

func containsToken(list, tok string) bool {
	for list != "" {
		var item string
		item, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(item) == tok {
			return true
		}
	}
	return false
}

// event is a validated bus event on its way to connections.
type event struct {
	typ         string
	frame       []byte // what the clients get
	f           filter
	publishedAt int64
	// z is the frame's compressed form, made once on the first delivery to
	// a socket that negotiated compression, shared by all (nil: the frame
	// goes uncompressed to every socket).
	z *deflate.Shared
}

// compressedFor is the compressed payload c gets for ev, nil for the
// uncompressed frame.
func (ev *event) compressedFor(c *conn) []byte {
	if !c.deflate {
		return nil
	}
	return ev.z.For(ev.frame)
}

// event validates a bus payload once and reads its headers; a refusal is
// reported (never silent).
func (h *hub) event(t *topic, subject string, data []byte, hdr nats.Header) (event, bool) {
	return h.check(t, subject, data, hdr, h.rejections.report)
}

// replayed is event for a payload read back from the stream for one
// connection: the pod refused it once already (live or in a gap fill), and
// it is not reported again per connection.
func (h *hub) replayed(t *topic, subject string, data []byte, hdr nats.Header) (event, bool) {
	return h.check(t, subject, data, hdr, func(string, string, []byte) {})
}

func (h *hub) check(t *topic, subject string, data []byte, hdr nats.Header, report func(subject, reason string, data []byte)) (event, bool) {
	if len(data) == 0 && hdr.Get(stream.HeaderMarkerReason) != "" {
		return event{}, false // a stream's delete marker, republished with an empty body: no event
	}
	typ, err := protocol.ValidateEvent(t.scope, t.channelID, data)
	if err != nil {
		report(subject, err.Error(), data)
		return event{}, false
	}
	ev := event{typ: typ, frame: data, z: h.enc.Share(len(data))}
	if hdr != nil {
		if v := hdr.Get(bus.HeaderExcludeUser); v != "" {
			id, err := protocol.ParseUserID(v)
			if err != nil {
				report(subject, "invalid header "+bus.HeaderExcludeUser+": "+err.Error(), data)
				return event{}, false
			}
			ev.f.excludeUser = id
		}
		ev.f.sessions = hdr.Get(bus.HeaderSession)
		ev.f.exceptSession = hdr.Get(bus.HeaderExceptSession)
		if v := hdr.Get(bus.HeaderPublishedAt); v != "" {
			ev.publishedAt, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return ev, true
}

// deliver queues ev for c if its headers select c; it reports whether
// they did. A full queue makes c a slow consumer (4009).
func (ev *event) deliver(c *conn) bool {
	if !ev.f.pass(c) {
		return false
	}
	if ev.typ == protocol.TypeSessionRevoked {
		c.enqueueThenClose(ev.frame, ev.publishedAt, protocol.CloseSessionRevoked, "session revoked")
	} else {
		c.enqueueAt(outFrame{ev.frame, ev.compressedFor(c), ev.publishedAt})
	}
	return true
}
