// Package resume mints and checks the resume tokens of continuity
// (DESIGN.md §2a): a token binds a reconnect to the user and session of the
// connection that received it, so a forged or foreign token resumes
// nothing. Tokens are signed with a key every gateway of the environment
// shares (kept in the event stream's metadata, pkg/stream).
package resume

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// prefix marks the token's version.
const prefix = "rt1_"

// macLen is the truncated HMAC-SHA256 length (128 bits).
const macLen = 16

// Claims is what a token says.
type Claims struct {
	UserID    int64
	SessionID string
	Issued    int64 // unix seconds
}

// Signer mints and checks tokens with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a signer for key (at least 16 bytes).
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 16 {
		return nil, errors.New("resume: key shorter than 16 bytes")
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// Mint returns the token of c.
func (s *Signer) Mint(c Claims) string {
	body := make([]byte, 0, 16+len(c.SessionID))
	body = binary.BigEndian.AppendUint64(body, uint64(c.UserID))
	body = binary.BigEndian.AppendUint64(body, uint64(c.Issued))
	body = append(body, c.SessionID...)
	return prefix + base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(s.mac(body))
}

func (s *Signer) mac(body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(body)
	return m.Sum(nil)[:macLen]
}

// ErrInvalid is any token that is not one this key minted.
var ErrInvalid = errors.New("resume: invalid token")

// maxToken bounds what is decoded from a client.
const maxToken = 512

// Check returns the claims of a token this key minted.
func (s *Signer) Check(tok string) (Claims, error) {
	if len(tok) > maxToken {
		return Claims{}, ErrInvalid
	}
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok {
		return Claims{}, ErrInvalid
	}
	b64body, b64mac, ok := strings.Cut(rest, ".")
	if !ok {
		return Claims{}, ErrInvalid
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(b64body)
	if err != nil || len(body) < 16 {
		return Claims{}, ErrInvalid
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(b64mac)
	if err != nil || !hmac.Equal(mac, s.mac(body)) {
		return Claims{}, ErrInvalid
	}
	return Claims{
		UserID:    int64(binary.BigEndian.Uint64(body[:8])),
		Issued:    int64(binary.BigEndian.Uint64(body[8:16])),
		SessionID: string(body[16:]),
	}, nil
}
