// Package bus is the bus contract of DESIGN.md §3: the subjects and headers
// every backend and gateway agree on, a Connect helper with production
// reconnect behaviour, and the publisher SDK backends use to send events.
package bus

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/redact"
)

// DefaultPrefix is the default subject prefix.
const DefaultPrefix = "ocvr"

// DefaultURL is the NATS address of the development stack.
const DefaultURL = "nats://127.0.0.1:4222"

// Headers of a bus message (DESIGN.md §3).
const (
	// HeaderExcludeUser skips that user's connections (decimal user id).
	HeaderExcludeUser = "Ocvr-Exclude-User"
	// HeaderSession limits delivery to connections of these session ids
	// (comma-separated).
	HeaderSession = "Ocvr-Session"
	// HeaderExceptSession delivers to all connections but this session's.
	HeaderExceptSession = "Ocvr-Except-Session"
	// HeaderPublishedAt is the publish time in unix nanoseconds; it feeds
	// the delivery-latency histogram.
	HeaderPublishedAt = "Ocvr-Published-At"
)

// Subjects builds the subjects of one environment (one prefix).
type Subjects struct {
	prefix string
}

// NewSubjects returns the subjects under prefix (DefaultPrefix when empty).
// The prefix must be one or more dot-separated ids (protocol.IDPattern).
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	for _, tok := range strings.Split(prefix, ".") {
		if !protocol.ValidID(tok) {
			return Subjects{}, fmt.Errorf("invalid subject prefix %q: tokens must match %s", prefix, protocol.IDPattern)
		}
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix returns the subject prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Channel is the subject of a channel's events. The id must be valid.
func (s Subjects) Channel(channelID string) (string, error) {
	if err := protocol.CheckChannelID(channelID); err != nil {
		return "", err
	}
	return s.prefix + ".channel." + channelID, nil
}

// User is the subject of a user's events.
func (s Subjects) User(userID int64) (string, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return "", err
	}
	return s.prefix + ".user." + strconv.FormatInt(userID, 10), nil
}

// Broadcast is the subject that reaches every connection.
func (s Subjects) Broadcast() string { return s.prefix + ".broadcast" }

// ParseChannel returns the channel id of a channel subject, or false.
func (s Subjects) ParseChannel(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.prefix+".channel.")
	if !ok || !protocol.ValidChannelID(rest) {
		return "", false
	}
	return rest, true
}

// ParseUser returns the user id of a user subject, or false.
func (s Subjects) ParseUser(subject string) (int64, bool) {
	rest, ok := strings.CutPrefix(subject, s.prefix+".user.")
	if !ok {
		return 0, false
	}
	id, err := protocol.ParseUserID(rest)
	return id, err == nil
}

// Config says how to reach NATS.
type Config struct {
	URLs      []string // server list; DefaultURL when empty
	CredsFile string   // NATS credentials (JWT + nkey seed), optional
	// TLS: a CA bundle to trust, and a client certificate for mutual TLS.
	// The files are read again at every handshake (each reconnect), so a
	// rotation by cert-manager takes effect at the next reconnect.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	Name        string // connection name shown by the server

	// RetryOnFailedConnect makes Connect return at once even when no server
	// is reachable yet, then keep trying in the background: right for a
	// service that must start (and report unready) before NATS is up, wrong
	// for a CLI that should fail with a clear message.
	RetryOnFailedConnect bool

	Logger *slog.Logger

	// Hooks for metrics; each may be nil.
	OnDisconnect func()
	OnReconnect  func()
	// OnConnect fires when a connection first succeeds after Connect
	// returned without one (RetryOnFailedConnect).
	OnConnect func()
	// OnAsyncError sees asynchronous errors such as nats.ErrSlowConsumer.
	OnAsyncError func(sub *nats.Subscription, err error)
}

// Connect connects to NATS with the reconnect policy services need:
// reconnect forever with jitter, log every disconnect and reconnect.
func Connect(cfg Config) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	urls := cfg.URLs
	if len(urls) == 0 {
		urls = []string{DefaultURL}
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.ReconnectBufSize(8 << 20),
		nats.Timeout(3 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
			if cfg.OnDisconnect != nil {
				cfg.OnDisconnect()
			}
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "server", redact.URL(nc.ConnectedUrl()))
			if cfg.OnConnect != nil {
				cfg.OnConnect()
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", redact.URL(nc.ConnectedUrl()))
			if cfg.OnReconnect != nil {
				cfg.OnReconnect()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats async error", "subject", subj, "err", err)
			if cfg.OnAsyncError != nil {
				cfg.OnAsyncError(sub, err)
			}
		}),
	}
	if cfg.RetryOnFailedConnect {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	tlsOpts, err := tlsOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, tlsOpts...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact.URLs(urls), err)
	}
	return nc, nil
}

// RedactURLs joins server URLs for error messages and logs, hiding
// credentials.
//
// Deprecated: use redact.URLs, the one URL redactor.
func RedactURLs(urls []string) string { return redact.URLs(urls) }
