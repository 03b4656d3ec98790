// Package stream is the event stream of continuity (DESIGN.md §2a): the
// JetStream stream that gives channel and user events a position, how it is
// provisioned, and how a gateway reads it back.
//
// Backends publish into the stream's input subjects (<prefix>.in.channel.<id>,
// <prefix>.in.user.<id>); the stream stores each event and republishes it to
// the live subject (<prefix>.channel.<id>, <prefix>.user.<id>) the gateways
// subscribe to, with its position in the Nats-Sequence and
// Nats-Last-Sequence headers (the previous position of the same subject).
package stream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/provision"
)

// Defaults.
const (
	DefaultName   = "OCVR_EVENTS"
	DefaultWindow = 2 * time.Minute
	// maxDuplicates bounds the Nats-Msg-Id duplicate window (JetStream
	// keeps an index entry per id for that long).
	maxDuplicates = 2 * time.Minute
)

// Config describes the stream of one environment.
type Config struct {
	Name   string        // stream name; DefaultName when empty
	Prefix string        // subject prefix; "ocvr" when empty
	Window time.Duration // how long events are kept (MaxAge); DefaultWindow when 0
	// Replicas: 0 means 3 where the JetStream cluster can hold them, 1 on
	// a single server.
	Replicas int
	// MaxBytes bounds the stream's storage (0: unlimited); the oldest
	// events go first, and a resume that needs them says resumed:false.
	MaxBytes int64
	// Domain is the JetStream domain holding the stream ("" the connected
	// server's; Ensure also takes its context's, provision.WithDomain): a
	// gateway on a leafnode reads the hub's stream.
	Domain string
}

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Prefix == "" {
		c.Prefix = "ocvr"
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	for _, tok := range strings.Split(c.Prefix, ".") {
		if !protocol.ValidID(tok) {
			return c, fmt.Errorf("stream: invalid subject prefix %q", c.Prefix)
		}
	}
	if !protocol.ValidID(c.Name) || strings.ContainsAny(c.Name, ".*>") {
		return c, fmt.Errorf("stream: invalid stream name %q", c.Name)
	}
	return c, nil
}

// InputChannel is the subject a backend publishes a channel's events to.
func InputChannel(prefix, channelID string) string { return prefix + ".in.channel." + channelID }

// InputUser is the subject a backend publishes a user's events to.
func InputUser(prefix, userID string) string { return prefix + ".in.user." + userID }

// LiveSubject maps an input subject to the live subject it is republished
// to ("" when in is not an input subject of prefix).
func LiveSubject(prefix, in string) string {
	rest, ok := strings.CutPrefix(in, prefix+".in.")
	if !ok {
		return ""
	}
	return prefix + "." + rest
}

// InputSubject maps a live channel or user subject to its input subject.
func InputSubject(prefix, live string) string {
	rest, ok := strings.CutPrefix(live, prefix+".")
	if !ok {
		return ""
	}
	return prefix + ".in." + rest
}

