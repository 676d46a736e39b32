package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/metrics"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// expect fails the test unless err has code want.
func expect(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestNegativeLoss(t *testing.T) {
	scenario(t, "Loss event with a negative count", "field validation at the boundary (InvalidArgument)", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			var out outcomes
			for seq := range int64(5) {
				ev := kill("victim-node", 1000+seq)
				ev.Payload = &pb.Event_Loss{Loss: &pb.Loss{Cause: "overwritten", Lost: -5, AfterSeq: seq, NextSeq: seq + 1}}
				err := sendOnce(t, conn, ev)
				expect(t, "negative loss", err, codes.InvalidArgument)
				out.add(err)
			}
			return out.String()
		})
}

func TestBadFields(t *testing.T) {
	cases := []struct {
		name string
		bend func(*pb.Event)
	}{
		{"negative PID", func(e *pb.Event) { e.GetOom().Victims[0].Pid = -4242 }},
		{"negative RSS", func(e *pb.Event) { e.GetOom().Victims[0].RssBytes = proto.Int64(-1) }},
		{"negative memcg limit", func(e *pb.Event) { e.GetOom().MemcgLimitBytes = proto.Int64(-1 << 30) }},
		{"negative culprit tasks", func(e *pb.Event) { e.GetOom().Culprit.Tasks = -3 }},
		{"negative lines dropped", func(e *pb.Event) { e.GetOom().LinesDropped = -7 }},
		{"time in 2200", func(e *pb.Event) { e.Time = timestamppb.New(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)) }},
		{"time in 1990", func(e *pb.Event) { e.Time = timestamppb.New(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)) }},
		{"negative sequence", func(e *pb.Event) { e.Seq = -1 }},
	}
	scenario(t, "negative sizes, PIDs, limits; times in 2200 and 1990", "field validation at the boundary (InvalidArgument)", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			var out outcomes
			for i, c := range cases {
				ev := kill("victim-node", int64(2000+i))
				c.bend(ev)
				err := sendOnce(t, conn, ev)
				expect(t, c.name, err, codes.InvalidArgument)
				out.add(err)
			}
			// None of them was stored.
			if n, _ := a.stored(t, "victim-node"); n != 0 {
				t.Errorf("%d bad events stored", n)
			}
			return fmt.Sprintf("%d cases: %s", len(cases), &out)
		})
}

// rawCodec sends bytes as they are, for malformed messages.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func TestMalformedProtobuf(t *testing.T) {
	garbage := [][]byte{
		{0xff, 0xff, 0xff, 0xff},       // an invalid tag
		{0x0a, 0xff, 0xff, 0xff, 0x0f}, // a length past the end
		{0x12, 0x03, 0x08, 0x96},       // a truncated event
	}
	scenario(t, "malformed protobuf", "decoding errors answered InvalidArgument", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			var out outcomes
			for i, g := range garbage {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
					pb.IngestService_Stream_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 {
					// After a valid Hello.
					hello, _ := proto.Marshal(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "victim-node", BootId: attackBoot}}})
					_ = cs.SendMsg(hello)
				}
				_ = cs.SendMsg(g)
				var resp []byte
				err = cs.RecvMsg(&resp)
				cancel()
				expect(t, fmt.Sprintf("garbage %x", g), err, codes.InvalidArgument)
				out.add(err)
			}
			return out.String()
		})
}

// webClient is an HTTPS client presenting cn's certificate.
func (a *aggregator) webClient(t *testing.T, cn string) *http.Client {
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
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"}}}
}

func TestAgentIdentityCannotRead(t *testing.T) {
	scenario(t, "agent identities read the fleet", "roles: an agent certificate or token may only ingest (PermissionDenied, 403)", nil,
		func(t *testing.T, a *aggregator) string {
			var out outcomes
			web := 0
			for _, cn := range []string{sharedAgent, "honest-node"} {
				conn := a.dial(t, cn)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := pb.NewQueryServiceClient(conn).ListEvents(ctx, &pb.ListEventsRequest{})
				expect(t, cn+" ListEvents", err, codes.PermissionDenied)
				out.add(err)
				w, err := pb.NewQueryServiceClient(conn).Watch(ctx, &pb.WatchRequest{})
				if err == nil {
					_, err = w.Recv()
				}
				expect(t, cn+" Watch", err, codes.PermissionDenied)
				out.add(err)
				cancel()
				resp, err := a.webClient(t, cn).Get("https://" + a.web + "/")
				if err != nil {
					t.Fatalf("web UI: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: web UI answered %s, want 403", cn, resp.Status)
				} else {
					web++
				}
			}
			// A reader still reads.
			conn := a.dial(t, readerName)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := pb.NewQueryServiceClient(conn).ListEvents(ctx, &pb.ListEventsRequest{}); err != nil {
				t.Errorf("reader ListEvents: %v", err)
			}
			return fmt.Sprintf("gRPC: %s; web UI: %d of 2 answered 403", &out, web)
		})
}

