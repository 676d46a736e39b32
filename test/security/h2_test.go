package security

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// rawH2 is an attacker's HTTP/2 connection: it opens gRPC streams by
// writing frames itself, thousands of them without a goroutine each, and
// counts what the server answers.
type rawH2 struct {
	conn *tls.Conn
	fr   *http2.Framer
	wmu  sync.Mutex
	hdr  map[string][]byte

	mu              sync.Mutex
	refused, resets int
	// statuses counts the calls ended, by grpc-status.
	statuses  map[string]int
	goaway    bool
	done      chan struct{}
	next      uint32
	authority string
}

// dialH2 opens an HTTP/2 connection with cn's client certificate.
func (a *aggregator) dialH2(t *testing.T, cn string) *rawH2 {
	t.Helper()
	certFile, keyFile := a.clientCert(t, cn)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(a.ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := tls.Dial("tcp", a.addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool,
		ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	h := &rawH2{conn: c, fr: http2.NewFramer(c, c), hdr: map[string][]byte{}, done: make(chan struct{}), next: 1,
		authority: a.addr, statuses: map[string]int{}}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	t.Cleanup(func() { c.Close(); <-h.done })
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go h.read()
	return h
}

// read counts the server's answers, acknowledging its settings and pings.
func (h *rawH2) read() {
	defer close(h.done)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return
		}
		h.mu.Lock()
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			h.resets++
			if f.ErrCode == http2.ErrCodeRefusedStream {
				h.refused++
			}
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				h.statuses["http "+st]++
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" {
					h.statuses[hf.Value]++
				}
			}
		case *http2.GoAwayFrame:
			h.goaway = true
		}
		h.mu.Unlock()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.wmu.Lock()
				_ = h.fr.WriteSettingsAck()
				h.wmu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.wmu.Lock()
				_ = h.fr.WritePing(true, f.Data)
				h.wmu.Unlock()
			}
		}
	}
}

// headerBlock is the request headers of a gRPC call to path.
func (h *rawH2) headerBlock(path string) []byte {
	if b, ok := h.hdr[path]; ok {
		return b
	}
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", path}, {":authority", h.authority},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	h.hdr[path] = buf.Bytes()
	return h.hdr[path]
}

// open opens n streams to path, each sending msg and closing its side
// (nil: nothing, the stream left open), within d. It returns how many it could write: a
// server that stops reading the connection stops the writing too.
func (h *rawH2) open(n int, path string, msg proto.Message, d time.Duration) int {
	var body []byte
	if msg != nil {
		b, _ := proto.Marshal(msg)
		body = make([]byte, 5+len(b))
		binary.BigEndian.PutUint32(body[1:5], uint32(len(b)))
		copy(body[5:], b)
	}
	_ = h.conn.SetWriteDeadline(time.Now().Add(d))
	defer h.conn.SetWriteDeadline(time.Time{})
	block := h.headerBlock(path)
	written := 0
	for range n {
		h.wmu.Lock()
		id := h.next
		h.next += 2
		err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
		if err == nil && body != nil {
			err = h.fr.WriteData(id, true, body)
		}
		h.wmu.Unlock()
		if err != nil {
			// A deadline or a closed connection: the server stopped
			// reading.
			break
		}
		written++
	}
	return written
}

// answers returns the server's answers so far: streams refused by
// HTTP/2 (REFUSED_STREAM), streams reset, calls ended by grpc-status
// code ("0" OK, "8" ResourceExhausted, ...), and whether it sent GOAWAY.
func (h *rawH2) answers() (refused, resets int, statuses map[string]int, goaway bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	statuses = map[string]int{}
	for k, v := range h.statuses {
		statuses[k] = v
	}
	return h.refused, h.resets, statuses, h.goaway
}

// ping sends n pings as fast as it can and returns how many it could.
func (h *rawH2) ping(n int) int {
	sent := 0
	for i := range n {
		h.wmu.Lock()
		err := h.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)})
		h.wmu.Unlock()
		if err != nil {
			break
		}
		sent++
	}
	return sent
}
