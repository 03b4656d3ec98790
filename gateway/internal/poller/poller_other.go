//go:build !linux

package poller

import "context"

// Poller is unavailable off Linux; the gateway then parks a reader
// goroutine per connection.
type Poller struct{}

// New returns ErrUnsupported.
func New() (*Poller, error) { return nil, ErrUnsupported }

func (p *Poller) Close() error                     { return nil }
func (p *Poller) Add(Conn, func()) (uint64, error) { return 0, ErrUnsupported }
func (p *Poller) Rearm(Conn, uint64) error         { return ErrUnsupported }
func (p *Poller) Remove(Conn, uint64)              {}
func (p *Poller) Run(ctx context.Context) error    { <-ctx.Done(); return nil }
