package clustertest

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
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/ocvr/realtime/pkg/provision"
)

// pki is a CA with a server certificate for 127.0.0.1 and one client
// certificate, written as files the services are given.
type pki struct {
	caFile, certFile, keyFile string
	server                    *tls.Config // requires a client certificate from the CA
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ocvr"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := pki{caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	clientCert, clientKey := issue(2, x509.ExtKeyUsageClientAuth)
	writeFile(t, p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	writeFile(t, p.certFile, clientCert)
	writeFile(t, p.keyFile, clientKey)
	serverCert, serverKey := issue(3, x509.ExtKeyUsageServerAuth)
	kp, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	return p
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// operator is NATS operator mode (decentralized JWT auth) for one
// application account with JetStream, and a system account.
type operator struct {
	claims   *jwt.OperatorClaims
	sysPub   string
	accounts map[string]string // public key → account JWT (the memory resolver's content)
	app      nkeys.KeyPair     // the application account: signs the users
	appPub   string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	opKP, _ := nkeys.CreateOperator()
	opPub, _ := opKP.PublicKey()
	o := &operator{claims: jwt.NewOperatorClaims(opPub), accounts: map[string]string{}}
	sign := func(pub string, claims *jwt.AccountClaims) {
		tok, err := claims.Encode(opKP)
		if err != nil {
			t.Fatal(err)
		}
		o.accounts[pub] = tok
	}
	sysKP, _ := nkeys.CreateAccount()
	o.sysPub, _ = sysKP.PublicKey()
	sys := jwt.NewAccountClaims(o.sysPub)
	sys.Name = "SYS"
	sign(o.sysPub, sys)
	o.claims.SystemAccount = o.sysPub
	o.app, _ = nkeys.CreateAccount()
	o.appPub, _ = o.app.PublicKey()
	app := jwt.NewAccountClaims(o.appPub)
	app.Name = "OCVR"
	app.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1, MemoryMaxStreamBytes: -1, DiskMaxStreamBytes: -1}
	sign(o.appPub, app)
	return o
}

// configure puts the server in operator mode with a memory resolver
// holding the two accounts.
func (o *operator) configure(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{o.claims}
	opts.SystemAccount = o.sysPub
	r := &server.MemAccResolver{}
	for pub, tok := range o.accounts {
		_ = r.Store(pub, tok)
	}
	opts.AccountResolver = r
}

// creds writes a credentials file for a user of the application account
// allowed exactly g (nothing else) and returns its path.
func (o *operator) creds(t *testing.T, dir, name string, g provision.Grant) string {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.Pub.Allow = g.Publish
	uc.Sub.Allow = g.Subscribe
	if g.Responses {
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	}
	tok, err := uc.Encode(o.app)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	b, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".creds")
	writeFile(t, path, b)
	return path
}

// without is g less the publish permission subject.
func without(g provision.Grant, subject string) provision.Grant {
	out := provision.Grant{Subscribe: g.Subscribe}
	for _, s := range g.Publish {
		if s != subject {
			out.Publish = append(out.Publish, s)
		}
	}
	return out
}

var (
	ocvrctlOnce sync.Once
	ocvrctlBin  string
	ocvrctlErr  error
)

// ocvrctlBinary builds ocvrctl next to the services' binaries.
func ocvrctlBinary() (string, error) {
	ocvrctlOnce.Do(func() {
		dir, err := Binaries()
		if err != nil {
			ocvrctlErr = err
			return
		}
		root, _ := RepoRoot()
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./pkg/cmd/ocvrctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			ocvrctlErr = &buildError{err: err, out: string(out)}
			return
		}
		ocvrctlBin = filepath.Join(dir, "ocvrctl")
	})
	return ocvrctlBin, ocvrctlErr
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "build ocvrctl: " + e.err.Error() + "\n" + e.out }
