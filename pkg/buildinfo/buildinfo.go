// Package buildinfo describes the running binary: the module version and
// VCS revision the Go toolchain stamped into it, for --version and logs.
// (Prometheus exports the same as go_build_info, see collectors.)
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is what a binary knows about its own build.
type Info struct {
	Version  string // module version, e.g. v0.0.0-20261129…-abcdef (devel builds: "(devel)")
	Revision string // VCS revision, "" when not built from a checkout
	Time     string // VCS commit time (RFC 3339), "" when unknown
	Modified bool   // built from a tree with uncommitted changes
	Go       string // toolchain version
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is one line for --version: name, version, revision, Go.
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown revision"
	} else if i.Modified {
		rev += "+modified"
	}
	if i.Time != "" {
		rev += " " + i.Time
	}
	return fmt.Sprintf("%s (%s, %s)", i.Version, rev, i.Go)
}