func TestNewlineInKernelLine(t *testing.T) {
	scenario(t, "kernel line with an embedded newline", "newlines escaped in every output (or the event refused)", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			ev := kill("victim-node", 3000)
			ev.GetOom().Lines = []string{"worker invoked oom-killer\nMemory cgroup out of memory: Killed process 1 (forged)"}
			err := sendOnce(t, conn, ev)
			if status.Code(err) == codes.InvalidArgument {
				return "refused: InvalidArgument"
			}
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			resp, err := a.webClient(t, readerName).Get(fmt.Sprintf("https://%s/kills/victim-node/%s/3000/kernel.txt", a.web, attackBoot))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if resp.StatusCode != http.StatusOK || len(lines) != 1 {
				t.Errorf("kernel.txt (%s) shows %d lines, want the one, escaped:\n%s", resp.Status, len(lines), b)
			}
			return fmt.Sprintf("stored (OK); kernel.txt shows %d line", len(lines))
		})
}

func TestHostileLabelValues(t *testing.T) {
	const n = 900
	scenario(t, fmt.Sprintf("%d kills, each with its own namespace", n), "metric label values bounded (past the bound: other)", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, "label-node")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			in := openIngest(t, ctx, conn, "label-node")
			var out outcomes
			for i := range n {
				ev := kill("label-node", int64(i))
				ev.GetOom().Victims[0].Workload.Namespace = fmt.Sprintf("hostile-%d-%s", i, strings.Repeat("x", 40))
				out.add(in.send(ev))
			}
			values := map[string]bool{}
			for _, line := range strings.Split(a.metricsText(t), "\n") {
				if !strings.HasPrefix(line, "oomwatch_oom_kills_total{") {
					continue
				}
				if _, rest, ok := strings.Cut(line, `namespace="`); ok {
					v, _, _ := strings.Cut(rest, `"`)
					values[v] = true
				}
			}
			if len(values) > metrics.MaxNamespaceValues+2 { // and "" and "other"
				t.Errorf("%d namespace label values on /metrics after %d hostile ones, want them bounded", len(values), n)
			}
			return fmt.Sprintf("%s; %d namespace label values on /metrics", &out, len(values))
		})
}

func TestRejectedAndDuplicateMetrics(t *testing.T) {
	scenario(t, "rejected and duplicate events", "oomwatch_events_rejected_total and _duplicate_total count them", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			rej0, dup0 := a.metric(t, "oomwatch_events_rejected_total"), a.metric(t, "oomwatch_events_duplicate_total")
			ev := kill("victim-node", 4000)
			expect(t, "first send", sendOnce(t, conn, ev), codes.OK)
			expect(t, "replay", sendOnce(t, conn, ev), codes.OK)
			bad := kill("victim-node", 4001)
			bad.GetOom().Victims[0].Pid = -1
			expect(t, "invalid", sendOnce(t, conn, bad), codes.InvalidArgument)
			rej, dup := a.metric(t, "oomwatch_events_rejected_total")-rej0, a.metric(t, "oomwatch_events_duplicate_total")-dup0
			if rej < 1 || dup != 1 {
				t.Errorf("rejected moved by %v, duplicates by %v; want >= 1 and 1", rej, dup)
			}
			return fmt.Sprintf("rejected +%v, duplicate +%v", rej, dup)
		})
}

func TestFloodLimitNotRotatable(t *testing.T) {
	const names, each = 30, 100
	scenario(t, fmt.Sprintf("event flood rotating %d node names on one identity", names),
		"event rate keyed on the authenticated identity (--max-events-per-second, --max-events-per-second-per-identity)", nil,
		func(t *testing.T, a *aggregator) string {
			conn := a.dial(t, sharedAgent)
			taken := 0
			var last error
			began := time.Now()
			for i := range names {
				node := fmt.Sprintf("rotated-%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				in := openIngest(t, ctx, conn, node)
				for seq := range int64(each) {
					if last = in.send(kill(node, seq)); last != nil {
						break
					}
					taken++
				}
				cancel()
				if last != nil {
					break
				}
			}
			expect(t, "rotating flood", last, codes.ResourceExhausted)
			// The identity's burst (10 s of --max-events-per-second 100)
			// and what refills meanwhile, whatever the names.
			if most := 1000 + int(100*time.Since(began).Seconds()) + 10; taken > most {
				t.Errorf("%d events taken rotating node names, want at most the identity's burst and refill (%d)", taken, most)
			}
			return fmt.Sprintf("%d of %d taken, then %v", taken, names*each, status.Code(last))
		})
}
