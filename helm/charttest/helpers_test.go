package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

const (
	// KubeVersion is the Kubernetes version the chart is rendered for: the
	// kube-apiserver that scripts/ci/extra-apiserver.sh runs.
	KubeVersion = "1.34.4"
	Release     = "ocvr-realtime"
	Namespace   = "ocvr"
)

var (
	rootOnce sync.Once
	repoRoot string
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// root is the repository root (the directory holding go.work).
func root(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, _ := os.Getwd()
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				repoRoot = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if repoRoot == "" {
		t.Fatal("go.work not found above the working directory")
	}
	return repoRoot
}

func chartDir(t testing.TB) string { return filepath.Join(root(t), "helm", "ocvr-realtime") }

// helm returns the helm binary: $OCVR_HELM, else the one scripts/tools.sh
// builds once and caches outside the clone.
func helm(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() {
		if h := os.Getenv("OCVR_HELM"); h != "" {
			helmBin = h
			return
		}
		out, err := exec.Command(filepath.Join(root(t), "scripts", "tools.sh"), "helm").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%v: %s", err, ee.Stderr)
			}
			helmErr = fmt.Errorf("scripts/tools.sh helm: %w", err)
			return
		}
		helmBin = strings.TrimSpace(string(out))
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmBin
}

// symlinkNotice is helm's log line for every symbolic link it follows
// (files/prometheus and files/grafana); it is not a problem.
var symlinkNotice = regexp.MustCompile(`(?m)^.*found symbolic link in path: .*\n?`)

// runHelm runs helm in the chart directory and returns stdout, and stderr
// without the symlink notices.
func runHelm(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	cmd.Dir = chartDir(t)
	// Hermetic: no helm state of the machine, and no cluster (a kubeconfig
	// that does not exist).
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp+"/cache", "HELM_CONFIG_HOME="+tmp+"/config",
		"HELM_DATA_HOME="+tmp+"/data", "KUBECONFIG="+tmp+"/no-kubeconfig")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), symlinkNotice.ReplaceAllString(stderr.String(), ""), err
}

// Profile is a named set of values files, relative to the repository root.
type Profile struct {
	Name  string
	Files []string
}

// profiles are the default values, every documented profile
// (helm/ocvr-realtime/profiles/*.yaml) and every extra combination the tests
// cover (helm/charttest/testdata/values-*.yaml). scripts/ci/extra-apiserver.sh
// sends the same set to the API server.
func profiles(t testing.TB) []Profile {
	t.Helper()
	out := []Profile{{Name: "default"}}
	for _, pattern := range []string{"helm/ocvr-realtime/profiles/*.yaml", "helm/charttest/testdata/values-*.yaml"} {
		files, err := filepath.Glob(filepath.Join(root(t), pattern))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		for _, f := range files {
			rel, _ := filepath.Rel(root(t), f)
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			if strings.HasPrefix(rel, "helm/charttest") {
				name = "testdata/" + name
			}
			out = append(out, Profile{Name: name, Files: []string{rel}})
		}
	}
	if len(out) < 4 {
		t.Fatalf("expected the default values and at least the minimal, production and keda profiles, found %v", out)
	}
	return out
}

func valuesArgs(t testing.TB, p Profile) []string {
	var args []string
	for _, f := range p.Files {
		args = append(args, "-f", filepath.Join(root(t), f))
	}
	return args
}

// render runs helm template for a profile plus extra arguments (--set …).
func render(t testing.TB, p Profile, extra ...string) []Object {
	t.Helper()
	out, stderr, err := renderRaw(t, p, extra...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", p.Name, err, stderr)
	}
	return splitObjects(t, out)
}

func renderRaw(t testing.TB, p Profile, extra ...string) (string, string, error) {
	args := append([]string{"template", Release, ".", "--namespace", Namespace, "--kube-version", KubeVersion}, valuesArgs(t, p)...)
	return runHelm(t, append(args, extra...)...)
}

// Object is one rendered manifest.
type Object struct {
	Source string // the template, from helm's "# Source:" comment
	Raw    []byte // the YAML document
	U      *unstructured.Unstructured
}

func (o Object) Kind() string { return o.U.GetKind() }
func (o Object) Name() string { return o.U.GetName() }
func (o Object) String() string {
	return fmt.Sprintf("%s %s (%s)", o.U.GetKind(), o.U.GetName(), o.Source)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func splitObjects(t testing.TB, s string) []Object {
	t.Helper()
	var out []Object
	for _, doc := range docSep.Split(s, -1) {
		src := ""
		if m := regexp.MustCompile(`(?m)^# Source: (.*)$`).FindStringSubmatch(doc); m != nil {
			src = m[1]
		}
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", src, err, doc)
		}
		if m == nil {
			continue
		}
		out = append(out, Object{Source: src, Raw: []byte(doc), U: &unstructured.Unstructured{Object: m}})
	}
	return out
}

