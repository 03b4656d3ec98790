package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Secrets are the Secrets of a test cluster: name → key → content.
type Secrets map[string]map[string][]byte

// mountPaths maps a container's mount paths to where their files are on
// this machine (for binaries run in place, without chroot).
type mountPaths map[string]string

// rewrite points a value under a mount path (e.g. OCVR_NATS_CREDS) at the
// file's place on this machine.
func (m mountPaths) rewrite(v string) string {
	for mount, dir := range m {
		if rest, ok := strings.CutPrefix(v, mount+"/"); ok {
			return filepath.Join(dir, rest)
		}
	}
	return v
}

// mountSecrets writes the files of a container's secret volumes as the
// kubelet would mount them: each key (or each item's path) under the
// mount path, readable by the image's user. Run in the image's filesystem
// (chroot), the files go there; run in place, into a temporary directory
// the returned paths point at.
func mountSecrets(t *testing.T, b binary, c corev1.Container, volumes []corev1.Volume, secrets Secrets) mountPaths {
	t.Helper()
	paths := mountPaths{}
	for _, m := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range volumes {
			if volumes[i].Name == m.Name {
				vol = &volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil {
			t.Fatalf("%s: mount %s is not a Secret volume of the pod", c.Name, m.Name)
		}
		data, ok := secrets[vol.Secret.SecretName]
		if !ok {
			t.Fatalf("%s: Secret %s (mounted at %s) is not in the test cluster", c.Name, vol.Secret.SecretName, m.MountPath)
		}
		files := map[string][]byte{}
		if len(vol.Secret.Items) > 0 {
			for _, it := range vol.Secret.Items {
				if _, ok := data[it.Key]; !ok {
					t.Fatalf("Secret %s has no key %s", vol.Secret.SecretName, it.Key)
				}
				files[it.Path] = data[it.Key]
			}
		} else {
			files = data
		}
		dir := filepath.Join(t.TempDir(), strings.TrimPrefix(m.MountPath, "/"))
		if b.rootfs != "" {
			dir = filepath.Join(b.rootfs, m.MountPath)
		} else {
			paths[m.MountPath] = dir
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o444); err != nil && !os.IsExist(err) {
				// A read-only file of an earlier test at the same place.
				_ = os.Remove(filepath.Join(dir, name))
				if err := os.WriteFile(filepath.Join(dir, name), content, 0o444); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return paths
}
