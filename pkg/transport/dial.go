package transport

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// ErrBadServers reports a --server list that is not host:port[,host:port...].
var ErrBadServers = errors.New("want host:port, or several separated by commas")

// MaxServers bounds the addresses of one --server list.
const MaxServers = 64

// replicasScheme names the resolver of a list of aggregator replicas.
const replicasScheme = "oomwatch-replicas"

// pickAnyReplica connects to one address of the list at a time, taken in a
// random order per client (so that a fleet of agents spreads over the
// replicas), and to the next one that answers when it goes away.
const pickAnyReplica = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// ParseServers splits a --server list of replicas' addresses, host:port
// separated by commas (surrounding spaces ignored).
func ParseServers(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("--server %q: %w", s, ErrBadServers)
		}
		out = append(out, a)
	}
	if len(out) > MaxServers {
		return nil, fmt.Errorf("--server: %d addresses, at most %d", len(out), MaxServers)
	}
	return out, nil
}

// NewClient returns a connection to the aggregator at servers (see
// ParseServers). With one address (no comma) it is gRPC's own client of
// that target.
// With several (replicas on one database), it holds one connection at a
// time to one of them, chosen at random, and connects to another when that
// one goes away; each is verified under TLS as its own host name, unless
// opts set a server name.
func NewClient(servers string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if !strings.Contains(servers, ",") {
		return grpc.NewClient(servers, opts...)
	}
	addrs, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	state := resolver.State{}
	for _, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	r := manual.NewBuilderWithScheme(replicasScheme)
	r.InitialState(state)
	opts = append(opts, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(pickAnyReplica))
	return grpc.NewClient(replicasScheme+":///aggregator", opts...)
}
