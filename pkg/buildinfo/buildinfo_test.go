package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Go != runtime.Version() || i.Version == "" {
		t.Fatalf("build info %+v", i)
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
