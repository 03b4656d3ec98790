package deploytest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Where the test registers the adapter (as the prometheus-adapter chart
// does, in namespace monitoring, for custom.metrics.k8s.io/v1beta1).
const (
	adapterNamespace = "monitoring"
	adapterService   = "prometheus-adapter"
	// targetPerPod is gateway.autoscaling.targetConnectionsPerPod for the
	// render: small, so that a few real sockets move the HPA.
	targetPerPod = 4
)

// TestHPAFollowsGatewayConnections: the gateway HPA of the chart, run by the
// real HPA controller, computes its desired replicas from the connections
// real gateways hold. Nothing in the chain is simulated:
//
//	3 gateway processes (clustertest) holding known sockets
//	→ Debian's Prometheus scraping them (deploy/prometheus/prometheus.yml)
//	→ prometheus-adapter v0.12.0 (its Go module) with the configuration the
//	  adapter chart renders from deploy/prometheus-adapter/values.yaml
//	  (rules.custom; the test refuses values keeping the chart's defaults),
//	  registered as custom.metrics.k8s.io/v1beta1 through the aggregation layer
//	→ kube-apiserver + kube-controller-manager v1.34.4 (HPA controller only)
//	→ the chart's gateway Deployment and HPA (helm template).
//
// The gateway pods are API objects the test makes and marks Running and
// Ready (there is no kubelet), named as the Prometheus targets' pod label.
// Asserted: status.desiredReplicas = ceil(total connections / target) after
// each change of the sockets upward, and the chart's 10-minute scale-down
// stabilization holding the size when sockets close (while the metric the
// HPA reports follows them).
//
// It needs the control plane of scripts/ci/extra-hpa.sh (which sets
// OCVR_HPA_E2E); `make test` skips it.
func TestHPAFollowsGatewayConnections(t *testing.T) {
	if os.Getenv("OCVR_HPA_E2E") == "" {
		t.Skip("needs the control plane of scripts/ci/extra-hpa.sh (OCVR_HPA_E2E)")
	}
	k := kubectl{t: t, kubeconfig: os.Getenv("OCVR_HPA_KUBECONFIG")}
	adapterBin, helmBin := os.Getenv("OCVR_PROMETHEUS_ADAPTER"), os.Getenv("OCVR_HELM")
	if k.kubeconfig == "" || adapterBin == "" || helmBin == "" {
		t.Fatal("OCVR_HPA_KUBECONFIG, OCVR_PROMETHEUS_ADAPTER and OCVR_HELM must be set")
	}
	root := repoRoot(t)
	// The namespace label Prometheus gives the gateways is the example
	// configuration's: the pods live there.
	ns := exampleNamespace(t, root)

	// ---- the chart's Deployment and HPA
	docs := chartObjects(t, helmBin, root, "ocvr-realtime", ns, []string{
		"--set", "gateway.autoscaling.enabled=true", "--set", "gateway.keda.enabled=false",
		"--set", "gateway.autoscaling.targetConnectionsPerPod=" + strconv.Itoa(targetPerPod),
	}, "templates/gateway-deployment.yaml", "templates/gateway-hpa.yaml")
	var deploy, hpa map[string]any
	for _, d := range docs {
		switch d["kind"] {
		case "Deployment":
			deploy = d
		case "HorizontalPodAutoscaler":
			hpa = d
		}
	}
	if deploy == nil || hpa == nil {
		t.Fatalf("the chart rendered no gateway Deployment and HPA: %v", docs)
	}
	deployName := dig(deploy, "metadata")["name"].(string)
	hpaName := dig(hpa, "metadata")["name"].(string)
	podLabels := dig(deploy, "spec", "template", "metadata", "labels")

	// ---- gateways, scraped by Prometheus as the pods
	const pods = 3
	g, podNames, prom := scrapedGateways(t, root, deployName, pods)

	// ---- the API objects: namespaces, the Deployment (3 replicas), its
	// pods Running and Ready
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, ns))
	// The ServiceAccount admission plugin wants the pods' account to exist
	// (the controller that makes "default" is not running).
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":%q}}`, ns))
	b, _ := json.Marshal(deploy)
	k.apply(string(b))
	k.must("", "-n", ns, "scale", "deployment/"+deployName, "--replicas", strconv.Itoa(pods))
	for _, name := range podNames {
		labels := map[string]any{"pod-template-hash": "7c9d5b8f4"}
		for key, v := range podLabels {
			labels[key] = v
		}
		pod, _ := json.Marshal(map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels},
			"spec": map[string]any{"automountServiceAccountToken": false,
				"containers": []any{map[string]any{"name": "gateway", "image": "ocvr/gateway:e2e"}}},
		})
		k.apply(string(pod))
		now := time.Now().UTC().Format(time.RFC3339)
		k.must("", "-n", ns, "patch", "pod", name, "--subresource=status", "--type=merge", "-p",
			fmt.Sprintf(`{"status":{"phase":"Running","startTime":%q,"conditions":[{"type":"Ready","status":"True","lastTransitionTime":%q}]}}`, now, now))
	}

	// ---- prometheus-adapter with the repository's rules, registered for
	// custom.metrics.k8s.io/v1beta1 (the aggregation layer proxies to it and
	// verifies its certificate against the caBundle)
	dir := t.TempDir()
	certFile, keyFile, caPEM := servingCert(t, dir, adapterService+"."+adapterNamespace+".svc")
	port := freePorts(t, 1)[0]
	adapter := startDaemon(t, "prometheus-adapter", nil, adapterBin,
		"--prometheus-url="+prom.URL+"/",
		"--config="+adapterConfigFromValues(t, root, dir),
		"--metrics-relist-interval=2s",
		"--secure-port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile,
		"--lister-kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig,
		"--v=2")
	registerAPIService(k, adapterNamespace, adapterService, "custom.metrics.k8s.io", "v1beta1", port, caPEM)

	// ---- phase 1: 6+5+5 = 16 sockets
	g.connect(6, 5, 5)
	g.checkServed(prom, k, adapter, ns, podNames)
	checkServesOnlyConnections(t, k)
	b, _ = json.Marshal(hpa)
	k.apply(string(b))
	first := waitDesired(t, k, ns, hpaName, g.total(), g.total())
	t.Logf("phase 1: %d sockets %v → desiredReplicas %d (HPA saw %s per pod)", g.total(), g.perPod, first.desired, first.average)

	// ---- phase 2: +2 per pod = 22 sockets
	g.connect(2, 2, 2)
	g.checkServed(prom, k, adapter, ns, podNames)
	second := waitDesired(t, k, ns, hpaName, g.total(), g.total())
	t.Logf("phase 2: %d sockets %v → desiredReplicas %d (HPA saw %s per pod)", g.total(), g.perPod, second.desired, second.average)
	if second.desired == first.desired {
		t.Errorf("desiredReplicas did not change with the sockets: %d", second.desired)
	}

	// ---- phase 3: down to 2+2+1 = 5 sockets: the metric follows, the size
	// holds (scale-down stabilization of the chart's behavior)
	peak := g.total()
	g.close(6, 5, 6)
	g.checkServed(prom, k, adapter, ns, podNames)
	third := waitDesired(t, k, ns, hpaName, g.total(), peak)
	t.Logf("phase 3: %d sockets %v → desiredReplicas %d held (HPA saw %s per pod; raw recommendation %d)", g.total(), g.perPod, third.desired, third.average, ceilDiv(g.total(), targetPerPod))
	if n := replicasOf(t, k, ns, deployName); n != int(third.desired) {
		t.Errorf("the Deployment has %d replicas, the HPA wants %d", n, third.desired)
	}
}

