package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TestLint: helm lint --strict on the default values and every profile.
func TestLint(t *testing.T) {
	for _, p := range profiles(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", ".", "--kube-version", KubeVersion, "--namespace", Namespace}, valuesArgs(t, p)...)
			out, stderr, err := runHelm(t, args...)
			if err != nil || !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
			// --strict turns warnings into failures; informational
			// messages ([INFO]) are all that may remain.
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "[WARNING]") || strings.HasPrefix(line, "[ERROR]") {
					t.Errorf("lint: %s", line)
				}
			}
		})
	}
}

// TestRender renders every profile and checks each object: strict decoding
// into the k8s.io/api types, custom resources against their CRD schemas,
// names, and the invariants of the chart (security, probes, drain sizing,
// rollout strategy, references between objects).
func TestRender(t *testing.T) {
	for _, p := range profiles(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, p)
			r := typed(t, objs)
			for _, e := range r.decodeErrors {
				t.Errorf("strict decoding: %s", e)
			}
			checkNames(t, r)
			for gvk, list := range r.Custom {
				for _, o := range list {
					if err := validateCustom(t, o); err != nil {
						t.Errorf("%s does not match the %s CRD: %v", o, gvk, err)
					}
				}
			}
			checkWorkloads(t, r)
			checkServices(t, r)
			checkAutoscaling(t, r)
			checkIngress(t, r)
			checkMonitors(t, r)
		})
	}
}

// TestRenderLongReleaseName: names stay valid with the longest release name
// helm allows (53 characters).
func TestRenderLongReleaseName(t *testing.T) {
	long := strings.Repeat("r", 40) + "-ocvr-edge-01"
	for _, p := range profiles(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"template", long, ".", "--namespace", Namespace, "--kube-version", KubeVersion}, valuesArgs(t, p)...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			r := typed(t, splitObjects(t, out))
			checkNames(t, r)
			seen := map[string]string{}
			for _, o := range r.Objects {
				key := o.Kind() + "/" + o.Name()
				if prev, dup := seen[key]; dup {
					t.Errorf("%s rendered twice (%s and %s)", key, prev, o.Source)
				}
				seen[key] = o.Source
			}
		})
	}
}

func checkNames(t *testing.T, r *Rendered) {
	t.Helper()
	for _, o := range r.Objects {
		// Everything in the release namespace, but the dashboards, which
		// may go to Grafana's (monitoring.dashboards.namespace).
		if ns := o.U.GetNamespace(); ns != Namespace && (o.Kind() != "ConfigMap" || o.U.GetLabels()["grafana_dashboard"] == "") {
			t.Errorf("%s: namespace %q, want the release namespace", o, ns)
		}
		var errs []string
		switch o.Kind() {
		case "Service":
			errs = validation.IsDNS1035Label(o.Name())
		default:
			errs = validation.IsDNS1123Subdomain(o.Name())
			if len(o.Name()) > 63 {
				errs = append(errs, "longer than 63 characters")
			}
		}
		for _, e := range errs {
			t.Errorf("%s: invalid name: %s", o, e)
		}
		for k, v := range o.U.GetLabels() {
			for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: label %s=%s: %s", o, k, v, e)
			}
		}
	}
}

func seconds(t *testing.T, s string) int {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return int(d / time.Second)
}

