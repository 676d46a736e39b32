package connlimit

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestListenerCapsOpenConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(raw, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	defer a.Close()
	defer b.Close()
	first := <-accepted
	<-accepted
	// The third is closed by the server: its dial or a read sees the
	// reset (on loopback the reset may beat connect's return).
	if over, err := net.Dial("tcp", raw.Addr().String()); err == nil {
		defer over.Close()
		_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ne net.Error
		if _, err := over.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection over the cap: read err %v, want closed", err)
		}
	}
	waitRefused(t, l, 1)
	if got := l.Open(); got != 2 {
		t.Fatalf("Open() = %d, want 2", got)
	}
	// Closing one (twice: the slot is given back once) frees a slot.
	first.Close()
	first.Close()
	if got := l.Open(); got != 1 {
		t.Fatalf("Open() after a close = %d, want 1", got)
	}
	again := dial()
	defer again.Close()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection under the cap was not accepted")
	}
}

func TestNewRefusesBadLimit(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := New(raw, 0); !errors.Is(err, ErrBadLimit) {
		t.Fatalf("New(0) = %v, want ErrBadLimit", err)
	}
}

func waitRefused(t *testing.T, l *Listener, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Refused() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Refused() = %d, want %d", l.Refused(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
