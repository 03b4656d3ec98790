package main

import (
	"cmp"
	"crypto/sha256"
	"debug/buildinfo"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// SBOMPath is where the bill of materials of an image tarball goes: beside
// it, ocvr-gateway.tar -> ocvr-gateway.cdx.json.
func SBOMPath(tarball string) string {
	return strings.TrimSuffix(tarball, filepath.Ext(tarball)) + ".cdx.json"
}

// SBOM is the CycloneDX bill of materials of one image: the image itself
// (by digest), the service binary of each platform, and every Go module
// linked into it with its version and go.sum hash, read from the binaries'
// build information (what `go version -m` prints) — so the list is what
// was compiled in, not what go.mod mentions. The CA bundle (from the build
// machine) is listed as a file. Same inputs, same bytes: the timestamp is
// the image's creation time and the serial number is derived from the
// contents.
func SBOM(s Spec, plats []v1.Platform, bins map[string]string, digest v1.Hash) (*cdx.BOM, error) {
	imageRef := strings.TrimSuffix(s.Reference, ":"+s.Labels["org.opencontainers.image.version"])
	repo, tag := imageRef, s.Labels["org.opencontainers.image.version"]
	q := url.Values{}
	if i := strings.LastIndex(repo, "/"); i >= 0 {
		q.Set("repository_url", repo)
	}
	if tag != "" {
		q.Set("tag", tag)
	}
	purl := fmt.Sprintf("pkg:oci/%s@%s", s.Name, strings.ReplaceAll(digest.String(), ":", "%3A")) // purl: the version percent-encoded
	if len(q) > 0 {
		purl += "?" + q.Encode()
	}
	image := cdx.Component{
		BOMRef:     purl,
		Type:       cdx.ComponentTypeContainer,
		Name:       s.Name,
		Version:    tag,
		PackageURL: purl,
		Properties: &[]cdx.Property{{Name: "oci:image:reference", Value: s.Reference}},
	}
	if rev := s.Labels["org.opencontainers.image.revision"]; rev != "" {
		*image.Properties = append(*image.Properties, cdx.Property{Name: "oci:image:revision", Value: rev})
	}

	type mod struct {
		path, version, sum string
		plats              []string
	}
	mods := map[string]*mod{} // path@version
	var apps []cdx.Component
	var deps []cdx.Dependency
	for _, p := range plats {
		ps := PlatformString(p)
		bi, err := buildinfo.ReadFile(bins[ps])
		if err != nil {
			return nil, fmt.Errorf("build information of the %s binary: %w", ps, err)
		}
		appRef := fmt.Sprintf("%s:%s", s.Entrypoint(), ps)
		props := []cdx.Property{{Name: "platform", Value: ps}, {Name: "go:main:path", Value: bi.Path}, {Name: "go:toolchain", Value: bi.GoVersion}}
		for _, st := range bi.Settings {
			props = append(props, cdx.Property{Name: "go:build:" + st.Key, Value: st.Value})
		}
		var dependsOn []string
		main := bi.Main
		all := append([]*debug.Module{&main}, bi.Deps...)
		all = append(all, &debug.Module{Path: "stdlib", Version: bi.GoVersion})
		for _, m := range all {
			if m.Replace != nil && m.Replace.Version != "" {
				m = m.Replace // a module replaced by another module version
			}
			if m.Version == "(devel)" || m.Version == "" {
				// This repository's own modules (main, workspace or ../
				// replacements): the version the build was stamped with.
				cp := *m
				cp.Version, cp.Sum = s.SourceVersion, ""
				m = &cp
			}
			key := m.Path + "@" + m.Version
			if mods[key] == nil {
				mods[key] = &mod{path: m.Path, version: m.Version, sum: m.Sum}
			}
			mods[key].plats = append(mods[key].plats, ps)
			dependsOn = append(dependsOn, goPURL(m.Path, m.Version))
		}
		apps = append(apps, cdx.Component{
			BOMRef: appRef, Type: cdx.ComponentTypeApplication, Name: s.Binary,
			Version: cmp.Or(s.SourceVersion, tag), Properties: &props,
		})
		deps = append(deps, cdx.Dependency{Ref: appRef, Dependencies: uniq(dependsOn)})
	}

	var libs []cdx.Component
	for _, m := range mods {
		c := cdx.Component{BOMRef: goPURL(m.path, m.version), Type: cdx.ComponentTypeLibrary,
			Name: m.path, Version: m.version, PackageURL: goPURL(m.path, m.version)}
		var props []cdx.Property
		if m.sum != "" {
			props = append(props, cdx.Property{Name: "go:module:sum", Value: m.sum})
		}
		if len(m.plats) < len(plats) {
			props = append(props, cdx.Property{Name: "platforms", Value: strings.Join(m.plats, ",")})
		}
		if len(props) > 0 {
			c.Properties = &props
		}
		libs = append(libs, c)
	}
	sort.Slice(libs, func(i, j int) bool { return libs[i].BOMRef < libs[j].BOMRef })
	cert := sha256.Sum256(s.CACerts)
	files := []cdx.Component{{BOMRef: "file:" + CertPath, Type: cdx.ComponentTypeFile, Name: CertPath,
		Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: fmt.Sprintf("%x", cert)}}}}

	components := append(append(apps, libs...), files...)
	var imageDeps []string
	for _, a := range apps {
		imageDeps = append(imageDeps, a.BOMRef)
	}
	imageDeps = append(imageDeps, files[0].BOMRef)
	deps = append([]cdx.Dependency{{Ref: image.BOMRef, Dependencies: &imageDeps}}, deps...)

	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{
		Timestamp: s.Created.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication,
			Name: "imagebuild", Group: "github.com/ocvr/realtime/deploy"}}},
		Component: &image,
	}
	bom.Components = &components
	bom.Dependencies = &deps
	bom.SerialNumber = serialNumber(bom)
	return bom, nil
}

