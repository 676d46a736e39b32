package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Role is what an authenticated caller may do, a set of bits.
type Role uint8

// The roles. An agent sends events (IngestService); a reader (oomctl, the
// web UI) reads them (QueryService, the web pages). The gRPC health
// service needs no role.
const (
	RoleAgent Role = 1 << iota
	RoleReader

	// RoleNone grants nothing but health checks.
	RoleNone Role = 0
	// RoleAll is both roles: the shared --token-file, and every caller of
	// a server that authenticates nobody (--insecure without a token,
	// or TLS without client certificates or token).
	RoleAll = RoleAgent | RoleReader
)

// Has reports whether r includes every role of want (and want is not
// RoleNone).
func (r Role) Has(want Role) bool { return want != RoleNone && r&want == want }

// String names the roles, e.g. "agent+reader".
func (r Role) String() string {
	var names []string
	if r&RoleAgent != 0 {
		names = append(names, "agent")
	}
	if r&RoleReader != 0 {
		names = append(names, "reader")
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// Certificate Organizations (the Subject's O) that give a client
// certificate its role, in the way Kubernetes reads a certificate's O as
// its groups. A certificate may carry both.
const (
	OrgAgents  = "oomwatch:agents"
	OrgReaders = "oomwatch:readers"
)

// Names of the principals a token or nothing authenticates; a client
// certificate's principal is "cert:" and its common name (or, without
// one, its first DNS name).
const (
	NameSharedToken = "token:shared"
	NameAgentToken  = "token:agent"
	NameReaderToken = "token:reader"
	// NameAnonymous is every caller of a server that authenticates
	// nobody: it identifies no one, so limits keyed on a caller's
	// identity fall back to what the caller claims.
	NameAnonymous = "anonymous"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name identifies the credential: "cert:<CN>", one of the token
	// names, or NameAnonymous. Limits per identity are keyed on it.
	Name string
	// Role is what the caller may do.
	Role Role
}

// Anonymous reports whether the principal was authenticated by nothing.
func (p Principal) Anonymous() bool { return p.Name == NameAnonymous }

type callerKey struct{}

// WithCaller returns ctx carrying p as its caller. The server's gRPC
// interceptors and the web UI's middleware (HTTPAuth) set it; tests may
// too.
func WithCaller(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, callerKey{}, p)
}

// Caller returns the authenticated caller of the request whose context
// is ctx; false when the request did not pass through the authentication
// of ServerOptions or HTTPAuth.
func Caller(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(callerKey{}).(Principal)
	return p, ok
}

// Authentication errors.
var (
	// ErrUnauthenticated: the request carries no valid token.
	ErrUnauthenticated = errors.New("missing or wrong bearer token")
	// ErrForbidden: the caller's role does not allow the request.
	ErrForbidden = errors.New("permission denied")
)

// tokenRole is one accepted token.
type tokenRole struct {
	sum  [sha256.Size]byte
	name string
	role Role
}

// authenticator turns a connection's verified client certificate and a
// request's token into a Principal.
type authenticator struct {
	tokens []tokenRole
	// mtls: client certificates are required and verified.
	mtls bool
	// agentNames are certificate names (CN or DNS) that are agents
	// whatever their Organization (Options.AgentNames).
	agentNames []string
}

func newAuthenticator(o Options) (*authenticator, error) {
	a := &authenticator{mtls: !o.Insecure && o.CAFile != "", agentNames: o.AgentNames}
	shared, err := o.token()
	if err != nil {
		return nil, err
	}
	add := func(tok, name string, role Role) error {
		if tok == "" {
			return nil
		}
		sum := sha256.Sum256([]byte(tok))
		for _, t := range a.tokens {
			if t.sum == sum {
				return ErrTokenReuse
			}
		}
		a.tokens = append(a.tokens, tokenRole{sum: sum, name: name, role: role})
		return nil
	}
	if err := add(shared, NameSharedToken, RoleAll); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path, name string
		role       Role
	}{{o.AgentTokenFile, NameAgentToken, RoleAgent}, {o.ReaderTokenFile, NameReaderToken, RoleReader}} {
		if f.path == "" {
			continue
		}
		tok, err := readToken(f.path)
		if err != nil {
			return nil, err
		}
		if err := add(tok, f.name, f.role); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// authenticate returns the caller of a request made over a connection
// whose TLS state is state (nil: plaintext) with the tokens given (the
// bearer tokens or Basic passwords of the request). It fails with
// ErrUnauthenticated when tokens are configured and none matches.
func (a *authenticator) authenticate(state *tls.ConnectionState, given []string) (Principal, error) {
	p := Principal{Name: NameAnonymous, Role: RoleAll}
	if leaf := verifiedLeaf(state); leaf != nil {
		p.Name = "cert:" + certName(leaf)
		// A certificate without a role Organization grants nothing by
		// itself; next to a token it leaves the role to the token.
		if r := a.certRole(leaf); r != RoleNone || len(a.tokens) == 0 {
			p.Role &= r
		}
	}
	if len(a.tokens) == 0 {
		return p, nil
	}
	for _, g := range given {
		// Comparing digests keeps the comparison constant-time in the
		// token's length too. Every token is compared.
		sum := sha256.Sum256([]byte(g))
		for _, t := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
				p.Role &= t.role
				if p.Anonymous() {
					p.Name = t.name
				}
				return p, nil
			}
		}
	}
	return Principal{}, ErrUnauthenticated
}

// certRole is the role a verified client certificate carries.
func (a *authenticator) certRole(leaf *x509.Certificate) Role {
	r := RoleNone
	if slices.Contains(leaf.Subject.Organization, OrgAgents) {
		r |= RoleAgent
	}
	if slices.Contains(leaf.Subject.Organization, OrgReaders) {
		r |= RoleReader
	}
	id := Identity{CommonName: leaf.Subject.CommonName, DNSNames: leaf.DNSNames}
	for _, n := range a.agentNames {
		if id.Names(n) {
			r |= RoleAgent
		}
	}
	return r
}

// verifiedLeaf returns the verified client certificate of a connection.
func verifiedLeaf(state *tls.ConnectionState) *x509.Certificate {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return nil
	}
	return state.VerifiedChains[0][0]
}

func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" || len(c.DNSNames) == 0 {
		return c.Subject.CommonName
	}
	return c.DNSNames[0]
}

// authorize checks that p may do what needs role.
func authorize(p Principal, need Role, what string) error {
	if p.Role.Has(need) {
		return nil
	}
	return fmt.Errorf("%w: %s needs the %s role; %s has %s", ErrForbidden, what, need, p.Name, p.Role)
}

// MethodRole is the role a gRPC method needs: agent for the ingest
// service, reader for the query service; public methods (health) need
// none and are not authenticated at all, so that probes need no secret.
// Any other method is refused (ok false).
func MethodRole(method string) (need Role, public, ok bool) {
	switch {
	case strings.HasPrefix(method, healthPrefix):
		return RoleNone, true, true
	case strings.HasPrefix(method, "/oomwatch.v1.IngestService/"):
		return RoleAgent, false, true
	case strings.HasPrefix(method, "/oomwatch.v1.QueryService/"):
		return RoleReader, false, true
	}
	return RoleNone, false, false
}
