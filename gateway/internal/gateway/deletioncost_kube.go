package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// KubePod patches one pod's deletion-cost annotation through the
// Kubernetes API with the pod's own service account: a JSON merge patch
// of metadata.annotations, nothing else (RBAC: patch on pods in its
// namespace). It is a few dozen lines of net/http rather than client-go:
// one request, and client-go would add tens of modules to the gateway.
type KubePod struct {
	endpoint  string // https://host:port/api/v1/namespaces/<ns>/pods/<name>
	tokenFile string // read per request: projected tokens are rotated
	hc        *http.Client
}

// ServiceAccountDir is where Kubernetes mounts a pod's service account
// token, CA bundle and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// ErrNotInCluster: the process does not run in a Kubernetes pod (no
// KUBERNETES_SERVICE_HOST, or no service account token mounted).
var ErrNotInCluster = errors.New("not running in a Kubernetes pod with a service account token")

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// InClusterPod is NewKubePod for the pod this process runs in: the API
// server from KUBERNETES_SERVICE_HOST and _PORT, the token and CA from
// saDir (ServiceAccountDir), the namespace from saDir/namespace when
// namespace is empty. ErrNotInCluster when there is no API server or token.
func InClusterPod(getenv func(string) string, saDir, namespace, name string) (*KubePod, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	token := filepath.Join(saDir, "token")
	if host == "" || port == "" {
		return nil, ErrNotInCluster
	}
	if _, err := os.Stat(token); err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrNotInCluster, token, err)
	}
	if namespace == "" {
		b, err := os.ReadFile(filepath.Join(saDir, "namespace"))
		if err != nil {
			return nil, fmt.Errorf("pod namespace: not given and %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	return NewKubePod("https://"+net.JoinHostPort(host, port), filepath.Join(saDir, "ca.crt"), token, namespace, name)
}

// NewKubePod patches pod namespace/name at the API server apiURL, trusting
// the CA bundle caFile, authenticating with the bearer token in tokenFile.
func NewKubePod(apiURL, caFile, tokenFile, namespace, name string) (*KubePod, error) {
	if len(namespace) > 63 || !dnsLabel.MatchString(namespace) {
		return nil, fmt.Errorf("pod namespace %q is not a valid namespace name", namespace)
	}
	if len(name) > 253 || !dnsSubdomain.MatchString(name) {
		return nil, fmt.Errorf("pod name %q is not a valid pod name", name)
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubernetes API URL %q: want https://host:port", apiURL)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kubernetes CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubernetes CA %s: no PEM certificate", caFile)
	}
	u.Path = "/api/v1/namespaces/" + namespace + "/pods/" + name
	return &KubePod{
		endpoint:  u.String(),
		tokenFile: tokenFile,
		hc: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute},
		},
	}, nil
}

// SetDeletionCost sets the pod's controller.kubernetes.io/pod-deletion-cost.
func (k *KubePod) SetDeletionCost(ctx context.Context, cost int32) error {
	return k.annotate(ctx, DeletionCostAnnotation, strconv.FormatInt(int64(cost), 10))
}

func (k *KubePod) annotate(ctx context.Context, key, value string) error {
	token, err := os.ReadFile(k.tokenFile)
	if err != nil {
		return fmt.Errorf("service account token: %w", err)
	}
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, k.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := k.hc.Do(req)
	if err != nil {
		return fmt.Errorf("patch pod: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	// The API's Status object says why (RBAC: "… cannot patch resource
	// \"pods\" …"); the request carried the token, the answer does not.
	var st struct {
		Message string `json:"message"`
	}
	why := strings.TrimSpace(string(msg))
	if json.Unmarshal(msg, &st) == nil && st.Message != "" {
		why = st.Message
	}
	return fmt.Errorf("patch pod: %s: %.300s", resp.Status, why)
}
