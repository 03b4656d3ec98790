package config

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	d := gateway.DefaultConfig()
	if c.Listen != "127.0.0.1:8081" || c.AdminListen != "127.0.0.1:9081" {
		t.Errorf("listen %s admin %s", c.Listen, c.AdminListen)
	}
	if !reflect.DeepEqual(c.NATS.URLs, []string{"nats://127.0.0.1:4222"}) {
		t.Errorf("nats urls %v", c.NATS.URLs)
	}
	if c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 40*time.Second {
		t.Errorf("log level %v shutdown %v", c.LogLevel, c.ShutdownTimeout)
	}
	g := c.Gateway
	if g.HeartbeatInterval != d.HeartbeatInterval || g.HeartbeatTimeout != d.HeartbeatTimeout || g.ReadLimit != 4096 ||
		g.MaxSubscriptions != 500 || g.QueueSize != 256 || g.FrameRate != 20 || g.FrameBurst != 40 || g.FloodLimit != 100 ||
		g.TypingThrottle != 3*time.Second || g.DrainWindow != 20*time.Second || g.SocketSendBuffer != 0 ||
		g.SubjectPrefix != "ocvr" || !reflect.DeepEqual(g.AllowedOrigins, d.AllowedOrigins) || g.PodName == "" {
		t.Errorf("gateway config %+v", g)
	}
}

func TestEnvAndFlags(t *testing.T) {
	e := env(map[string]string{
		"OCVR_NATS_URL":           "nats://a:4222, nats://b:4222",
		"OCVR_QUEUE_SIZE":         "64",
		"OCVR_ALLOWED_ORIGINS":    "https://app.ocvr.example,https://*.ocvr.example",
		"OCVR_HEARTBEAT_INTERVAL": "10s",
		"OCVR_HEARTBEAT_TIMEOUT":  "25s",
		"OCVR_LOG_LEVEL":          "debug",
		"OCVR_SOCKET_SEND_BUFFER": "65536",
		"OCVR_POD_NAME":           "gw-env",
		"OCVR_FRAME_RATE":         "2.5",
	})
	c, err := Parse([]string{"--queue-size", "128", "--pod-name=gw-flag"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.NATS.URLs, []string{"nats://a:4222", "nats://b:4222"}) {
		t.Errorf("nats urls %v", c.NATS.URLs)
	}
	if c.Gateway.QueueSize != 128 || c.Gateway.PodName != "gw-flag" {
		t.Errorf("a flag must win over the environment: queue %d pod %s", c.Gateway.QueueSize, c.Gateway.PodName)
	}
	if !reflect.DeepEqual(c.Gateway.AllowedOrigins, []string{"https://app.ocvr.example", "https://*.ocvr.example"}) {
		t.Errorf("origins %v", c.Gateway.AllowedOrigins)
	}
	if c.Gateway.HeartbeatInterval != 10*time.Second || c.Gateway.HeartbeatTimeout != 25*time.Second ||
		c.LogLevel != slog.LevelDebug || c.Gateway.SocketSendBuffer != 65536 || c.Gateway.FrameRate != 2.5 {
		t.Errorf("config %+v", c)
	}
}

// TestEveryFlagHasEnv: each flag can be set through OCVR_<FLAG>, and --help
// documents every flag and the convention.
func TestEveryFlagHasEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	if !strings.Contains(help, "OCVR_") {
		t.Errorf("--help does not explain the OCVR_* variables:\n%s", help)
	}
	for _, name := range []string{"listen", "admin-listen", "nats-url", "nats-creds", "allowed-origins", "heartbeat-interval",
		"heartbeat-timeout", "max-frame-bytes", "max-subscriptions", "queue-size", "write-timeout", "socket-send-buffer",
		"frame-rate", "frame-burst", "flood-limit", "typing-throttle", "soft-max-connections", "hard-max-connections",
		"readiness-delay", "drain-window", "shutdown-timeout", "log-level", "subject-prefix", "pod-name",
		"stream-name", "continuity-window", "stream-replicas", "stream-max-bytes", "no-continuity"} {
		if !strings.Contains(help, "-"+name) {
			t.Errorf("--help lacks --%s", name)
		}
	}
	// A bad value in the environment names the variable.
	_, err = Parse(nil, env(map[string]string{"OCVR_QUEUE_SIZE": "lots"}), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "OCVR_QUEUE_SIZE") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	cases := map[string][]string{
		"timeout not above interval": {"--heartbeat-interval=30s", "--heartbeat-timeout=30s"},
		"unknown flag":               {"--nope"},
		"extra argument":             {"serve"},
		"bad log level":              {"--log-level=loud"},
		"negative frame limit":       {"--max-frame-bytes=-1"},
		"negative queue":             {"--queue-size=-1"},
		"negative subscriptions":     {"--max-subscriptions=-5"},
		"negative frame rate":        {"--frame-rate=-1"},
		"negative burst":             {"--frame-burst=-1"},
		"negative flood limit":       {"--flood-limit=-1"},
		"negative write timeout":     {"--write-timeout=-1s"},
		"negative typing throttle":   {"--typing-throttle=-1s"},
		"negative send buffer":       {"--socket-send-buffer=-1"},
		"negative hard max":          {"--hard-max-connections=-1"},
		"negative soft max":          {"--soft-max-connections=-1"},
		"negative drain window":      {"--drain-window=-1s"},
		"negative readiness delay":   {"--readiness-delay=-1s"},
		"zero shutdown timeout":      {"--shutdown-timeout=0s"},
		"bad subject prefix":         {"--subject-prefix=ocvr.>"},
		"bad origin pattern":         {"--allowed-origins=https://[x"},
		"no NATS URL":                {"--nats-url= , "},
		"negative continuity window": {"--continuity-window=-1s"},
		"negative stream replicas":   {"--stream-replicas=-1"},
		"too many stream replicas":   {"--stream-replicas=6"},
		"negative stream max bytes":  {"--stream-max-bytes=-1"},
		"bad stream name":            {"--stream-name=OCVR.EVENTS"},
		"wildcard stream name":       {"--stream-name=OCVR_*"},
		"ready-again without a cap":  {"--soft-max-ready-again=10"},
		"ready-again at the cap":     {"--soft-max-connections=100", "--soft-max-ready-again=100"},
		"negative ready-again":       {"--soft-max-connections=100", "--soft-max-ready-again=-1"},
		"zero rebalance margin":      {"--rebalance-margin=0"},
		"negative rebalance margin":  {"--rebalance-margin=-0.1"},
		"zero rebalance window":      {"--rebalance-window=0s"},
		"zero rebalance rate":        {"--rebalance-max-rate=0"},
		"zero fleet interval":        {"--fleet-interval=0s"},
		"zero deletion-cost period":  {"--pod-deletion-cost-interval=0s"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(args, env(nil), &bytes.Buffer{}); err == nil {
				t.Errorf("Parse(%q) accepted", args)
			}
		})
	}
}

