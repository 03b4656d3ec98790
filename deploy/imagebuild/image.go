package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: distroless's "nonroot", so the same numeric user works
// with the Dockerfiles' distroless base and with runAsUser in the chart.
const (
	UID      = 65532
	GID      = 65532
	User     = "65532:65532"
	BinDir   = "/usr/local/bin"
	CertPath = "/etc/ssl/certs/ca-certificates.crt"
	refName  = "org.opencontainers.image.ref.name"
)

// Spec describes one service image.
type Spec struct {
	Name      string // image name, e.g. ocvr-gateway
	Binary    string // file name under /usr/local/bin, e.g. gateway
	Reference string // full reference recorded in the layout, e.g. ghcr.io/ocvr/ocvr-gateway:v1
	CACerts   []byte
	Created   time.Time
	Ports     []string // "8081/tcp"
	Labels    map[string]string
	// SourceVersion is the version the binaries were stamped with (git
	// describe), for this repository's modules in the SBOM.
	SourceVersion string
}

// Entrypoint is the absolute path of the service binary in the image.
func (s Spec) Entrypoint() string { return BinDir + "/" + s.Binary }

// Build writes an OCI image layout tarball at out holding one image per
// platform (an index when there are several).
func Build(s Spec, plats []v1.Platform, bins map[string]string, out string) error {
	var imgs []mutate.IndexAddendum
	for _, p := range plats {
		bin, err := os.ReadFile(bins[PlatformString(p)])
		if err != nil {
			return err
		}
		img, err := Image(s, p, bin)
		if err != nil {
			return err
		}
		pp := p
		imgs = append(imgs, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	ann := layout.WithAnnotations(map[string]string{refName: s.Reference})
	if len(imgs) == 1 {
		p := plats[0]
		err = lp.AppendImage(imgs[0].Add.(v1.Image), ann, layout.WithPlatform(p))
	} else {
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), imgs...)
		err = lp.AppendIndex(idx, ann)
	}
	if err != nil {
		return err
	}
	return tarDir(dir, out, s.Created)
}

// PlatformString is os/arch[/variant].
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Image assembles one platform's image: an empty base plus one layer.
func Image(s Spec, p v1.Platform, bin []byte) (v1.Image, error) {
	layerBytes, err := rootfsLayer(s, bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: s.Created},
			CreatedBy: "imagebuild: static " + s.Binary + " binary, CA certificates, user " + User,
			Comment:   "deploy/imagebuild",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: s.Created}
	cf.Author = "OCVR platform team"
	cf.Config = v1.Config{
		Entrypoint: []string{s.Entrypoint()},
		User:       User,
		WorkingDir: "/",
		Env: []string{
			"PATH=" + BinDir,
			"SSL_CERT_FILE=" + CertPath,
		},
		Labels:     s.Labels,
		StopSignal: "SIGTERM",
	}
	if len(s.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range s.Ports {
			cf.Config.ExposedPorts[port] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// rootfsLayer is the gzipped tar of the image's whole filesystem. Everything
// belongs to root and is read-only for the service's user, which needs to
// write nothing (the chart mounts the root filesystem read-only).
func rootfsLayer(s Spec, bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	mt := s.Created
	dir := func(name string, mode int64, uid, gid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: mt, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0, 0) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return dir("etc/ssl", 0o755, 0, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0, 0) },
		func() error { return file(strings.TrimPrefix(CertPath, "/"), 0o644, s.CACerts) },
		func() error { return dir("home", 0o755, 0, 0) },
		func() error { return dir("home/nonroot", 0o700, UID, GID) },
		// /tmp exists for libraries that expect it; with a read-only root
		// filesystem mount an emptyDir there if something needs it.
		func() error { return dir("tmp", 0o1777, 0, 0) },
		func() error { return dir("usr", 0o755, 0, 0) },
		func() error { return dir("usr/local", 0o755, 0, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0, 0) },
		func() error { return file(strings.TrimPrefix(s.Entrypoint(), "/"), 0o755, bin) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the files under dir into a tarball, sorted and with fixed
// times, so that equal inputs give byte-equal tarballs.
func tarDir(dir, out string, mt time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mt, Mode: 0o644, Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// Loaded is one platform's image from a layout tarball.
type Loaded struct {
	Platform  v1.Platform
	Reference string
	Image     v1.Image
}

// Load reads an OCI layout tarball written by Build.
func Load(path string) ([]Loaded, error) {
	dir, err := os.MkdirTemp("", "oci-load-")
	if err != nil {
		return nil, err
	}
	// The layout reads blobs lazily; the files stay until the process ends
	// or the caller is done, so only remove them on error.
	if err := untar(path, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s is not an OCI image layout tarball (no oci-layout file)", path)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []Loaded
	for _, d := range im.Manifests {
		ref := d.Annotations[refName]
		switch {
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			l := Loaded{Reference: ref, Image: img}
			if d.Platform != nil {
				l.Platform = *d.Platform
			} else if cf, err := img.ConfigFile(); err == nil {
				l.Platform = v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
			}
			out = append(out, l)
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			sm, err := sub.IndexManifest()
			if err != nil {
				return nil, err
			}
			for _, sd := range sm.Manifests {
				img, err := sub.Image(sd.Digest)
				if err != nil {
					return nil, err
				}
				l := Loaded{Reference: ref, Image: img}
				if sd.Platform != nil {
					l.Platform = *sd.Platform
				}
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no image", path)
	}
	return out, nil
}

// File is one entry of an image's filesystem.
type File struct {
	Name     string
	Mode     os.FileMode
	UID, GID int
	Size     int64
	Type     byte
	Link     string
}

// ListFiles lists the image's flattened filesystem.
func ListFiles(img v1.Image) ([]File, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []File
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"), Mode: h.FileInfo().Mode(), UID: h.Uid, GID: h.Gid, Size: h.Size, Type: h.Typeflag, Link: h.Linkname})
	}
}

// Extract unpacks the image's filesystem into dir (regular files and
// directories only: the images hold nothing else).
func Extract(img v1.Image, dir string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	return untarReader(rc, dir, true)
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return untarReader(f, dir, false)
}

func untarReader(r io.Reader, dir string, keepOwner bool) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || strings.HasPrefix(name, ".."+string(filepath.Separator)) || name == ".." {
			return fmt.Errorf("unsafe path %q in tarball", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, h.FileInfo().Mode().Perm()|os.ModeDir|(h.FileInfo().Mode()&os.ModeSticky)); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, h.FileInfo().Mode().Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected entry type %q in tarball", h.Name, h.Typeflag)
		}
		if keepOwner && os.Geteuid() == 0 {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				return err
			}
		}
	}
}
