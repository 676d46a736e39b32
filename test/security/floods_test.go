package security

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The aggregator's default limits (server.DefaultLimits).
const (
	maxConnections = 4000
	maxIngest      = 4000
	maxWatchers    = 256
)

// sample polls a metric of the aggregator until stop is called, which
// returns the largest value seen.
func sample(t *testing.T, a *aggregator, name string, match ...string) (stop func() float64) {
	done := make(chan struct{})
	result := make(chan float64, 1)
	go func() {
		var peak float64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := a.metric(t, name, match...); v > peak {
				peak = v
			}
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		return <-result
	}
}

// watchAll opens n Watch streams on conn at once, each given d, and
// returns the outcomes: OK for a stream still open at the end.
func watchAll(conn *grpc.ClientConn, n int, d time.Duration, live func()) *outcomes {
	var out outcomes
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := pb.NewQueryServiceClient(conn).Watch(ctx, &pb.WatchRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			if w != nil && ctx.Err() != nil && status.Code(err) == codes.DeadlineExceeded {
				// Held until the attacker gave up: the server served it.
				err = nil
			}
			out.add(err)
		}()
	}
	if live != nil {
		time.Sleep(d - time.Second)
		live()
	}
	wg.Wait()
	return &out
}

// statusText shows grpc-status counts by name.
func statusText(m map[string]int) string {
	var parts []string
	for k, v := range m {
		name := k
		if c, err := strconv.Atoi(k); err == nil {
			name = codes.Code(c).String()
		}
		parts = append(parts, fmt.Sprintf("%d %s", v, name))
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func TestWatchFloodOneConnection(t *testing.T) {
	const n = 20000
	scenario(t, fmt.Sprintf("%d Watch streams on one connection", n),
		"--max-streams-per-connection (16: HTTP/2 refuses or stops reading the rest), --max-watchers-per-identity (32)",
		nil, func(t *testing.T, a *aggregator) string {
			h := a.dialH2(t, readerName)
			peak := sample(t, a, "oomwatch_watchers")
			written := h.open(n, pb.QueryService_Watch_FullMethodName, &pb.WatchRequest{}, 15*time.Second)
			time.Sleep(2 * time.Second)
			held := peak()
			refused, resets, statuses, _ := h.answers()
			if held > 16 {
				t.Errorf("%v watchers served on one connection, want at most 16", held)
			}
			// Either refused or, when the server stopped reading the
			// connection, never read: nothing past the 16 is held.
			if held == 0 || refused+16 < written && written == n {
				t.Errorf("%d written, %v served, %d refused: want 16 served and the rest refused", written, held, refused)
			}
			return fmt.Sprintf("%d streams written; %v served at once; %d refused (REFUSED_STREAM), %d reset; ended: %s",
				written, held, refused, resets, statusText(statuses))
		})
}

func TestWatchFloodManyConnections(t *testing.T) {
	const identities, conns, streams = 20, 4, 16
	scenario(t, fmt.Sprintf("%d Watch streams from %d identities over %d connections", identities*conns*streams, identities, identities*conns),
		"--max-watchers-per-identity (32), --max-watchers (256)",
		nil, func(t *testing.T, a *aggregator) string {
			var total outcomes
			var wg sync.WaitGroup
			peak := sample(t, a, "oomwatch_watchers")
			for i := range identities {
				cn := fmt.Sprintf("reader-%d", i)
				for range conns {
					conn := a.dial(t, cn)
					wg.Add(1)
					go func() {
						defer wg.Done()
						out := watchAll(conn, streams, 10*time.Second, nil)
						total.mu.Lock()
						out.mu.Lock()
						for c, k := range out.n {
							if total.n == nil {
								total.n = map[codes.Code]int{}
							}
							total.n[c] += k
						}
						out.mu.Unlock()
						total.mu.Unlock()
					}()
				}
			}
			wg.Wait()
			held := peak()
			if held > maxWatchers {
				t.Errorf("%v watchers held at once, want at most %d", held, maxWatchers)
			}
			if total.get(codes.ResourceExhausted) == 0 {
				t.Errorf("no watcher refused: %s", &total)
			}
			return fmt.Sprintf("%v held at most; %s (OK: not refused before the attacker gave up)", held, &total)
		})
}

func TestHelloLessStreams(t *testing.T) {
	const conns, streams = 400, 16
	scenario(t, fmt.Sprintf("%d ingest streams that never send a Hello", conns*streams),
		"--hello-timeout (10 s), --max-ingest-streams-per-identity and --max-ingest-streams (4,000); oomwatch_ingest_streams_awaiting_hello",
		nil, func(t *testing.T, a *aggregator) string {
			peak := sample(t, a, "oomwatch_ingest_streams_awaiting_hello")
			var hs []*rawH2
			for range conns {
				h := a.dialH2(t, sharedAgent)
				h.open(streams, pb.IngestService_Stream_FullMethodName, nil, 10*time.Second)
				hs = append(hs, h)
			}
			ended := func() map[string]int {
				sum := map[string]int{}
				for _, h := range hs {
					_, _, st, _ := h.answers()
					for k, v := range st {
						sum[k] += v
					}
				}
				return sum
			}
			waitFor(t, 60*time.Second, "every Hello-less stream ended", func() bool {
				total := 0
				for _, v := range ended() {
					total += v
				}
				return total >= conns*streams
			})
			awaiting := peak()
			st := ended()
			deadline, exhausted := st[strconv.Itoa(int(codes.DeadlineExceeded))], st[strconv.Itoa(int(codes.ResourceExhausted))]
			// Never more than the bound held together; those held end at
			// the Hello deadline (the honest agent's stream holds a slot).
			if awaiting > maxIngest || awaiting < 100 {
				t.Errorf("at most %v streams seen awaiting their Hello, want some and at most %d", awaiting, maxIngest)
			}
			if deadline < maxIngest-1 || deadline+exhausted != conns*streams {
				t.Errorf("ended %s; want at least %d DeadlineExceeded and the rest ResourceExhausted", statusText(st), maxIngest-1)
			}
			if got := a.metric(t, "oomwatch_ingest_streams_awaiting_hello"); got != 0 {
				t.Errorf("%v streams still awaiting their Hello", got)
			}
			return fmt.Sprintf("%v visible awaiting a Hello at most; ended: %s", awaiting, statusText(st))
		})
}

// raiseFileLimit lifts this process's soft open-file limit to the hard
// one and returns it.
func raiseFileLimit(t *testing.T) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

func TestConnectionFlood(t *testing.T) {
	// ~20,000 connections, as many as this process may open (its file
	// limit, less room for the test itself).
	n := 20000
	if lim := raiseFileLimit(t); uint64(n) > lim-500 {
		n = int(lim - 500)
	}
	var fds int
	scenario(t, fmt.Sprintf("%d unauthenticated TCP connections, held", n),
		"--max-connections (4,000) closes the rest on arrival; --handshake-timeout (10 s); metrics listener apart",
		nil, func(t *testing.T, a *aggregator) string {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			failed := 0
			for range n {
				c, err := net.DialTimeout("tcp", a.addr, 2*time.Second)
				if err != nil {
					failed++
					continue
				}
				conns = append(conns, c)
			}
			// Probes answer while the gRPC listener is full.
			if err := a.healthy(); err != nil {
				t.Errorf("/healthz during the flood: %v", err)
			}
			open := a.metric(t, "oomwatch_connections_open", `listener="grpc"`)
			refused := a.metric(t, "oomwatch_connections_refused_total", `listener="grpc"`)
			fds = a.fds()
			if open > maxConnections {
				t.Errorf("%v gRPC connections open, want at most %d", open, maxConnections)
			}
			if fds > maxConnections+200 {
				t.Errorf("the aggregator holds %d file descriptors", fds)
			}
			time.Sleep(2 * time.Second)
			return fmt.Sprintf("%d dialled (%d failed to dial); %v held, %v closed on arrival; aggregator fds %d", n, failed, open, refused, fds)
		})
}

func TestPingFlood(t *testing.T) {
	scenario(t, "10,000 HTTP/2 pings on one connection", "keepalive enforcement (--min-ping-interval 10 s): GOAWAY too_many_pings", nil,
		func(t *testing.T, a *aggregator) string {
			h := a.dialH2(t, readerName)
			sent := h.ping(10000)
			waitFor(t, 10*time.Second, "GOAWAY", func() bool { _, _, _, away := h.answers(); return away })
			return fmt.Sprintf("%d pings sent; the connection was sent GOAWAY and closed", sent)
		})
}

func TestStalledWatchersUnderIngest(t *testing.T) {
	const identities, perIdentity, events = 8, 32, 20000
	scenario(t, fmt.Sprintf("%d Watch streams that never read while %d events flood in", identities*perIdentity, events),
		"HTTP/2 flow control bounds what is written to each; a watcher 16,384 events behind, or holding events from before the last 32 MiB of them, is dropped (RESOURCE_EXHAUSTED)",
		[]string{"--max-events-per-second", "0", "--max-events-per-second-per-identity", "0"},
		func(t *testing.T, a *aggregator) string {
			var hs []*rawH2
			for i := range identities {
				for range perIdentity / 16 {
					h := a.dialH2(t, fmt.Sprintf("reader-%d", i))
					h.open(16, pb.QueryService_Watch_FullMethodName, &pb.WatchRequest{}, 10*time.Second)
					hs = append(hs, h)
				}
			}
			waitFor(t, 30*time.Second, "the watchers", func() bool { return a.metric(t, "oomwatch_watchers") >= identities*perIdentity })
			conn := a.dial(t, "flood-node")
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			in := openIngest(t, ctx, conn, "flood-node")
			sendErr := make(chan error, 1)
			go func() {
				for seq := range int64(events) {
					if err := in.st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: kill("flood-node", seq)}}); err != nil {
						sendErr <- err
						return
					}
				}
				sendErr <- nil
			}()
			acked := 0
			for acked < events {
				if _, err := in.st.Recv(); err != nil {
					t.Fatalf("flood stream after %d acks: %v", acked, err)
				}
				acked++
			}
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "stalled watchers dropped", func() bool { return a.metric(t, "oomwatch_watchers") == 0 })
			ended, resets := map[string]int{}, 0
			for _, h := range hs {
				_, r, st, _ := h.answers()
				resets += r
				for k, v := range st {
					ended[k] += v
				}
			}
			return fmt.Sprintf("%d events acknowledged; all %d watchers dropped (%d reset, trailers: %s)", acked, identities*perIdentity, resets, statusText(ended))
		})
}

func TestWebConnectionFlood(t *testing.T) {
	const n, maxWeb = 2000, 128
	scenario(t, fmt.Sprintf("%d TCP connections to the web UI, held", n),
		"--max-web-connections (128); the metrics listener apart",
		nil, func(t *testing.T, a *aggregator) string {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range n {
				if c, err := net.DialTimeout("tcp", a.web, 2*time.Second); err == nil {
					conns = append(conns, c)
				}
			}
			if err := a.healthy(); err != nil {
				t.Errorf("/healthz during the flood: %v", err)
			}
			open := a.metric(t, "oomwatch_connections_open", `listener="web"`)
			refused := a.metric(t, "oomwatch_connections_refused_total", `listener="web"`)
			if open > maxWeb || refused == 0 {
				t.Errorf("web UI: %v open, %v refused; want at most %d open", open, refused, maxWeb)
			}
			return fmt.Sprintf("%v held, %v closed on arrival", open, refused)
		})
}