func checkWorkloads(t *testing.T, r *Rendered) {
	t.Helper()
	if len(r.Deployments) != 2 {
		t.Fatalf("want the gateway and ticketsvc Deployments, got %d", len(r.Deployments))
	}
	for _, d := range r.Deployments {
		name := "Deployment " + d.Name
		pod := d.Spec.Template
		if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("%s: selector %v does not select its pods %v", name, d.Spec.Selector.MatchLabels, pod.Labels)
		}
		// Rollouts of a sockets workload: never below the desired capacity.
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
			t.Errorf("%s: want a RollingUpdate strategy", name)
		} else if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable; mu == nil || mu.IntValue() != 0 && mu.String() != "0%" {
			t.Errorf("%s: maxUnavailable %v, want 0 (capacity must not drop during a rollout)", name, mu)
		}
		ps := pod.Spec
		// Only the gateway mounts the token, for its deletion cost, and only
		// with the Role that allows exactly that (TestPodDeletionCostRBAC).
		mounted := ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken
		if mounted && (pod.Labels["app.kubernetes.io/component"] != "gateway" || len(r.Roles) == 0) {
			t.Errorf("%s: the service account token must not be mounted", name)
		}
		if _, ok := r.SAs[ps.ServiceAccountName]; !ok && ps.ServiceAccountName != "default" {
			t.Logf("%s: service account %s is not created by the chart (serviceAccount.create=false)", name, ps.ServiceAccountName)
		}
		sc := ps.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("%s: the pod must run as a non-root user", name)
		}
		if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: want the RuntimeDefault seccomp profile", name)
		}
		for _, tsc := range ps.TopologySpreadConstraints {
			if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, pod.Labels) {
				t.Errorf("%s: topology spread on %s does not select the pods", name, tsc.TopologyKey)
			}
		}
		// The service's container comes first; sidecars
		// (<component>.extraContainers) follow it.
		if len(ps.Containers) == 0 || ps.Containers[0].Name != pod.Labels["app.kubernetes.io/component"] {
			t.Fatalf("%s: the first container must be the service's", name)
		}
		c := ps.Containers[0]
		csc := c.SecurityContext
		switch {
		case csc == nil:
			t.Errorf("%s: no container securityContext", name)
		case csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation:
			t.Errorf("%s: allowPrivilegeEscalation must be false", name)
		case csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem:
			t.Errorf("%s: the root filesystem must be read-only", name)
		case csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) > 0:
			t.Errorf("%s: capabilities must drop ALL and add none", name)
		case csc.Privileged != nil && *csc.Privileged:
			t.Errorf("%s: privileged", name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: want cpu and memory requests and a memory limit, got %v", name, c.Resources)
		}
		// Probes on the admin port: readiness /readyz, liveness and startup /healthz.
		adminPort, ok := containerPort(c, "admin")
		if !ok {
			t.Errorf("%s: no admin port", name)
		}
		if v, _ := env(c, "OCVR_ADMIN_LISTEN"); v != fmt.Sprintf(":%d", adminPort) {
			t.Errorf("%s: OCVR_ADMIN_LISTEN %q does not serve the admin port %d on all interfaces", name, v, adminPort)
		}
		for _, pr := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"startup", c.StartupProbe, "/healthz"}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", name, pr.what)
				continue
			}
			if pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port != intstr.FromString("admin") {
				t.Errorf("%s: %s probe %s on %s, want %s on the admin port", name, pr.what, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port.String(), pr.path)
			}
		}
		// Volumes: every mount has its volume.
		vols := map[string]bool{}
		for _, v := range ps.Volumes {
			vols[v.Name] = true
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("%s: mount %s has no volume", name, m.Name)
			}
			if !m.ReadOnly {
				t.Errorf("%s: mount %s should be read-only", name, m.Name)
			}
		}
		// Files named by the NATS settings are mounted.
		for _, e := range []string{"OCVR_NATS_CREDS", "OCVR_NATS_TLS_CA", "OCVR_NATS_TLS_CERT", "OCVR_NATS_TLS_KEY"} {
			if v, ok := env(c, e); ok {
				found := false
				for _, m := range c.VolumeMounts {
					if strings.HasPrefix(v, m.MountPath+"/") {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: %s=%s is not in a mounted volume", name, e, v)
				}
			}
		}
		grace := int64(30)
		if ps.TerminationGracePeriodSeconds != nil {
			grace = *ps.TerminationGracePeriodSeconds
		}
		preStop := int64(0)
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if c.Lifecycle.PreStop.Sleep == nil {
				t.Errorf("%s: the preStop hook must be a sleep (the images have no shell)", name)
			} else {
				preStop = c.Lifecycle.PreStop.Sleep.Seconds
			}
		}
		shutdown, ok := env(c, "OCVR_SHUTDOWN_TIMEOUT")
		if !ok {
			t.Errorf("%s: OCVR_SHUTDOWN_TIMEOUT not set", name)
			continue
		}
		// The process's own deadline ends before the kubelet's SIGKILL.
		if int64(seconds(t, shutdown))+preStop >= grace {
			t.Errorf("%s: preStop %ds + shutdown timeout %s ≥ terminationGracePeriodSeconds %d: the kubelet would kill the process mid-drain", name, preStop, shutdown, grace)
		}
		if pod.Labels["app.kubernetes.io/component"] == "gateway" {
			rd, _ := env(c, "OCVR_READINESS_DELAY")
			dw, _ := env(c, "OCVR_DRAIN_WINDOW")
			// readiness delay + drain window + 10 s for the last close
			// handshakes (coder/websocket waits 5 s + 5 s).
			need := seconds(t, rd) + seconds(t, dw) + 10
			if seconds(t, shutdown) < need {
				t.Errorf("%s: shutdown timeout %s < readiness delay %s + drain window %s + 10s", name, shutdown, rd, dw)
			}
			if int64(need)+preStop >= grace {
				t.Errorf("%s: terminationGracePeriodSeconds %d does not cover preStop %ds + readiness delay %s + drain window %s + 10s", name, grace, preStop, rd, dw)
			}
			if d.Spec.MinReadySeconds < 0 {
				t.Errorf("%s: negative minReadySeconds", name)
			}
			if _, ok := env(c, "OCVR_POD_NAME"); !ok {
				t.Errorf("%s: OCVR_POD_NAME must carry the pod name (presence leases)", name)
			}
		}
		if len(r.PDBs) > 0 {
			n := 0
			for _, pdb := range r.PDBs {
				if selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%s: selected by %d PodDisruptionBudgets", name, n)
			}
		}
	}
	for _, pdb := range r.PDBs {
		n := 0
		for _, d := range r.Deployments {
			if selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("PodDisruptionBudget %s selects %d Deployments' pods, want 1", pdb.Name, n)
		}
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s: no budget", pdb.Name)
		}
	}
}

