package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/transport/transporttest"
)

func TestParseServers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "a:1,b:2", want: []string{"a:1", "b:2"}},
		{in: " a:1 , [::1]:2 ", want: []string{"a:1", "[::1]:2"}},
		{in: "a:1,", wantErr: true},
		{in: "a:1,b", wantErr: true},
		{in: ",a:1", wantErr: true},
		{in: "a:1,:2", wantErr: true},
		{in: strings.Repeat("a:1,", MaxServers) + "a:1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseServers(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := NewClient("a:1,b"); !errors.Is(err, ErrBadServers) {
		t.Fatalf("NewClient of a bad list: %v", err)
	}
}

// replica serves the health service under TLS, SERVING for the service
// named name only, so a client can tell which replica answered.
type replica struct {
	name string
	addr string
	gs   *grpc.Server
}

func startReplica(t *testing.T, o Options, name string) *replica {
	t.Helper()
	opts, err := ServerOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	h := health.NewServer()
	h.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return &replica{name: name, addr: lis.Addr().String(), gs: gs}
}

// answering returns the name of the replica conn's calls reach now.
func answering(ctx context.Context, conn *grpc.ClientConn, replicas []*replica) (string, error) {
	c := healthpb.NewHealthClient(conn)
	var last error
	for _, r := range replicas {
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: r.name})
		if err == nil {
			return r.name, nil
		}
		last = err
		if status.Code(err) != codes.NotFound {
			return "", err
		}
	}
	return "", last
}

// TestNewClientReplicas: a client of three replicas moves to another when
// its replica goes away, and never uses an address whose certificate does
// not verify (a rogue server in the list).
func TestNewClientReplicas(t *testing.T) {
	ca := transporttest.NewCA(t, "oomwatch-ca")
	rogueCA := transporttest.NewCA(t, "rogue-ca")
	cert, key := ca.Server(t, "aggregator")
	rogueCert, rogueKey := rogueCA.Server(t, "aggregator")
	srv := Options{CertFile: cert, KeyFile: key}
	var good []*replica
	for i := range 3 {
		good = append(good, startReplica(t, srv, fmt.Sprintf("replica-%d", i)))
	}
	rogue := startReplica(t, Options{CertFile: rogueCert, KeyFile: rogueKey}, "rogue")
	all := append([]*replica{rogue}, good...)
	var addrs []string
	for _, r := range all {
		addrs = append(addrs, r.addr)
	}
	dial, err := DialOptions(Options{CAFile: ca.CertFile}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Fresh clients spread over the replicas and never reach the rogue.
	seen := map[string]int{}
	for range 12 {
		conn, err := NewClient(strings.Join(addrs, ","), dial...)
		if err != nil {
			t.Fatal(err)
		}
		name, err := answering(ctx, conn, all)
		conn.Close()
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		seen[name]++
	}
	if seen["rogue"] > 0 || len(seen) < 2 {
		t.Fatalf("clients reached %v: want at least two good replicas and never the rogue", seen)
	}

	conn, err := NewClient(strings.Join(addrs, ","), dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, err := answering(ctx, conn, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range good {
		if r.name == first {
			r.gs.Stop()
		}
	}
	// The next calls may fail while the client notices; within seconds
	// they reach another replica.
	for {
		name, err := answering(ctx, conn, all)
		if err == nil && name != first {
			if name == "rogue" {
				t.Fatal("moved to the rogue replica")
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("still on %q or failing (%v) after its replica stopped", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