// adapterConfigFromValues writes the adapter configuration the
// prometheus-adapter chart renders from deploy/prometheus-adapter/values.yaml
// (its ConfigMap's config.yaml: `rules:` followed by rules.custom as YAML)
// and returns its path. The chart would put its own default rules first
// unless rules.default is false; those are not this repository's, so the
// test refuses values that keep them.
func adapterConfigFromValues(t *testing.T, root, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus-adapter", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Rules struct {
			Default *bool `yaml:"default"`
			Custom  []any `yaml:"custom"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if values.Rules.Default == nil || *values.Rules.Default {
		t.Fatal("deploy/prometheus-adapter/values.yaml keeps the chart's default rules (rules.default is not false): the adapter would serve ocvr_gateway_connections twice")
	}
	if len(values.Rules.Custom) == 0 {
		t.Fatal("deploy/prometheus-adapter/values.yaml has no rules.custom")
	}
	out, err := yaml.Marshal(map[string]any{"rules": values.Rules.Custom})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "adapter-config.yaml", out)
}

// checkServesOnlyConnections: the adapter serves ocvr_gateway_connections,
// per pod and per namespace, and nothing else — although Prometheus holds
// many more series with namespace and pod labels (the gateways' and
// ticketsvc's other metrics), which the adapter chart's default rules
// would all serve, ocvr_gateway_connections among them a second time.
func checkServesOnlyConnections(t *testing.T, k kubectl) {
	t.Helper()
	var list struct {
		Resources []struct {
			Name string `json:"name"`
		} `json:"resources"`
	}
	out := k.must("", "get", "--raw", "/apis/custom.metrics.k8s.io/v1beta1")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list.Resources {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	if want := []string{"namespaces/ocvr_gateway_connections", "pods/ocvr_gateway_connections"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("custom.metrics.k8s.io serves %v, want %v", names, want)
	}
}

func ceilDiv(a, b int) int { return int(math.Ceil(float64(a) / float64(b))) }

// hpaView is what the test reads of the HPA's status.
type hpaView struct {
	desired int32
	average string // status.currentMetrics[0].pods.current.averageValue
	conds   map[string]string
}

// waitDesired waits until the HPA reports, for the sockets now open
// (metricTotal), an average of metricTotal/pods per pod and a desired size
// of ceil(sizeTotal / target) (sizeTotal differs from metricTotal when the
// scale-down stabilization holds an earlier peak).
func waitDesired(t *testing.T, k kubectl, ns, name string, metricTotal, sizeTotal int) hpaView {
	t.Helper()
	want := int32(ceilDiv(sizeTotal, targetPerPod))
	var last hpaView
	var lastErr error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		last, lastErr = readHPA(k, ns, name)
		if lastErr == nil && last.desired == want && averageIs(last.average, metricTotal, 3) &&
			last.conds["ScalingActive"] == "True" && last.conds["AbleToScale"] == "True" {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("HPA %s: want desiredReplicas %d = ceil(%d / %d) and an average of %d/3 per pod; last: %+v (%v)",
		name, want, sizeTotal, targetPerPod, metricTotal, last, lastErr)
	return last
}

func readHPA(k kubectl, ns, name string) (hpaView, error) {
	var h struct {
		Status struct {
			DesiredReplicas int32 `json:"desiredReplicas"`
			CurrentMetrics  []struct {
				Pods *struct {
					Current struct {
						AverageValue string `json:"averageValue"`
					} `json:"current"`
				} `json:"pods"`
			} `json:"currentMetrics"`
			Conditions []struct {
				Type, Status, Reason, Message string
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := k.getJSON(&h, "-n", ns, "hpa", name); err != nil {
		return hpaView{}, err
	}
	v := hpaView{desired: h.Status.DesiredReplicas, conds: map[string]string{}}
	for _, m := range h.Status.CurrentMetrics {
		if m.Pods != nil {
			v.average = m.Pods.Current.AverageValue
		}
	}
	for _, c := range h.Status.Conditions {
		v.conds[c.Type] = c.Status
		v.conds[c.Type+".message"] = c.Message
	}
	return v, nil
}

// averageIs: a Kubernetes quantity ("16", "5333m") equals total/pods to the
// milli-unit the HPA reports.
func averageIs(q string, total, pods int) bool {
	want := int64(total * 1000 / pods)
	var got int64
	switch {
	case q == "":
		return false
	case strings.HasSuffix(q, "m"):
		n, err := strconv.ParseInt(strings.TrimSuffix(q, "m"), 10, 64)
		if err != nil {
			return false
		}
		got = n
	default:
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil {
			return false
		}
		got = n * 1000
	}
	return got == want || got == want+1
}

func replicasOf(t *testing.T, k kubectl, ns, name string) int {
	t.Helper()
	var d struct {
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	if err := k.getJSON(&d, "-n", ns, "deployment", name); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Replicas
}