// The built-in kinds the chart renders, decoded strictly.
var (
	scheme  = runtime.NewScheme()
	decoder runtime.Decoder
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// EnableStrict: unknown and duplicate fields are errors, as with
	// `kubectl apply --validate=strict`.
	decoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeStrict decodes a built-in object into its typed struct, failing on
// any unknown or duplicate field. ok is false for kinds not in the scheme
// (custom resources).
func decodeStrict(o Object) (runtime.Object, bool, error) {
	gvk := o.U.GroupVersionKind()
	if !scheme.Recognizes(gvk) {
		return nil, false, nil
	}
	obj, _, err := decoder.Decode(o.Raw, nil, nil)
	if err != nil {
		return nil, true, err
	}
	return obj, true, nil
}

// Typed views of one render.
type Rendered struct {
	Objects      []Object
	Deployments  map[string]*appsv1.Deployment
	Services     map[string]*corev1.Service
	PDBs         map[string]*policyv1.PodDisruptionBudget
	HPAs         map[string]*autoscalingv2.HorizontalPodAutoscaler
	Ingresses    map[string]*networkingv1.Ingress
	ConfigMaps   map[string]*corev1.ConfigMap
	SAs          map[string]*corev1.ServiceAccount
	Roles        map[string]*rbacv1.Role
	RoleBindings map[string]*rbacv1.RoleBinding
	NetPols      map[string]*networkingv1.NetworkPolicy
	TestPods     map[string]*corev1.Pod // helm test hooks
	Custom       map[schema.GroupVersionKind][]Object
	decodeErrors []string
}

func typed(t testing.TB, objs []Object) *Rendered {
	t.Helper()
	r := &Rendered{
		Objects:     objs,
		Deployments: map[string]*appsv1.Deployment{}, Services: map[string]*corev1.Service{},
		PDBs: map[string]*policyv1.PodDisruptionBudget{}, HPAs: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		Ingresses: map[string]*networkingv1.Ingress{}, ConfigMaps: map[string]*corev1.ConfigMap{},
		SAs: map[string]*corev1.ServiceAccount{}, Custom: map[schema.GroupVersionKind][]Object{},
		Roles: map[string]*rbacv1.Role{}, RoleBindings: map[string]*rbacv1.RoleBinding{},
		NetPols: map[string]*networkingv1.NetworkPolicy{}, TestPods: map[string]*corev1.Pod{},
	}
	for _, o := range objs {
		obj, builtin, err := decodeStrict(o)
		if err != nil {
			r.decodeErrors = append(r.decodeErrors, fmt.Sprintf("%s: %v", o, err))
			continue
		}
		if !builtin {
			gvk := o.U.GroupVersionKind()
			r.Custom[gvk] = append(r.Custom[gvk], o)
			continue
		}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			r.Deployments[v.Name] = v
		case *corev1.Service:
			r.Services[v.Name] = v
		case *policyv1.PodDisruptionBudget:
			r.PDBs[v.Name] = v
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.HPAs[v.Name] = v
		case *networkingv1.Ingress:
			r.Ingresses[v.Name] = v
		case *corev1.ConfigMap:
			r.ConfigMaps[v.Name] = v
		case *corev1.ServiceAccount:
			r.SAs[v.Name] = v
		case *rbacv1.Role:
			r.Roles[v.Name] = v
		case *rbacv1.RoleBinding:
			r.RoleBindings[v.Name] = v
		case *networkingv1.NetworkPolicy:
			r.NetPols[v.Name] = v
		case *corev1.Pod:
			if v.Annotations["helm.sh/hook"] != "test" {
				r.decodeErrors = append(r.decodeErrors, fmt.Sprintf("%s: a bare Pod that is not a helm test hook", o))
				continue
			}
			r.TestPods[v.Name] = v
		default:
			r.decodeErrors = append(r.decodeErrors, fmt.Sprintf("%s: kind not expected from this chart", o))
		}
	}
	return r
}

// component returns the Deployment of a component (gateway, ticketsvc).
func (r *Rendered) component(t testing.TB, comp string) *appsv1.Deployment {
	t.Helper()
	for _, d := range r.Deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == comp {
			return d
		}
	}
	t.Fatalf("no %s Deployment rendered", comp)
	return nil
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// selects reports whether a label selector (matchLabels only, which is all
// the chart uses) selects the labels.
func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func readYAML(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}
