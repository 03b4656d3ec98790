package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestResponsesKeepConnectionAlive: every kind of answer carries
// Content-Length (never chunked), leaves the connection open, and is the
// exact JSON the API documents, so one keep-alive connection serves a
// client's every request, refusals included.
func TestResponsesKeepConnectionAlive(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *Config) { c.RateLimit = 1 }})
	token, _ := e.newSession(21, "Kept")
	unknown := "sess_" + strings.Repeat("A", 43)

	var dials atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		auth   string
		status int
		code   string // error code; "" for the ticket
	}{
		{"ticket", http.MethodPost, TicketPath, "", token, http.StatusOK, ""},
		{"rate limited", http.MethodPost, TicketPath, "", token, http.StatusTooManyRequests, CodeRateLimited},
		{"no token", http.MethodPost, TicketPath, "", "", http.StatusUnauthorized, CodeUnauthorized},
		{"unknown session", http.MethodPost, TicketPath, "", unknown, http.StatusUnauthorized, CodeUnauthorized},
		{"ignored body", http.MethodPost, TicketPath, "{}", "", http.StatusUnauthorized, CodeUnauthorized},
		{"body too large", http.MethodPost, TicketPath, strings.Repeat("x", DefaultBodyLimit+1), token, http.StatusRequestEntityTooLarge, CodePayloadTooLarge},
		{"no such path", http.MethodPost, "/v1/nope", "", "", http.StatusNotFound, CodeNotFound},
		{"wrong method", http.MethodGet, TicketPath, "", "", http.StatusMethodNotAllowed, CodeMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, e.base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tc.auth)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d body %s, want %d", res.StatusCode, got, tc.status)
			}
			if res.ContentLength != int64(len(got)) || len(res.TransferEncoding) > 0 || res.Close {
				t.Errorf("Content-Length %d for %d bytes, Transfer-Encoding %v, Connection: close %v; want the length, not chunked, kept alive",
					res.ContentLength, len(got), res.TransferEncoding, res.Close)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			// The bytes echo's c.JSON renders for the documented shapes.
			var want []byte
			if tc.code == "" {
				var tr TicketResponse
				if err := json.Unmarshal(got, &tr); err != nil || tr.Data.ExpiresIn != 30 {
					t.Fatalf("ticket body %s: %v", got, err)
				}
				want, _ = json.Marshal(tr)
			} else {
				var er ErrorResponse
				if err := json.Unmarshal(got, &er); err != nil || er.Error.Code != tc.code {
					t.Fatalf("error body %s (%v), want code %s", got, err, tc.code)
				}
				want, _ = json.Marshal(er)
			}
			if want = append(want, '\n'); !bytes.Equal(got, want) {
				t.Errorf("body %q, want %q", got, want)
			}
		})
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections for %d requests, want 1", n, len(tests))
	}
}

// TestRequestLevel: an overload refusal is logged at Info (a storm makes
// thousands a second, counted by the metric), an outage's 503 at Warn,
// other 5xx at Error.
func TestRequestLevel(t *testing.T) {
	for _, tc := range []struct {
		status     int
		overloaded bool
		want       slog.Level
	}{
		{http.StatusOK, false, slog.LevelInfo},
		{http.StatusTooManyRequests, false, slog.LevelInfo},
		{http.StatusServiceUnavailable, true, slog.LevelInfo},
		{http.StatusServiceUnavailable, false, slog.LevelWarn},
		{http.StatusInternalServerError, false, slog.LevelError},
	} {
		if got := requestLevel(tc.status, tc.overloaded); got != tc.want {
			t.Errorf("requestLevel(%d, %v) = %v, want %v", tc.status, tc.overloaded, got, tc.want)
		}
	}
}
