package main

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// testVersion is what the images this package builds itself are stamped
// with (make images stamps git describe).
const testVersion = "v0.0.0-imagebuild-test"

// gitRevision is the checkout's commit, "" where git cannot read it (then
// the images are built without -buildvcs and name no commit).
func gitRevision(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot(t), "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	if err := exec.Command("git", "-C", repoRoot(t), "status", "--porcelain").Run(); err != nil {
		return "" // git sees the commit but cannot read the tree: make images turns -buildvcs off
	}
	return strings.TrimSpace(string(out))
}

// checkVersion: the image's binary names the commit it was built from
// (--version and the build information go_build_info is made of), not
// "(devel)" as images built with -buildvcs=false and no stamp did.
func checkVersion(t *testing.T, svc, rootfs string) {
	t.Helper()
	bin := filepath.Join(rootfs, "usr/local/bin", svc)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", svc, err, out)
	}
	line := strings.TrimSpace(string(out))
	if strings.Contains(line, "(devel)") || strings.Contains(line, "unknown revision") {
		t.Errorf("%s --version = %q: names no build", svc, line)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	// (-trimpath keeps -ldflags out of the build information: the stamp
	// shows in --version only.)
	if os.Getenv("OCVR_IMAGES_DIR") == "" && !strings.Contains(line, " "+testVersion+" ") {
		t.Errorf("%s --version = %q, want the stamped %s", svc, line, testVersion)
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" {
		t.Errorf("%s: build settings %v, want -trimpath and CGO_ENABLED=0", svc, settings)
	}
	rev := gitRevision(t)
	if rev == "" {
		t.Logf("%s --version: %s (git cannot read the checkout: no commit to compare)", svc, line)
		return
	}
	if settings["vcs.revision"] != rev {
		t.Errorf("%s: vcs.revision %q, want the checkout's %s", svc, settings["vcs.revision"], rev)
	}
	if !strings.Contains(line, rev[:12]) {
		t.Errorf("%s --version = %q, want the commit %s", svc, line, rev[:12])
	}
	t.Logf("%s --version: %s", svc, line)
}

// checkSBOM: beside each tarball, a CycloneDX SBOM naming the image by the
// digest a registry will show and listing exactly the modules linked into
// the image's binary.
func checkSBOM(t *testing.T, svc, tarball, bin string) {
	t.Helper()
	f, err := os.Open(SBOMPath(tarball))
	if err != nil {
		t.Fatalf("no SBOM beside %s: %v", tarball, err)
	}
	defer f.Close()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil || bom.Components == nil {
		t.Fatalf("SBOM without spec 1.6, metadata or components")
	}
	digest, err := TopDigest(tarball)
	if err != nil {
		t.Fatal(err)
	}
	img := bom.Metadata.Component
	if img.Type != cdx.ComponentTypeContainer || img.Name != "ocvr-"+svc || !strings.Contains(img.PackageURL, strings.ReplaceAll(digest.String(), ":", "%3A")) {
		t.Errorf("SBOM image component %+v, want container ocvr-%s at %s", img, svc, digest)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{goPURL("stdlib", bi.GoVersion): true}
	for _, d := range bi.Deps {
		if d.Version != "(devel)" {
			want[goPURL(d.Path, d.Version)] = true
		}
	}
	got := map[string]bool{}
	for _, c := range *bom.Components {
		if c.Type == cdx.ComponentTypeLibrary && !strings.Contains(c.Name, "github.com/ocvr/realtime") {
			got[c.PackageURL] = true
		}
	}
	for p := range want {
		if !got[p] {
			t.Errorf("SBOM misses %s, linked into the binary", p)
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("SBOM lists %s, which is not in the binary", p)
		}
	}
	if len(want) < 10 {
		t.Errorf("only %d modules in the binary?", len(want))
	}
}

// TestSBOMReproducible: the same inputs give the same SBOM bytes (serial
// number and timestamp come from the contents and --created), and the
// modules are the binary's. The binary is this test's own executable.
func TestSBOMReproducible(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "ocvr-x", Binary: "x", Reference: "ghcr.io/ocvr/ocvr-x:v1", CACerts: []byte("certs"),
		Created: time.Unix(1764403200, 0).UTC(), Labels: map[string]string{"org.opencontainers.image.version": "v1"},
		SourceVersion: "v1.2.3-4-gabcdef"}
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	bins := map[string]string{"linux/amd64": exe, "linux/arm64": exe}
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	var outs [][]byte
	for range 2 {
		bom, err := SBOM(spec, plats, bins, digest)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two SBOMs of the same inputs differ")
	}
	s := string(outs[0])
	for _, want := range []string{
		`"serialNumber":"urn:uuid:`, `"timestamp":"2025-11-29T08:00:00Z"`,
		`pkg:oci/ocvr-x@sha256%3A` + strings.Repeat("ab", 32) + `?repository_url=ghcr.io%2Focvr%2Focvr-x\u0026tag=v1`,
		`pkg:golang/github.com/CycloneDX/cyclonedx-go@v0.12.0`,
		`pkg:golang/github.com/ocvr/realtime/deploy/imagebuild@v1.2.3-4-gabcdef`,
		`"bom-ref":"/usr/local/bin/x:linux/arm64"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("SBOM lacks %s", want)
		}
	}
}
