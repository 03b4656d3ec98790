package charttest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var gvkHTTPRoute = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// TestGoRuntimeEnv: GOMAXPROCS comes from the container's own CPU request
// (downward API, divisor 1: rounded up) and the binaries get the share of
// the memory limit for GOMEMLIMIT (AUTOMEMLIMIT), or neither when turned off.
func TestGoRuntimeEnv(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string // helm arguments
		comp      string
		wantProcs bool
		wantRatio string
	}{
		{"gateway default", nil, "gateway", true, "0.9"},
		{"ticketsvc default", nil, "ticketsvc", true, "0.9"},
		// (--set leaves 0.75 a string; --set-json makes it the number a values file gives.)
		{"ratio", []string{"--set-json", "gateway.goRuntime.memoryLimitRatio=0.75"}, "gateway", true, "0.75"},
		{"off", []string{"--set", "ticketsvc.goRuntime.maxProcsFromRequest=false", "--set", "ticketsvc.goRuntime.memoryLimitRatio=0"}, "ticketsvc", false, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := typed(t, render(t, Profile{Name: "default"}, tc.args...))
			c := r.component(t, tc.comp).Spec.Template.Spec.Containers[0]
			procs := envVar(c, "GOMAXPROCS")
			switch {
			case !tc.wantProcs && procs != nil:
				t.Errorf("GOMAXPROCS set: %+v", procs)
			case tc.wantProcs && (procs == nil || procs.ValueFrom == nil || procs.ValueFrom.ResourceFieldRef == nil):
				t.Errorf("GOMAXPROCS is not taken from the CPU request: %+v", procs)
			case tc.wantProcs:
				ref := procs.ValueFrom.ResourceFieldRef
				if ref.Resource != "requests.cpu" || ref.ContainerName != c.Name || ref.Divisor.String() != "1" {
					t.Errorf("GOMAXPROCS from %+v, want requests.cpu of %s with divisor 1", ref, c.Name)
				}
				if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
					t.Errorf("no CPU request to take GOMAXPROCS from")
				}
			}
			if v, _ := env(c, "AUTOMEMLIMIT"); v != tc.wantRatio {
				t.Errorf("AUTOMEMLIMIT=%q, want %q", v, tc.wantRatio)
			}
		})
	}
}

// gatewayAPIProfile is testdata/values-gateway-api.yaml: HTTPRoute,
// NetworkPolicies, the escape hatches, the helm test's own credentials.
var gatewayAPIProfile = Profile{Name: "testdata/values-gateway-api", Files: []string{"helm/charttest/testdata/values-gateway-api.yaml"}}

// TestEscapeHatches: what operators add to the Deployments lands where it
// belongs, on both, next to the chart's own volumes and environment.
func TestEscapeHatches(t *testing.T) {
	values := readYAML(t, root(t)+"/"+gatewayAPIProfile.Files[0])
	r := typed(t, render(t, gatewayAPIProfile))
	for _, comp := range []string{"gateway", "ticketsvc"} {
		v := values[comp].(map[string]any)
		d := r.component(t, comp)
		ps := d.Spec.Template.Spec
		c := ps.Containers[0]
		if d.Annotations["reloader.stakater.com/auto"] != "true" {
			t.Errorf("%s: Deployment annotations %v", comp, d.Annotations)
		}
		if d.Spec.Template.Annotations["reloader.stakater.com/auto"] != "" {
			t.Errorf("%s: Deployment annotations leaked to the pods", comp)
		}
		if len(c.EnvFrom) != 1 {
			t.Errorf("%s: envFrom %+v", comp, c.EnvFrom)
		}
		if !hasVolume(ps, "extra-ca") || !hasVolume(ps, "nats-tls") || !hasMount(c, "/etc/ocvr/extra-ca") || !hasMount(c, "/etc/ocvr/nats-tls") {
			t.Errorf("%s: extra volume and mount beside the chart's: volumes %v, mounts %v", comp, ps.Volumes, c.VolumeMounts)
		}
		if _, ok := v["initContainers"]; ok != (len(ps.InitContainers) == 1) {
			t.Errorf("%s: init containers %v", comp, ps.InitContainers)
		}
		wantContainers := 1
		if _, ok := v["extraContainers"]; ok {
			wantContainers = 2
		}
		if len(ps.Containers) != wantContainers || ps.Containers[0].Name != comp {
			t.Errorf("%s: containers %d (first %s), want %d with the service first", comp, len(ps.Containers), ps.Containers[0].Name, wantContainers)
		}
		if envVar(c, "OCVR_NATS_URL") == nil {
			t.Errorf("%s: the chart's own environment is gone", comp)
		}
	}
}