func checkServices(t *testing.T, r *Rendered) {
	t.Helper()
	if len(r.Services) != 4 {
		t.Errorf("want 4 Services (public and admin of each component), got %d", len(r.Services))
	}
	for _, s := range r.Services {
		var target *appsv1.Deployment
		for _, d := range r.Deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Labels) {
				if target != nil {
					t.Errorf("Service %s selects the pods of two Deployments", s.Name)
				}
				target = d
			}
		}
		if target == nil {
			t.Errorf("Service %s selects no pods", s.Name)
			continue
		}
		c := target.Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String {
				t.Errorf("Service %s port %s: target a named port", s.Name, p.Name)
				continue
			}
			if _, ok := containerPort(c, p.TargetPort.StrVal); !ok {
				t.Errorf("Service %s port %s: %s has no port %q", s.Name, p.Name, target.Name, p.TargetPort.StrVal)
			}
		}
		if s.Labels["ocvr.example/endpoint"] == "admin" {
			if s.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("admin Service %s must stay ClusterIP, got %s", s.Name, s.Spec.Type)
			}
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.StrVal != "admin" {
				t.Errorf("admin Service %s must expose only the admin port", s.Name)
			}
		} else {
			for _, p := range s.Spec.Ports {
				if p.TargetPort.StrVal == "admin" {
					t.Errorf("public Service %s exposes the admin port", s.Name)
				}
			}
		}
	}
}

