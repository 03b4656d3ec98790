package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestKubePodAgainstAPIServer runs KubePod against a real kube-apiserver
// with the chart's RBAC (scripts/ci/extra-deletioncost.sh sets it up and
// the OCVR_TEST_KUBE_* variables; without them the test is skipped): the
// gateway's service account token patches the annotation of its pod, the
// API server stores it, and a patch the Role does not allow (another
// namespace) fails with the API server's reason.
func TestKubePodAgainstAPIServer(t *testing.T) {
	api := os.Getenv("OCVR_TEST_KUBE_API")
	if api == "" {
		t.Skip("needs a kube-apiserver: scripts/ci/extra-deletioncost.sh")
	}
	ca, token, adminToken := os.Getenv("OCVR_TEST_KUBE_CA"), os.Getenv("OCVR_TEST_KUBE_TOKEN_FILE"), os.Getenv("OCVR_TEST_KUBE_ADMIN_TOKEN_FILE")
	ns, pod, other := os.Getenv("OCVR_TEST_KUBE_NAMESPACE"), os.Getenv("OCVR_TEST_KUBE_POD"), os.Getenv("OCVR_TEST_KUBE_OTHER_NAMESPACE")
	ctx := context.Background()

	kp, err := NewKubePod(api, ca, token, ns, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, cost := range []int32{1234, 0, 987} {
		if err := kp.SetDeletionCost(ctx, cost); err != nil {
			t.Fatalf("set deletion cost %d: %v", cost, err)
		}
	}
	if got := podAnnotation(t, api, ca, adminToken, ns, pod, DeletionCostAnnotation); got != "987" {
		t.Errorf("the API server has %s=%q, want 987", DeletionCostAnnotation, got)
	}

	elsewhere, err := NewKubePod(api, ca, token, other, pod)
	if err != nil {
		t.Fatal(err)
	}
	err = elsewhere.SetDeletionCost(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), `cannot patch resource "pods"`) {
		t.Errorf("patch in namespace %s (not granted): %v, want 403 with the RBAC reason", other, err)
	}
}

// podAnnotation reads one annotation of a pod with the admin token.
func podAnnotation(t *testing.T, api, caFile, tokenFile, ns, pod, key string) string {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest(http.MethodGet, api+"/api/v1/namespaces/"+ns+"/pods/"+pod, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get pod: %s %v", resp.Status, err)
	}
	return p.Metadata.Annotations[key]
}
