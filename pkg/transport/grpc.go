package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ErrNodeNotAuthorized reports a client certificate that does not name the
// node it speaks for.
var ErrNodeNotAuthorized = errors.New("client certificate does not name this node")

// healthPrefix is the gRPC health service, which answers without a token
// so that probes need no secret.
const healthPrefix = "/grpc.health.v1.Health/"

// ServerOptions returns the gRPC server options for o: TLS credentials
// (mutual TLS when o.CAFile is set) and interceptors that authenticate
// every call but health checks (codes.Unauthenticated without a valid
// token, when tokens are configured), put its Principal in the context
// (Caller) and refuse a call its role does not allow
// (codes.PermissionDenied; MethodRole).
func ServerOptions(o Options) ([]grpc.ServerOption, error) {
	if err := o.ValidateServer(); err != nil {
		return nil, err
	}
	var opts []grpc.ServerOption
	cfg, err := HTTPServerTLS(o)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	a, err := newAuthenticator(o)
	if err != nil {
		return nil, err
	}
	g := grpcAuth{a}
	opts = append(opts, grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream))
	return opts, nil
}

// DialOptions returns the gRPC dial options for o: TLS verifying the
// server as serverName (empty: the dialled host) with o.CAFile (empty: the
// system roots), a client certificate when configured, and the token as
// per-RPC credentials, which gRPC then refuses to send without TLS unless
// o.Insecure.
func DialOptions(o Options, serverName string) ([]grpc.DialOption, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var opts []grpc.DialOption
	if o.Insecure {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pool, err := certPool(o.CAFile)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool
		}
		if o.CertFile != "" {
			cert, err := o.keyPair()
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	tok, err := o.token()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: tok, secure: !o.Insecure}))
	}
	return opts, nil
}

// bearer sends the token with every call.
type bearer struct {
	token  string
	secure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b bearer) RequireTransportSecurity() bool { return b.secure }

// grpcAuth is the authenticator as gRPC interceptors.
type grpcAuth struct{ a *authenticator }

// check authenticates and authorizes a call and returns its context
// carrying the caller.
func (g grpcAuth) check(ctx context.Context, method string) (context.Context, error) {
	need, public, known := MethodRole(method)
	if public {
		return ctx, nil
	}
	if !known {
		return nil, status.Errorf(codes.PermissionDenied, "%s: no role may call it", method)
	}
	var state *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			state = &info.State
		}
	}
	var given []string
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			given = append(given, tok)
		}
	}
	p, err := g.a.authenticate(state, given)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if err := authorize(p, need, method); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return WithCaller(ctx, p), nil
}

func (g grpcAuth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := g.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (g grpcAuth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := g.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, callerStream{ServerStream: ss, ctx: ctx})
}

// callerStream is a server stream whose context carries the caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context implements grpc.ServerStream.
func (s callerStream) Context() context.Context { return s.ctx }

// Identity is what a verified client certificate says about its holder.
type Identity struct {
	CommonName string
	DNSNames   []string
}

// Names reports whether the identity names node, as its common name or
// one of its DNS names.
func (id Identity) Names(node string) bool {
	return node != "" && (id.CommonName == node || slices.Contains(id.DNSNames, node))
}

// PeerIdentity returns the identity of the call's client certificate, when
// the connection is TLS and the certificate was verified (mutual TLS).
func PeerIdentity(ctx context.Context) (Identity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	leaf := info.State.VerifiedChains[0][0]
	return Identity{CommonName: leaf.Subject.CommonName, DNSNames: leaf.DNSNames}, true
}

// AuthorizeNode checks that the caller may speak for node: with mutual
// TLS its verified certificate must name the node (ErrNodeNotAuthorized
// otherwise); without a client certificate there is nothing to check and
// the bearer token is the only credential.
func AuthorizeNode(ctx context.Context, node string, shared ...string) error {
	id, ok := PeerIdentity(ctx)
	if !ok || id.Names(node) {
		return nil
	}
	// A certificate shared by every agent (one Secret mounted by a
	// DaemonSet) names no node; the aggregator may accept it by name.
	for _, name := range shared {
		if name != "" && id.Names(name) {
			return nil
		}
	}
	return fmt.Errorf("%w: certificate names %q %v, not %q", ErrNodeNotAuthorized, id.CommonName, id.DNSNames, node)
}
