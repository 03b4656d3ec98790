package selfcheck

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestMainArguments: bad arguments exit 2 with a message and touch no
// network; an unreachable NATS is a failed check (1) that names the step.
func TestMainArguments(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	for _, tc := range []struct {
		name     string
		args     []string
		lookup   func(string) (string, bool)
		wantCode int
		wantOut  string
	}{
		{"no user", nil, noEnv, 2, "--user must be a positive user id"},
		{"negative user", []string{"--user=-3"}, noEnv, 2, "--user must be a positive user id"},
		{"unknown flag", []string{"--usr=3"}, noEnv, 2, "flag provided but not defined"},
		{"bad NATS settings", []string{"--user=3"}, env(map[string]string{"OCVR_SUBJECT_PREFIX": "a.>"}), 2, "NATS settings"},
		{"NATS unreachable", []string{"--user=3", "--timeout=2s"}, env(map[string]string{"OCVR_NATS_URL": "nats://127.0.0.1:1"}), 1, "FAILED: connect to NATS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), tc.args, tc.lookup, &out, &errOut)
			if code != tc.wantCode || !strings.Contains(errOut.String(), tc.wantOut) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.wantCode, tc.wantOut)
			}
		})
	}
}