func checkAutoscaling(t *testing.T, r *Rendered) {
	t.Helper()
	gw := r.component(t, "gateway")
	scaled := map[string]int{}
	for _, h := range r.HPAs {
		ref := h.Spec.ScaleTargetRef
		d, ok := r.Deployments[ref.Name]
		if !ok || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA %s scales %s/%s %s, which the chart does not render", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		scaled[ref.Name]++
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas while HPA %s scales it: every helm upgrade would reset the count", d.Name, h.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: minReplicas %v > maxReplicas %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if d.Name != gw.Name {
			continue
		}
		var conns *autoscalingv2.MetricSpec
		for i, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.PodsMetricSourceType {
				conns = &h.Spec.Metrics[i]
			}
		}
		if conns == nil || conns.Pods.Metric.Name != "ocvr_gateway_connections" || conns.Pods.Target.Type != autoscalingv2.AverageValueMetricType || conns.Pods.Target.AverageValue == nil {
			t.Errorf("gateway HPA %s: want the Pods metric ocvr_gateway_connections with an AverageValue target, got %+v", h.Name, h.Spec.Metrics)
		}
		checkBehavior(t, "gateway HPA "+h.Name, h.Spec.Behavior)
	}
	for _, o := range r.Custom[gvkScaledObject] {
		spec, _ := o.U.Object["spec"].(map[string]any)
		ref, _ := spec["scaleTargetRef"].(map[string]any)
		name, _ := ref["name"].(string)
		d, ok := r.Deployments[name]
		if !ok {
			t.Errorf("%s scales %q, which the chart does not render", o, name)
			continue
		}
		scaled[name]++
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas while %s scales it", d.Name, o)
		}
		triggers, _ := spec["triggers"].([]any)
		if len(triggers) != 1 {
			t.Fatalf("%s: want one trigger", o)
		}
		tr := triggers[0].(map[string]any)
		md := tr["metadata"].(map[string]any)
		q, _ := md["query"].(string)
		if tr["type"] != "prometheus" || tr["metricType"] != "AverageValue" || !strings.Contains(q, "ocvr_gateway_connections") {
			t.Errorf("%s: want a prometheus trigger on ocvr_gateway_connections (AverageValue), got %v", o, tr)
		}
		if _, err := strconv.Atoi(fmt.Sprint(md["threshold"])); err != nil {
			t.Errorf("%s: threshold %v is not a number", o, md["threshold"])
		}
		// The query's pod pattern must match the gateway's pod names.
		if m := regexp.MustCompile(`pod=~"([^"]+)"`).FindStringSubmatch(q); m != nil {
			re := regexp.MustCompile("^(?:" + m[1] + ")$")
			if pod := d.Name + "-5d8f7c9b4-x7k2q"; !re.MatchString(pod) {
				t.Errorf("%s: query pattern %q does not match a pod name like %s", o, m[1], pod)
			}
			for _, other := range r.Deployments {
				if other.Name != d.Name && re.MatchString(other.Name+"-5d8f7c9b4-x7k2q") {
					t.Errorf("%s: query pattern %q also matches %s's pods", o, m[1], other.Name)
				}
			}
		}
	}
	for name, n := range scaled {
		if n > 1 {
			t.Errorf("Deployment %s is scaled by %d autoscalers", name, n)
		}
	}
	if scaled[gw.Name] == 0 && gw.Spec.Replicas == nil {
		t.Errorf("gateway Deployment has neither replicas nor an autoscaler")
	}
}

// checkBehavior: scale up fast, scale down slowly.
func checkBehavior(t *testing.T, what string, b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
	t.Helper()
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		t.Errorf("%s: no scaling behavior", what)
		return
	}
	if b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 300 {
		t.Errorf("%s: scale-down stabilization %v, want ≥ 300 s (each removed pod drains its sockets)", what, b.ScaleDown.StabilizationWindowSeconds)
	}
	if b.ScaleUp.StabilizationWindowSeconds != nil && *b.ScaleUp.StabilizationWindowSeconds > 60 {
		t.Errorf("%s: scale-up stabilization %d s, want ≤ 60 (add capacity fast)", what, *b.ScaleUp.StabilizationWindowSeconds)
	}
}

