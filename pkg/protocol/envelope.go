package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// envelope is what ValidateEvent reads of a bus payload: the routing fields
// and nothing else. Every field is the raw JSON value as it stands in the
// payload (a string keeps its quotes and escapes); nil when absent.
type envelope struct {
	object bool   // the payload is a JSON object
	typ    []byte // "type"
	data   []byte // "data" (only its first byte is kept: the rest is not read)

	// Keys of the data object.
	channelID []byte // "channel_id"
	userID    []byte // "user_id"
	presence  []byte // "presence"
}

// keyLevel says which object of the payload a key belongs to, and so which
// keys are routing fields there.
type keyLevel uint8

const (
	levelOther keyLevel = iota // an object the gateway does not read
	levelEnvelope
	levelData
)

// maxDepth is encoding/json's nesting limit, so that the scanner accepts
// exactly what json.Valid does.
const maxDepth = 10000

// Errors of scanEnvelope about the payload's encoding rather than its keys.
var (
	errNotJSON = errors.New("not JSON")
	errNotUTF8 = errors.New("not valid UTF-8")
	errTooDeep = fmt.Errorf("%w: nested more than %d deep", errNotJSON, maxDepth)
)

// scanEnvelope checks in one pass that b is one valid JSON value in valid
// UTF-8 (as json.Valid and utf8.Valid together would) and, when it is an
// object, fills env with its routing fields. A routing key that repeats in
// its object, or that differs from one only by case ("Channel_ID",
// "pre\u017fence"), is refused: clients read exact keys with the last one
// winning, and the gateway must read what they read.
func scanEnvelope(b []byte) (envelope, error) {
	s := scanner{b: b}
	s.ws()
	s.env.object = s.i < len(b) && b[s.i] == '{'
	if err := s.value(levelEnvelope, nil); err != nil {
		return envelope{}, err
	}
	s.ws()
	if s.i != len(s.b) {
		return envelope{}, s.syntax()
	}
	return s.env, nil
}

type scanner struct {
	b     []byte
	i     int
	depth int
	env   envelope
}

func (s *scanner) syntax() error {
	if s.i >= len(s.b) {
		return fmt.Errorf("%w: unexpected end at offset %d", errNotJSON, len(s.b))
	}
	return fmt.Errorf("%w: syntax error at offset %d", errNotJSON, s.i)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value at s.i. An object is scanned as an object of level;
// *dst, when dst is set, receives the value's raw bytes.
func (s *scanner) value(level keyLevel, dst *[]byte) error {
	if s.i >= len(s.b) {
		return s.syntax()
	}
	start := s.i
	var err error
	switch c := s.b[s.i]; {
	case c == '{':
		err = s.object(level)
	case c == '[':
		err = s.array()
	case c == '"':
		_, err = s.str()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		err = s.number()
	default:
		return s.syntax()
	}
	if err == nil && dst != nil {
		*dst = s.b[start:s.i]
	}
	return err
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		for k := 0; k < len(lit) && s.i < len(s.b) && s.b[s.i] == lit[k]; k++ {
			s.i++
		}
		return s.syntax()
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return s.syntax()
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.syntax()
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.syntax()
		}
	}
	return nil
}

// str scans a string at its opening quote; it reports whether the string
// holds an escape.
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return escaped, s.syntax()
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return escaped, s.syntax()
					}
					s.i++
				}
			default:
				return escaped, s.syntax()
			}
		case c < 0x20:
			return escaped, s.syntax()
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 {
				return escaped, errNotUTF8
			}
			s.i += size
		}
	}
	return escaped, s.syntax()
}

// open enters an array or object at its opening byte; empty reports one
// that closes at once (with close).
func (s *scanner) open(close byte) (empty bool, err error) {
	if s.depth++; s.depth > maxDepth {
		return false, errTooDeep
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		s.depth--
		return true, nil
	}
	return false, nil
}

// next reads what follows an element or member: a ',' (more to come) or
// close (done: the container ends).
func (s *scanner) next(close byte) (done bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.syntax()
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return false, nil
	case close:
		s.i++
		s.depth--
		return true, nil
	}
	return false, s.syntax()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) array() error {
	if empty, err := s.open(']'); empty || err != nil {
		return err
	}
	for {
		s.ws()
		if err := s.value(levelOther, nil); err != nil {
			return err
		}
		if done, err := s.next(']'); done || err != nil {
			return err
		}
	}
}

var (
	// The top-level "channel_id" and "seq" are the position the gateway
	// adds to an event of the stream (DESIGN.md §2a): a backend's payload
	// must not carry them, or clients would take them for positions.
	envelopeKeys = []string{"type", "data", "channel_id", "seq"}
	dataKeys     = []string{"channel_id", "user_id", "presence"}
)

func (s *scanner) object(level keyLevel) error {
	if empty, err := s.open('}'); empty || err != nil {
		return err
	}
	var names []string
	switch level {
	case levelEnvelope:
		names = envelopeKeys
	case levelData:
		names = dataKeys
	}
	var seen uint8
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax()
		}
		keyStart := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		child, dst := levelOther, (*[]byte)(nil)
		if names != nil {
			key := s.b[keyStart+1 : s.i-1]
			if escaped {
				var k string
				if json.Unmarshal(s.b[keyStart:s.i], &k) != nil {
					return s.syntax()
				}
				key = []byte(k)
			}
			n, err := matchKey(key, names)
			if err != nil {
				return err
			}
			if level == levelEnvelope && n >= 2 {
				return fmt.Errorf("top-level key %q is reserved: the gateway adds an event's position there (channel_id and seq go in \"data\")", names[n])
			}
			if n >= 0 {
				if seen&(1<<n) != 0 {
					return fmt.Errorf("key %q appears twice in one object", names[n])
				}
				seen |= 1 << n
				dst = s.field(level, n)
				if level == levelEnvelope && names[n] == "data" {
					child = levelData
				}
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax()
		}
		s.i++
		s.ws()
		if err := s.value(child, dst); err != nil {
			return err
		}
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

// field is where the value of the n-th routing key of level goes.
func (s *scanner) field(level keyLevel, n int) *[]byte {
	if level == levelEnvelope {
		return [...]*[]byte{&s.env.typ, &s.env.data}[n]
	}
	return [...]*[]byte{&s.env.channelID, &s.env.userID, &s.env.presence}[n]
}

// matchKey returns the index of key in names, -1 when it is none of them,
// or an error when it is a case variant of one.
func matchKey(key []byte, names []string) (int, error) {
	for n, name := range names {
		// Folding to an ASCII letter never shortens a key (ſ and K are
		// longer than s and k): shorter keys cannot match.
		if len(key) < len(name) {
			continue
		}
		if string(key) == name {
			return n, nil
		}
		if bytes.EqualFold(key, []byte(name)) {
			return -1, fmt.Errorf("key %q is not %q: keys are case-sensitive", truncate(string(key), 64), name)
		}
	}
	return -1, nil
}