func hasVolume(ps corev1.PodSpec, name string) bool {
	for _, v := range ps.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func hasMount(c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

// TestHTTPRoute: the route sends GET /v1/ws to the gateway Service and the
// ticket endpoint to ticketsvc's, on the Services' ports, attached to the
// given Gateway (its CRD schema is checked by TestRender); without a parent
// Gateway helm refuses with a message.
func TestHTTPRoute(t *testing.T) {
	r := typed(t, render(t, gatewayAPIProfile))
	routes := r.Custom[gvkHTTPRoute]
	if len(routes) != 1 || len(r.Ingresses) != 0 {
		t.Fatalf("want one HTTPRoute and no Ingress, got %d and %d", len(routes), len(r.Ingresses))
	}
	var route struct {
		Spec struct {
			ParentRefs []map[string]any `json:"parentRefs"`
			Hostnames  []string         `json:"hostnames"`
			Rules      []struct {
				Matches []struct {
					Path   struct{ Type, Value string } `json:"path"`
					Method string                       `json:"method"`
				} `json:"matches"`
				BackendRefs []struct {
					Name string `json:"name"`
					Port int32  `json:"port"`
				} `json:"backendRefs"`
			} `json:"rules"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(routes[0].Raw, &route); err != nil {
		t.Fatal(err)
	}
	if len(route.Spec.ParentRefs) != 1 || route.Spec.ParentRefs[0]["name"] != "public" || len(route.Spec.Hostnames) != 1 {
		t.Errorf("parentRefs %v hostnames %v", route.Spec.ParentRefs, route.Spec.Hostnames)
	}
	want := map[string]string{"/v1/ws": "gateway", "/v1/auth/ws-ticket": "ticketsvc"}
	for _, rule := range route.Spec.Rules {
		if len(rule.Matches) != 1 || len(rule.BackendRefs) != 1 {
			t.Fatalf("rule %+v: want one match and one backend", rule)
		}
		m, b := rule.Matches[0], rule.BackendRefs[0]
		comp, ok := want[m.Path.Value]
		if !ok || m.Path.Type != "Exact" {
			t.Errorf("unexpected match %+v", m)
			continue
		}
		delete(want, m.Path.Value)
		svc := r.Services[b.Name]
		if svc == nil || svc.Spec.Selector["app.kubernetes.io/component"] != comp || svc.Spec.Ports[0].Port != b.Port {
			t.Errorf("%s goes to %s:%d, want the %s Service and its port", m.Path.Value, b.Name, b.Port, comp)
		}
	}
	if len(want) != 0 {
		t.Errorf("no rule for %v", want)
	}
	_, stderr, err := renderRaw(t, Profile{Name: "default"}, "--set", "httpRoute.enabled=true")
	if err == nil || !strings.Contains(stderr, "httpRoute.enabled needs httpRoute.parentRefs") {
		t.Errorf("an HTTPRoute without a parent Gateway: err %v\n%s", err, stderr)
	}
}

// TestNetworkPolicy: each component's policy selects its pods, leaves the
// public port to publicFrom (and the helm test pod), and opens the admin
// port only to adminFrom; without adminFrom nothing reaches the admin port.
func TestNetworkPolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         Profile
		set       []string
		wantAdmin bool
	}{
		{"peers", gatewayAPIProfile, nil, true},
		{"admin closed", Profile{Name: "default"}, []string{"networkPolicy.enabled=true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			r := typed(t, render(t, tc.p, args...))
			if len(r.NetPols) != 2 {
				t.Fatalf("want a NetworkPolicy per component, got %d", len(r.NetPols))
			}
			for _, comp := range []string{"gateway", "ticketsvc"} {
				d := r.component(t, comp)
				np := policyFor(r, d)
				if np == nil {
					t.Fatalf("%s: no NetworkPolicy selects its pods", comp)
				}
				ports := map[string]int{}
				for _, rule := range np.Spec.Ingress {
					for _, p := range rule.Ports {
						ports[p.Port.String()] = len(rule.From)
					}
				}
				public := map[string]string{"gateway": "ws", "ticketsvc": "http"}[comp]
				if _, ok := containerPort(d.Spec.Template.Spec.Containers[0], public); !ok {
					t.Fatalf("%s: no container port %s", comp, public)
				}
				if n, ok := ports[public]; !ok || (tc.p.Name == "default" && n != 0) {
					t.Errorf("%s: public port %s: rule %v (peers %d)", comp, public, ok, n)
				}
				if n, ok := ports["admin"]; ok != tc.wantAdmin || (ok && n == 0) {
					t.Errorf("%s: admin port rule present %v with %d peers, want present %v and never open to all", comp, ok, n, tc.wantAdmin)
				}
			}
			if tc.p.Name != "default" {
				// The helm test pod is let in to the public ports.
				pod := testPod(t, r)
				for _, np := range r.NetPols {
					allowed := false
					for _, f := range np.Spec.Ingress[0].From {
						if f.PodSelector != nil && selects(f.PodSelector.MatchLabels, pod.Labels) {
							allowed = true
						}
					}
					if !allowed {
						t.Errorf("%s: the helm test pod cannot reach the public port", np.Name)
					}
				}
			}
		})
	}
}

func policyFor(r *Rendered, d *appsv1.Deployment) *networkingv1.NetworkPolicy {
	for _, np := range r.NetPols {
		if np.Namespace == d.Namespace && selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
			return np
		}
	}
	return nil
}

// TestHelmTestPodRender: the helm test pod runs the gateway image as the
// services' user with their NATS settings, or with its own credentials.
func TestHelmTestPodRender(t *testing.T) {
	for _, tc := range []struct {
		p         Profile
		wantCreds string // secret of the nats-creds volume, "" for none
	}{
		{Profile{Name: "default"}, ""},
		{gatewayAPIProfile, "ocvr-nats-ctl"},
	} {
		t.Run(tc.p.Name, func(t *testing.T) {
			r := typed(t, render(t, tc.p))
			pod := testPod(t, r)
			gwC := r.component(t, "gateway").Spec.Template.Spec.Containers[0]
			c := pod.Spec.Containers[0]
			if c.Image != gwC.Image || c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("helm test container: image %s, securityContext %+v", c.Image, c.SecurityContext)
			}
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("the helm test pod mounts a service account token")
			}
			for _, name := range []string{"OCVR_NATS_URL", "OCVR_SESSIONS_BUCKET", "OCVR_SUBJECT_PREFIX", "OCVR_NATS_TLS_CA"} {
				gv, gok := env(gwC, name)
				pv, pok := env(c, name)
				if gok != pok || gv != pv {
					t.Errorf("%s: helm test %q, gateway %q", name, pv, gv)
				}
			}
			creds := ""
			for _, v := range pod.Spec.Volumes {
				if v.Name == "nats-creds" && v.Secret != nil {
					creds = v.Secret.SecretName
				}
			}
			if creds != tc.wantCreds {
				t.Errorf("helm test NATS credentials from %q, want %q", creds, tc.wantCreds)
			}
		})
	}
	if objs := render(t, Profile{Name: "default"}, "--set", "tests.enabled=false"); len(typed(t, objs).TestPods) != 0 {
		t.Error("tests.enabled=false still renders a test pod")
	}
}

// TestNATSCredentialsPerComponent: a component's natsCredentialsSecret
// replaces nats.credentials for its pods only (a NATS user per binary),
// at the same path and key.
func TestNATSCredentialsPerComponent(t *testing.T) {
	r := typed(t, render(t, gatewayAPIProfile))
	want := map[string]string{"gateway": "ocvr-nats-gateway", "ticketsvc": "ocvr-nats-services"}
	for comp, secret := range want {
		ps := r.component(t, comp).Spec.Template.Spec
		got := ""
		for _, v := range ps.Volumes {
			if v.Name == "nats-creds" && v.Secret != nil {
				got = v.Secret.SecretName
			}
		}
		if got != secret {
			t.Errorf("%s: NATS credentials from %q, want %q", comp, got, secret)
		}
		if v, _ := env(ps.Containers[0], "OCVR_NATS_CREDS"); v != "/etc/ocvr/nats-creds/nats.creds" {
			t.Errorf("%s: OCVR_NATS_CREDS=%q", comp, v)
		}
	}
}