func checkIngress(t *testing.T, r *Rendered) {
	t.Helper()
	if len(r.Ingresses) == 0 {
		return
	}
	gw, ts := r.component(t, "gateway"), r.component(t, "ticketsvc")
	hb := 0
	if v, ok := env(gw.Spec.Template.Spec.Containers[0], "OCVR_HEARTBEAT_TIMEOUT"); ok {
		hb = seconds(t, v)
	}
	want := map[string]*appsv1.Deployment{"/v1/ws": gw, "/v1/auth/ws-ticket": ts}
	routed := map[string]map[string]bool{} // host → paths, over every Ingress
	for _, ing := range r.Ingresses {
		paths := map[string]bool{}
		for _, rule := range ing.Spec.Rules {
			if routed[rule.Host] == nil {
				routed[rule.Host] = map[string]bool{}
			}
			for _, p := range rule.HTTP.Paths {
				d, ok := want[p.Path]
				if !ok {
					t.Errorf("Ingress %s: unexpected path %s", ing.Name, p.Path)
					continue
				}
				if routed[rule.Host][p.Path] {
					t.Errorf("Ingress %s host %s: %s routed twice", ing.Name, rule.Host, p.Path)
				}
				routed[rule.Host][p.Path], paths[p.Path] = true, true
				svc, ok := r.Services[p.Backend.Service.Name]
				if !ok {
					t.Errorf("Ingress %s: %s goes to Service %s, not rendered", ing.Name, p.Path, p.Backend.Service.Name)
					continue
				}
				if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
					t.Errorf("Ingress %s: %s goes to Service %s, which does not select %s", ing.Name, p.Path, svc.Name, d.Name)
				}
				found := false
				for _, sp := range svc.Spec.Ports {
					if sp.Name == p.Backend.Service.Port.Name && sp.TargetPort.StrVal != "admin" {
						found = true
					}
				}
				if !found {
					t.Errorf("Ingress %s: %s goes to port %q of %s, which is not a public port", ing.Name, p.Path, p.Backend.Service.Port.Name, svc.Name)
				}
			}
		}
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
			continue
		}
		if paths["/v1/ws"] {
			for _, k := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
				v, err := strconv.Atoi(ing.Annotations[k])
				if err != nil || v <= hb {
					t.Errorf("Ingress %s: %s=%q, want a number of seconds above the heartbeat timeout (%d s)", ing.Name, k, ing.Annotations[k], hb)
				}
			}
			checkWSAccessLog(t, ing)
		}
	}
	for host, paths := range routed {
		for path := range want {
			if !paths[path] {
				t.Errorf("host %s: no Ingress routes %s", host, path)
			}
		}
	}
}

// checkWSAccessLog: the ingress-nginx Ingress of GET /v1/ws keeps the
// connect ticket (its query) out of the controller's access log, and routes
// nothing else, so the ticket endpoint keeps its log.
func checkWSAccessLog(t *testing.T, ing *networkingv1.Ingress) {
	t.Helper()
	const k = "nginx.ingress.kubernetes.io/enable-access-log"
	if v := ing.Annotations[k]; v != "false" {
		t.Errorf("Ingress %s routes /v1/ws (?ticket=…) with %s=%q: the controller's access log ($request) would hold every connect ticket", ing.Name, k, v)
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if p.Path != "/v1/ws" {
				t.Errorf("Ingress %s: %s shares the /v1/ws Ingress and loses its access log", ing.Name, p.Path)
			}
		}
	}
}

