package redact_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/redact"
)

const tk = "wst_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE"

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws://h/v1/ws?ticket=" + tk, "ws://h/v1/ws?ticket=REDACTED"},
		{"ws://h/v1/ws?a=1&ticket=" + tk + "&b=2", "ws://h/v1/ws?a=1&ticket=REDACTED&b=2"},
		{`Get "http://h/v1/ws?ticket=abc": dial tcp: refused`, `Get "http://h/v1/ws?ticket=REDACTED": dial tcp: refused`},
		{"ws://h/v1/ws?TICKET=abc#frag", "ws://h/v1/ws?TICKET=REDACTED#frag"},
		{"x?token=t1&access_token=t2;session=t3", "x?token=REDACTED&access_token=REDACTED;session=REDACTED"},
		{"ticket " + tk + " refused", "ticket wst_REDACTED refused"},
		{`{"session":"sess_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4"}`, `{"session":"sess_REDACTED"}`},
		{"ws://h/v1/ws?ticket=", "ws://h/v1/ws?ticket=REDACTED"},
		{"nothing to see: sess_id ticket_id x=1", "nothing to see: sess_id ticket_id x=1"},
		{"ws://h/v1/ws?ticket=" + tk + "&resume=rt1_AAAAAAAAMDk.q2V0aGlu&seq=7", "ws://h/v1/ws?ticket=REDACTED&resume=REDACTED&seq=7"},
		{"token rt1_AAAAAAAAMDkAAAAAZYmy.q2V0aGluZy1zaWduZWQ kept", "token rt1_REDACTED kept"},
		{"plain", "plain"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := redact.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws://127.0.0.1:8081/v1/ws?ticket=" + tk, "ws://127.0.0.1:8081/v1/ws?ticket=REDACTED"},
		{"nats://user:secret@nats:4222", "nats://user:REDACTED@nats:4222"},
		{"nats://s3cr3ttoken@nats:4222", "nats://REDACTED@nats:4222"},
		{"http://h:8080", "http://h:8080"},
		{"::not a url?ticket=x", "::not a url?ticket=REDACTED"},
		// NATS takes a server without a scheme: the parser sees "user:" as one.
		{"ops:s3cret@nats:4222", "REDACTED@nats:4222"},
		{"nats:4222", "nats:4222"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		// Unparsable: everything up to the last @ may be userinfo.
		{"nats://ops:s3 cret@nats:4222", "nats://REDACTED@nats:4222"},
		{"nats://ops:p@ss%zz@nats:4222", "nats://REDACTED@nats:4222"},
		// An @ after the authority of a URL that parses is not userinfo.
		{"https://h/users/a@b.example?ticket=x", "https://h/users/a@b.example?ticket=REDACTED"},
	}
	for _, tc := range tests {
		if got := redact.URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLs(t *testing.T) {
	got := redact.URLs([]string{"nats://a:4222", "nats://ops:s3cret@b:4222", "tok3n@c:4222", "ws://g/v1/ws?ticket=" + tk})
	want := "nats://a:4222,nats://ops:REDACTED@b:4222,REDACTED@c:4222,ws://g/v1/ws?ticket=REDACTED"
	if got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
	if got := redact.URLs(nil); got != "" {
		t.Errorf("URLs(nil) = %q", got)
	}
}

// chain lists every message in err's tree.
func chain(err error) []string {
	if err == nil {
		return nil
	}
	out := []string{err.Error()}
	if ue, ok := err.(*url.Error); ok {
		out = append(out, ue.URL)
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, chain(e.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			out = append(out, chain(c)...)
		}
	}
	return out
}

func TestError(t *testing.T) {
	op := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	ue := &url.Error{Op: "Get", URL: "http://h/v1/ws?ticket=" + tk, Err: op}
	err := fmt.Errorf("dial gateway: %w", fmt.Errorf("failed to WebSocket dial: %w", ue))
	got := redact.Error(err)
	for _, m := range chain(got) {
		if strings.Contains(m, tk) {
			t.Errorf("secret in %q", m)
		}
	}
	if want := `dial gateway: failed to WebSocket dial: Get "http://h/v1/ws?ticket=REDACTED": dial tcp: connection refused`; got.Error() != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var gotOp *net.OpError
	if !errors.As(got, &gotOp) || gotOp != op {
		t.Error("the *net.OpError is no longer in the chain")
	}
	var gotURL *url.Error
	if !errors.As(got, &gotURL) || gotURL.URL != "http://h/v1/ws?ticket=REDACTED" {
		t.Errorf("url.Error = %+v", gotURL)
	}
	if ue.URL != "http://h/v1/ws?ticket="+tk {
		t.Error("the original error was modified")
	}

	ctxErr := fmt.Errorf("dial ws://h/?ticket=%s: %w", tk, context.DeadlineExceeded)
	if got := redact.Error(ctxErr); !errors.Is(got, context.DeadlineExceeded) || strings.Contains(got.Error(), tk) {
		t.Errorf("context error: %v", got)
	}
	clean := errors.New("no secret here")
	if redact.Error(clean) != clean {
		t.Error("an error without a secret was replaced")
	}
	if redact.Error(nil) != nil {
		t.Error("nil")
	}
	// A message that hides its cause's secret is still redacted below.
	hidden := &quiet{err: ue}
	for _, m := range chain(redact.Error(hidden)) {
		if strings.Contains(m, tk) {
			t.Errorf("secret in %q", m)
		}
	}
}

type quiet struct{ err error }

func (q *quiet) Error() string { return "failed" }
func (q *quiet) Unwrap() error { return q.err }
