package sender

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/spool"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeIngest acks every event, counting them; it refuses poison seqs as
// invalid and can hang up after a number of events.
type fakeIngest struct {
	pb.UnimplementedIngestServiceServer
	mu       sync.Mutex
	got      map[int64]int
	poison   int64
	hangupAt int
	streams  int
	// batch > 0 acknowledges that many events per response, in acks, as
	// an aggregator does for a Hello that asks for batch_acks; last is
	// the seq after which the rest are acknowledged.
	batch, last int64
}

func (f *fakeIngest) Stream(st grpc.BidiStreamingServer[pb.StreamRequest, pb.StreamResponse]) error {
	f.mu.Lock()
	f.streams++
	f.mu.Unlock()
	first, err := st.Recv()
	if err != nil || first.GetHello().GetNode() != "node-a" {
		return status.Error(codes.InvalidArgument, "hello first")
	}
	if f.batch > 0 && !first.GetHello().GetBatchAcks() {
		return status.Error(codes.InvalidArgument, "the agent does not ask for batch_acks")
	}
	var acks []*pb.Ack
	for {
		req, err := st.Recv()
		if err != nil {
			return err
		}
		ev := req.GetEvent()
		if ev.GetSeq() == f.poison {
			return status.Errorf(codes.InvalidArgument, "event %d is malformed", ev.GetSeq())
		}
		f.mu.Lock()
		f.got[ev.GetSeq()]++
		total := 0
		for _, n := range f.got {
			total += n
		}
		hang := f.hangupAt > 0 && total == f.hangupAt
		if hang {
			f.hangupAt = 0
		}
		f.mu.Unlock()
		if hang {
			return status.Error(codes.Unavailable, "going away")
		}
		if f.batch > 0 {
			acks = append(acks, &pb.Ack{BootId: ev.GetBootId(), EventType: eventid.TypeToPB(eventid.TypeOf(ev)), Seq: ev.GetSeq()})
			if int64(len(acks)) < f.batch && ev.GetSeq() < f.last {
				continue
			}
			if err := st.Send(&pb.StreamResponse{Acks: acks}); err != nil {
				return err
			}
			acks = nil
			continue
		}
		if err := st.Send(&pb.StreamResponse{BootId: ev.GetBootId(), Type: eventid.TypeOf(ev), Seq: ev.GetSeq()}); err != nil {
			return err
		}
	}
}

func setup(t *testing.T, f *fakeIngest, n int) (*Sender, *spool.Spool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterIngestServiceServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sp, _, err := spool.Open(t.TempDir(), spool.Options{}, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	var evs []*pb.Event
	for i := 1; i <= n; i++ {
		evs = append(evs, &pb.Event{Node: "node-a", BootId: "b1", Seq: int64(i), Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "node"}}})
	}
	if err := sp.Put(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Conn: conn, Node: "node-a", BootID: "b1", Window: 16, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		sp, logrus.NewEntry(logrus.New()))
	return s, sp
}

func runUntil(t *testing.T, s *Sender, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("timed out; stats %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
}

func TestDeliversAllAndEmptiesSpool(t *testing.T) {
	f := &fakeIngest{got: map[int64]int{}}
	s, sp := setup(t, f, 200)
	runUntil(t, s, func() bool { return sp.Len() == 0 })
	if len(f.got) != 200 || s.Stats().Acked != 200 {
		t.Fatalf("server got %d distinct, acked %d", len(f.got), s.Stats().Acked)
	}
}

// TestBatchAcks: acknowledgements several to a response (an aggregator
// of this release) empty the spool as single ones do (one of an earlier
// release, TestDeliversAllAndEmptiesSpool).
func TestBatchAcks(t *testing.T) {
	f := &fakeIngest{got: map[int64]int{}, batch: 5, last: 200}
	s, sp := setup(t, f, 200)
	runUntil(t, s, func() bool { return sp.Len() == 0 })
	if len(f.got) != 200 || s.Stats().Acked != 200 || f.streams != 1 {
		t.Fatalf("server got %d distinct over %d streams, acked %d", len(f.got), f.streams, s.Stats().Acked)
	}
}

func TestReconnectResendsUnacked(t *testing.T) {
	f := &fakeIngest{got: map[int64]int{}, hangupAt: 50}
	s, sp := setup(t, f, 200)
	runUntil(t, s, func() bool { return sp.Len() == 0 })
	if len(f.got) != 200 {
		t.Fatalf("server got %d distinct events, want 200", len(f.got))
	}
	if s.Stats().Reconnects < 1 || f.streams < 2 {
		t.Fatalf("no reconnect: %+v streams %d", s.Stats(), f.streams)
	}
}

func TestPoisonEventIsFoundAndDropped(t *testing.T) {
	f := &fakeIngest{got: map[int64]int{}, poison: 7}
	s, sp := setup(t, f, 20)
	runUntil(t, s, func() bool { return sp.Len() == 0 })
	if len(f.got) != 19 || f.got[7] != 0 || s.Stats().Rejected != 1 {
		t.Fatalf("got %d events, rejected %d", len(f.got), s.Stats().Rejected)
	}
}
