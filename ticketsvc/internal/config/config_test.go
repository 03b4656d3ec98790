package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/ticketsvc/internal/server"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Server, server.DefaultConfig()) {
		t.Errorf("defaults\n got %+v\nwant %+v", c.Server, server.DefaultConfig())
	}
	if c.LogLevel != slog.LevelInfo {
		t.Errorf("log level %v", c.LogLevel)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Server.AdminListen != "127.0.0.1:9080" ||
		c.Server.NATSURLs[0] != "nats://127.0.0.1:4222" || c.Server.RateLimit != 30 || c.Server.BodyLimit != 4096 {
		t.Errorf("defaults differ from DESIGN.md §7: %+v", c.Server)
	}
}

func TestEnvAndFlags(t *testing.T) {
	vars := map[string]string{
		"OCVR_LISTEN":           "0.0.0.0:8000",
		"OCVR_ADMIN_LISTEN":     "0.0.0.0:9000",
		"OCVR_NATS_URL":         "nats://a:4222, nats://b:4222,",
		"OCVR_NATS_CREDS":       "/etc/nats/creds",
		"OCVR_NATS_TLS_CA":      "/ca.pem",
		"OCVR_NATS_TLS_CERT":    "/cert.pem",
		"OCVR_NATS_TLS_KEY":     "/key.pem",
		"OCVR_SUBJECT_PREFIX":   "staging.ocvr",
		"OCVR_SESSIONS_BUCKET":  "s_bucket",
		"OCVR_TICKETS_BUCKET":   "t_bucket",
		"OCVR_ALLOWED_ORIGINS":  "https://app.example.com,https://*.example.com",
		"OCVR_RATE_LIMIT":       "5",
		"OCVR_BODY_LIMIT":       "1MB",
		"OCVR_LOG_LEVEL":        "debug",
		"OCVR_SHUTDOWN_TIMEOUT": "40s",
		"OCVR_KV_TIMEOUT":       "750ms",
		"OCVR_MAX_INFLIGHT":     "64",
		"OCVR_MAX_CONNS":        "1000",
	}
	c, err := Parse(nil, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	want := server.Config{
		Listen: "0.0.0.0:8000", AdminListen: "0.0.0.0:9000",
		NATSURLs:      []string{"nats://a:4222", "nats://b:4222"},
		NATSCredsFile: "/etc/nats/creds", NATSTLSCAFile: "/ca.pem", NATSTLSCertFile: "/cert.pem", NATSTLSKeyFile: "/key.pem",
		SubjectPrefix: "staging.ocvr", SessionsBucket: "s_bucket", TicketsBucket: "t_bucket",
		AllowedOrigins: []string{"https://app.example.com", "https://*.example.com"},
		RateLimit:      5, BodyLimit: 1 << 20, ShutdownTimeout: 40 * time.Second, KVTimeout: 750 * time.Millisecond,
		MaxInflight: 64, MaxConns: 1000,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("from env\n got %+v\nwant %+v", s, want)
	}
	if c.LogLevel != slog.LevelDebug {
		t.Errorf("log level %v", c.LogLevel)
	}

	// A flag on the command line wins over its variable; the others still apply.
	c, err = Parse([]string{"--listen", "127.0.0.1:1", "--rate-limit=0", "--log-level", "warn", "--allowed-origins="}, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:1" || c.Server.RateLimit != 0 || c.LogLevel != slog.LevelWarn || len(c.Server.AllowedOrigins) != 0 {
		t.Errorf("flags did not win: %+v level %v", c.Server, c.LogLevel)
	}
	if c.Server.AdminListen != "0.0.0.0:9000" {
		t.Errorf("env no longer applied to other flags: %q", c.Server.AdminListen)
	}
}

func TestEmptyEnvIsUnset(t *testing.T) {
	c, err := Parse(nil, env(map[string]string{"OCVR_LISTEN": "", "OCVR_RATE_LIMIT": ""}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != server.DefaultListen || c.Server.RateLimit != server.DefaultRateLimit {
		t.Errorf("empty env overrode defaults: %+v", c.Server)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown flag", []string{"--nope"}, nil, "nope"},
		{"positional", []string{"serve"}, nil, "unexpected argument"},
		{"log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"log level env", nil, map[string]string{"OCVR_LOG_LEVEL": "loud"}, "OCVR_LOG_LEVEL"},
		{"body limit", []string{"--body-limit", "4 parsecs"}, nil, "body-limit"},
		{"body limit zero", []string{"--body-limit", "0"}, nil, "body-limit"},
		{"rate limit", []string{"--rate-limit", "-1"}, nil, "rate-limit"},
		{"rate limit env", nil, map[string]string{"OCVR_RATE_LIMIT": "many"}, "OCVR_RATE_LIMIT"},
		{"origins", []string{"--allowed-origins", "localhost:3000"}, nil, "allowed-origins"},
		{"prefix", []string{"--subject-prefix", "a.>"}, nil, "subject-prefix"},
		{"jetstream domain", []string{"--jetstream-domain", "hub.eu"}, nil, "jetstream-domain"},
		{"no nats", []string{"--nats-url", " , "}, nil, "nats-url"},
		{"timeout", []string{"--shutdown-timeout", "0s"}, nil, "shutdown-timeout"},
		{"max inflight zero", []string{"--max-inflight", "0"}, nil, "max-inflight"},
		{"max inflight env", nil, map[string]string{"OCVR_MAX_INFLIGHT": "-5"}, "max-inflight"},
		{"max conns", []string{"--max-conns", "-1"}, nil, "max-conns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestBodyLimitForms(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4KB": 4096, "4kib": 4096, "4K": 4096, "1MB": 1 << 20, "512B": 512, "2 MiB": 2 << 20} {
		c, err := Parse([]string{"--body-limit", in}, env(nil), io.Discard)
		if err != nil || c.Server.BodyLimit != want {
			t.Errorf("--body-limit %s: %d, %v; want %d", in, c.Server.BodyLimit, err, want)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v, want flag.ErrHelp", err)
	}
	help := out.String()
	flags := []string{
		"listen", "admin-listen", "nats-url", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key",
		"subject-prefix", "jetstream-domain", "sessions-bucket", "tickets-bucket", "allowed-origins", "rate-limit", "body-limit",
		"log-level", "shutdown-timeout", "kv-timeout", "max-inflight", "max-conns",
	}
	for _, f := range flags {
		if !strings.Contains(help, "--"+f+" ") {
			t.Errorf("--help lacks --%s", f)
		}
		if !strings.Contains(help, EnvName(f)) {
			t.Errorf("--help lacks %s", EnvName(f))
		}
	}
	// Nothing registered is left undocumented above.
	if n := strings.Count(help, "\n  --"); n != len(flags) {
		t.Errorf("--help documents %d flags, the test knows %d:\n%s", n, len(flags), help)
	}
}
