package charttest

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
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/ocvr/realtime/pkg/provision"
)

// securedNATS is what README.md step 2 asks of NATS: mutual TLS from one
// CA, and operator-mode JWT accounts with a user per role holding exactly
// provision.Grants (deploy/README.md "NATS security").
type securedNATS struct {
	serverTLS *tls.Config       // the server's: requires a client certificate of the CA
	clientTLS map[string][]byte // ca.crt, tls.crt, tls.key: the client certificate Secret
	operator  *jwt.OperatorClaims
	sysPub    string
	accounts  map[string]string // account public key → JWT (memory resolver)
	app       nkeys.KeyPair     // the OCVR account, which signs the users
}

func newSecuredNATS(t *testing.T) *securedNATS {
	t.Helper()
	s := &securedNATS{accounts: map[string]string{}}
	// PKI: a CA, a server certificate for 127.0.0.1, a client certificate.
	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "charttest NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey))(t)
	ca := must(x509.ParseCertificate(caDER))(t)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ocvr-realtime"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der := must(x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey))(t)
		kder := must(x509.MarshalECPrivateKey(key))(t)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	clientCert, clientKey := issue(2, x509.ExtKeyUsageClientAuth)
	s.clientTLS = map[string][]byte{"ca.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), "tls.crt": clientCert, "tls.key": clientKey}
	serverCert, serverKey := issue(3, x509.ExtKeyUsageServerAuth)
	kp := must(tls.X509KeyPair(serverCert, serverKey))(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s.serverTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}

	// Operator mode: a system account and the OCVR account with JetStream.
	opKP := must(nkeys.CreateOperator())(t)
	s.operator = jwt.NewOperatorClaims(must(opKP.PublicKey())(t))
	account := func(name string, js bool) (nkeys.KeyPair, string) {
		akp := must(nkeys.CreateAccount())(t)
		pub := must(akp.PublicKey())(t)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1,
				MaxAckPending: -1, MemoryMaxStreamBytes: -1, DiskMaxStreamBytes: -1}
		}
		s.accounts[pub] = must(ac.Encode(opKP))(t)
		return akp, pub
	}
	_, s.sysPub = account("SYS", false)
	s.operator.SystemAccount = s.sysPub
	s.app, _ = account("OCVR", true)
	return s
}

// configure puts an embedded server in operator mode (natsembed.Options.Configure).
func (s *securedNATS) configure(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{s.operator}
	opts.SystemAccount = s.sysPub
	r := &server.MemAccResolver{}
	for pub, tok := range s.accounts {
		_ = r.Store(pub, tok)
	}
	opts.AccountResolver = r
}

// creds is a .creds file (user JWT and nkey seed) of a user of the OCVR
// account allowed exactly the role's grant in the environment n.
func (s *securedNATS) creds(t *testing.T, role provision.Role, n provision.Names) []byte {
	t.Helper()
	g := provision.Grants(role, n)
	ukp := must(nkeys.CreateUser())(t)
	uc := jwt.NewUserClaims(must(ukp.PublicKey())(t))
	uc.Name = string(role)
	uc.Pub.Allow = g.Publish
	uc.Sub.Allow = g.Subscribe
	if g.Responses {
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	}
	tok := must(uc.Encode(s.app))(t)
	return must(jwt.FormatUserConfig(tok, must(ukp.Seed())(t)))(t)
}

// must unwraps a value for a test: must(f())(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
