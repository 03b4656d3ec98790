package deploytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// kubectl runs kubectl against the API server of scripts/ci/extra-hpa.sh.
type kubectl struct {
	t          *testing.T
	kubeconfig string
}

// run returns kubectl's standard output; stdin may be empty.
func (k kubectl) run(stdin string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// must runs kubectl and fails the test on an error.
func (k kubectl) must(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.run(stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// apply applies manifests (YAML or JSON, several documents).
func (k kubectl) apply(manifests string) {
	k.t.Helper()
	k.must(manifests, "apply", "--server-side", "-f", "-")
}

// getJSON decodes `kubectl get … -o json` into v.
func (k kubectl) getJSON(v any, args ...string) error {
	out, err := k.run("", append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// chartObjects renders the chart as release in namespace ns with extra helm
// arguments and returns the documents of the given templates, decoded.
func chartObjects(t *testing.T, helmBin, root, release, ns string, args []string, templates ...string) []map[string]any {
	t.Helper()
	cmdArgs := []string{"template", release, filepath.Join(root, "helm", "ocvr-realtime"), "--namespace", ns, "--kube-version", "1.34.4"}
	for _, tpl := range templates {
		cmdArgs = append(cmdArgs, "--show-only", tpl)
	}
	cmd := exec.Command(helmBin, append(cmdArgs, args...)...)
	// Hermetic: no helm state of the machine, no cluster.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp+"/cache", "HELM_CONFIG_HOME="+tmp+"/config",
		"HELM_DATA_HOME="+tmp+"/data", "KUBECONFIG="+tmp+"/none")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, errb.String())
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(&out)
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("helm template output: %v", err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// dig walks nested maps: dig(m, "spec", "template", "metadata").
func dig(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m, _ = m[p].(map[string]any)
	}
	return m
}

// servingCert writes a CA (ca.crt) and a certificate for dnsName, localhost
// and 127.0.0.1 signed by it (tls.crt, tls.key; for servers and clients:
// KEDA's operator and metrics server use one pair for mutual TLS), all valid
// one hour, into dir; it returns the files and the CA's PEM (an
// APIService's caBundle).
func servingCert(t *testing.T, dir, dnsName string) (certFile, keyFile string, caPEM []byte) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ocvr-hpa-e2e-ca"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key := newKey()
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		DNSNames: []string{dnsName, "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "tls.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = writeFile(t, dir, "tls.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	writeFile(t, dir, "ca.crt", caPEM)
	return certFile, keyFile, caPEM
}

// freePorts returns n distinct ports nobody listens on at the time of the
// call, on any address (KEDA's metrics server binds ":port"): all n are held
// open together, so that the kernel cannot hand out one port twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// daemon is a process the test starts and stops (SIGTERM, then SIGKILL)
// when it ends; its output goes to a log file that is shown on failure.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startDaemon runs bin with args; env is added to the test's environment.
func startDaemon(t *testing.T, name string, env []string, bin string, args ...string) *daemon {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{name: name, cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.Env = append(os.Environ(), env...)
	if err := d.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = d.cmd.Wait(); f.Close(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", name, d.tail(30))
		}
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) tail(n int) string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// registerAPIService registers an aggregated API (group/version) served on
// 127.0.0.1:port. The Service is an ExternalName "localhost": without
// --enable-aggregator-routing the aggregator sends the API's requests to
// https://localhost:<port>, verifying the server's certificate against
// caBundle for the name <service>.<namespace>.svc.
func registerAPIService(k kubectl, namespace, service, group, version string, port int, caPEM []byte) {
	k.t.Helper()
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, namespace))
	k.apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":%q},"spec":{"type":"ExternalName","externalName":"localhost"}}`,
		service, namespace))
	k.apply(fmt.Sprintf(`{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"%s.%s"},
"spec":{"group":%q,"version":%q,"groupPriorityMinimum":100,"versionPriority":100,
"service":{"namespace":%q,"name":%q,"port":%d},"caBundle":%q}}`, version, group, group, version, namespace, service, port,
		base64.StdEncoding.EncodeToString(caPEM)))
}
