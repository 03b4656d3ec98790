package server

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnLimit: with --max-conns=4, idle keep-alive connections cannot
// starve new clients (from 3 open connections on, responses close theirs),
// a fifth connection waits to be accepted instead of failing or costing a
// descriptor, and is served as soon as one closes.
func TestConnLimit(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *Config) { c.MaxConns = 4 }})

	// Clients one after another, each keeping its connection if allowed.
	var transports []*http.Transport
	defer func() {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}()
	tests := []struct {
		name      string
		wantClose bool
	}{
		{"1st connection", false},
		{"2nd connection", false},
		{"3rd connection: 3/4 full", true},
		{"4th client", true},
		{"5th client", true},
		{"6th client", true},
	}
	for _, tc := range tests {
		tr := &http.Transport{}
		transports = append(transports, tr)
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		res, err := client.Post(e.base+TicketPath, "", nil) // 401: no KV involved
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Close != tc.wantClose {
			t.Errorf("%s: status %d, Connection: close %v; want 401, %v", tc.name, res.StatusCode, res.Close, tc.wantClose)
		}
	}
	eventually(t, 5*time.Second, "2 idle connections open", func() bool { return e.srv.publicLn.open() == 2 })

	// The cap: two more connections that send nothing fill it.
	for range 2 {
		c, err := net.Dial("tcp", e.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	eventually(t, 5*time.Second, "4 connections open", func() bool { return e.srv.publicLn.open() == 4 })
	done := make(chan int, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		res, err := client.Post(e.base+TicketPath, "", nil)
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	select {
	case status := <-done:
		t.Fatalf("a client beyond --max-conns was served (%d) while the listener was full", status)
	case <-time.After(300 * time.Millisecond):
	}
	transports[0].CloseIdleConnections() // one slot frees
	select {
	case status := <-done:
		if status != http.StatusUnauthorized {
			t.Fatalf("waiting client: status %d, want 401", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting client was not served after a connection closed")
	}
}
