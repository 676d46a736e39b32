package transport

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/transport/transporttest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeIngest answers a Hello with one ack when the caller may speak for
// the Hello's node.
type fakeIngest struct {
	pb.UnimplementedIngestServiceServer
}

func (fakeIngest) Stream(st grpc.BidiStreamingServer[pb.StreamRequest, pb.StreamResponse]) error {
	req, err := st.Recv()
	if err != nil {
		return err
	}
	h := req.GetHello()
	if err := AuthorizeNode(st.Context(), h.GetNode()); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return st.Send(&pb.StreamResponse{BootId: h.GetBootId()})
}

func serve(t *testing.T, o Options) string {
	t.Helper()
	opts, err := ServerOptions(o)
	if err != nil {
		t.Fatalf("ServerOptions: %v", err)
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterIngestServiceServer(gs, fakeIngest{})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// call says hello as node and returns the status code of the exchange.
func call(t *testing.T, addr string, o Options, serverName, node string) codes.Code {
	t.Helper()
	opts, err := DialOptions(o, serverName)
	if err != nil {
		t.Fatalf("DialOptions: %v", err)
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		return status.Code(err)
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: node, BootId: "b"}}}); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err)
	}
	if _, err := st.Recv(); err != nil {
		return status.Code(err)
	}
	return codes.OK
}

