package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeLister struct {
	svcs  []corev1.Service
	err   error
	calls int
}

func (f *fakeLister) ListServices(context.Context) ([]corev1.Service, error) {
	f.calls++
	return f.svcs, f.err
}

func svc(ns, name, ip string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
}

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResolverAnswers(t *testing.T) {
	lister := &fakeLister{svcs: []corev1.Service{
		svc("oomwatch", "oomwatch-aggregator", "10.215.0.78"),
		svc("default", "kubernetes", "10.215.0.1"),
		svc("shop", "headless", "None"),
	}}
	r := &Resolver{lister: lister}
	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		a     string
	}{
		{"oomwatch-aggregator.oomwatch.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.215.0.78"},
		{"OOMWATCH-Aggregator.oomwatch.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.215.0.78"},
		{"kubernetes.default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.215.0.1"},
		// An existing name without an address of that type: no answer.
		{"kubernetes.default.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, ""},
		{"headless.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, ""},
		// The resolver's search list tries these first: they do not exist.
		{"oomwatch-aggregator.oomwatch.svc.oomwatch.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"missing.oomwatch.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"example.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
	} {
		out, err := r.Answer(context.Background(), query(t, tc.name, tc.typ))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("%s: unpack: %v", tc.name, err)
		}
		if m.ID != 7 || !m.Response || m.RCode != tc.rcode {
			t.Errorf("%s %v: id %d response %v rcode %v, want rcode %v", tc.name, tc.typ, m.ID, m.Response, m.RCode, tc.rcode)
		}
		got := ""
		if len(m.Answers) == 1 {
			a := m.Answers[0].Body.(*dnsmessage.AResource).A
			got = net.IP(a[:]).String()
		}
		if got != tc.a || len(m.Answers) > 1 {
			t.Errorf("%s %v: answers %v, want %q", tc.name, tc.typ, m.Answers, tc.a)
		}
	}
	if lister.calls != 1 {
		t.Errorf("Services listed %d times for queries within a second, want 1", lister.calls)
	}
}

func TestResolverAPIFailureIsServFail(t *testing.T) {
	r := &Resolver{lister: &fakeLister{err: errors.New("apiserver down")}}
	out, err := r.Answer(context.Background(), query(t, "a.b.svc.cluster.local.", dnsmessage.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil || m.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("rcode %v (%v), want SERVFAIL", m.RCode, err)
	}
}

// Pods send the server whatever they like: garbage gets no answer and the
// server keeps answering.
func TestResolverServeSurvivesGarbage(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{lister: &fakeLister{svcs: []corev1.Service{svc("a", "b", "10.0.0.1")}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Serve(ctx, pc) }()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, junk := range [][]byte{{}, {0}, []byte("not dns at all"), make([]byte, 511), query(t, "b.a.svc.cluster.local.", dnsmessage.TypeA)[:13]} {
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(query(t, "b.a.svc.cluster.local.", dnsmessage.TypeA)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil || len(m.Answers) != 1 {
		t.Fatalf("answer after garbage: %v %v", m.Answers, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func FuzzResolverAnswer(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01b\x01a\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01"))
	r := &Resolver{lister: &fakeLister{svcs: []corev1.Service{svc("a", "b", "10.0.0.1")}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := r.Answer(context.Background(), b)
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("unparsable answer to %q: %v", b, err)
		}
		if len(out) > 512 {
			t.Fatalf("answer of %d bytes over UDP's 512", len(out))
		}
	})
}
