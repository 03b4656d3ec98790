package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The keys whose values ValidateEvent checks, per object: the envelope, its
// data, and data.author. Other objects (extra fields a backend adds) are
// not looked at: unknown fields stay ignored.
type keyLevel int

const (
	levelNone keyLevel = iota
	levelEnvelope
	levelData
	levelAuthor
)

var levelKeys = [...][][]byte{
	levelEnvelope: {[]byte("type"), []byte("data")},
	levelData:     {[]byte("type"), []byte("id"), []byte("channel_id"), []byte("author"), []byte("user_id"), []byte("presence")},
	levelAuthor:   {[]byte("id")},
}

// checkKeys walks a payload that json.Unmarshal already accepted and
// refuses, in the envelope, its data and data.author, any key that matches
// a validated key case-insensitively but not exactly ("Channel_ID",
// "TYPE", "pre\u017fence"), or that repeats one within the same object.
//
// encoding/json matches struct fields case-insensitively (with Unicode
// simple folding) and decodes a repeated object-valued key into the same
// struct, merging the two, while clients (JSON.parse, and the map-based
// decoders of most languages) read exact keys, the last one winning. Left
// alone, a payload could be validated as one thing — a channel_id equal to
// its subject's, a positive author id — and read by clients as another.
func checkKeys(b []byte) error {
	s := keyScanner{b: b}
	s.ws()
	return s.value(levelEnvelope)
}

type keyScanner struct {
	b []byte
	i int
}

func (s *keyScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value skips one JSON value starting at s.i; an object's keys are checked
// against those of level.
func (s *keyScanner) value(level keyLevel) error {
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		return s.object(level)
	case '[':
		s.i++
		for {
			s.ws()
			if s.i >= len(s.b) {
				return nil
			}
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if err := s.value(levelNone); err != nil {
				return err
			}
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
			}
		}
	case '"':
		s.str()
		return nil
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			s.i++
		}
		return nil
	}
}

// str skips a string starting at its opening quote and returns its raw
// contents (escapes not decoded) and whether it holds an escape.
func (s *keyScanner) str() ([]byte, bool) {
	s.i++ // opening quote
	start, escaped := s.i, false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			raw := s.b[start:s.i]
			s.i++
			return raw, escaped
		}
		s.i++
	}
	return s.b[start:], escaped
}

func (s *keyScanner) object(level keyLevel) error {
	s.i++ // {
	var seen uint16
	for {
		s.ws()
		if s.i >= len(s.b) {
			return nil
		}
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		key, escaped := s.str()
		child := levelNone
		if level != levelNone {
			if escaped {
				var k string
				if json.Unmarshal(s.b[s.i-len(key)-2:s.i], &k) == nil {
					key = []byte(k)
				}
			}
			for n, name := range levelKeys[level] {
				// Folding to an ASCII letter never shortens a key (ſ and K
				// are longer than s and k): shorter keys cannot match.
				if len(key) < len(name) || !bytes.EqualFold(key, name) {
					continue
				}
				if !bytes.Equal(key, name) {
					return fmt.Errorf("key %q is not %q: keys are case-sensitive", truncate(string(key), 64), name)
				}
				if seen&(1<<n) != 0 {
					return fmt.Errorf("key %q appears twice in one object", name)
				}
				seen |= 1 << n
				switch {
				case level == levelEnvelope && string(name) == "data":
					child = levelData
				case level == levelData && string(name) == "author":
					child = levelAuthor
				}
			}
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ':' {
			s.i++
		}
		s.ws()
		if err := s.value(child); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
		}
	}
}
