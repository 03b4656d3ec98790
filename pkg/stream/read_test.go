package stream

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
)

// TestReader reads the stream back on one server and on a 3-node cluster
// (R3: any replica may answer a Direct Get).
func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		urls func(t *testing.T) string
	}{
		{"one server", func(t *testing.T) string { return natsembed.Test(t).ClientURL() }},
		{"3-node cluster", func(t *testing.T) string {
			c := natsembed.TestCluster(t, 3)
			return c.ClientURLs()[0] + "," + c.ClientURLs()[1] + "," + c.ClientURLs()[2]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := connect(t, tc.urls(t))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := Ensure(ctx, nc, Config{}); err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(nc, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if last, err := r.Last(ctx); err != nil || last != 0 {
				t.Fatalf("Last of an empty stream = %d, %v", last, err)
			}
			if evs, err := r.Range(ctx, "ocvr.channel.a", 1, 10); err != nil || len(evs) != 0 {
				t.Fatalf("Range of an empty stream = %v, %v", evs, err)
			}
			js, _ := nc.JetStream()
			// a: seqs 1,3,5,…; user 7: 2,4,6,…
			for i := 0; i < 20; i++ {
				subj := "ocvr.in.channel.a"
				if i%2 == 1 {
					subj = "ocvr.in.user.7"
				}
				msg := nats.NewMsg(subj)
				msg.Data = []byte(`{"type":"x","data":{"n":` + strconv.Itoa(i) + `}}`)
				msg.Header.Set("Ocvr-Exclude-User", "9")
				if _, err := js.PublishMsg(msg, nats.Context(ctx)); err != nil {
					t.Fatal(err)
				}
			}
			// A replica may answer before it has the last write: wait for it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				last, err := r.Last(ctx)
				if err == nil && last == 20 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Last = %d, %v, want 20", last, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			evs, err := r.Range(ctx, "ocvr.channel.a", 4, 3)
			if err != nil || len(evs) != 3 {
				t.Fatalf("Range = %d events, %v", len(evs), err)
			}
			for i, want := range []uint64{5, 7, 9} {
				e := evs[i]
				if e.Seq != want || e.Subject != "ocvr.channel.a" || e.Header.Get("Ocvr-Exclude-User") != "9" || e.Time.IsZero() {
					t.Fatalf("event %d = %+v, want seq %d on the live subject with its headers", i, e, want)
				}
			}
			all, err := r.Range(ctx, "ocvr.user.7", 1, MaxBatch)
			if err != nil || len(all) != 10 || all[9].Seq != 20 {
				t.Fatalf("Range to the end = %d events, %v", len(all), err)
			}
			if rest, err := r.Range(ctx, "ocvr.user.7", 21, 5); err != nil || len(rest) != 0 {
				t.Fatalf("Range past the end = %v, %v", rest, err)
			}
			if e, err := r.At(ctx, 6); err != nil || e.Seq != 6 || e.Subject != "ocvr.user.7" {
				t.Fatalf("At(6) = %+v, %v", e, err)
			}
			if _, err := r.At(ctx, 99); !errors.Is(err, ErrNotFound) {
				t.Fatalf("At(99) = %v, want ErrNotFound", err)
			}
			if _, err := r.Range(ctx, "elsewhere.channel.a", 1, 1); err == nil {
				t.Fatal("Range of a subject outside the prefix was accepted")
			}
		})
	}
}

func TestPositionOf(t *testing.T) {
	h := func(kv ...string) nats.Header {
		out := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		h    nats.Header
		want Position
		ok   bool
	}{
		{"republished", h(HeaderStream, DefaultName, HeaderSequence, "12", HeaderLastSequence, "9"), Position{12, 9}, true},
		{"first of its subject", h(HeaderStream, DefaultName, HeaderSequence, "1", HeaderLastSequence, "0"), Position{1, 0}, true},
		{"core publish", nil, Position{}, false},
		{"another stream", h(HeaderStream, "OTHER", HeaderSequence, "12", HeaderLastSequence, "9"), Position{}, false},
		{"previous not before", h(HeaderStream, DefaultName, HeaderSequence, "12", HeaderLastSequence, "12"), Position{}, false},
		{"garbage", h(HeaderStream, DefaultName, HeaderSequence, "x", HeaderLastSequence, "1"), Position{}, false},
	} {
		if got, ok := PositionOf(tc.h, DefaultName); got != tc.want || ok != tc.ok {
			t.Errorf("%s: PositionOf = %+v, %v", tc.name, got, ok)
		}
	}
}
