// Package provision is what the services and `ocvrctl setup` share about
// the JetStream assets they need (the KV buckets and the event stream):
// how a restricted NATS user's missing permission is told apart from an
// outage, and how provisioning reports to the operator (the replicas each
// asset got, a fall back to one replica, a bucket left as it was found).
//
// A service opening its buckets creates or updates them only when they are
// missing or differ from what its code wants; a bucket provisioned by
// `ocvrctl setup` with the same code is bound as it is, with no write, so a
// service's NATS user needs no stream-admin permission.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// PermissionError is a request the NATS server refused for want of a
// permission: Op is "publish" or "subscribe", Subject the subject refused.
type PermissionError struct {
	Op      string
	Subject string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("NATS permission missing: %s %s", e.Op, e.Subject)
}

// violationRe reads the server's permission error ("Permissions Violation
// for Publish to "$JS.API.STREAM.CREATE.KV_x"").
var violationRe = regexp.MustCompile(`(?i)violation for (publish|subscription) to "([^"]+)"`)

// pollInterval is how often Guard looks for a permission violation.
const pollInterval = 10 * time.Millisecond

// Guard runs fn, which makes requests on nc, and returns a
// *PermissionError as soon as the server refuses one of them for want of a
// permission. Without it a refused request is only reported asynchronously
// and the request waits out its whole deadline, ending in a timeout that
// names nothing.
func Guard(ctx context.Context, nc *nats.Conn, fn func(context.Context) error) error {
	before := nc.LastError()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }() // ends with ctx at the latest: cancel is deferred
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if pe := violation(nc, before); pe != nil && err != nil {
				return pe
			}
			return err
		case <-tick.C:
			if pe := violation(nc, before); pe != nil {
				cancel()
				<-done
				return pe
			}
		}
	}
}

// violation is the permission violation nc saw after before, or nil.
func violation(nc *nats.Conn, before error) *PermissionError {
	err := nc.LastError()
	if err == nil || err == before || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return &PermissionError{Op: "request", Subject: err.Error()}
	}
	op := "publish"
	if m[1][0] == 's' || m[1][0] == 'S' {
		op = "subscribe"
	}
	// Only what a JetStream request can be refused: the API, KV subjects,
	// the reply inbox. Another goroutine's refused publish (a live subject)
	// is not this request's cause; the client's own log line names it.
	if !strings.HasPrefix(m[2], "$JS.") && !strings.HasPrefix(m[2], "$KV.") && !strings.HasPrefix(m[2], "_INBOX.") {
		return nil
	}
	return &PermissionError{Op: op, Subject: m[2]}
}

// Observer receives what provisioning did; a process has one, set on the
// context its stores are opened with (WithObserver). The zero value logs
// nothing.
type Observer struct {
	Logger *slog.Logger
	// Replicas, when set, sees the replica count of each stream as opened
	// (a KV bucket's stream is KV_<bucket>): for a gauge.
	Replicas func(stream string, replicas int)

	warned sync.Map // stream+what → struct{}: each warning once per process
}

type observerKey struct{}

// WithObserver returns ctx carrying o: the buckets and streams opened with
// it report to o.
func WithObserver(ctx context.Context, o *Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// From returns ctx's observer, or nil (whose methods do nothing).
func From(ctx context.Context) *Observer {
	o, _ := ctx.Value(observerKey{}).(*Observer)
	return o
}

// Opened reports stream's replica count.
func (o *Observer) Opened(stream string, replicas int) {
	if o != nil && o.Replicas != nil {
		o.Replicas(stream, replicas)
	}
}

// FellBack reports that stream got one replica because the JetStream
// cluster could not place three (why is the server's error): a node lost
// takes the asset with it. Logged once per stream.
func (o *Observer) FellBack(stream string, why error) {
	if o.first(stream, "fallback") {
		o.Logger.Warn("jetstream: 3 replicas could not be placed, fell back to 1 — losing its node loses this data; check the JetStream cluster's peers, then restart to retry",
			"stream", stream, "err", why)
	}
}

// LeftAsIs reports that stream exists with another configuration than the
// code wants and this user may not update it (pe says which permission it
// lacks): it is used as it is. Logged once per stream.
func (o *Observer) LeftAsIs(stream string, pe *PermissionError) {
	if o.first(stream, "stale") {
		o.Logger.Warn("jetstream: stream differs from this version's configuration and this NATS user may not update it; using it as it is — run `ocvrctl setup` to update it",
			"stream", stream, "missing_permission", pe.Op+" "+pe.Subject)
	}
}

func (o *Observer) first(stream, what string) bool {
	if o == nil || o.Logger == nil {
		return false
	}
	_, seen := o.warned.LoadOrStore(stream+"\x00"+what, struct{}{})
	return !seen
}

// MissingError is the error of a bucket or stream that does not exist and
// that this NATS user may not create.
func MissingError(what, name string, pe *PermissionError) error {
	return fmt.Errorf("%s %s does not exist and this NATS user may not create it (%w); provision it with `ocvrctl setup` or grant the permission", what, name, pe)
}
