package main

// The other side of the connect-storm comparison: `storm --target
// centrifugo` storms a Centrifugo v6 server (scripts/lib/centrifugo.sh
// starts one pinned where the OCVR stack would run) with the same clients,
// window, source addresses and report as the OCVR storm, and `ratio` sets
// the two reports side by side.
//
// The connect is Centrifugo's own: an HS256 connection JWT the client
// already holds (minted before the timed phase: a Centrifugo client gets
// its token from its backend beforehand, with the page), the WebSocket
// upgrade, the JSON-protocol connect command and its reply. The OCVR connect
// keeps its ticket round trip inside the timed phase: fetching a ticket is
// part of what an OCVR client does to connect, a JWT is not.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ocvr/realtime/pkg/client"
)

const (
	targetOCVR       = "ocvr"
	targetCentrifugo = "centrifugo"
)

// foreignTarget reports whether the parsed flags point the workload at a
// server that is not an OCVR stack (storm --target centrifugo): there is no
// NATS to open then.
func foreignTarget(fs *flag.FlagSet) bool {
	f := fs.Lookup("target")
	return f != nil && f.Value.String() != targetOCVR
}

type centrifugoOptions struct {
	url    *string
	secret *string
	ttl    *time.Duration
}

func centrifugoFlags(fs *flag.FlagSet) centrifugoOptions {
	return centrifugoOptions{
		url:    fs.String("centrifugo-url", "ws://127.0.0.1:18600/connection/websocket", "--target centrifugo: its WebSocket `url` (JSON protocol)"),
		secret: fs.String("jwt-secret", "", "--target centrifugo: the server's client.token.hmac_secret_key (HS256 connection tokens)"),
		ttl:    fs.Duration("jwt-ttl", time.Hour, "--target centrifugo: lifetime of the connection tokens (exp claim)"),
	}
}

// stormCentrifugo is the storm against Centrifugo: user ids, window,
// timing, sampling and report as the OCVR storm.
func stormCentrifugo(ctx context.Context, e *env, o centrifugoOptions, conns, inflight int) (*report, error) {
	if *o.secret == "" {
		return nil, fmt.Errorf("--target centrifugo needs --jwt-secret")
	}
	exp := time.Now().Add(*o.ttl).Unix()
	tokens := make([]string, conns)
	for i := range tokens {
		tok, err := connectToken([]byte(*o.secret), strconv.FormatInt(e.userBase+int64(i), 10), exp)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	lat := make([]float64, conns)
	lites := make([]*client.Lite, conns)
	defer func() {
		for _, l := range lites {
			if l != nil {
				l.CloseNow()
			}
		}
	}()
	before := e.sample()
	start := time.Now()
	err := connectMany(ctx, conns, inflight, func(i int) error {
		t0 := time.Now()
		l, err := dialCentrifugo(ctx, *o.url, tokens[i], e.srcAddr())
		if err != nil {
			return err
		}
		lat[i] = float64(time.Since(t0).Microseconds()) / 1e3
		lites[i] = l
		return nil
	})
	took := time.Since(start)
	after := e.sample()
	if err != nil {
		return nil, err
	}
	return stormReport(targetCentrifugo, conns, inflight, lat, took, before, after,
		"each connect = WebSocket upgrade + connect command with a pre-made HS256 JWT + connect reply (Centrifugo JSON protocol)"), nil
}

// dialCentrifugo opens a socket, sends the connect command and waits for
// its reply. It uses the same bare client as the OCVR storm, so the two
// sides cost the load generator alike.
func dialCentrifugo(ctx context.Context, wsURL, token string, src net.Addr) (*client.Lite, error) {
	l, err := client.DialLite(ctx, wsURL, "", client.LiteOptions{LocalAddr: src})
	if err != nil {
		return nil, err
	}
	if err := l.WriteText([]byte(`{"id":1,"connect":{"token":"` + token + `"}}`)); err != nil {
		l.CloseNow()
		return nil, fmt.Errorf("send connect: %w", err)
	}
	_ = l.NetConn().SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := l.ReadText()
	if err != nil {
		l.CloseNow()
		return nil, fmt.Errorf("read connect reply: %w", err)
	}
	// The reply to command 1 is the first frame; an error reply or anything
	// else means the connect failed (an OCVR "ready" is matched the same way).
	if !strings.HasPrefix(string(f), `{"id":1,"connect":`) {
		l.CloseNow()
		return nil, fmt.Errorf("expected the connect reply, got %.120s", f)
	}
	_ = l.NetConn().SetReadDeadline(time.Time{})
	return l, nil
}

// jwtHeaderHS256 is the encoded {"alg":"HS256","typ":"JWT"}, the same for
// every token.
var jwtHeaderHS256 = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// connectClaims are what a Centrifugo connection token needs: the user
// (sub) and an expiry.
type connectClaims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
}

