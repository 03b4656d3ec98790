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
	"strconv"

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
// comment) and reports both limits. An AUTOMEMLIMIT that is neither a ratio
// in (0, 1] nor "off" is an error (a setting to fix). A memory limit that
// cannot be read (no cgroup or /proc, as in a bare chroot) is not: the
// limit is an optimisation, so the service runs without it and says so.
func Apply(log *slog.Logger) (Limits, error) {
	return apply(log, memlimit.FromCgroup)
}

// apply is Apply with the memory limit's provider given (tests).
func apply(log *slog.Logger, provider memlimit.Provider) (Limits, error) {
	src := "cgroup"
	v, ok := os.LookupEnv("AUTOMEMLIMIT")
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		src = "GOMEMLIMIT"
	case ok && v == "off":
		src = "off (AUTOMEMLIMIT)"
	case ok:
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(r) || r <= 0 || r > 1 {
			return Limits{}, fmt.Errorf("AUTOMEMLIMIT=%q: want a ratio in (0, 1] or off", v)
		}
	}
	var unread error
	limit, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(DefaultRatio))
	if err != nil {
		unread = err
		src = "none (memory limit unreadable)"
	} else if src == "cgroup" && limit == math.MaxInt64 {
		src = "none"
	}
	l := Limits{MaxProcs: runtime.GOMAXPROCS(0), MemoryLimit: debug.SetMemoryLimit(-1), MemorySrc: src}
	if log != nil {
		if unread != nil {
			log.Warn("go runtime: no GOMEMLIMIT, the container's memory limit could not be read", "err", unread.Error())
		}
		log.Info("go runtime sized", "gomaxprocs", l.MaxProcs, "gomemlimit", l.MemoryLimit, "gomemlimit_source", l.MemorySrc)
	}
	return l, nil
}
