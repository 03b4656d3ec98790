// Command imagebuild builds the OCVR container images without a Docker
// engine: for each service it compiles a static binary (CGO_ENABLED=0) per
// platform, puts it on an empty base with CA certificates and a non-root
// user, and writes an OCI image layout as a tarball (an "oci-archive").
//
//	imagebuild build --out bin/images --registry ghcr.io/ocvr --tag v1.2.3 \
//	    --version "$(git describe --tags --always --dirty)" \
//	    --platforms linux/amd64,linux/arm64 \
//	    gateway=./gateway/cmd/gateway ticketsvc=./ticketsvc/cmd/ticketsvc
//	imagebuild inspect bin/images/ocvr-gateway.tar      # config of each platform
//	imagebuild extract bin/images/ocvr-gateway.tar DIR  # root filesystem (linux/amd64)
//
// The images are what deploy/docker/*.Dockerfile build with an engine: the
// binary at /usr/local/bin/<service>, user 65532:65532, no shell, nothing
// writable needed. Builds are reproducible: file times and the image's
// creation time come from --created (default: $SOURCE_DATE_EPOCH, else 0),
// and the binaries carry the commit (-buildvcs) and --version (-X), so
// `gateway --version` and go_build_info name the build. Beside each tarball
// a CycloneDX SBOM (<image>.cdx.json) lists the modules linked into each
// platform's binary (sbom.go).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

