package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// socketName is the name of a server's Unix socket in its directory, for
// the default port.
const socketName = ".s.PGSQL.5432"

// Proxy relays connections to the test server over a Unix socket of its
// own, so that a test can make its database go away (Cut) and come back
// (Restore) without stopping the server the other tests use.
type Proxy struct {
	dir, target string
	mu          sync.Mutex
	ln          net.Listener
	conns       map[net.Conn]struct{}
	wg          sync.WaitGroup
}

// NewProxy starts a relay to the database of db (a URL from DB) and
// returns it with the URL of the same database through it. It is stopped
// when the test ends.
func NewProxy(t testing.TB, db string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	q := u.Query()
	// Not t.TempDir: a socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "oomwatch-pgproxy-")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{dir: dir, target: filepath.Join(q.Get("host"), socketName), conns: map[net.Conn]struct{}{}}
	if err := p.listen(); err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	q.Set("host", dir)
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *Proxy) listen() error {
	sock := filepath.Join(p.dir, socketName)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept(ln)
	}()
	return nil
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("unix", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln {
			// Cut meanwhile.
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{c, s}, {s, c}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			}()
		}
	}
}

// Cut closes the relay's socket and every connection through it: the
// database is gone for its clients until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore opens the relay's socket again after Cut.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return errors.New("proxy: not cut")
	}
	if err := p.listen(); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}
