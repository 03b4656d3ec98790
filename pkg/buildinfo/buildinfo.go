// Package buildinfo describes the running binary: the version and VCS
// revision it was built from, for --version, logs and the go_build_info
// metric.
//
// A release build (deploy/imagebuild, `make images`) stamps the version
// with the linker, from `git describe`:
//
//	go build -buildvcs=true -ldflags "-X github.com/ocvr/realtime/pkg/buildinfo.version=v1.4.0-3-gabcdef012345" …
//
// and -buildvcs=true makes the Go toolchain record the commit (vcs.revision,
// vcs.time, vcs.modified). A build without .git (deploy/docker) stamps
// buildinfo.revision the same way. Without the stamp, a binary built from a
// checkout (make build) reports a pseudo-version made of the commit time and
// revision; only a binary built outside any checkout reports "(devel)".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
)

// version and revision are set at link time (-X) by release builds; ""
// otherwise. They are never written at run time. revision is for builds
// without the checkout's .git (a container engine's build context), where
// -buildvcs cannot record the commit.
var version, revision string

// Info is what a binary knows about its own build.
type Info struct {
	Path     string // main package path, e.g. github.com/ocvr/realtime/gateway/cmd/gateway
	Version  string // stamped version, module version, or a pseudo-version from the VCS revision
	Sum      string // module checksum (empty for builds from a checkout)
	Revision string // VCS revision, "" when not built from a checkout
	Time     string // VCS commit time (RFC 3339), "" when unknown
	Modified bool   // built from a tree with uncommitted changes
	Go       string // toolchain version
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	info := fromBuildInfo(bi, version)
	if info.Revision == "" {
		info.Revision = revision
	}
	return info
}

// fromBuildInfo derives Info from the toolchain's build information and the
// linker-stamped version (either may be missing).
func fromBuildInfo(bi *debug.BuildInfo, stamped string) Info {
	info := Info{Version: "(unknown)", Go: runtime.Version()}
	if bi == nil {
		if stamped != "" {
			info.Version = stamped
		}
		return info
	}
	info.Path = bi.Path
	info.Version = bi.Main.Version
	info.Sum = bi.Main.Sum
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
	switch {
	case stamped != "":
		info.Version = stamped
	case (info.Version == "" || info.Version == "(devel)") && info.Revision != "":
		info.Version = pseudoVersion(info.Revision, info.Time, info.Modified)
	case info.Version == "":
		info.Version = "(devel)"
	}
	return info
}

// pseudoVersion names a commit the way Go module pseudo-versions do
// (v0.0.0-yyyymmddhhmmss-abcdefabcdef), with +dirty for a modified tree.
func pseudoVersion(rev, commitTime string, modified bool) string {
	if len(rev) > 12 {
		rev = rev[:12]
	}
	ts := "00000000000000"
	if t, err := time.Parse(time.RFC3339, commitTime); err == nil {
		ts = t.UTC().Format("20060102150405")
	}
	v := "v0.0.0-" + ts + "-" + rev
	if modified {
		v += "+dirty"
	}
	return v
}

// String is one line for --version: version, revision, Go.
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

// Labels are the labels of the go_build_info metric: client_golang's
// (path, version, checksum), with the version above instead of the module
// version ("(devel)" for every build from a checkout), and the revision.
func (i Info) Labels() map[string]string {
	rev := i.Revision
	if rev != "" && i.Modified {
		rev += "+modified"
	}
	return map[string]string{
		"path":     i.Path,
		"version":  i.Version,
		"checksum": i.Sum,
		"revision": rev,
	}
}