const usage = `Usage:
  imagebuild build [flags] SERVICE=PACKAGE...   build one image per service
  imagebuild inspect IMAGE.tar                  print the image config of each platform
  imagebuild extract IMAGE.tar DIR [PLATFORM]   unpack the root filesystem (default linux/<this arch>)

Run "imagebuild build --help" for the build flags.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "build":
		return buildCmd(args[1:], stdout, stderr)
	case "inspect":
		if len(args) != 2 {
			return errors.New("usage: imagebuild inspect IMAGE.tar")
		}
		return inspectCmd(args[1], stdout)
	case "extract":
		if len(args) < 3 || len(args) > 4 {
			return errors.New("usage: imagebuild extract IMAGE.tar DIR [PLATFORM]")
		}
		platform := "linux/" + runtime.GOARCH
		if len(args) == 4 {
			platform = args[3]
		}
		return extractCmd(args[1], args[2], platform)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func buildCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imagebuild build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bin/images", "directory of the image tarballs (<prefix><service>.tar)")
	prefix := fs.String("prefix", "ocvr-", "image name prefix: service gateway becomes image ocvr-gateway")
	registry := fs.String("registry", "", "registry/path recorded in the image reference (org.opencontainers.image.ref.name), e.g. ghcr.io/ocvr")
	tag := fs.String("tag", "dev", "image tag")
	platforms := fs.String("platforms", "linux/"+runtime.GOARCH, "comma-separated os/arch[/variant] list; more than one writes a multi-platform index")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt (for TLS to NATS)")
	created := fs.String("created", "", "image creation time and file times, RFC 3339 or unix seconds (default $SOURCE_DATE_EPOCH, else 1970-01-01)")
	revision := fs.String("revision", "", "source revision label (org.opencontainers.image.revision)")
	source := fs.String("source", "", "source URL label (org.opencontainers.image.source)")
	dir := fs.String("C", "", "run go build in this directory (default: the current one)")
	version := fs.String("version", "", "version stamped into the binaries (--version, go_build_info), e.g. from git describe; empty: a pseudo-version from the VCS revision")
	buildVCS := fs.Bool("buildvcs", true, "record the commit in the binaries (go build -buildvcs); false where git cannot read the checkout")
	var labels multiFlag
	fs.Var(&labels, "label", "extra label KEY=VALUE (repeatable)")
	var ports multiFlag
	fs.Var(&ports, "port", "SERVICE=PORT[/tcp],… exposed ports of a service (repeatable), e.g. gateway=8081,9081")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: imagebuild build [flags] SERVICE=PACKAGE...\n\nCompiles each PACKAGE (go build, CGO_ENABLED=0) for every platform and\nwrites OUT/<prefix>SERVICE.tar, an OCI image layout tarball.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no SERVICE=PACKAGE given")
	}
	when, err := parseCreated(*created)
	if err != nil {
		return err
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	extra, err := parseKV(labels, "--label")
	if err != nil {
		return err
	}
	exposed := map[string][]string{}
	for _, p := range ports {
		svc, list, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--port %q: want SERVICE=PORT,…", p)
		}
		for _, port := range strings.Split(list, ",") {
			if !strings.Contains(port, "/") {
				port += "/tcp"
			}
			exposed[svc] = append(exposed[svc], port)
		}
	}
	ca, err := os.ReadFile(*caCerts)
	if err != nil {
		return fmt.Errorf("CA certificates: %w (install Debian's ca-certificates or pass --ca-certs)", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	for _, arg := range fs.Args() {
		svc, pkg, ok := strings.Cut(arg, "=")
		if !ok || svc == "" || pkg == "" {
			return fmt.Errorf("%q: want SERVICE=PACKAGE", arg)
		}
		spec := Spec{
			Name:      *prefix + svc,
			Binary:    svc,
			CACerts:   ca,
			Created:   when,
			Ports:     exposed[svc],
			Labels:    map[string]string{},
			Reference: imageRef(*registry, *prefix+svc, *tag),

			SourceVersion: *version,
		}
		spec.Labels["org.opencontainers.image.title"] = spec.Name
		spec.Labels["org.opencontainers.image.description"] = "OCVR Realtime " + svc
		spec.Labels["org.opencontainers.image.version"] = *tag
		spec.Labels["org.opencontainers.image.created"] = when.UTC().Format(time.RFC3339)
		if *revision != "" {
			spec.Labels["org.opencontainers.image.revision"] = *revision
		}
		if *source != "" {
			spec.Labels["org.opencontainers.image.source"] = *source
		}
		for k, v := range extra {
			spec.Labels[k] = v
		}
		bins := map[string]string{}
		for _, p := range plats {
			bin := filepath.Join(tmp, p.OS+"-"+p.Architecture+p.Variant, svc)
			if err := goBuild(*dir, pkg, bin, p, buildFlags{version: *version, vcs: *buildVCS}, stderr); err != nil {
				return err
			}
			bins[PlatformString(p)] = bin
		}
		path := filepath.Join(*out, spec.Name+".tar")
		if err := Build(spec, plats, bins, path); err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
		sbom, err := WriteSBOM(spec, plats, bins, path)
		if err != nil {
			return fmt.Errorf("%s SBOM: %w", spec.Name, err)
		}
		fmt.Fprintf(stdout, "%s: %s (%s), SBOM %s\n", path, spec.Reference, *platforms, sbom)
	}
	return nil
}

// buildFlags are what is stamped into a binary.
type buildFlags struct {
	version string // -X buildinfo.version
	vcs     bool   // -buildvcs
}

// versionVar is the variable release builds stamp (pkg/buildinfo).
const versionVar = "github.com/ocvr/realtime/pkg/buildinfo.version"

// goBuild compiles a static, stripped, reproducible binary: -trimpath (no
// build machine paths), no build id, the commit recorded by -buildvcs
// (vcs.revision, vcs.time, vcs.modified: the same for the same checkout)
// and the version stamped with -X. Same source, same bytes.
func goBuild(dir, pkg, out string, p v1.Platform, f buildFlags, stderr io.Writer) error {
	gobin := "go"
	if g := os.Getenv("GO"); g != "" {
		gobin = g
	}
	ldflags := "-s -w -buildid="
	if f.version != "" {
		if strings.ContainsAny(f.version, " '\"\t\n") {
			return fmt.Errorf("--version %q: no spaces or quotes", f.version)
		}
		ldflags += " -X " + versionVar + "=" + f.version
	}
	cmd := exec.Command(gobin, "build", "-trimpath", fmt.Sprintf("-buildvcs=%t", f.vcs), "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w", pkg, p.OS, p.Architecture, err)
	}
	return nil
}

func imageRef(registry, name, tag string) string {
	if registry = strings.TrimSuffix(registry, "/"); registry != "" {
		name = registry + "/" + name
	}
	return name + ":" + tag
}

func parseCreated(s string) (time.Time, error) {
	if s == "" {
		s = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--created %q: want RFC 3339 or unix seconds", s)
	}
	return t.UTC(), nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(p), "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] != "linux" || parts[1] == "" {
			return nil, fmt.Errorf("platform %q: want linux/ARCH[/VARIANT]", p)
		}
		pl := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			pl.Variant = parts[2]
		}
		out = append(out, pl)
	}
	return out, nil
}

func parseKV(list []string, flagName string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func inspectCmd(path string, stdout io.Writer) error {
	imgs, err := Load(path)
	if err != nil {
		return err
	}
	type entry struct {
		Platform  string    `json:"platform"`
		Reference string    `json:"reference,omitempty"`
		Config    v1.Config `json:"config"`
		Files     []string  `json:"files"`
	}
	var out []entry
	for _, im := range imgs {
		cf, err := im.Image.ConfigFile()
		if err != nil {
			return err
		}
		files, err := ListFiles(im.Image)
		if err != nil {
			return err
		}
		var names []string
		for _, f := range files {
			names = append(names, fmt.Sprintf("%s %d:%d %s", f.Mode, f.UID, f.GID, f.Name))
		}
		out = append(out, entry{Platform: im.Platform.OS + "/" + im.Platform.Architecture, Reference: im.Reference, Config: cf.Config, Files: names})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func extractCmd(path, dir, platform string) error {
	imgs, err := Load(path)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if PlatformString(im.Platform) == platform {
			return Extract(im.Image, dir)
		}
	}
	return fmt.Errorf("%s has no %s image", path, platform)
}
