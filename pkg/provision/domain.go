package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A JetStream domain names where the assets live when the process's NATS
// server is not the one holding them: gateways on a leafnode use the KV
// buckets and the event stream of the hub's domain. The JetStream API is
// then $JS.<domain>.API.… instead of $JS.API.…, and so are KV writes
// ($JS.<domain>.API.$KV.<bucket>.<key>).

type domainKey struct{}

// WithDomain returns ctx carrying the JetStream domain the buckets and
// streams opened with it live in; "" is the connected server's own.
func WithDomain(ctx context.Context, domain string) context.Context {
	return context.WithValue(ctx, domainKey{}, domain)
}

// Domain is ctx's JetStream domain ("" when none was set).
func Domain(ctx context.Context) string {
	d, _ := ctx.Value(domainKey{}).(string)
	return d
}

// CheckDomain reports whether domain can name a JetStream domain: one
// subject token, no wildcards or spaces ("" is valid: none).
func CheckDomain(domain string) error {
	if strings.ContainsAny(domain, ".*> \t\r\n") {
		return fmt.Errorf("invalid JetStream domain %q: one subject token, without '.', '*', '>' or spaces", domain)
	}
	return nil
}

// APIPrefix is the JetStream API prefix of domain, with its trailing dot:
// "$JS.API." or "$JS.<domain>.API.".
func APIPrefix(domain string) string {
	if domain == "" {
		return jetstream.DefaultAPIPrefix
	}
	return "$JS." + domain + ".API."
}

// KVWritePrefix is what goes in front of a KV write's subject
// ($KV.<bucket>.<key>) in domain: nothing locally, the API prefix in
// another domain (as nats.go's KeyValue does).
func KVWritePrefix(domain string) string {
	if domain == "" {
		return ""
	}
	return APIPrefix(domain)
}

// JetStream returns nc's JetStream API in ctx's domain.
func JetStream(ctx context.Context, nc *nats.Conn) (jetstream.JetStream, error) {
	if d := Domain(ctx); d != "" {
		return jetstream.NewWithDomain(nc, d)
	}
	return jetstream.New(nc)
}