// TestIngressAccessLog: the ticket stays out of ingress-nginx's access log
// unless the operator says the log format has no query; the ticket endpoint
// keeps its log; other controllers get no nginx annotations.
func TestIngressAccessLog(t *testing.T) {
	const k = "nginx.ingress.kubernetes.io/enable-access-log"
	cases := []struct {
		name   string
		set    []string // --set, or --set-json for an entry starting with "json:"
		ws     string   // the /v1/ws Ingress's enable-access-log ("" = absent)
		ticket string   // the ticket Ingress's
	}{
		{"nginx default", []string{"ingress.enabled=true"}, "false", ""},
		{"log format without the query", []string{"ingress.enabled=true", "ingress.websocketAccessLog=true"}, "", ""},
		{"other controller", []string{"ingress.enabled=true", "ingress.nginx=false", "ingress.className=traefik"}, "", ""},
		{"operator's own annotation wins", []string{"ingress.enabled=true", `json:ingress.annotations={"nginx.ingress.kubernetes.io/enable-access-log":"true"}`}, "true", "true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range tc.set {
				if j, ok := strings.CutPrefix(s, "json:"); ok {
					args = append(args, "--set-json", j)
				} else {
					args = append(args, "--set", s)
				}
			}
			r := typed(t, render(t, Profile{Name: "default"}, args...))
			for _, e := range r.decodeErrors {
				t.Errorf("strict decoding: %s", e)
			}
			if len(r.Ingresses) != 2 {
				t.Fatalf("%d Ingresses, want 2 (/v1/ws and /v1/auth/ws-ticket)", len(r.Ingresses))
			}
			for _, ing := range r.Ingresses {
				path := ing.Spec.Rules[0].HTTP.Paths[0].Path
				want := tc.ticket
				if path == "/v1/ws" {
					want = tc.ws
				}
				if got := ing.Annotations[k]; got != want {
					t.Errorf("Ingress %s (%s): %s=%q, want %q", ing.Name, path, k, got, want)
				}
			}
		})
	}
}

func checkMonitors(t *testing.T, r *Rendered) {
	t.Helper()
	for _, o := range r.Custom[gvkServiceMonitor] {
		spec := o.U.Object["spec"].(map[string]any)
		sel := stringMap(spec["selector"].(map[string]any)["matchLabels"])
		var svcs []*corev1.Service
		for _, s := range r.Services {
			if selects(sel, s.Labels) {
				svcs = append(svcs, s)
			}
		}
		if len(svcs) != 1 || svcs[0].Labels["ocvr.example/endpoint"] != "admin" {
			t.Errorf("%s selects %d Services, want exactly one admin Service", o, len(svcs))
			continue
		}
		for _, ep := range spec["endpoints"].([]any) {
			port := ep.(map[string]any)["port"]
			if len(svcs[0].Spec.Ports) == 0 || svcs[0].Spec.Ports[0].Name != port {
				t.Errorf("%s scrapes port %v, which Service %s does not have", o, port, svcs[0].Name)
			}
		}
	}
	for _, o := range r.Custom[gvkPodMonitor] {
		spec := o.U.Object["spec"].(map[string]any)
		sel := stringMap(spec["selector"].(map[string]any)["matchLabels"])
		n := 0
		for _, d := range r.Deployments {
			if selects(sel, d.Spec.Template.Labels) {
				n++
				for _, ep := range spec["podMetricsEndpoints"].([]any) {
					port := fmt.Sprint(ep.(map[string]any)["port"])
					if _, ok := containerPort(d.Spec.Template.Spec.Containers[0], port); !ok {
						t.Errorf("%s scrapes port %s, which %s does not have", o, port, d.Name)
					}
				}
			}
		}
		if n != 1 {
			t.Errorf("%s selects %d Deployments' pods, want 1", o, n)
		}
	}
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, val := range m {
		out[k] = fmt.Sprint(val)
	}
	return out
}

