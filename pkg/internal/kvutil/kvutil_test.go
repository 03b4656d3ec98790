package kvutil

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
)

func TestRandomToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tok := RandomToken("wst_", 32)
		if len(tok) != len("wst_")+43 || !strings.HasPrefix(tok, "wst_") {
			t.Fatalf("RandomToken = %q", tok)
		}
		if !ValidToken(tok, "wst_", 32) {
			t.Fatalf("RandomToken %q is not a ValidToken", tok)
		}
		if seen[tok] {
			t.Fatalf("RandomToken repeated %q", tok)
		}
		seen[tok] = true
	}
}

func TestValidToken(t *testing.T) {
	good := "sess_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) // sess_AAAA…A
	body := good[len("sess_"):]
	tests := []struct {
		name string
		tok  string
		want bool
	}{
		{"good", good, true},
		{"url alphabet", "sess_" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff", 16))), true},
		{"empty", "", false},
		{"prefix only", "sess_", false},
		{"wrong prefix", "wst__" + body, false},
		{"no prefix", body + "AAAAA", false},
		{"one char short", good[:len(good)-1], false},
		{"one char long", good + "A", false},
		{"padded", "sess_" + base64.URLEncoding.EncodeToString(make([]byte, 32))[:43] + "=", false},
		{"std alphabet +", "sess_+" + body[1:], false},
		{"std alphabet /", "sess_/" + body[1:], false},
		{"space", "sess_ " + body[1:], false},
		{"dot", "sess_." + body[1:], false},
		{"non-zero trailing bits", good[:len(good)-1] + "B", false},
		{"non-ASCII", "sess_é" + body[2:], false},
		{"bearer prefix", "Bearer " + good, false},
	}
	for _, tt := range tests {
		if got := ValidToken(tt.tok, "sess_", 32); got != tt.want {
			t.Errorf("%s: ValidToken(%q) = %v, want %v", tt.name, tt.tok, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	// SHA-256 of "abc" (FIPS 180-2 test vector).
	if got, want := Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
	tok := RandomToken("wst_", 32)
	h := Hash(tok)
	if len(h) != 64 || strings.Contains(h, tok) || Hash(tok) != h {
		t.Errorf("Hash(%q) = %q", tok, h)
	}
}

func TestOpenAndIsNotFound(t *testing.T) {
	srv := natsembed.Test(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	kv, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "kvutil_test", History: 1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// Opening again binds to the same bucket, and converges on the new config.
	kv2, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "kvutil_test", History: 5, TTL: time.Hour})
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	if e, err := kv2.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("re-opened bucket lost its key: %v", err)
	}
	st, err := kv2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 5 || st.TTL() != time.Hour {
		t.Errorf("config not updated: history %d ttl %v", st.History(), st.TTL())
	}
	if _, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "bad.name"}); err == nil || !strings.Contains(err.Error(), "open bucket bad.name") {
		t.Errorf("Open of an invalid bucket name = %v", err)
	}

	_, err = kv.Get(ctx, "never")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(never written: %v) = false", err)
	}
	if err := kv.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(ctx, "k")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(deleted: %v) = false", err)
	}
	if _, err := kv.Put(ctx, "p", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(ctx, "p")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(purged: %v) = false", err)
	}
	for _, err := range []error{nil, errors.New("x"), context.DeadlineExceeded, nats.ErrConnectionClosed} {
		if IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = true", err)
		}
	}
	if !IsNotFound(fmt.Errorf("wrapped: %w", jetstream.ErrKeyNotFound)) {
		t.Error("IsNotFound does not see through wrapping")
	}
}