// connectToken is a Centrifugo connection JWT for user sub. Hand-built
// (RFC 7519 with HS256 is an HMAC over two base64url parts) so that the
// load generator takes no JWT library into pkg's module graph.
func connectToken(secret []byte, sub string, exp int64) (string, error) {
	payload, err := json.Marshal(connectClaims{Sub: sub, Exp: exp})
	if err != nil {
		return "", fmt.Errorf("connect token claims: %w", err)
	}
	return signHS256(secret, jwtHeaderHS256, base64.RawURLEncoding.EncodeToString(payload)), nil
}

// signHS256 joins the encoded header and payload and appends their
// HMAC-SHA256 signature (RFC 7515 §5.1 with the JWS compact serialization).
func signHS256(secret []byte, header, payload string) string {
	signing := header + "." + payload
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ratioWorkload reads an OCVR storm report and a Centrifugo one (the same
// run of `scripts/bench.sh storm-pair`) and reports OCVR/Centrifugo per
// figure: the connect-storm target is connects/s ≥ 1.0× Centrifugo's.
func ratioWorkload(_ context.Context, _ *env, fs *flag.FlagSet) func() (*report, error) {
	ocvrPath := fs.String("ocvr", "", "the OCVR storm's JSON report (`file`)")
	cfPath := fs.String("centrifugo", "", "the Centrifugo storm's JSON report (`file`)")
	return func() (*report, error) {
		oc, err := readReport(*ocvrPath)
		if err != nil {
			return nil, fmt.Errorf("--ocvr: %w", err)
		}
		cf, err := readReport(*cfPath)
		if err != nil {
			return nil, fmt.Errorf("--centrifugo: %w", err)
		}
		rep := &report{
			Params:  map[string]any{"ocvr": *ocvrPath, "centrifugo": *cfPath, "conns": oc.Params["conns"], "inflight": oc.Params["inflight"]},
			Columns: []string{"figure", "OCVR", "Centrifugo", "OCVR/Centrifugo"},
			Notes: []string{"connects/s: higher is better (target ≥ 1.0); latencies, CPU and RSS: lower is better",
				"server CPU and RSS: OCVR's are gateway + nats-server + ticketsvc, Centrifugo's its one process"},
		}
		if oc.Params["conns"] != cf.Params["conns"] || oc.Params["inflight"] != cf.Params["inflight"] {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the runs differ: OCVR conns=%v inflight=%v, Centrifugo conns=%v inflight=%v",
				oc.Params["conns"], oc.Params["inflight"], cf.Params["conns"], cf.Params["inflight"]))
		}
		for _, col := range []string{"connects/s", "p50 ms", "p95 ms", "p99 ms", "server CPU ms/connect", "server CPU %", "server RSS MiB"} {
			a, err := oc.figure(col)
			if err != nil {
				return nil, fmt.Errorf("--ocvr: %w", err)
			}
			b, err := cf.figure(col)
			if err != nil {
				return nil, fmt.Errorf("--centrifugo: %w", err)
			}
			var r any = "n/a" // JSON has no NaN
			if b != 0 {
				r = math.Round(a/b*100) / 100
			}
			rep.Rows = append(rep.Rows, []any{col, a, b, r})
		}
		return rep, nil
	}
}

func readReport(path string) (*report, error) {
	if path == "" {
		return nil, fmt.Errorf("no file given")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// figure is the first row's value in the named column.
func (r *report) figure(col string) (float64, error) {
	for i, c := range r.Columns {
		if c != col {
			continue
		}
		if len(r.Rows) == 0 || i >= len(r.Rows[0]) {
			return 0, fmt.Errorf("%s report has no %q value", r.Workload, col)
		}
		v, ok := r.Rows[0][i].(float64)
		if !ok {
			return 0, fmt.Errorf("%s report: %q is %v, not a number", r.Workload, col, r.Rows[0][i])
		}
		return v, nil
	}
	return 0, fmt.Errorf("%s report has no column %q", r.Workload, col)
}
