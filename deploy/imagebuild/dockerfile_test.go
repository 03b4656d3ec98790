package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

type instruction struct {
	cmd  string
	args string
}

// parseDockerfile returns the instructions of a Dockerfile (continuations
// joined, comments dropped): enough to check what the image will be.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trim, "\\") {
			cur += strings.TrimSuffix(trim, "\\") + " "
			continue
		}
		cur += trim
		if cur = strings.TrimSpace(cur); cur != "" {
			cmd, args, _ := strings.Cut(cur, " ")
			out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		}
		cur = ""
	}
	return out
}

// TestDockerfiles: deploy/docker/<service>.Dockerfile builds the same image
// as `make images` (no engine here to run it): a static CGO_ENABLED=0 build,
// a distroless/scratch base, the same user, entrypoint, ports and stop
// signal, and only sources that exist and that its .dockerignore lets in.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for svc := range services {
		t.Run(svc, func(t *testing.T) {
			path := filepath.Join(root, "deploy", "docker", svc+".Dockerfile")
			ins := parseDockerfile(t, path)
			var final []instruction
			stages := 0
			buildStatic := false
			for _, in := range ins {
				switch in.cmd {
				case "FROM":
					stages++
					final = nil
				case "ENV":
					if strings.Contains(in.args, "CGO_ENABLED=0") {
						buildStatic = true
					}
				case "RUN":
					if strings.Contains(in.args, "go build") && !strings.Contains(in.args, "./cmd/"+svc) {
						t.Errorf("go build does not build ./cmd/%s: %s", svc, in.args)
					}
					// Like make images, the binary names its build (--version,
					// go_build_info); without .git only the linker can stamp it.
					if strings.Contains(in.args, "go build") && (!strings.Contains(in.args, versionVar+"=${VERSION}") || !strings.Contains(in.args, "pkg/buildinfo.revision=${REVISION}")) {
						t.Errorf("go build stamps no version and revision (-X %s=${VERSION}): %s", versionVar, in.args)
					}
				case "COPY":
					if strings.Contains(in.args, "--from=") {
						break
					}
					fields := strings.Fields(in.args)
					for _, src := range fields[:len(fields)-1] {
						if strings.HasPrefix(src, "--") {
							continue
						}
						if _, err := os.Stat(filepath.Join(root, src)); err != nil {
							t.Errorf("COPY %s: not in the repository", src)
						}
					}
				}
				final = append(final, in)
			}
			if stages < 2 {
				t.Errorf("want a multi-stage build, got %d stage(s)", stages)
			}
			if !buildStatic {
				t.Error("the build stage must set CGO_ENABLED=0 (static binary)")
			}
			if _, err := os.Stat(filepath.Join(root, svc, "cmd", svc)); err != nil {
				t.Errorf("%s/cmd/%s: %v", svc, svc, err)
			}
			got := map[string]string{}
			for _, in := range final {
				got[in.cmd] = in.args
			}
			if !regexp.MustCompile(`^(gcr\.io/distroless/static[-a-z0-9]*(:nonroot)?(@sha256:[a-f0-9]+)?|scratch)$`).MatchString(got["FROM"]) {
				t.Errorf("final stage FROM %q, want distroless static or scratch", got["FROM"])
			}
			if got["USER"] != User {
				t.Errorf("USER %q, want %s like make images", got["USER"], User)
			}
			var ep []string
			if err := json.Unmarshal([]byte(got["ENTRYPOINT"]), &ep); err != nil || len(ep) != 1 || ep[0] != (Spec{Binary: svc}).Entrypoint() {
				t.Errorf("ENTRYPOINT %s, want the exec form [%q] like make images", got["ENTRYPOINT"], (Spec{Binary: svc}).Entrypoint())
			}
			if got["STOPSIGNAL"] != "SIGTERM" {
				t.Errorf("STOPSIGNAL %q", got["STOPSIGNAL"])
			}
			m := regexp.MustCompile(`--port ` + svc + `=([0-9,]+)`).FindSubmatch(mk)
			if m == nil {
				t.Fatalf("Makefile images: no --port %s=…", svc)
			}
			want := strings.Split(string(m[1]), ",")
			have := strings.Fields(got["EXPOSE"])
			sort.Strings(want)
			sort.Strings(have)
			if strings.Join(want, " ") != strings.Join(have, " ") {
				t.Errorf("EXPOSE %v, make images exposes %v", have, want)
			}
			ign, err := os.ReadFile(path + ".dockerignore")
			if err != nil {
				t.Fatalf("no %s.dockerignore: the whole repository would be the build context", filepath.Base(path))
			}
			for _, need := range []string{"!pkg/", "!" + svc + "/"} {
				if !strings.Contains(string(ign), need+"\n") {
					t.Errorf("%s.dockerignore does not let in %s", filepath.Base(path), strings.TrimPrefix(need, "!"))
				}
			}
		})
	}
}
