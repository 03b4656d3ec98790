package goruntime

import (
	"errors"
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// ratioOf is the limit the library computes: the ratio of the bytes, truncated.
func ratioOf(limit uint64, ratio float64) int64 { return int64(uint64(float64(limit) * ratio)) }

// TestApply: the soft memory limit a service sets from its container's
// limit, for each way the chart or an operator can configure it.
func TestApply(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name       string
		env        map[string]string // unset: ""
		provider   memlimit.Provider
		want       int64 // -1: the limit before (unchanged)
		wantSource string
		wantErr    bool
	}{
		{name: "cgroup limit, default ratio", provider: memlimit.Limit(gib), want: ratioOf(gib, DefaultRatio), wantSource: "cgroup"},
		{name: "chart ratio", env: map[string]string{"AUTOMEMLIMIT": "0.8"}, provider: memlimit.Limit(gib), want: ratioOf(gib, 0.8), wantSource: "cgroup"},
		{name: "no limit", provider: func() (uint64, error) { return 0, memlimit.ErrNoLimit }, want: math.MaxInt64, wantSource: "none"},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "300MiB"}, provider: memlimit.Limit(gib), want: -1, wantSource: "GOMEMLIMIT"},
		{name: "off", env: map[string]string{"AUTOMEMLIMIT": "off"}, provider: memlimit.Limit(gib), want: -1, wantSource: "off (AUTOMEMLIMIT)"},
		{name: "bad ratio", env: map[string]string{"AUTOMEMLIMIT": "90%"}, provider: memlimit.Limit(gib), wantErr: true},
		{name: "ratio above 1", env: map[string]string{"AUTOMEMLIMIT": "1.5"}, provider: memlimit.Limit(gib), wantErr: true},
		// No cgroup or /proc (a bare chroot): the service runs without a limit.
		{name: "unreadable cgroup", provider: func() (uint64, error) { return 0, errors.New("open /proc/self/mountinfo: no such file") }, want: -1, wantSource: "none (memory limit unreadable)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
				t.Setenv(k, tc.env[k])
			}
			if tc.env["AUTOMEMLIMIT"] == "" {
				unsetenv(t, "AUTOMEMLIMIT")
			}
			before := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			got, err := apply(nil, tc.provider)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, limits %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == -1 {
				want = before
			}
			if got.MemoryLimit != want || debug.SetMemoryLimit(-1) != want {
				t.Errorf("memory limit %d (runtime %d), want %d", got.MemoryLimit, debug.SetMemoryLimit(-1), want)
			}
			if got.MemorySrc != tc.wantSource || got.MaxProcs != runtime.GOMAXPROCS(0) {
				t.Errorf("limits %+v, want source %q", got, tc.wantSource)
			}
		})
	}
}
