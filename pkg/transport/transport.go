// Package transport is how oomwatch's binaries talk to each other securely:
// the flags they share (--tls-cert, --tls-key, --tls-ca, --token,
// --token-file, --insecure) and the server's (--agent-token-file,
// --reader-token-file), the gRPC server and dial options built from them
// (TLS or mutual TLS, bearer tokens checked in constant time), the roles
// of a caller (agent: ingest; reader: queries and the web UI) and the one
// place that says who called (Caller), and the node identity a verified
// client certificate carries.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
)

// Sentinel errors of Validate and of the option builders.
var (
	// ErrNoTransport: neither TLS files nor --insecure were given.
	ErrNoTransport = errors.New("no transport security chosen: give --tls-cert/--tls-key/--tls-ca or, explicitly, --insecure")
	// ErrConflict: --insecure was given together with TLS files.
	ErrConflict = errors.New("--insecure conflicts with --tls-cert, --tls-key and --tls-ca")
	// ErrCertKeyPair: --tls-cert without --tls-key or the reverse.
	ErrCertKeyPair = errors.New("--tls-cert and --tls-key go together")
	// ErrTokenConflict: both --token and --token-file were given.
	ErrTokenConflict = errors.New("--token and --token-file are exclusive")
	// ErrServerCert: a server with TLS needs its certificate and key.
	ErrServerCert = errors.New("a TLS server needs --tls-cert and --tls-key")
	// ErrEmptyToken: the token file holds no token.
	ErrEmptyToken = errors.New("token file is empty")
	// ErrTokenReuse: two token options hold the same token, which would
	// make its role ambiguous.
	ErrTokenReuse = errors.New("the shared, agent and reader tokens must differ")
)

// Options are the transport flags every oomwatch binary shares.
type Options struct {
	// CertFile and KeyFile are this side's certificate and key (PEM). A
	// server needs them for TLS; a client presents them for mutual TLS.
	CertFile string
	KeyFile  string
	// CAFile is a PEM bundle. On a server it turns on mutual TLS: every
	// client must present a certificate signed by it. On a client it
	// verifies the server.
	CAFile string
	// Token is a shared secret sent as "authorization: Bearer <token>";
	// TokenFile names a file that holds it (for mounted Secrets).
	Token     string
	TokenFile string
	// Insecure allows plaintext. It must be asked for explicitly.
	Insecure bool

	// Server side only (AddServerFlags). AgentTokenFile and
	// ReaderTokenFile name files holding tokens that grant only the agent
	// or only the reader role; the shared Token/TokenFile grants both.
	AgentTokenFile  string
	ReaderTokenFile string
	// AgentNames are client certificate names (CN or DNS name) that have
	// the agent role whatever their Organization: the aggregator's
	// --agent-identity, a certificate shared by every agent.
	AgentNames []string
}

// AddFlags registers the transport flags on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CertFile, "tls-cert", o.CertFile, "PEM certificate of this side (server: required for TLS; client: presented for mutual TLS)")
	fs.StringVar(&o.KeyFile, "tls-key", o.KeyFile, "PEM private key of --tls-cert")
	fs.StringVar(&o.CAFile, "tls-ca", o.CAFile, "PEM CA bundle (server: require and verify client certificates, i.e. mutual TLS; client: verify the server)")
	fs.StringVar(&o.Token, "token", o.Token, "shared bearer token (prefer --token-file or the environment)")
	fs.StringVar(&o.TokenFile, "token-file", o.TokenFile, "file holding the shared bearer token (on the aggregator it grants both roles, agent and reader; prefer --agent-token-file and --reader-token-file there)")
	fs.BoolVar(&o.Insecure, "insecure", o.Insecure, "use plaintext gRPC (no TLS); for tests and trusted networks only")
}

// AddServerFlags registers the flags only a server has: the per-role
// token files.
func (o *Options) AddServerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.AgentTokenFile, "agent-token-file", o.AgentTokenFile, "file holding a bearer token that grants only the agent role (sending events)")
	fs.StringVar(&o.ReaderTokenFile, "reader-token-file", o.ReaderTokenFile, "file holding a bearer token that grants only the reader role (queries, watches, the web UI)")
}

// TLS reports whether any TLS file is configured.
func (o *Options) TLS() bool {
	return o.CertFile != "" || o.KeyFile != "" || o.CAFile != ""
}

// Validate checks the options as a client or a server would both need
// them: exactly one of TLS or --insecure, cert and key together, at most
// one token source.
func (o *Options) Validate() error {
	switch {
	case o.Insecure && o.TLS():
		return ErrConflict
	case !o.Insecure && !o.TLS():
		return ErrNoTransport
	case (o.CertFile == "") != (o.KeyFile == ""):
		return ErrCertKeyPair
	case o.Token != "" && o.TokenFile != "":
		return ErrTokenConflict
	}
	return nil
}

// ValidateServer is Validate plus what a server needs: with TLS, its own
// certificate and key.
func (o *Options) ValidateServer() error {
	if err := o.Validate(); err != nil {
		return err
	}
	if !o.Insecure && o.CertFile == "" {
		return ErrServerCert
	}
	return nil
}

// Describe logs the transport in use; plaintext is a warning.
func (o *Options) Describe(log *logrus.Entry) {
	f := logrus.Fields{"token": o.Token != "" || o.TokenFile != "",
		"agent_token": o.AgentTokenFile != "", "reader_token": o.ReaderTokenFile != ""}
	switch {
	case o.Insecure:
		log.WithFields(f).Warn("--insecure: gRPC traffic is plaintext and unauthenticated by TLS")
	case o.CAFile != "" && o.CertFile != "":
		log.WithFields(f).Info("transport: mutual TLS")
	default:
		log.WithFields(f).Info("transport: TLS")
	}
}

// token returns the shared secret, reading TokenFile when set; "" means
// no token.
func (o *Options) token() (string, error) {
	if o.TokenFile == "" {
		return o.Token, nil
	}
	return readToken(o.TokenFile)
}

// readToken reads a token file; surrounding white space is ignored.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s: %w", path, ErrEmptyToken)
	}
	return t, nil
}

// certPool reads a PEM CA bundle.
func certPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate found", path)
	}
	return pool, nil
}

// keyPair reads the certificate and key.
func (o *Options) keyPair() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS key pair: %w", err)
	}
	return c, nil
}
