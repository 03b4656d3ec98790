package main

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var services = map[string]string{
	"gateway":   "./gateway/cmd/gateway",
	"ticketsvc": "./ticketsvc/cmd/ticketsvc",
}

var (
	imagesOnce sync.Once
	imagesDir  string
	imagesErr  error
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found")
		}
		dir = parent
	}
}

// images returns the directory of the image tarballs under test: the ones
// `make images` wrote when $OCVR_IMAGES_DIR names them (scripts/test-chart.sh),
// else images built here the same way.
func images(t *testing.T) string {
	t.Helper()
	imagesOnce.Do(func() {
		if d := os.Getenv("OCVR_IMAGES_DIR"); d != "" {
			imagesDir = d
			return
		}
		imagesDir, imagesErr = os.MkdirTemp("", "imagebuild-test-")
		if imagesErr != nil {
			return
		}
		root := repoRoot(t)
		var stderr bytes.Buffer
		args := []string{"build", "-C", root, "--out", imagesDir, "--registry", "ghcr.io/ocvr", "--tag", "test",
			"--version", testVersion, "--buildvcs=" + strconv.FormatBool(gitRevision(t) != ""),
			"--port", "gateway=8081,9081", "--port", "ticketsvc=8080,9080", "--created", "1764403200"}
		for svc, pkg := range services {
			args = append(args, svc+"="+pkg)
		}
		t.Setenv("GOWORK", filepath.Join(root, "go.work"))
		if err := run(args, &stderr, &stderr); err != nil {
			imagesErr = err
			t.Log(stderr.String())
		}
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imagesDir
}

// TestImages checks each service image as a container runtime would use it:
// OCI media types, entrypoint, non-root user, labels, a filesystem with no
// shell and nothing writable by the user, CA certificates, a static binary;
// then runs the entrypoint from the unpacked filesystem (chroot, as the
// image's user, when running as root) with --help.
func TestImages(t *testing.T) {
	dir := images(t)
	for svc := range services {
		t.Run(svc, func(t *testing.T) {
			path := filepath.Join(dir, "ocvr-"+svc+".tar")
			imgs, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, im := range imgs {
				if im.Platform.OS != "linux" || im.Platform.Architecture == "" {
					t.Errorf("image without a linux platform: %+v", im.Platform)
				}
				if !strings.Contains(im.Reference, "ocvr-"+svc+":") {
					t.Errorf("reference %q does not name ocvr-%s", im.Reference, svc)
				}
				checkImage(t, svc, im)
				if im.Platform.Architecture == runtime.GOARCH {
					found = true
					rootfs := runHelp(t, svc, im.Image)
					checkVersion(t, svc, rootfs)
					checkSBOM(t, svc, path, filepath.Join(rootfs, "usr/local/bin", svc))
				}
			}
			if !found {
				t.Errorf("no linux/%s image to run", runtime.GOARCH)
			}
		})
	}
}

func checkImage(t *testing.T, svc string, im Loaded) {
	t.Helper()
	img := im.Image
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want %s", mt, types.OCIManifestSchema1)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type %s", m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if want := []string{"/usr/local/bin/" + svc}; strings.Join(c.Entrypoint, " ") != want[0] {
		t.Errorf("entrypoint %q, want %q (exec form, no shell)", c.Entrypoint, want)
	}
	if len(c.Cmd) != 0 {
		t.Errorf("cmd %q: the chart passes settings as environment variables, no arguments", c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the numeric non-root 65532:65532 (runAsNonRoot needs a numeric user)", c.User)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.version", "org.opencontainers.image.created", "org.opencontainers.image.description"} {
		if c.Labels[l] == "" {
			t.Errorf("label %s missing", l)
		}
	}
	if c.StopSignal != "SIGTERM" {
		t.Errorf("stop signal %q: the services drain on SIGTERM", c.StopSignal)
	}
	if cf.OS != im.Platform.OS || cf.Architecture != im.Platform.Architecture {
		t.Errorf("config platform %s/%s, index says %s/%s", cf.OS, cf.Architecture, im.Platform.OS, im.Platform.Architecture)
	}

	files, err := ListFiles(img)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]File{}
	for _, f := range files {
		byName[f.Name] = f
		base := filepath.Base(f.Name)
		if base == "sh" || base == "bash" || base == "busybox" || base == "ash" || strings.HasPrefix(f.Name, "/bin/") || strings.HasPrefix(f.Name, "/usr/bin/") || strings.HasPrefix(f.Name, "/sbin/") {
			t.Errorf("%s: the image must hold no shell or system tools", f.Name)
		}
		if f.Type == 'l' || f.Type == '2' || f.Type == '1' {
			t.Errorf("%s: link in the image", f.Name)
		}
		owned := f.UID == 65532 || f.GID == 65532
		if owned && f.Name != "/home/nonroot" {
			t.Errorf("%s: owned by the service user, which must write nothing", f.Name)
		}
		if f.Mode.Perm()&0o022 != 0 && f.Name != "/tmp" {
			t.Errorf("%s: mode %v is group/world writable", f.Name, f.Mode)
		}
	}
	bin, ok := byName["/usr/local/bin/"+svc]
	if !ok {
		t.Fatalf("no /usr/local/bin/%s in the image", svc)
	}
	if bin.UID != 0 || bin.Mode.Perm() != 0o755 {
		t.Errorf("binary: uid %d mode %v, want root-owned 0755", bin.UID, bin.Mode)
	}
	if _, ok := byName["/etc/ssl/certs/ca-certificates.crt"]; !ok {
		t.Error("no CA certificates (TLS to NATS needs them)")
	}
	if _, ok := byName["/etc/passwd"]; !ok {
		t.Error("no /etc/passwd entry for the user")
	}
}

// runHelp unpacks the image and runs its entrypoint as the container
// runtime would: inside the image's filesystem, as its user, with only its
// environment.
func runHelp(t *testing.T, svc string, img v1.Image) (rootfs string) {
	t.Helper()
	rootfs = t.TempDir()
	if err := Extract(img, rootfs); err != nil {
		t.Fatal(err)
	}
	certs, err := os.ReadFile(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rest := certs; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); err == nil {
			n++
		}
	}
	if n == 0 {
		t.Error("the CA bundle holds no certificate")
	}
	binPath := filepath.Join(rootfs, "usr/local/bin", svc)
	ef, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): it is not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	ef.Close()

	cf, _ := img.ConfigFile()
	cmd := exec.Command(binPath, "--help")
	how := "directly (not root: no chroot)"
	if os.Geteuid() == 0 {
		cmd = exec.Command(cf.Config.Entrypoint[0], "--help")
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		cmd.Dir = "/"
		how = "in the image's filesystem as 65532:65532"
	}
	cmd.Env = cf.Config.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", svc, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s --help (%s): %v\n%s", svc, how, err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s --help did not exit", svc)
	}
	if !strings.Contains(out.String(), "OCVR_") || !strings.Contains(out.String(), "nats-url") {
		t.Errorf("%s --help does not document its flags:\n%s", svc, out.String())
	}
	t.Logf("%s --help ran %s", svc, how)
	return rootfs
}

