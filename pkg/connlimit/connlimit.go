// Package connlimit bounds the connections a listener holds open: past
// its cap, a new connection is accepted and closed at once (and counted),
// so that a flood of connections costs the process a bounded number of
// file descriptors and buffers, and the other listeners (the probes')
// keep working.
package connlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// ErrBadLimit: a cap below 1.
var ErrBadLimit = errors.New("connection limit must be at least 1")

// Listener is a net.Listener that holds at most Max connections open.
type Listener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

// New wraps ln so that at most max of its connections are open at once.
func New(ln net.Listener, max int) (*Listener, error) {
	if max < 1 {
		return nil, ErrBadLimit
	}
	return &Listener{Listener: ln, max: int64(max)}, nil
}

// Accept returns the next connection under the cap. Connections past the
// cap are closed as they arrive, without a byte read or written: the
// client sees its connection reset or closed and retries later.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			// SO_LINGER 0: a reset frees the socket at once instead of
			// leaving it in TIME_WAIT on our side.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// Open returns how many accepted connections are open now.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused returns how many connections were closed for being over the cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Max returns the cap.
func (l *Listener) Max() int { return int(l.max) }

// conn gives its slot back on its first Close.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Close implements net.Conn.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