// TestNotes: NOTES.txt renders for every profile and tells the operator
// what was deployed. helm renders NOTES only on install, which needs a
// cluster; so a copy of the chart renders them as a ConfigMap instead.
func TestNotes(t *testing.T) {
	chart := notesChart(t)
	for _, p := range profiles(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"template", Release, chart, "--namespace", Namespace, "--kube-version", KubeVersion,
				"--show-only", "templates/zz-notes.yaml"}, valuesArgs(t, p)...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			objs := splitObjects(t, out)
			if len(objs) != 1 {
				t.Fatalf("no notes rendered:\n%s", out)
			}
			notes := fmt.Sprint(objs[0].U.Object["data"].(map[string]any)["notes"])
			if strings.Contains(notes, "<no value>") || strings.Contains(notes, "%!") {
				t.Errorf("NOTES has an unrendered value:\n%s", notes)
			}
			r := typed(t, render(t, p))
			gw := r.component(t, "gateway").Name
			want := []string{"rollout status deployment/" + gw, "terminationGracePeriodSeconds is"}
			switch {
			case r.HPAs[gw] != nil:
				want = append(want, "HorizontalPodAutoscaler", "custom.metrics.k8s.io")
			case len(r.Custom[gvkScaledObject]) > 0:
				want = append(want, "KEDA ScaledObject")
			default:
				want = append(want, "fixed at")
			}
			if len(r.TestPods) > 0 {
				want = append(want, "helm test "+Release)
			}
			if len(r.Custom[gvkHTTPRoute]) > 0 {
				want = append(want, "HTTPRoute "+r.Custom[gvkHTTPRoute][0].Name(), "get httproute")
			}
			for _, w := range want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES do not say %q:\n%s", w, notes)
				}
			}
		})
	}
}

// notesChart copies the chart (links followed) with NOTES.txt turned into
// a template that a ConfigMap includes.
func notesChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "ocvr-realtime")
	if out, err := exec.Command("cp", "-rL", chartDir(t), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the chart: %v\n%s", err, out)
	}
	notes, err := os.ReadFile(filepath.Join(dst, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dst, "templates", "NOTES.txt")); err != nil {
		t.Fatal(err)
	}
	def := "{{- define \"charttest.notes\" -}}\n" + string(notes) + "\n{{- end -}}\n"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  namespace: {{ .Release.Namespace }}\ndata:\n  notes: {{ include \"charttest.notes\" . | quote }}\n"
	for name, body := range map[string]string{"_charttest_notes.tpl": def, "zz-notes.yaml": cm} {
		if err := os.WriteFile(filepath.Join(dst, "templates", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestContinuityEnv: gateway.continuity reaches the gateway as its flags'
// variables (the stream every gateway provisions at start), large byte
// bounds without exponent notation.
func TestContinuityEnv(t *testing.T) {
	cases := []struct {
		name string
		set  []string
		want map[string]string
	}{
		{"defaults", nil, map[string]string{
			"OCVR_NO_CONTINUITY": "false", "OCVR_STREAM_NAME": "OCVR_EVENTS", "OCVR_CONTINUITY_WINDOW": "120s",
			"OCVR_STREAM_REPLICAS": "0", "OCVR_STREAM_MAX_BYTES": "0",
		}},
		{"set", []string{"gateway.continuity.enabled=false", "gateway.continuity.streamName=STAGING_EVENTS",
			"gateway.continuity.windowSeconds=600", "gateway.continuity.replicas=3", "gateway.continuity.maxBytes=53687091200"},
			map[string]string{
				"OCVR_NO_CONTINUITY": "true", "OCVR_STREAM_NAME": "STAGING_EVENTS", "OCVR_CONTINUITY_WINDOW": "600s",
				"OCVR_STREAM_REPLICAS": "3", "OCVR_STREAM_MAX_BYTES": "53687091200",
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			r := typed(t, render(t, Profile{Name: "default"}, args...))
			c := r.component(t, "gateway").Spec.Template.Spec.Containers[0]
			for k, want := range tc.want {
				if got, ok := env(c, k); !ok || got != want {
					t.Errorf("%s=%q (set %v), want %q", k, got, ok, want)
				}
			}
		})
	}
}
