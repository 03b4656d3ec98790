package provision

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Standalone is "replicas > 1 not supported in non-clustered mode": a
// single server, where one replica is all there can be (no warning).
const Standalone jetstream.ErrorCode = 10074

// CannotReplicate reports whether err means the deployment has too few
// servers for 3 replicas, and which: a single server (10074), insufficient
// resources (10023), no suitable peers (10005). Bucket and stream
// provisioning then fall back to one replica (and report it unless
// Standalone).
func CannotReplicate(err error) (jetstream.ErrorCode, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	switch c := apiErr.ErrorCode; c {
	case Standalone, 10023, 10005:
		return c, true
	}
	return 0, false
}
