package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/redact"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// app is what a running command uses: its output, the parsed global flags,
// and NATS resources opened on first use (so a command that fails its flag
// checks never connects).
type app struct {
	in       io.Reader // standard input (frames for publish raw and validate)
	out      io.Writer
	errOut   io.Writer // progress of a long command (never its results)
	g        globals
	urls     []string
	subjects bus.Subjects
	now      func() time.Time

	nc   *nats.Conn
	pub  *bus.Publisher
	sess *session.Store
	tick *ticket.Store
	dir  *directory.Store
	pres *presence.Store
}

// conn connects to NATS once. An unreachable NATS fails fast with one
// clear error (no retry in the background: this is a CLI).
func (a *app) conn() (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	nc, err := bus.Connect(bus.Config{
		URLs:        a.urls,
		CredsFile:   a.g.natsCreds,
		TLSCAFile:   a.g.natsTLSCA,
		TLSCertFile: a.g.natsTLSCert,
		TLSKeyFile:  a.g.natsTLSKey,
		Name:        "ocvrctl",
	})
	if err != nil {
		cause := errors.Unwrap(err)
		if cause == nil {
			cause = err
		}
		return nil, withKind(errUnreachable, fmt.Errorf("cannot reach NATS at %s: %w", redact.URLs(a.urls), cause))
	}
	a.nc = nc
	return nc, nil
}

// publisher returns the bus publisher of the environment.
func (a *app) publisher() (*bus.Publisher, error) {
	if a.pub == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		a.pub = bus.NewPublisher(nc, a.subjects)
	}
	return a.pub, nil
}

// sessions returns the session store (able to revoke: it has a publisher).
func (a *app) sessions(ctx context.Context) (*session.Store, error) {
	if a.sess == nil {
		pub, err := a.publisher()
		if err != nil {
			return nil, err
		}
		s, err := session.Open(ctx, a.nc, a.g.sessions, pub)
		if err != nil {
			return nil, err
		}
		a.sess = s
	}
	return a.sess, nil
}

// tickets returns the ticket store.
func (a *app) tickets(ctx context.Context) (*ticket.Store, error) {
	if a.tick == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		s, err := ticket.Open(ctx, nc, a.g.tickets)
		if err != nil {
			return nil, err
		}
		a.tick = s
	}
	return a.tick, nil
}

// directory returns the channel/member/friend directory.
func (a *app) directory(ctx context.Context) (*directory.Store, error) {
	if a.dir == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		d, err := directory.Open(ctx, nc, directory.WithBuckets(a.g.directory))
		if err != nil {
			return nil, err
		}
		a.dir = d
	}
	return a.dir, nil
}

// presence returns the presence store.
func (a *app) presence(ctx context.Context) (*presence.Store, error) {
	if a.pres == nil {
		d, err := a.directory(ctx)
		if err != nil {
			return nil, err
		}
		pub, err := a.publisher()
		if err != nil {
			return nil, err
		}
		p, err := presence.Open(ctx, a.nc, "", d, pub)
		if err != nil {
			return nil, err
		}
		a.pres = p
	}
	return a.pres, nil
}

// printf writes a line of command output.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.out, format+"\n", args...)
}

func (a *app) close() {
	if a.nc != nil {
		_ = a.nc.FlushTimeout(2 * time.Second)
		a.nc.Close()
	}
}
