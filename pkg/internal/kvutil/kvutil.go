// Package kvutil holds what the KV-backed stores share: opening a bucket
// idempotently, random tokens and their at-rest hashes.
package kvutil

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Open creates the bucket of cfg or binds to it if it exists. A bucket that
// already exists with another configuration is updated to cfg, so every
// process converges on the configuration of the newest code. With
// cfg.Replicas unset the bucket gets 3 replicas where the JetStream cluster
// can hold them (surviving the loss of a node) and 1 on a single server.
func Open(ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	if cfg.Replicas == 0 {
		r3 := cfg
		r3.Replicas = 3
		kv, err := js.CreateOrUpdateKeyValue(ctx, r3)
		if err == nil {
			return kv, nil
		}
		// Only "this deployment cannot hold 3 replicas" falls back; a
		// timeout must not downgrade a bucket that may already be R3.
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || !cannotReplicate(apiErr.ErrorCode) {
			return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
		}
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// cannotReplicate are the JetStream API errors meaning the deployment has
// too few servers for 3 replicas: replicas not supported without a
// cluster (10074), insufficient resources (10023), no suitable peers (10005).
func cannotReplicate(code jetstream.ErrorCode) bool {
	return code == 10074 || code == 10023 || code == 10005
}

// RandomToken returns prefix + base64url(n random bytes).
func RandomToken(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is the at-rest form of a secret token: hex SHA-256. Tokens carry 256
// random bits, so an unsalted fast hash is enough to make the stored form
// useless to whoever reads the bucket.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ValidToken reports whether s is prefix + base64url of exactly n bytes.
func ValidToken(s, prefix string, n int) bool {
	if len(s) != len(prefix)+base64.RawURLEncoding.EncodedLen(n) || s[:len(prefix)] != prefix {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(prefix):])
	return err == nil && len(b) == n
}

// IsNotFound reports whether err means the key does not exist (never
// written, deleted or purged).
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
