package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/transport/transporttest"
)

// serveHTTP serves a handler that answers "ok" with the options' TLS and
// token, as the aggregator's web UI does, and returns its base URL.
func serveHTTP(t *testing.T, o Options) string {
	t.Helper()
	cfg, err := HTTPServerTLS(o)
	if err != nil {
		t.Fatalf("HTTPServerTLS: %v", err)
	}
	h, err := HTTPAuth(o, RoleReader, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatalf("HTTPAuth: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0)}
	scheme := "http"
	if cfg != nil {
		scheme = "https"
		go func() { _ = srv.ServeTLS(lis, "", "") }()
	} else {
		go func() { _ = srv.Serve(lis) }()
	}
	t.Cleanup(func() { srv.Close() })
	return scheme + "://" + lis.Addr().String() + "/"
}

// client trusts the CA and presents the certificate, when given.
func client(t *testing.T, caFile, cert, key string) *http.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(b)
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestHTTP(t *testing.T) {
	ca := transporttest.NewCA(t, "oomwatch-ca")
	other := transporttest.NewCA(t, "other-ca")
	srvCert, srvKey := ca.Server(t, "aggregator")
	cliCert, cliKey := ca.ClientIn(t, []string{OrgReaders}, "oomctl")
	agentCert, agentKey := ca.ClientIn(t, []string{OrgAgents}, "node-a")
	plainCert, plainKey := ca.Client(t, "someone")
	agentTok, readerTok := filepath.Join(t.TempDir(), "agent"), filepath.Join(t.TempDir(), "reader")
	for f, tok := range map[string]string{agentTok: "agent-s3cret", readerTok: "reader-s3cret"} {
		if err := os.WriteFile(f, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	strangerCert, strangerKey := other.Client(t, "stranger")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	type req struct {
		name        string
		client      *http.Client
		bearer      string
		user, pass  string
		basic       bool
		wantStatus  int // 0: the request fails (TLS)
		wantChallng bool
	}
	tests := []struct {
		name string
		o    Options
		reqs []req
	}{
		{name: "insecure", o: Options{Insecure: true}, reqs: []req{
			{name: "plain", client: http.DefaultClient, wantStatus: 200},
		}},
		{name: "insecure with token", o: Options{Insecure: true, Token: "s3cret"}, reqs: []req{
			{name: "none", client: http.DefaultClient, wantStatus: 401, wantChallng: true},
			{name: "bearer", client: http.DefaultClient, bearer: "s3cret", wantStatus: 200},
			{name: "wrong bearer", client: http.DefaultClient, bearer: "s3cre", wantStatus: 401, wantChallng: true},
			{name: "basic", client: http.DefaultClient, basic: true, user: "sre", pass: "s3cret", wantStatus: 200},
			{name: "basic no user", client: http.DefaultClient, basic: true, pass: "s3cret", wantStatus: 200},
			{name: "basic token as user", client: http.DefaultClient, basic: true, user: "s3cret", pass: "x", wantStatus: 401, wantChallng: true},
		}},
		{name: "TLS and token file", o: Options{CertFile: srvCert, KeyFile: srvKey, TokenFile: tokenFile}, reqs: []req{
			{name: "basic", client: client(t, ca.CertFile, "", ""), basic: true, user: "u", pass: "s3cret", wantStatus: 200},
			{name: "none", client: client(t, ca.CertFile, "", ""), wantStatus: 401, wantChallng: true},
			{name: "untrusted server", client: client(t, other.CertFile, "", ""), bearer: "s3cret"},
		}},
		{name: "mutual TLS", o: Options{CertFile: srvCert, KeyFile: srvKey, CAFile: ca.CertFile}, reqs: []req{
			{name: "client certificate", client: client(t, ca.CertFile, cliCert, cliKey), wantStatus: 200},
			{name: "no client certificate", client: client(t, ca.CertFile, "", "")},
			{name: "certificate of another CA", client: client(t, ca.CertFile, strangerCert, strangerKey)},
			{name: "agent certificate", client: client(t, ca.CertFile, agentCert, agentKey), wantStatus: 403},
			{name: "certificate without a role", client: client(t, ca.CertFile, plainCert, plainKey), wantStatus: 403},
		}},
		{name: "role tokens", o: Options{Insecure: true, AgentTokenFile: agentTok, ReaderTokenFile: readerTok}, reqs: []req{
			{name: "reader", client: http.DefaultClient, basic: true, pass: "reader-s3cret", wantStatus: 200},
			{name: "agent", client: http.DefaultClient, bearer: "agent-s3cret", wantStatus: 403},
			{name: "none", client: http.DefaultClient, wantStatus: 401, wantChallng: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serveHTTP(t, tt.o)
			for _, rq := range tt.reqs {
				r, err := http.NewRequest("GET", url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rq.bearer != "" {
					r.Header.Set("Authorization", "Bearer "+rq.bearer)
				}
				if rq.basic {
					r.SetBasicAuth(rq.user, rq.pass)
				}
				resp, err := rq.client.Do(r)
				if rq.wantStatus == 0 {
					if err == nil {
						resp.Body.Close()
						t.Errorf("%s: status %d, want a failed TLS handshake", rq.name, resp.StatusCode)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", rq.name, err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != rq.wantStatus {
					t.Errorf("%s: status %d, want %d (%s)", rq.name, resp.StatusCode, rq.wantStatus, body)
				}
				if got := resp.Header.Get("WWW-Authenticate") != ""; got != rq.wantChallng {
					t.Errorf("%s: Basic challenge %v, want %v", rq.name, got, rq.wantChallng)
				}
				if rq.wantStatus == 200 && string(body) != "ok" {
					t.Errorf("%s: body %q", rq.name, body)
				}
			}
		})
	}
}

func TestHTTPOptionErrors(t *testing.T) {
	if _, err := HTTPServerTLS(Options{}); !errors.Is(err, ErrNoTransport) {
		t.Errorf("no transport: %v", err)
	}
	if _, err := HTTPServerTLS(Options{CAFile: "ca.pem"}); !errors.Is(err, ErrCertKeyPair) && !errors.Is(err, ErrServerCert) {
		t.Errorf("CA only: %v", err)
	}
	if _, err := HTTPServerTLS(Options{CertFile: "missing.pem", KeyFile: "missing.key"}); err == nil {
		t.Error("missing key pair: no error")
	}
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := HTTPAuth(Options{Insecure: true, TokenFile: empty}, RoleReader, http.NotFoundHandler()); !errors.Is(err, ErrEmptyToken) {
		t.Errorf("empty token file: %v", err)
	}
}
