package gateway

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAPIServer is an httptest TLS server answering pod patches as the
// API server would, recording what it got. (The real kube-apiserver test
// is TestKubePodAgainstAPIServer, scripts/ci/extra-deletioncost.sh.)
type fakeAPIServer struct {
	srv    *httptest.Server
	caFile string

	mu      sync.Mutex
	status  int
	answer  string
	got     []recorded
	refused int
}

type recorded struct {
	method, path, contentType, auth string
	body                            map[string]any
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{status: http.StatusOK, answer: `{"kind":"Pod"}`}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		f.mu.Lock()
		f.got = append(f.got, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), body})
		status, answer := f.status, f.answer
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(f.srv.Close)
	f.caFile = filepath.Join(t.TempDir(), "ca.crt")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}
	if err := os.WriteFile(f.caFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeToken(t *testing.T, dir, token string) string {
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKubePodPatch: the annotation is set with a JSON merge patch on the
// pod's own path, with the token read on every request (rotated tokens),
// and a refusal's reason reaches the error without the token.
func TestKubePodPatch(t *testing.T) {
	api := newFakeAPIServer(t)
	dir := t.TempDir()
	tokenFile := writeToken(t, dir, "token-one")
	kp, err := NewKubePod(api.srv.URL, api.caFile, tokenFile, "ocvr", "ocvr-realtime-gateway-7d9f-abcde")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := kp.SetDeletionCost(ctx, 1234); err != nil {
		t.Fatal(err)
	}
	writeToken(t, dir, "token-two")
	if err := kp.SetDeletionCost(ctx, 0); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	api.status, api.answer = http.StatusForbidden, `{"kind":"Status","message":"pods \"x\" is forbidden: User \"system:serviceaccount:ocvr:ocvr\" cannot patch resource \"pods\""}`
	api.mu.Unlock()
	err = kp.SetDeletionCost(ctx, 5)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "cannot patch resource") {
		t.Errorf("refused patch: err = %v, want the 403 and the API's message", err)
	}
	if err != nil && strings.Contains(err.Error(), "token-two") {
		t.Errorf("the error carries the token: %v", err)
	}

	api.mu.Lock()
	defer api.mu.Unlock()
	want := []struct{ auth, cost string }{{"Bearer token-one", "1234"}, {"Bearer token-two", "0"}, {"Bearer token-two", "5"}}
	if len(api.got) != len(want) {
		t.Fatalf("%d requests, want %d", len(api.got), len(want))
	}
	for i, r := range api.got {
		if r.method != http.MethodPatch || r.path != "/api/v1/namespaces/ocvr/pods/ocvr-realtime-gateway-7d9f-abcde" || r.contentType != "application/merge-patch+json" {
			t.Errorf("request %d: %s %s (%s)", i, r.method, r.path, r.contentType)
		}
		if r.auth != want[i].auth {
			t.Errorf("request %d: Authorization %q, want %q", i, r.auth, want[i].auth)
		}
		b, _ := json.Marshal(r.body)
		if wantBody := `{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"` + want[i].cost + `"}}}`; string(b) != wantBody {
			t.Errorf("request %d: body %s, want %s", i, b, wantBody)
		}
	}
}

// TestKubePodRefusesBadInput: names that are not Kubernetes names never
// reach a URL; an http URL or a missing CA is refused.
func TestKubePodRefusesBadInput(t *testing.T) {
	api := newFakeAPIServer(t)
	token := writeToken(t, t.TempDir(), "t")
	cases := []struct{ name, url, ca, ns, pod string }{
		{"namespace with a slash", api.srv.URL, api.caFile, "a/b", "p"},
		{"empty namespace", api.srv.URL, api.caFile, "", "p"},
		{"pod name with ..", api.srv.URL, api.caFile, "ocvr", "../secrets"},
		{"upper-case pod name", api.srv.URL, api.caFile, "ocvr", "Gateway"},
		{"plain http", strings.Replace(api.srv.URL, "https", "http", 1), api.caFile, "ocvr", "p"},
		{"no CA", api.srv.URL, filepath.Join(t.TempDir(), "none"), "ocvr", "p"},
	}
	for _, tc := range cases {
		if _, err := NewKubePod(tc.url, tc.ca, token, tc.ns, tc.pod); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestInClusterPod: outside Kubernetes (no service host, no token) it says
// so; inside, the namespace comes from the service account when not given.
func TestInClusterPod(t *testing.T) {
	api := newFakeAPIServer(t)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	host, port, _ := strings.Cut(strings.TrimPrefix(api.srv.URL, "https://"), ":")
	inCluster := env(map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})

	if _, err := InClusterPod(env(nil), t.TempDir(), "", "p"); !errors.Is(err, ErrNotInCluster) {
		t.Errorf("no KUBERNETES_SERVICE_HOST: %v, want ErrNotInCluster", err)
	}
	if _, err := InClusterPod(inCluster, t.TempDir(), "", "p"); !errors.Is(err, ErrNotInCluster) {
		t.Errorf("no token mounted: %v, want ErrNotInCluster", err)
	}
	sa := t.TempDir()
	writeToken(t, sa, "sa-token")
	ca, _ := os.ReadFile(api.caFile)
	_ = os.WriteFile(filepath.Join(sa, "ca.crt"), ca, 0o600)
	_ = os.WriteFile(filepath.Join(sa, "namespace"), []byte("realtime"), 0o600)
	kp, err := InClusterPod(inCluster, sa, "", "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.SetDeletionCost(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if p := api.got[0].path; p != "/api/v1/namespaces/realtime/pods/gw-1" {
		t.Errorf("path %s: the namespace is not the service account's", p)
	}
}
