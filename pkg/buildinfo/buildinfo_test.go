package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Go != runtime.Version() || i.Version == "" {
		t.Fatalf("build info %+v", i)
	}
}

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, when, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "2d02c6a9a79fba0186c6636ff1b41d42a92a5ddf"
	for name, tc := range map[string]struct {
		bi           *debug.BuildInfo
		stamped      string
		wantVersion  string
		wantRevision string
	}{
		// A release image: the linker stamp wins, the revision comes from -buildvcs.
		"stamped": {
			&debug.BuildInfo{Path: "x/cmd/gateway", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-07T10:59:42Z", "false")},
			"v1.4.0-3-g2d02c6a", "v1.4.0-3-g2d02c6a", rev,
		},
		// make build in a workspace: Go records the commit but no version.
		"checkout": {
			&debug.BuildInfo{Path: "x/cmd/gateway", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-07T10:59:42Z", "false")},
			"", "v0.0.0-20261207105942-2d02c6a9a79f", rev,
		},
		"checkout, modified": {
			&debug.BuildInfo{Path: "x/cmd/gateway", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-07T10:59:42Z", "true")},
			"", "v0.0.0-20261207105942-2d02c6a9a79f+dirty", rev,
		},
		// go install module@version: the module version is the version.
		"module": {
			&debug.BuildInfo{Path: "x/cmd/gateway", Main: debug.Module{Version: "v1.2.3", Sum: "h1:abc"}},
			"", "v1.2.3", "",
		},
		// The old image build (-buildvcs=false, no stamp): nothing to name.
		"nothing": {
			&debug.BuildInfo{Path: "x/cmd/gateway", Main: debug.Module{Version: "(devel)"}},
			"", "(devel)", "",
		},
		"no build info": {nil, "", "(unknown)", ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := fromBuildInfo(tc.bi, tc.stamped)
			if got.Version != tc.wantVersion || got.Revision != tc.wantRevision {
				t.Errorf("version %q revision %q, want %q %q", got.Version, got.Revision, tc.wantVersion, tc.wantRevision)
			}
			l := got.Labels()
			if l["version"] != tc.wantVersion || len(l) != 4 {
				t.Errorf("labels %v", l)
			}
		})
	}
}

func TestString(t *testing.T) {
	for name, tc := range map[string]struct {
		in   Info
		want string
	}{
		"release":  {Info{Version: "v1.2.3", Revision: "0123456789abcdef", Time: "2026-11-29T18:00:00Z", Go: "go1.26"}, "v1.2.3 (0123456789ab 2026-11-29T18:00:00Z, go1.26)"},
		"modified": {Info{Version: "(devel)", Revision: "abc", Modified: true, Go: "go1.26"}, "(devel) (abc+modified, go1.26)"},
		"no vcs":   {Info{Version: "(devel)", Go: "go1.26"}, "(devel) (unknown revision, go1.26)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
		if strings.Contains(tc.in.String(), "\n") {
			t.Errorf("%s: not one line", name)
		}
	}
}
