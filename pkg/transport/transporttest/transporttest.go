// Package transporttest makes throwaway certificate authorities and
// certificates for tests of TLS and mutual TLS.
package transporttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority whose files live in a test's temporary
// folder.
type CA struct {
	// CertFile is the CA certificate (PEM), for --tls-ca.
	CertFile string
	dir      string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	mu       sync.Mutex
	serial   int64
}

// NewCA returns a CA named name, valid for an hour.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{dir: t.TempDir(), cert: cert, key: key, serial: 1}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Server issues a server certificate for 127.0.0.1 and localhost and
// returns its certificate and key files.
func (ca *CA) Server(t testing.TB, name string) (certFile, keyFile string) {
	return ca.issue(t, name, name, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
}

// Client issues a client certificate with common name cn and DNS names
// dns, and no Organization (so no oomwatch role by itself), and returns
// its certificate and key files.
func (ca *CA) Client(t testing.TB, cn string, dns ...string) (certFile, keyFile string) {
	return ca.issueOrg(t, "client-"+cn, cn, nil, dns, nil, x509.ExtKeyUsageClientAuth)
}

// ClientIn is Client with the Organizations orgs (e.g. "oomwatch:agents",
// the agent role).
func (ca *CA) ClientIn(t testing.TB, orgs []string, cn string, dns ...string) (certFile, keyFile string) {
	file := "client-" + cn
	for _, o := range orgs {
		file += "-" + strings.ReplaceAll(o, ":", "_")
	}
	return ca.issueOrg(t, file, cn, orgs, dns, nil, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(t testing.TB, file, cn string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	return ca.issueOrg(t, file, cn, nil, dns, ips, usage)
}

func (ca *CA) issueOrg(t testing.TB, file, cn string, orgs, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(ca.dir, file+".pem")
	keyFile := filepath.Join(ca.dir, file+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}