// TestReproducible: the same inputs give the same image digest.
func TestReproducible(t *testing.T) {
	spec := Spec{Name: "ocvr-x", Binary: "x", Reference: "ocvr-x:test", CACerts: []byte("certs"),
		Created: time.Unix(1764403200, 0).UTC(), Labels: map[string]string{"a": "b"}, Ports: []string{"8080/tcp"}}
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	a, err := Image(spec, p, []byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Image(spec, p, []byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ: %s %s", da, db)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "x")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"a.tar", "b.tar"} {
		if err := Build(spec, []v1.Platform{p}, map[string]string{"linux/amd64": bin}, filepath.Join(dir, out)); err != nil {
			t.Fatal(err)
		}
	}
	ta, _ := os.ReadFile(filepath.Join(dir, "a.tar"))
	tb, _ := os.ReadFile(filepath.Join(dir, "b.tar"))
	if !bytes.Equal(ta, tb) {
		t.Error("two builds of the same inputs give different tarballs")
	}
}

// TestMultiPlatform: several platforms make an OCI index, each image with
// its platform.
func TestMultiPlatform(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "x")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "ocvr-x", Binary: "x", Reference: "ocvr-x:test", CACerts: []byte("certs"), Labels: map[string]string{}}
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	out := filepath.Join(dir, "x.tar")
	if err := Build(spec, plats, map[string]string{"linux/amd64": bin, "linux/arm64": bin}, out); err != nil {
		t.Fatal(err)
	}
	imgs, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Platform.Architecture != "amd64" || imgs[1].Platform.Architecture != "arm64" {
		t.Fatalf("got %+v", imgs)
	}
	for _, im := range imgs {
		cf, _ := im.Image.ConfigFile()
		if cf.Architecture != im.Platform.Architecture || im.Reference != "ocvr-x:test" {
			t.Errorf("%s image: config says %s, reference %q", im.Platform.Architecture, cf.Architecture, im.Reference)
		}
	}
}
