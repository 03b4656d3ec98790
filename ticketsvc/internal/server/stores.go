package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

const (
	storesRetryMin = 250 * time.Millisecond
	storesRetryMax = 2 * time.Second
	// storesMinGap spaces re-opens triggered by errors, so a burst of
	// failing requests costs NATS one bucket check, not one per request.
	storesMinGap = time.Second
)

// kickStores asks maintainStores to (re)open the buckets. It never blocks:
// kicks that arrive while one is pending coalesce.
func (s *Server) kickStores() {
	select {
	case s.storesKick <- struct{}{}:
	default:
	}
}

// maintainStores opens the KV stores as soon as NATS answers, retrying with
// backoff, and re-opens them on every kick (reconnect, a missing bucket seen
// by /readyz or a failed request). Opening is create-or-update, so it
// recreates buckets a NATS restart without its data lost. Once opened, the
// stores stay in place across outages: their handles only name the bucket,
// so they work again as soon as NATS does.
func (s *Server) maintainStores(ctx context.Context, nc *nats.Conn) {
	backoff := storesRetryMin
	failing, opened := false, false
	var last time.Time
	for {
		if wait := storesMinGap - time.Since(last); !last.IsZero() && wait > 0 {
			if !sleep(ctx, wait) {
				return
			}
		}
		last = time.Now()
		var err error
		if nc.IsConnected() {
			err = s.openStores(ctx, nc)
		} else {
			err = errors.New("nats not connected")
		}
		switch {
		case err == nil:
			if failing || !opened {
				s.log.Info("kv stores ready", "sessions_bucket", s.cfg.SessionsBucket, "tickets_bucket", s.cfg.TicketsBucket)
			}
			failing, opened, backoff = false, true, storesRetryMin
			select {
			case <-ctx.Done():
				return
			case <-s.storesKick:
			}
			continue
		case ctx.Err() != nil:
			return
		case !failing:
			s.log.Warn("kv stores not ready, retrying", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-s.storesKick:
		case <-time.After(backoff):
			backoff = min(backoff*2, storesRetryMax)
		}
	}
}

func (s *Server) openStores(ctx context.Context, nc *nats.Conn) error {
	ctx = provision.WithDomain(provision.WithObserver(ctx, s.provision), s.cfg.JetStreamDomain)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.KVTimeout)
	defer cancel()
	// With a publisher: the session service's revocations publish
	// session_revoked (ticket requests only verify).
	subjects, err := bus.NewSubjects(s.cfg.SubjectPrefix)
	if err != nil {
		return err
	}
	ss, err := session.Open(ctx, nc, s.cfg.SessionsBucket, bus.NewPublisher(nc, subjects))
	if err != nil {
		return err
	}
	ts, err := ticket.Open(ctx, nc, s.cfg.TicketsBucket)
	if err != nil {
		return err
	}
	ss.Now, ts.Now = s.now, s.now
	s.stores.Store(&stores{sessions: ss, tickets: ts})
	return nil
}

// ready reports whether a ticket request can succeed now: NATS connected,
// stores open, and both buckets answering. The reason is short and safe to
// show to a prober.
func (s *Server) ready(ctx context.Context) (bool, string) {
	if s.shutting.Load() {
		return false, "shutting down"
	}
	nc := s.nc.Load()
	if nc == nil || !nc.IsConnected() {
		return false, "nats not connected"
	}
	if s.stores.Load() == nil {
		return false, "kv stores not open yet"
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.KVTimeout)
	defer cancel()
	js, err := provision.JetStream(provision.WithDomain(ctx, s.cfg.JetStreamDomain), nc)
	if err != nil {
		return false, "jetstream unavailable"
	}
	for _, b := range []string{s.cfg.SessionsBucket, s.cfg.TicketsBucket} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				s.kickStores()
			}
			return false, fmt.Sprintf("kv bucket %s unreachable", b)
		}
	}
	return true, ""
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