// StreamConfig is the JetStream configuration of c.
func (c Config) StreamConfig() (jetstream.StreamConfig, error) {
	c, err := c.withDefaults()
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "OCVR channel and user events, kept for the continuity window (DESIGN.md §2a)",
		Subjects:    []string{c.Prefix + ".in.channel.*", c.Prefix + ".in.user.*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.Window,
		MaxBytes:    orUnlimited(c.MaxBytes),
		MaxMsgs:     -1,
		Duplicates:  min(c.Window, maxDuplicates),
		Replicas:    c.Replicas,
		AllowDirect: true,
		// The destination has one token fewer than the stream's subjects,
		// so a republished event can never land in the stream again.
		RePublish: &jetstream.RePublish{
			Source:      c.Prefix + ".in.*.*",
			Destination: c.Prefix + ".{{wildcard(1)}}.{{wildcard(2)}}",
		},
	}, nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// MetaResumeKey is the stream metadata entry holding the key every
// gateway signs resume tokens with (base64url, 32 random bytes): the
// environment's gateways share it without a secret to distribute.
const MetaResumeKey = "ocvr_resume_key"

// Info is what Ensure leaves in place.
type Info struct {
	Config    jetstream.StreamConfig
	ResumeKey []byte
}

// Ensure creates the stream of cfg or updates an existing one to it: every
// gateway calls it at start, so the newest configuration wins. A stream
// already as cfg wants it is left without a write, so a gateway whose NATS
// user may not create or update streams works with a stream provisioned by
// `ocvrctl setup`; such a user gets an error naming the permission when the
// stream is missing, and the stream as it is, with a warning, when it
// differs. With cfg.Replicas unset the stream gets 3 replicas where the
// cluster can hold them and 1 on a single server or a cluster that cannot
// place 3 (reported to the context's provision.Observer: a warning, once,
// and the replica gauge). An existing resume key is kept; the first
// gateway to create the stream picks it.
func Ensure(ctx context.Context, nc *nats.Conn, cfg Config) (Info, error) {
	sc, err := cfg.StreamConfig()
	if err != nil {
		return Info{}, err
	}
	if cfg.Domain != "" {
		ctx = provision.WithDomain(ctx, cfg.Domain)
	}
	js, err := provision.JetStream(ctx, nc)
	if err != nil {
		return Info{}, fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	for attempt := 0; ; attempt++ {
		info, err := ensureOnce(ctx, nc, js, sc)
		// Two gateways creating the stream at once: one wins, the other
		// takes the winner's key on its next try.
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt < 3 {
			continue
		}
		return info, err
	}
}

func ensureOnce(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, sc jetstream.StreamConfig) (Info, error) {
	obs := provision.From(ctx)
	var existing jetstream.Stream
	err := provision.Guard(ctx, nc, func(ctx context.Context) (err error) {
		existing, err = js.Stream(ctx, sc.Name)
		return err
	})
	switch {
	case err == nil:
		sc.Metadata = existing.CachedInfo().Config.Metadata
		if sc.Replicas == 0 {
			sc.Replicas = existing.CachedInfo().Config.Replicas
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		existing = nil
	default:
		return Info{}, fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	if sc.Metadata == nil {
		sc.Metadata = map[string]string{}
	} else {
		sc.Metadata = maps.Clone(sc.Metadata)
	}
	if _, err := decodeKey(sc.Metadata[MetaResumeKey]); err != nil {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		sc.Metadata[MetaResumeKey] = base64.RawURLEncoding.EncodeToString(key)
	} else if existing != nil && upToDate(existing.CachedInfo().Config, sc) {
		// Nothing to change: no write, so a user without stream-admin
		// rights can use a stream provisioned by `ocvrctl setup`.
		obs.Opened(sc.Name, existing.CachedInfo().Config.Replicas)
		return infoOf(existing)
	}
	put := func(sc jetstream.StreamConfig) (s jetstream.Stream, err error) {
		err = provision.Guard(ctx, nc, func(ctx context.Context) error {
			if existing != nil {
				s, err = js.UpdateStream(ctx, sc)
			} else {
				s, err = js.CreateStream(ctx, sc)
			}
			return err
		})
		return s, err
	}
	var s jetstream.Stream
	if sc.Replicas == 0 {
		r3 := sc
		r3.Replicas = 3
		s, err = put(r3)
		if code, ok := provision.CannotReplicate(err); ok {
			r3Err := err
			r1 := sc
			r1.Replicas = 1
			if s, err = put(r1); err == nil && code != provision.Standalone {
				obs.FellBack(sc.Name, r3Err)
			}
		}
	} else {
		s, err = put(sc)
	}
	var pe *provision.PermissionError
	switch {
	case err == nil:
		obs.Opened(sc.Name, s.CachedInfo().Config.Replicas)
		return infoOf(s)
	case existing != nil && errors.As(err, &pe):
		// Used as it is when it has a resume key; without one the
		// gateways could not agree on a key.
		obs.LeftAsIs(sc.Name, pe)
		obs.Opened(sc.Name, existing.CachedInfo().Config.Replicas)
		return infoOf(existing)
	case errors.As(err, &pe):
		return Info{}, provision.MissingError("stream", sc.Name, pe)
	default:
		return Info{}, fmt.Errorf("stream %s: %w", sc.Name, err)
	}
}

// upToDate reports whether a stream configured as have is what want (the
// configuration Ensure would write) asks for, field by field as
// StreamConfig sets them; the server adds metadata of its own.
func upToDate(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention &&
		have.Storage == want.Storage &&
		have.Discard == want.Discard &&
		have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxMsgs == want.MaxMsgs &&
		have.Duplicates == want.Duplicates &&
		have.Replicas == want.Replicas &&
		have.AllowDirect == want.AllowDirect &&
		have.RePublish != nil && want.RePublish != nil && *have.RePublish == *want.RePublish &&
		have.Metadata[MetaResumeKey] == want.Metadata[MetaResumeKey]
}

func infoOf(s jetstream.Stream) (Info, error) {
	ci := s.CachedInfo()
	key, err := decodeKey(ci.Config.Metadata[MetaResumeKey])
	if err != nil {
		return Info{}, fmt.Errorf("stream %s: resume key: %w", ci.Config.Name, err)
	}
	return Info{Config: ci.Config, ResumeKey: key}, nil
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(k) < 16 {
		return nil, errors.New("missing or short")
	}
	return k, nil
}
