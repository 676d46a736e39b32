package deploy

import (
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestGenCertsHandshake runs deploy/gen-certs.sh and wires its output the
// way the manifests do: the aggregator's transport flags from
// aggregator.yaml, the agent's from agent.yaml, with the Secret mount
// directories replaced by the script's output. A real gRPC server on
// 127.0.0.1 then answers health checks from a client that verifies the
// server as the agents do (the --server host) and as oomctl through
// `kubectl port-forward` does (localhost), and refuses a client without a
// certificate.
func TestGenCertsHandshake(t *testing.T) {
	needOpenSSL(t)
	s := newSuite(t)
	pki := t.TempDir()
	out, err := exec.Command("sh", filepath.Join(s.dir, "gen-certs.sh"), pki).CombinedOutput()
	if err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	for secret, dir := range userSecrets {
		if !strings.Contains(string(out), "secret generic "+secret+" --from-file="+filepath.Join(pki, dir)) {
			t.Errorf("gen-certs.sh does not print how to create Secret %s from %s:\n%s", secret, dir, out)
		}
		entries, err := os.ReadDir(filepath.Join(pki, dir))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Name())
		}
		if !slices.Equal(keys, userSecretKeys) {
			t.Errorf("gen-certs.sh wrote %v for Secret %s, want exactly %v (every file becomes a key)", keys, secret, userSecretKeys)
		}
	}

	agg := container(t, &s.deployment(t, aggregatorName).Spec.Template.Spec, "aggregator")
	agt := container(t, &s.daemonSet(t, agentName).Spec.Template.Spec, "agent")
	serverOpts := transportFrom(t, parseContainer(t, binaries[imageName(agg.Image)], agg), filepath.Join(pki, userSecrets["oomwatch-tls"]))
	agentFS := parseContainer(t, binaries[imageName(agt.Image)], agt)
	agentOpts := transportFrom(t, agentFS, filepath.Join(pki, userSecrets["oomwatch-agent-tls"]))
	if serverOpts.CAFile == "" || agentOpts.CertFile == "" {
		t.Fatal("the manifests do not configure mutual TLS")
	}

	gopts, err := transport.ServerOptions(serverOpts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(gopts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	pb.RegisterIngestServiceServer(gs, pb.UnimplementedIngestServiceServer{})
	pb.RegisterQueryServiceServer(gs, pb.UnimplementedQueryServiceServer{})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	agentHost, _, _ := strings.Cut(flagValue(agentFS, "server"), ":")
	oomctl := transport.Options{
		CAFile:   filepath.Join(pki, "oomctl", "ca.crt"),
		CertFile: filepath.Join(pki, "oomctl", "tls.crt"),
		KeyFile:  filepath.Join(pki, "oomctl", "tls.key"),
	}
	noCert := transport.Options{CAFile: agentOpts.CAFile}
	tests := []struct {
		name       string
		opts       transport.Options
		serverName string
		ok         bool
	}{
		{name: "agent dials the Service name", opts: agentOpts, serverName: agentHost, ok: true},
		{name: "oomctl through port-forward", opts: oomctl, serverName: "localhost", ok: true},
		{name: "a name the certificate lacks", opts: agentOpts, serverName: "aggregator.example.com"},
		{name: "no client certificate", opts: noCert, serverName: agentHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dial, err := transport.DialOptions(tt.opts, tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(lis.Addr().String(), dial...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if tt.ok && (err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING) {
				t.Fatalf("health check: %v %v", resp, err)
			}
			if !tt.ok && err == nil {
				t.Fatal("the handshake succeeded")
			}
		})
	}

	// The roles of the certificates: past authentication the fake services
	// answer Unimplemented; a role that may not call them gets
	// PermissionDenied first.
	roles := []struct {
		name         string
		opts         transport.Options
		ingest, read codes.Code
	}{
		{name: "agent certificate", opts: agentOpts, ingest: codes.Unimplemented, read: codes.PermissionDenied},
		{name: "oomctl certificate", opts: oomctl, ingest: codes.PermissionDenied, read: codes.Unimplemented},
	}
	for _, tt := range roles {
		t.Run(tt.name, func(t *testing.T) {
			dial, err := transport.DialOptions(tt.opts, "localhost")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(lis.Addr().String(), dial...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = pb.NewQueryServiceClient(conn).ListEvents(ctx, &pb.ListEventsRequest{})
			if status.Code(err) != tt.read {
				t.Errorf("ListEvents: %v, want %v", err, tt.read)
			}
			st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
			if err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) != tt.ingest {
				t.Errorf("Stream: %v, want %v", err, tt.ingest)
			}
		})
	}
}

// transportFrom returns the transport options a container's flags set,
// with the files' directory replaced by dir.
func transportFrom(t *testing.T, fs *flag.FlagSet, dir string) transport.Options {
	t.Helper()
	var o transport.Options
	tfs := flag.NewFlagSet("transport", flag.ContinueOnError)
	o.AddFlags(tfs)
	fs.Visit(func(f *flag.Flag) {
		if tfs.Lookup(f.Name) == nil {
			return
		}
		v := f.Value.String()
		if strings.HasPrefix(v, "/") {
			v = filepath.Join(dir, filepath.Base(v))
		}
		if err := tfs.Set(f.Name, v); err != nil {
			t.Fatal(err)
		}
	})
	return o
}
