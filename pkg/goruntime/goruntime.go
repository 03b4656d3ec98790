// Package goruntime sizes the Go runtime to the container a service runs
// in, before it starts serving.
//
// GOMAXPROCS: the runtime reads the GOMAXPROCS environment variable itself;
// the chart sets it from the container's CPU request (downward API,
// requests.cpu with divisor 1, rounded up). Without it Go (≥ 1.25) uses the
// cgroup CPU limit, or every core of the node when there is none: a pod
// requesting 1 CPU on a 96-core node would run 96 Ps, 96 gateway socket
// writers, and a GC sized for 96 cores, all throttled by the CFS quota of a
// 1-CPU share.
//
// GOMEMLIMIT: Apply sets the soft memory limit to a ratio (AUTOMEMLIMIT,
// default 0.9) of the container's memory limit read from its cgroup, so the
// GC works harder before the kernel's OOM killer is reached; the remaining
// tenth is headroom for what the Go heap does not count (goroutine stacks
// are counted; kernel socket buffers, cgo and fragmentation are not). A
// GOMEMLIMIT in the environment wins; AUTOMEMLIMIT=off turns this off.
package goruntime

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultRatio is the share of the container's memory limit given to
// GOMEMLIMIT when AUTOMEMLIMIT does not say otherwise.
const DefaultRatio = 0.9

// Limits is what the runtime was sized to.
type Limits struct {
	MaxProcs    int    // runtime.GOMAXPROCS
	MemoryLimit int64  // debug.SetMemoryLimit; math.MaxInt64: none
	MemorySrc   string // where MemoryLimit comes from
}

// Apply sets the memory limit from the container's cgroup (see the package
// comment) and reports both limits. An AUTOMEMLIMIT that is not a ratio in
// (0, 1] or "off" is an error, as is a cgroup that cannot be read; no
// memory limit at all is not.
func Apply(log *slog.Logger) (Limits, error) {
	return apply(log, memlimit.FromCgroup)
}

// apply is Apply with the memory limit's provider given (tests).
func apply(log *slog.Logger, provider memlimit.Provider) (Limits, error) {
	src := "cgroup"
	switch v, ok := os.LookupEnv("AUTOMEMLIMIT"); {
	case os.Getenv("GOMEMLIMIT") != "":
		src = "GOMEMLIMIT"
	case ok && v == "off":
		src = "off (AUTOMEMLIMIT)"
	}
	limit, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(DefaultRatio))
	if err != nil {
		return Limits{}, fmt.Errorf("memory limit: %w (AUTOMEMLIMIT must be a ratio in (0, 1] or off)", err)
	}
	if src == "cgroup" && limit == math.MaxInt64 {
		src = "none"
	}
	l := Limits{MaxProcs: runtime.GOMAXPROCS(0), MemoryLimit: debug.SetMemoryLimit(-1), MemorySrc: src}
	if log != nil {
		log.Info("go runtime sized", "gomaxprocs", l.MaxProcs, "gomemlimit", l.MemoryLimit, "gomemlimit_source", l.MemorySrc)
	}
	return l, nil
}
