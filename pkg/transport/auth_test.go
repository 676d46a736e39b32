package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, tok string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	agentTok, readerTok := write("agent", "a-tok"), write("reader", "r-tok")
	cert := func(cn string, orgs ...string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	tests := []struct {
		name  string
		o     Options
		state *tls.ConnectionState
		given []string
		want  Principal
		err   error
	}{
		{name: "nothing configured", o: Options{Insecure: true}, want: Principal{NameAnonymous, RoleAll}},
		{name: "shared token", o: Options{Insecure: true, Token: "s"}, given: []string{"s"}, want: Principal{NameSharedToken, RoleAll}},
		{name: "agent token", o: Options{Insecure: true, Token: "s", AgentTokenFile: agentTok, ReaderTokenFile: readerTok}, given: []string{"a-tok"}, want: Principal{NameAgentToken, RoleAgent}},
		{name: "reader token", o: Options{Insecure: true, AgentTokenFile: agentTok, ReaderTokenFile: readerTok}, given: []string{"x", "r-tok"}, want: Principal{NameReaderToken, RoleReader}},
		{name: "wrong token", o: Options{Insecure: true, AgentTokenFile: agentTok}, given: []string{"r-tok"}, err: ErrUnauthenticated},
		{name: "no token", o: Options{Insecure: true, ReaderTokenFile: readerTok}, err: ErrUnauthenticated},
		{name: "agent cert", o: Options{CAFile: "ca"}, state: cert("node-a", OrgAgents), want: Principal{"cert:node-a", RoleAgent}},
		{name: "reader cert", o: Options{CAFile: "ca"}, state: cert("oomctl", OrgReaders), want: Principal{"cert:oomctl", RoleReader}},
		{name: "both orgs", o: Options{CAFile: "ca"}, state: cert("admin", OrgReaders, OrgAgents), want: Principal{"cert:admin", RoleAll}},
		{name: "cert without a role", o: Options{CAFile: "ca"}, state: cert("oomctl", "oomwatch"), want: Principal{"cert:oomctl", RoleNone}},
		{name: "shared agent identity", o: Options{CAFile: "ca", AgentNames: []string{"oomwatch-agent"}}, state: cert("oomwatch-agent"), want: Principal{"cert:oomwatch-agent", RoleAgent}},
		{name: "unmarked cert leaves the role to the token", o: Options{CAFile: "ca", ReaderTokenFile: readerTok}, state: cert("x"), given: []string{"r-tok"}, want: Principal{"cert:x", RoleReader}},
		{name: "reader cert with the agent token", o: Options{CAFile: "ca", AgentTokenFile: agentTok}, state: cert("oomctl", OrgReaders), given: []string{"a-tok"}, want: Principal{"cert:oomctl", RoleNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newAuthenticator(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.authenticate(tt.state, tt.given)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := newAuthenticator(Options{Token: "a-tok", AgentTokenFile: agentTok}); !errors.Is(err, ErrTokenReuse) {
		t.Fatalf("one token for two roles: %v", err)
	}
}

func TestCaller(t *testing.T) {
	if _, ok := Caller(context.Background()); ok {
		t.Fatal("a bare context has a caller")
	}
	p := Principal{Name: "cert:n", Role: RoleAgent}
	if got, ok := Caller(WithCaller(context.Background(), p)); !ok || got != p {
		t.Fatalf("Caller = %+v %v", got, ok)
	}
	if RoleAgent.Has(RoleReader) || !RoleAll.Has(RoleReader) || RoleAll.Has(RoleNone) || RoleAll.String() != "agent+reader" {
		t.Fatal("Role bits")
	}
}
