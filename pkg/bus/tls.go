package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// tlsOptions turns cfg's TLS files into connection options that read the
// files at every handshake, not once: cert-manager rewrites the mounted
// secret before the old certificate expires, and the next reconnect must
// present the new certificate and trust the new CA. nats.go calls the
// loaders once at Connect too, so a missing or malformed file fails at
// start with a message naming it.
func tlsOptions(cfg Config) ([]nats.Option, error) {
	if cfg.TLSCAFile == "" && cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		return nil, nil
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("NATS mutual TLS needs both a client certificate and its key file")
	}
	var certCB nats.TLSCertHandler
	if cfg.TLSCertFile != "" {
		certCB = func() (tls.Certificate, error) { return loadClientCert(cfg.TLSCertFile, cfg.TLSKeyFile) }
	}
	var rootsCB nats.RootCAsHandler
	if cfg.TLSCAFile != "" {
		rootsCB = func() (*x509.CertPool, error) { return loadCAs(cfg.TLSCAFile) }
	}
	return []nats.Option{
		// Secure first: ClientTLSConfig keeps the config it finds.
		nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}),
		nats.ClientTLSConfig(certCB, rootsCB),
	}, nil
}

func loadClientCert(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load NATS client certificate: %w", err)
	}
	return cert, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read NATS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("NATS CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
