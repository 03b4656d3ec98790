package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// TestHardeningFlags: the per-user connection cap and the handshake
// timeout have their documented defaults, environment variables, and
// refuse nonsense; --max-connections-per-user=0 means no limit.
func TestHardeningFlags(t *testing.T) {
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.MaxConnsPerUser != 16 || c.HandshakeTimeout != 10*time.Second || DefaultHandshakeTimeout != 10*time.Second {
		t.Errorf("defaults: per-user %d, handshake %v; documented 16 and 10s", c.Gateway.MaxConnsPerUser, c.HandshakeTimeout)
	}
	if MaxHeaderBytes != 32<<10 {
		t.Errorf("MaxHeaderBytes %d, documented 32 KiB", MaxHeaderBytes)
	}

	c, err = Parse([]string{"--max-connections-per-user=4", "--handshake-timeout=2s"}, env(nil), &bytes.Buffer{})
	if err != nil || c.Gateway.MaxConnsPerUser != 4 || c.HandshakeTimeout != 2*time.Second {
		t.Errorf("flags: %+v %v", c, err)
	}
	c, err = Parse(nil, env(map[string]string{"OCVR_MAX_CONNECTIONS_PER_USER": "0", "OCVR_HANDSHAKE_TIMEOUT": "3s"}), &bytes.Buffer{})
	if err != nil || c.Gateway.MaxConnsPerUser != -1 || c.HandshakeTimeout != 3*time.Second {
		t.Errorf("env, 0 = no limit: per-user %d handshake %v err %v", c.Gateway.MaxConnsPerUser, c.HandshakeTimeout, err)
	}
	for _, args := range [][]string{{"--max-connections-per-user=-1"}, {"--handshake-timeout=0s"}, {"--handshake-timeout=-1s"}} {
		if _, err := Parse(args, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}

	var out bytes.Buffer
	if _, err := Parse([]string{"--help"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, name := range []string{"-max-connections-per-user", "-handshake-timeout"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help lacks %s", name)
		}
	}
}
