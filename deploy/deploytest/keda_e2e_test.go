package deploytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKEDAFallbackHoldsTheFleet: with the chart's ScaledObject (profile
// keda: fallbackReplicas 3) run by the real KEDA v2.21.0 operator and
// metrics server, the gateway fleet keeps its size when Prometheus goes
// away. First KEDA scales on the real sockets of 3 gateways like the HPA
// (22 sockets, 4 per pod → 6 replicas); then Prometheus is stopped, and after
// failureThreshold failed queries KEDA's fallback answers for the metric. With
// fallback.behavior currentReplicasIfHigher it answers "the current 6
// replicas" (24 = 6 × 4: an average of exactly the target per pod, so the
// HPA holds 6); with KEDA's default behavior, static, it answered
// "fallbackReplicas" (12 = 3 × 4), which makes the HPA cut the fleet to 3
// once its scale-down stabilization has passed.
//
// It needs the control plane of scripts/ci/extra-hpa.sh (OCVR_HPA_E2E) and
// the KEDA binaries it builds (OCVR_KEDA_DIR); `make test` skips it.
func TestKEDAFallbackHoldsTheFleet(t *testing.T) {
	if os.Getenv("OCVR_HPA_E2E") == "" || os.Getenv("OCVR_KEDA_DIR") == "" {
		t.Skip("needs the control plane of scripts/ci/extra-hpa.sh and KEDA (OCVR_HPA_E2E, OCVR_KEDA_DIR)")
	}
	k := kubectl{t: t, kubeconfig: os.Getenv("OCVR_HPA_KUBECONFIG")}
	kedaDir, helmBin := os.Getenv("OCVR_KEDA_DIR"), os.Getenv("OCVR_HELM")
	root := repoRoot(t)
	ns := exampleNamespace(t, root)
	const (
		release  = "ocvr-realtime-keda"
		perPod   = 4
		fallback = 3
	)
	kedaValues := []string{"-f", filepath.Join(root, "helm", "ocvr-realtime", "profiles", "keda.yaml"),
		"--set", "gateway.keda.targetConnectionsPerPod=" + strconv.Itoa(perPod),
		"--set", "gateway.keda.fallbackReplicas=" + strconv.Itoa(fallback)}
	deploy := chartObjects(t, helmBin, root, release, ns, kedaValues, "templates/gateway-deployment.yaml")[0]
	deployName := dig(deploy, "metadata")["name"].(string)

	g, _, prom := scrapedGateways(t, root, deployName, 3)
	docs := chartObjects(t, helmBin, root, release, ns, append(kedaValues, "--set", "gateway.keda.serverAddress="+prom.URL),
		"templates/gateway-scaledobject.yaml")
	if len(docs) != 1 || docs[0]["kind"] != "ScaledObject" {
		t.Fatalf("the chart rendered no ScaledObject: %v", docs)
	}
	so := docs[0]
	soName := dig(so, "metadata")["name"].(string)
	hpaName := dig(so, "spec", "advanced", "horizontalPodAutoscalerConfig")["name"].(string)

	// ---- the Deployment at 3 replicas (no pods needed: an External
	// AverageValue metric is divided by the replica count)
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, ns))
	b, _ := json.Marshal(deploy)
	k.apply(string(b))
	k.must("", "-n", ns, "scale", "deployment/"+deployName, "--replicas", "3")
	mirrorDeploymentStatus(t, k, ns, deployName)

	// ---- KEDA: the operator (its gRPC metrics service) and the metrics
	// server (external.metrics.k8s.io), sharing one mutual-TLS pair
	const kedaNS = "keda"
	certDir := t.TempDir()
	certFile, keyFile, caPEM := servingCert(t, certDir, "keda-metrics-apiserver."+kedaNS+".svc")
	ports := freePorts(t, 5)
	grpcAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	env := []string{"KUBECONFIG=" + k.kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=" + kedaNS, "KEDA_CLUSTER_OBJECT_NAMESPACE=" + kedaNS}
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, kedaNS))
	operator := startDaemon(t, "keda-operator", env, filepath.Join(kedaDir, "keda"),
		"--leader-elect=false", "--enable-cert-rotation=false",
		"--enable-webhook-patching=false", "--enable-apiservice-patching=false",
		"--cert-dir="+certDir, "--ca-dir="+certDir,
		"--metrics-service-bind-address="+grpcAddr,
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(ports[1]),
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(ports[2]),
		"--zap-log-level=info")
	port := ports[3]
	metricsServer := startDaemon(t, "keda-metrics-apiserver", env, filepath.Join(kedaDir, "keda-adapter"),
		"--secure-port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--cert-dir="+certDir, "--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile,
		"--metrics-service-address="+grpcAddr,
		"--port="+strconv.Itoa(ports[4]),
		"--lister-kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig)
	registerAPIService(k, kedaNS, "keda-metrics-apiserver", "external.metrics.k8s.io", "v1beta1", port, caPEM)

	// ---- normal operation: 22 sockets → ceil(22/4) = 6 replicas
	g.connect(8, 7, 7)
	b, _ = json.Marshal(so)
	k.apply(string(b))
	want := int32(ceilDiv(g.total(), perPod))
	var last externalView
	waitFor(t, 90*time.Second, fmt.Sprintf("KEDA's HPA %s to want ceil(%d/%d) = %d replicas and reach them", hpaName, g.total(), perPod, want),
		func() (bool, string) {
			for _, d := range []*daemon{operator, metricsServer} {
				if d.exited() {
					t.Fatalf("%s exited:\n%s", d.name, d.tail(30))
				}
			}
			mirrorDeploymentStatus(t, k, ns, deployName)
			var err error
			last, err = readExternal(k, ns, hpaName)
			if err != nil {
				return false, err.Error()
			}
			// At 6 replicas the average is 22/6: the HPA is settled.
			return last.desired == want && replicasOf(t, k, ns, deployName) == int(want) &&
				averageIs(last.average, g.total(), int(want)), fmt.Sprintf("%+v", last)
		})
	t.Logf("KEDA: %d sockets %v → desiredReplicas %d (external metric %s per pod)", g.total(), g.perPod, last.desired, last.average)
	metricName := last.metric

	// ---- Prometheus goes away: the fallback must hold the 6 replicas
	prom.Stop()
	waitFor(t, 90*time.Second, "KEDA's fallback to answer for the metric", func() (bool, string) {
		var err error
		last, err = readExternal(k, ns, hpaName)
		if err != nil {
			return false, err.Error()
		}
		return soCondition(k, ns, soName, "Fallback") == "True", fmt.Sprintf("%+v", last)
	})
	// The value KEDA serves in fallback, read as the HPA reads it.
	sel := url.QueryEscape("scaledobject.keda.sh/name=" + soName)
	var value string
	waitFor(t, 30*time.Second, "the fallback value of "+metricName, func() (bool, string) {
		out, err := k.run("", "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/"+ns+"/"+metricName+"?labelSelector="+sel)
		if err != nil {
			return false, err.Error()
		}
		var list struct {
			Items []struct {
				Value string `json:"value"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
			return false, out
		}
		value = list.Items[0].Value
		return true, out
	})
	if hold := strconv.Itoa(int(want) * perPod); value != hold {
		n, _ := strconv.Atoi(value)
		t.Errorf("during the Prometheus outage KEDA serves %s = %s, want %s (%d current replicas × %d): the fallback takes the fleet to %d replicas",
			metricName, value, hold, want, perPod, n/perPod)
	}
	// The HPA reads it too: an average of the target per pod, hold.
	waitFor(t, 30*time.Second, "the HPA to see the fallback value", func() (bool, string) {
		var err error
		last, err = readExternal(k, ns, hpaName)
		return err == nil && averageIs(last.average, int(want)*perPod, int(want)), fmt.Sprintf("%+v %v", last, err)
	})
	if last.desired != want {
		t.Errorf("during the Prometheus outage the HPA wants %d replicas, want %d held", last.desired, want)
	}
	t.Logf("Prometheus down: KEDA falls back to %s = %s (%s per pod), desiredReplicas %d held", metricName, value, last.average, last.desired)
	if !strings.Contains(operator.tail(400), "currentReplicasIfHigher") {
		t.Errorf("the operator's log does not show the fallback behavior currentReplicasIfHigher:\n%s", operator.tail(20))
	}
}

// mirrorDeploymentStatus does the Deployment controller's part that the
// HPA reads: status.replicas follows spec.replicas (the HPA divides an
// External metric by the status' replica count).
func mirrorDeploymentStatus(t *testing.T, k kubectl, ns, name string) {
	t.Helper()
	n := replicasOf(t, k, ns, name)
	k.must("", "-n", ns, "patch", "deployment", name, "--subresource=status", "--type=merge", "-p",
		fmt.Sprintf(`{"status":{"replicas":%d,"readyReplicas":%d,"availableReplicas":%d,"updatedReplicas":%d}}`, n, n, n, n))
}

// externalView is what the test reads of KEDA's HPA.
type externalView struct {
	desired int32
	metric  string // the External metric's name
	average string // status.currentMetrics[0].external.current.averageValue
}

func readExternal(k kubectl, ns, name string) (externalView, error) {
	var h struct {
		Status struct {
			DesiredReplicas int32 `json:"desiredReplicas"`
			CurrentMetrics  []struct {
				External *struct {
					Metric struct {
						Name string `json:"name"`
					} `json:"metric"`
					Current struct {
						AverageValue string `json:"averageValue"`
					} `json:"current"`
				} `json:"external"`
			} `json:"currentMetrics"`
		} `json:"status"`
	}
	if err := k.getJSON(&h, "-n", ns, "hpa", name); err != nil {
		return externalView{}, err
	}
	v := externalView{desired: h.Status.DesiredReplicas}
	for _, m := range h.Status.CurrentMetrics {
		if m.External != nil {
			v.metric, v.average = m.External.Metric.Name, m.External.Current.AverageValue
		}
	}
	return v, nil
}

// soCondition is the status of a ScaledObject's condition ("" if absent).
func soCondition(k kubectl, ns, name, typ string) string {
	var so struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	if err := k.getJSON(&so, "-n", ns, "scaledobject", name); err != nil {
		return ""
	}
	for _, c := range so.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}
