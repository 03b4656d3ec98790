package bus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/natsembed"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issued is a certificate and its key, as PEM and as a tls.Certificate.
type issued struct {
	certPEM, keyPEM []byte
	tls             tls.Certificate
	serial          *big.Int
}

// issue signs a leaf for 127.0.0.1: a server certificate or a client one.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		serial:  tmpl.SerialNumber,
	}
	if out.tls, err = tls.X509KeyPair(out.certPEM, out.keyPEM); err != nil {
		t.Fatal(err)
	}
	return out
}

func randomSerial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// clientSerials records the serial of every client certificate the server
// accepted, in order.
type clientSerials struct {
	mu  sync.Mutex
	got []*big.Int
}

func (c *clientSerials) record(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 {
		c.mu.Lock()
		c.got = append(c.got, cs.PeerCertificates[0].SerialNumber)
		c.mu.Unlock()
	}
	return nil
}

func (c *clientSerials) last() *big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) == 0 {
		return nil
	}
	return c.got[len(c.got)-1]
}

// mutualTLS is a server TLS config that requires a client certificate from ca.
func mutualTLS(ca *testCA, server issued, seen *clientSerials) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		Certificates:     []tls.Certificate{server.tls},
		ClientCAs:        pool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: seen.record,
	}
}

func writeFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for path, b := range files {
		// Written aside and renamed, as the kubelet swaps a secret volume:
		// a reader never sees half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSRotation rotates the client certificate, its key and the CA while
// the client is connected, as cert-manager does, then restarts the server
// with the new CA only: the old certificate is no longer accepted and the
// old CA no longer signs the server. The client must reconnect with the new
// files and keep its subscription. Connect used to read the files once, so
// it kept presenting the old certificate and never reconnected.
func TestTLSRotation(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")

	oldCA, newCA := newTestCA(t, "old CA"), newTestCA(t, "new CA")
	oldClient, newClient := oldCA.issue(t, "gateway", x509.ExtKeyUsageClientAuth), newCA.issue(t, "gateway", x509.ExtKeyUsageClientAuth)
	seen := &clientSerials{}

	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), TLS: mutualTLS(oldCA, oldCA.issue(t, "nats", x509.ExtKeyUsageServerAuth), seen)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	writeFiles(t, map[string][]byte{caFile: oldCA.pem, certFile: oldClient.certPEM, keyFile: oldClient.keyPEM})
	reconnected := make(chan struct{}, 1)
	nc, err := Connect(Config{
		URLs: []string{srv.ClientURL()}, TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile,
		OnReconnect: func() {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := seen.last(); got == nil || got.Cmp(oldClient.serial) != 0 {
		t.Fatalf("server saw client certificate %v, want the first one %v", got, oldClient.serial)
	}
	sub, err := nc.SubscribeSync("rotation.check")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// cert-manager renews: new key pair from a new CA, new CA bundle.
	writeFiles(t, map[string][]byte{caFile: newCA.pem, certFile: newClient.certPEM, keyFile: newClient.keyPEM})
	// The server moves to the new CA and forgets the old one.
	srv.SetTLS(mutualTLS(newCA, newCA.issue(t, "nats", x509.ExtKeyUsageServerAuth), seen))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second):
		t.Fatalf("no reconnect after the rotation (last error: %v)", nc.LastError())
	}
	if got := seen.last(); got == nil || got.Cmp(newClient.serial) != 0 {
		t.Fatalf("server saw client certificate %v after the rotation, want the new one %v", got, newClient.serial)
	}

	// The subscription survived the reconnect: a message from another
	// client, connected with the new files, reaches it.
	other, err := Connect(Config{URLs: []string{srv.ClientURL()}, TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Publish("rotation.check", []byte("after")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message after the rotation: %v", err)
	}
	if string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
}

// TestTLSClientCertRequired: against a server requiring mutual TLS, a
// client without a certificate is refused and says so; with one from the
// trusted CA it connects.
func TestTLSClientCertRequired(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	client := ca.issue(t, "gateway", x509.ExtKeyUsageClientAuth)
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), TLS: mutualTLS(ca, ca.issue(t, "nats", x509.ExtKeyUsageServerAuth), &clientSerials{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFiles(t, map[string][]byte{caFile: ca.pem, certFile: client.certPEM, keyFile: client.keyPEM})

	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"CA only", Config{TLSCAFile: caFile}, false},
		{"CA and client certificate", Config{TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}, true},
		{"certificate without key", Config{TLSCAFile: caFile, TLSCertFile: certFile}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URLs = []string{srv.ClientURL()}
			nc, err := Connect(tt.cfg)
			if err == nil {
				nc.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("Connect: err = %v, want success %v", err, tt.ok)
			}
		})
	}
}
