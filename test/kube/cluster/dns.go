package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local."

// serviceLister is the part of the API the DNS server uses.
type serviceLister interface {
	ListServices(ctx context.Context) ([]corev1.Service, error)
}

type clientLister struct{ cs kubernetes.Interface }

func (l clientLister) ListServices(ctx context.Context) ([]corev1.Service, error) {
	list, err := l.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Resolver answers the cluster's Service names,
// <service>.<namespace>.svc.cluster.local, with their ClusterIPs: the part
// of cluster DNS that pods here need (the cluster has no CoreDNS; kube-proxy
// routes the ClusterIPs). Every other name is NXDOMAIN: nothing outside
// the cluster is reachable anyway. Services are re-listed at most once a
// second.
type Resolver struct {
	lister serviceLister
	mu     sync.Mutex
	at     time.Time
	ips    map[string]netip.Addr // "svc.ns" -> ClusterIP
}

// NewResolver returns a Resolver reading Services through cs.
func NewResolver(cs kubernetes.Interface) *Resolver {
	return &Resolver{lister: clientLister{cs}}
}

// lookup returns the ClusterIP of service.namespace, and whether such a
// Service exists (headless ones exist without an address).
func (r *Resolver) lookup(ctx context.Context, key string) (netip.Addr, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ips == nil || time.Since(r.at) > time.Second {
		svcs, err := r.lister.ListServices(ctx)
		if err != nil {
			return netip.Addr{}, false, err
		}
		r.ips = map[string]netip.Addr{}
		for _, s := range svcs {
			a, _ := netip.ParseAddr(s.Spec.ClusterIP)
			r.ips[s.Name+"."+s.Namespace] = a
		}
		r.at = time.Now()
	}
	a, ok := r.ips[key]
	return a, ok, nil
}

// Answer builds the response to one query message.
func (r *Resolver) Answer(ctx context.Context, query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired},
		Questions: []dnsmessage.Question{q},
	}
	name := strings.ToLower(q.Name.String())
	key, inCluster := strings.CutSuffix(name, ".svc."+ClusterDomain)
	switch {
	case h.OpCode != 0 || q.Class != dnsmessage.ClassINET:
		resp.RCode = dnsmessage.RCodeNotImplemented
	case !inCluster || strings.Count(key, ".") != 1:
		resp.RCode = dnsmessage.RCodeNameError
	default:
		addr, ok, err := r.lookup(ctx, key)
		switch {
		case err != nil:
			resp.RCode = dnsmessage.RCodeServerFailure
		case !ok:
			resp.RCode = dnsmessage.RCodeNameError
		case q.Type == dnsmessage.TypeA && addr.Is4():
			resp.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
				Body:   &dnsmessage.AResource{A: addr.As4()},
			}}
		}
	}
	return resp.Pack()
}

// Serve answers DNS over UDP on pc until ctx ends.
func (r *Resolver) Serve(ctx context.Context, pc net.PacketConn) error {
	go func() { <-ctx.Done(); pc.Close() }()
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		out, err := r.Answer(qctx, buf[:n])
		cancel()
		if err != nil {
			continue // not a query we can parse: no answer
		}
		_, _ = pc.WriteTo(out, from)
	}
}
