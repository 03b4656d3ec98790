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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/provision"
)

// Open binds to the bucket of cfg, creating it if it is missing and
// updating it if it differs from cfg, so every process converges on the
// configuration of the newest code. A bucket already as cfg wants it is
// bound without a write: a NATS user with no stream-admin permission can
// open buckets provisioned by `ocvrctl setup`. Such a user gets a clear
// error naming the permission when the bucket is missing, and the bucket
// as it is, with a warning, when it differs.
//
// With cfg.Replicas unset the bucket gets 3 replicas where the JetStream
// cluster can hold them (surviving the loss of a node) and 1 on a single
// server; a cluster that cannot place 3 gets 1, reported to the context's
// provision.Observer (a warning, once, and the replica gauge).
func Open(ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js, err := provision.JetStream(ctx, nc) // in ctx's JetStream domain
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	for attempt := 0; ; attempt++ {
		kv, err := openOnce(ctx, nc, js, cfg)
		// Two processes creating the bucket at once: one wins, the other
		// binds to it on its next try.
		if errors.Is(err, jetstream.ErrBucketExists) && attempt < 3 {
			continue
		}
		return kv, err
	}
}

func openOnce(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	obs := provision.From(ctx)
	stream := "KV_" + cfg.Bucket
	var kv jetstream.KeyValue
	err := provision.Guard(ctx, nc, func(ctx context.Context) (err error) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
		return err
	})
	var have *jetstream.StreamConfig
	switch {
	case err == nil:
		if have, err = bucketConfig(ctx, kv); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
		}
		if bucketUpToDate(*have, cfg, nc.ConnectedClusterName() != "") {
			obs.Opened(stream, have.Replicas)
			return kv, nil
		}
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}

	put := js.CreateKeyValue
	if have != nil {
		put = js.UpdateKeyValue
	}
	guarded := func(cfg jetstream.KeyValueConfig) (kv jetstream.KeyValue, err error) {
		err = provision.Guard(ctx, nc, func(ctx context.Context) error {
			kv, err = put(ctx, cfg)
			return err
		})
		return kv, err
	}
	updated, err := guarded(withReplicas(cfg))
	if err != nil && cfg.Replicas == 0 {
		// Only "this deployment cannot hold 3 replicas" falls back; a
		// timeout must not downgrade a bucket that may already be R3.
		if code, ok := provision.CannotReplicate(err); ok {
			r3Err := err
			r1 := cfg
			r1.Replicas = 1
			if updated, err = guarded(r1); err == nil && code != provision.Standalone {
				obs.FellBack(stream, r3Err)
			}
		}
	}
	var pe *provision.PermissionError
	switch {
	case err == nil:
		obs.Opened(stream, replicasOf(ctx, updated, cfg))
		return updated, nil
	case have != nil && errors.As(err, &pe):
		obs.LeftAsIs(stream, pe)
		obs.Opened(stream, have.Replicas)
		return kv, nil
	case errors.As(err, &pe):
		return nil, provision.MissingError("bucket", cfg.Bucket, pe)
	default:
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
}

// withReplicas is cfg with the replica count to try first: 3 when unset.
func withReplicas(cfg jetstream.KeyValueConfig) jetstream.KeyValueConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	return cfg
}

func replicasOf(ctx context.Context, kv jetstream.KeyValue, cfg jetstream.KeyValueConfig) int {
	if sc, err := bucketConfig(ctx, kv); err == nil {
		return sc.Replicas
	}
	return max(cfg.Replicas, 1)
}

// bucketConfig is the configuration of kv's stream (one stream info
// request, the permission a service has anyway).
func bucketConfig(ctx context.Context, kv jetstream.KeyValue) (*jetstream.StreamConfig, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("unexpected status type %T", st)
	}
	sc := bs.StreamInfo().Config
	return &sc, nil
}

// bucketUpToDate reports whether a bucket whose stream has have is what
// cfg asks for, field by field as nats.go maps a KeyValueConfig to a
// stream. With cfg.Replicas unset, a bucket on a single server is up to
// date with any replica count, one in a cluster with 3 or more.
func bucketUpToDate(have jetstream.StreamConfig, cfg jetstream.KeyValueConfig, clustered bool) bool {
	history := int64(max(cfg.History, 1))
	dup := 2 * time.Minute
	if cfg.TTL > 0 && cfg.TTL < dup {
		dup = cfg.TTL
	}
	compression := jetstream.NoCompression
	if cfg.Compression {
		compression = jetstream.S2Compression
	}
	replicasOK := have.Replicas == cfg.Replicas ||
		(cfg.Replicas == 0 && (!clustered || have.Replicas >= 3))
	return replicasOK &&
		have.Description == cfg.Description &&
		have.MaxMsgsPerSubject == history &&
		have.MaxBytes == orUnlimited(cfg.MaxBytes) &&
		int64(have.MaxMsgSize) == orUnlimited(int64(cfg.MaxValueSize)) &&
		have.MaxAge == cfg.TTL &&
		have.Duplicates == dup &&
		have.Storage == cfg.Storage &&
		have.Compression == compression &&
		have.AllowMsgTTL == (cfg.LimitMarkerTTL != 0) &&
		have.SubjectDeleteMarkerTTL == cfg.LimitMarkerTTL &&
		have.AllowDirect && have.AllowRollup && have.DenyDelete &&
		have.Discard == jetstream.DiscardNew &&
		have.Mirror == nil && len(have.Sources) == 0 && cfg.Mirror == nil && len(cfg.Sources) == 0 &&
		have.RePublish == nil && cfg.RePublish == nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
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