// WriteSBOM builds the bill of materials of the tarball Build wrote and
// writes it beside it.
func WriteSBOM(s Spec, plats []v1.Platform, bins map[string]string, tarball string) (string, error) {
	digest, err := TopDigest(tarball)
	if err != nil {
		return "", err
	}
	bom, err := SBOM(s, plats, bins, digest)
	if err != nil {
		return "", err
	}
	path := SBOMPath(tarball)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	enc := cdx.NewBOMEncoder(f, cdx.BOMFileFormatJSON).SetPretty(true)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		f.Close()
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return path, f.Close()
}

// TopDigest is the digest a registry shows for the tarball once pushed: the
// image manifest's (one platform) or the index's (several).
func TopDigest(tarball string) (v1.Hash, error) {
	dir, err := os.MkdirTemp("", "oci-digest-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	if err := untar(tarball, dir); err != nil {
		return v1.Hash{}, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(im.Manifests) != 1 {
		return v1.Hash{}, fmt.Errorf("%s: %d top-level manifests, want 1", tarball, len(im.Manifests))
	}
	return im.Manifests[0].Digest, nil
}

// goPURL is the package URL of a Go module (pkg:golang/<path>@<version>).
func goPURL(path, version string) string {
	if version == "" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + url.PathEscape(version)
}

func uniq(refs []string) *[]string {
	sort.Strings(refs)
	out := refs[:0]
	for i, r := range refs {
		if i == 0 || r != refs[i-1] {
			out = append(out, r)
		}
	}
	return &out
}

// serialNumber is a UUID (version 5 layout) from the BOM's contents, so a
// rebuild of the same source gives the same file.
func serialNumber(bom *cdx.BOM) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", bom.Metadata.Component.PackageURL)
	for _, c := range *bom.Components {
		fmt.Fprintf(h, "%s %s\n", c.BOMRef, c.Version)
		if c.Properties != nil {
			for _, p := range *c.Properties {
				fmt.Fprintf(h, " %s=%s\n", p.Name, p.Value)
			}
		}
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
