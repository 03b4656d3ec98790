// Package deflate is the gateway's permessage-deflate (RFC 7692), built so
// that a message costs one compression per pod, not one per socket.
//
// The websocket library under the gateway compresses per connection and
// cannot send bytes compressed elsewhere, so it is left with compression
// off and this package does the extension below it:
//
//   - Negotiate answers the client's offer in the handshake, always with
//     no context takeover both ways: no compressor, no window and no
//     inflater is kept per connection between messages.
//   - Encoder compresses an event's frame once (Shared); every socket that
//     negotiated the extension gets those same bytes in a frame with RSV1
//     set, the others the uncompressed frame. Frames below MinSize, and
//     those compression does not shrink, go uncompressed (RSV1 is per
//     message).
//   - Reader sits between the socket and the websocket library and turns
//     each compressed client message into a plain one, inflating it no
//     further than the read limit: a message that inflates past it reaches
//     the library as one byte too many, which refuses it with 1009.
package deflate

import (
	"net/http"
	"strings"
)

// Response is the extension the gateway answers with: no context takeover
// both ways (RFC 7692 §7.1.1). A server may name client_no_context_takeover
// even when the offer did not.
const Response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// Negotiate reports whether the request offers permessage-deflate in a form
// the gateway accepts: the first such offer wins (§5.1). An offer is
// declined when it asks for a server window below 32 KiB (the encoder
// cannot bound its window) or carries a parameter this package does not
// know.
func Negotiate(h http.Header) bool {
	for _, v := range h["Sec-Websocket-Extensions"] { // canonical: no allocation per upgrade
		for v != "" {
			var offer string
			offer, v, _ = strings.Cut(v, ",")
			if acceptable(offer) {
				return true
			}
		}
	}
	return false
}

// The parameters an offer may carry, as bits: each at most once (§7).
const (
	pServerNoTakeover = 1 << iota
	pClientNoTakeover
	pClientWindow
	pServerWindow
)

// acceptable reads one extension offer: "permessage-deflate; p1; p2=v".
// It allocates nothing: it runs on every upgrade.
func acceptable(offer string) bool {
	name, params, _ := strings.Cut(offer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return false
	}
	seen := 0
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		key, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		key = strings.TrimSpace(key)
		value = strings.Trim(strings.TrimSpace(value), `"`)
		var bit int
		switch {
		case strings.EqualFold(key, "server_no_context_takeover"):
			bit = pServerNoTakeover
		case strings.EqualFold(key, "client_no_context_takeover"):
			bit = pClientNoTakeover
		case strings.EqualFold(key, "client_max_window_bits"):
			// The client may use a smaller window: any window inflates.
			bit = pClientWindow
			if hasValue && !windowBits(value) {
				return false
			}
		case strings.EqualFold(key, "server_max_window_bits"):
			bit = pServerWindow
			if !hasValue || value != "15" {
				return false
			}
		default:
			return false
		}
		if bit <= pClientNoTakeover && hasValue {
			return false
		}
		if seen&bit != 0 {
			return false // a parameter named twice declines the offer
		}
		seen |= bit
	}
	return true
}

func windowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