func healthCode(t *testing.T, addr string, o Options) codes.Code {
	t.Helper()
	opts, err := DialOptions(o, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return status.Code(err)
}

func TestConnections(t *testing.T) {
	ca := transporttest.NewCA(t, "oomwatch-ca")
	other := transporttest.NewCA(t, "other-ca")
	srvCert, srvKey := ca.Server(t, "aggregator")
	agents := []string{OrgAgents}
	aCert, aKey := ca.ClientIn(t, agents, "node-a")
	sanCert, sanKey := ca.ClientIn(t, agents, "agent", "node-s")
	readerCert, readerKey := ca.ClientIn(t, []string{OrgReaders}, "oomctl")
	plainCert, plainKey := ca.Client(t, "node-a")
	sharedCert, sharedKey := ca.Client(t, "oomwatch-agent")
	rogueCert, rogueKey := other.Client(t, "node-a")

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	plain := Options{Insecure: true}
	tlsSrv := Options{CertFile: srvCert, KeyFile: srvKey}
	mtlsSrv := Options{CertFile: srvCert, KeyFile: srvKey, CAFile: ca.CertFile}
	tlsCli := Options{CAFile: ca.CertFile}
	withToken := func(o Options, tok string) Options { o.Token = tok; return o }
	withCert := func(o Options, c, k string) Options { o.CertFile, o.KeyFile = c, k; return o }
	withAgentNames := func(o Options, n ...string) Options { o.AgentNames = n; return o }
	agentTok, readerTok := filepath.Join(t.TempDir(), "agent"), filepath.Join(t.TempDir(), "reader")
	for f, tok := range map[string]string{agentTok: "agent-s3cret", readerTok: "reader-s3cret"} {
		if err := os.WriteFile(f, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withRoleTokens := func(o Options, a, r string) Options { o.AgentTokenFile, o.ReaderTokenFile = a, r; return o }

	tests := []struct {
		name       string
		server     Options
		client     Options
		serverName string
		node       string
		want       codes.Code
	}{
		{name: "plaintext", server: plain, client: plain, node: "node-a", want: codes.OK},
		{name: "plaintext client to TLS server", server: tlsSrv, client: plain, node: "node-a", want: codes.Unavailable},
		{name: "TLS client to plaintext server", server: plain, client: tlsCli, node: "node-a", want: codes.Unavailable},
		{name: "TLS", server: tlsSrv, client: tlsCli, node: "node-a", want: codes.OK},
		{name: "TLS server name localhost", server: tlsSrv, client: tlsCli, serverName: "localhost", node: "node-a", want: codes.OK},
		{name: "TLS wrong server name", server: tlsSrv, client: tlsCli, serverName: "elsewhere", node: "node-a", want: codes.Unavailable},
		{name: "TLS server from another CA", server: tlsSrv, client: Options{CAFile: other.CertFile}, node: "node-a", want: codes.Unavailable},
		{name: "mTLS", server: mtlsSrv, client: withCert(tlsCli, aCert, aKey), node: "node-a", want: codes.OK},
		{name: "mTLS DNS SAN", server: mtlsSrv, client: withCert(tlsCli, sanCert, sanKey), node: "node-s", want: codes.OK},
		{name: "mTLS no client cert", server: mtlsSrv, client: tlsCli, node: "node-a", want: codes.Unavailable},
		{name: "mTLS client cert from another CA", server: mtlsSrv, client: withCert(tlsCli, rogueCert, rogueKey), node: "node-a", want: codes.Unavailable},
		{name: "mTLS cert claims another node", server: mtlsSrv, client: withCert(tlsCli, aCert, aKey), node: "node-a2", want: codes.PermissionDenied},
		{name: "mTLS reader cert may not ingest", server: mtlsSrv, client: withCert(tlsCli, readerCert, readerKey), node: "oomctl", want: codes.PermissionDenied},
		{name: "mTLS cert without a role", server: mtlsSrv, client: withCert(tlsCli, plainCert, plainKey), node: "node-a", want: codes.PermissionDenied},
		{name: "mTLS shared agent identity", server: withAgentNames(mtlsSrv, "oomwatch-agent"), client: withCert(tlsCli, sharedCert, sharedKey), node: "oomwatch-agent", want: codes.OK},
		{name: "agent token", server: withRoleTokens(tlsSrv, agentTok, readerTok), client: withToken(tlsCli, "agent-s3cret"), node: "node-a", want: codes.OK},
		{name: "reader token may not ingest", server: withRoleTokens(tlsSrv, agentTok, readerTok), client: withToken(tlsCli, "reader-s3cret"), node: "node-a", want: codes.PermissionDenied},
		{name: "reader cert with shared token", server: withToken(mtlsSrv, "s3cret"), client: withToken(withCert(tlsCli, readerCert, readerKey), "s3cret"), node: "oomctl", want: codes.PermissionDenied},
		{name: "token", server: withToken(mtlsSrv, "s3cret"), client: withToken(withCert(tlsCli, aCert, aKey), "s3cret"), node: "node-a", want: codes.OK},
		{name: "token from file", server: Options{CertFile: srvCert, KeyFile: srvKey, TokenFile: tokenFile}, client: withToken(tlsCli, "s3cret"), node: "node-a", want: codes.OK},
		{name: "wrong token", server: withToken(tlsSrv, "s3cret"), client: withToken(tlsCli, "guess"), node: "node-a", want: codes.Unauthenticated},
		{name: "wrong token longer", server: withToken(tlsSrv, "s3cret"), client: withToken(tlsCli, "s3cret-and-more"), node: "node-a", want: codes.Unauthenticated},
		{name: "no token", server: withToken(tlsSrv, "s3cret"), client: tlsCli, node: "node-a", want: codes.Unauthenticated},
		{name: "token over plaintext", server: withToken(plain, "s3cret"), client: withToken(plain, "s3cret"), node: "node-a", want: codes.OK},
		{name: "wrong token over plaintext", server: withToken(plain, "s3cret"), client: withToken(plain, "x"), node: "node-a", want: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.server)
			if got := call(t, addr, tt.client, tt.serverName, tt.node); got != tt.want {
				t.Fatalf("code = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("health needs no token", func(t *testing.T) {
		addr := serve(t, withToken(tlsSrv, "s3cret"))
		if got := healthCode(t, addr, tlsCli); got != codes.OK {
			t.Fatalf("health: %v", got)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		o         Options
		want      error
		serverErr error
	}{
		{name: "nothing", o: Options{}, want: ErrNoTransport, serverErr: ErrNoTransport},
		{name: "insecure", o: Options{Insecure: true}},
		{name: "insecure and TLS", o: Options{Insecure: true, CAFile: "ca"}, want: ErrConflict, serverErr: ErrConflict},
		{name: "cert without key", o: Options{CertFile: "c"}, want: ErrCertKeyPair, serverErr: ErrCertKeyPair},
		{name: "key without cert", o: Options{KeyFile: "k", CAFile: "ca"}, want: ErrCertKeyPair, serverErr: ErrCertKeyPair},
		{name: "client CA only", o: Options{CAFile: "ca"}, serverErr: ErrServerCert},
		{name: "full", o: Options{CertFile: "c", KeyFile: "k", CAFile: "ca"}},
		{name: "two tokens", o: Options{Insecure: true, Token: "a", TokenFile: "f"}, want: ErrTokenConflict, serverErr: ErrTokenConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.Validate(); !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if err := tt.o.ValidateServer(); !errors.Is(err, tt.serverErr) {
				t.Fatalf("ValidateServer = %v, want %v", err, tt.serverErr)
			}
		})
	}
}

func TestFlagsAndFiles(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.AddFlags(fs)
	o.AddServerFlags(fs)
	if err := fs.Parse([]string{"--tls-cert=c", "--tls-key=k", "--tls-ca=ca", "--token-file=f", "--agent-token-file=a", "--reader-token-file=r"}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, Options{CertFile: "c", KeyFile: "k", CAFile: "ca", TokenFile: "f", AgentTokenFile: "a", ReaderTokenFile: "r"}) {
		t.Fatalf("parsed %+v", o)
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want error
	}{
		{name: "empty token file", o: Options{Insecure: true, TokenFile: empty}, want: ErrEmptyToken},
		{name: "missing token file", o: Options{Insecure: true, TokenFile: filepath.Join(dir, "none")}, want: os.ErrNotExist},
		{name: "missing cert", o: Options{CertFile: filepath.Join(dir, "none"), KeyFile: filepath.Join(dir, "none")}, want: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ServerOptions(tt.o); !errors.Is(err, tt.want) {
				t.Fatalf("ServerOptions = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := DialOptions(Options{CAFile: notPEM}, ""); err == nil {
		t.Fatal("DialOptions accepted a CA file without PEM")
	}
}

func TestAuthorizeNodeWithoutPeer(t *testing.T) {
	if err := AuthorizeNode(context.Background(), "node-a"); err != nil {
		t.Fatalf("no peer: %v", err)
	}
	id := Identity{CommonName: "agent", DNSNames: []string{"node-a", "node-b"}}
	for node, want := range map[string]bool{"node-a": true, "node-b": true, "agent": true, "node-c": false, "": false} {
		if got := id.Names(node); got != want {
			t.Errorf("Names(%q) = %v, want %v", node, got, want)
		}
	}
}