// TestEmptyOriginsMeansNone: --allowed-origins= (or OCVR_ALLOWED_ORIGINS="")
// allows no browser origin, as ticketsvc's does; only an unset flag gives
// the localhost defaults.
func TestEmptyOriginsMeansNone(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"flag":            {args: []string{"--allowed-origins="}},
		"env":             {env: map[string]string{"OCVR_ALLOWED_ORIGINS": ""}},
		"only separators": {args: []string{"--allowed-origins= , "}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse(tc.args, env(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if c.Gateway.AllowedOrigins == nil || len(c.Gateway.AllowedOrigins) != 0 {
				t.Fatalf("origins %#v, want an empty (non-nil) list", c.Gateway.AllowedOrigins)
			}
			// Any other empty variable still counts as unset.
			if c.Gateway.QueueSize != gateway.DefaultConfig().QueueSize {
				t.Errorf("queue size %d from an empty OCVR_QUEUE_SIZE", c.Gateway.QueueSize)
			}
		})
	}
}

// TestContinuityFlags: the event stream's flags have the documented
// defaults (those of gateway.DefaultConfig), environment variables, and
// reach gateway.Config.
func TestContinuityFlags(t *testing.T) {
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if g.StreamName != "OCVR_EVENTS" || g.ContinuityWindow != 2*time.Minute || g.StreamReplicas != 0 ||
		g.StreamMaxBytes != 0 || g.NoContinuity {
		t.Errorf("defaults: stream %q window %v replicas %d max bytes %d off %v; documented OCVR_EVENTS, 2m, 0 (auto), 0 (unlimited), false",
			g.StreamName, g.ContinuityWindow, g.StreamReplicas, g.StreamMaxBytes, g.NoContinuity)
	}
	d := gateway.DefaultConfig()
	if g.StreamName != d.StreamName || g.ContinuityWindow != d.ContinuityWindow {
		t.Errorf("flag defaults differ from the library's: %q %v vs %q %v", g.StreamName, g.ContinuityWindow, d.StreamName, d.ContinuityWindow)
	}

	c, err = Parse([]string{"--stream-name=STAGING_EVENTS", "--continuity-window=5m", "--stream-replicas=3",
		"--stream-max-bytes=1073741824", "--no-continuity"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g = c.Gateway
	if g.StreamName != "STAGING_EVENTS" || g.ContinuityWindow != 5*time.Minute || g.StreamReplicas != 3 ||
		g.StreamMaxBytes != 1<<30 || !g.NoContinuity {
		t.Errorf("flags: %q %v %d %d %v", g.StreamName, g.ContinuityWindow, g.StreamReplicas, g.StreamMaxBytes, g.NoContinuity)
	}

	c, err = Parse([]string{"--stream-replicas=1"}, env(map[string]string{
		"OCVR_STREAM_NAME":       "EVENTS_B",
		"OCVR_CONTINUITY_WINDOW": "90s",
		"OCVR_STREAM_REPLICAS":   "5",
		"OCVR_STREAM_MAX_BYTES":  "1000",
		"OCVR_NO_CONTINUITY":     "true",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g = c.Gateway
	if g.StreamName != "EVENTS_B" || g.ContinuityWindow != 90*time.Second || g.StreamReplicas != 1 ||
		g.StreamMaxBytes != 1000 || !g.NoContinuity {
		t.Errorf("env (and the flag winning for replicas): %q %v %d %d %v", g.StreamName, g.ContinuityWindow, g.StreamReplicas, g.StreamMaxBytes, g.NoContinuity)
	}
}

// TestRebalanceFlags: the rebalancing, soft-cap and deletion-cost settings
// have the library's defaults and come from flags or OCVR_* variables.
func TestRebalanceFlags(t *testing.T) {
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g, d := c.Gateway, gateway.DefaultConfig()
	if g.FleetInterval != d.FleetInterval || g.RebalanceMargin != d.RebalanceMargin || g.RebalanceWindow != d.RebalanceWindow ||
		g.RebalanceMaxRate != d.RebalanceMaxRate || g.DeletionCostInterval != d.DeletionCostInterval || g.NoRebalance || c.NoPodDeletionCost ||
		g.SoftMaxReadyAgain != 0 || c.PodNamespace != "" {
		t.Errorf("defaults differ from the library's: %+v", g)
	}
	c, err = Parse([]string{"--rebalance-window=30s"}, env(map[string]string{
		"OCVR_SOFT_MAX_CONNECTIONS":       "1000",
		"OCVR_SOFT_MAX_READY_AGAIN":       "900",
		"OCVR_NO_REBALANCE":               "true",
		"OCVR_FLEET_INTERVAL":             "5s",
		"OCVR_REBALANCE_MARGIN":           "0.2",
		"OCVR_REBALANCE_WINDOW":           "2m",
		"OCVR_REBALANCE_MAX_RATE":         "10",
		"OCVR_NO_POD_DELETION_COST":       "true",
		"OCVR_POD_NAMESPACE":              "realtime",
		"OCVR_POD_DELETION_COST_INTERVAL": "1m",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g = c.Gateway
	if g.SoftMaxReadyAgain != 900 || !g.NoRebalance || g.FleetInterval != 5*time.Second || g.RebalanceMargin != 0.2 ||
		g.RebalanceWindow != 30*time.Second || g.RebalanceMaxRate != 10 || !c.NoPodDeletionCost || c.PodNamespace != "realtime" ||
		g.DeletionCostInterval != time.Minute {
		t.Errorf("env (and the flag winning for the window): %+v, no deletion cost %v, namespace %q", g, c.NoPodDeletionCost, c.PodNamespace)
	}
}

// TestCompressionFlags: compression is negotiated by default (with the
// clients that offer it), off with --compression=false or
// OCVR_COMPRESSION=false; its minimum size.
func TestCompressionFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		on      bool
		minSize int
	}{
		{"default", nil, nil, true, 128},
		{"flag", []string{"--compression=false", "--compression-min-size=256"}, nil, false, 256},
		{"environment", nil, map[string]string{"OCVR_COMPRESSION": "false", "OCVR_COMPRESSION_MIN_SIZE": "64"}, false, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.args, env(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if c.Gateway.Compression != tc.on || c.Gateway.CompressionMinSize != tc.minSize {
				t.Fatalf("compression %v min %d, want %v %d", c.Gateway.Compression, c.Gateway.CompressionMinSize, tc.on, tc.minSize)
			}
		})
	}
}
