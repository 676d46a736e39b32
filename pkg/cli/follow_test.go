package cli

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// syncBuffer is a writer the test reads while oomctl writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// aggregatorAt serves the real aggregator over st on addr until the
// returned stop is called.
func aggregatorAt(t *testing.T, st *store.Store, addr string) (stop func()) {
	t.Helper()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port of the previous one may linger a moment
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- aggregator.New(st, aggregator.Config{}, quiet()).Serve(ctx, lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// lossEvent is a small valid event of node-a.
func lossEvent(seq int64) *pb.Event {
	return &pb.Event{Node: "node-a", BootId: xBoot, Seq: seq, Time: timestamppb.New(time.Now().Add(-time.Minute)),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: seq, AfterSeq: seq - 1, NextSeq: seq,
			Detail: fmt.Sprintf("%d kernel records lost", seq)}}}
}

// ingest sends events as an agent does and waits for their acks.
func ingest(t *testing.T, addr string, evs ...*pb.Event) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a", BootId: xBoot, AgentVersion: "test"}}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: e}}); err != nil {
			t.Fatal(err)
		}
	}
	for range evs {
		if _, err := st.Recv(); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	st.CloseSend()
}

func waitOutput(t *testing.T, what string, b, other *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after 20s in:\n%s\nand:\n%s", what, want, b.String(), other.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The aggregator goes away under a watch (a restart, the OOM killer) and
// stores an event while it is down (an agent's spool delivered at its
// return): `oomctl watch` watches again, prints that event first, then
// what comes live, each once.
func TestWatchAgainAfterTheAggregatorWent(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "oomwatch.db"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	stop := aggregatorAt(t, st, addr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }},
			[]string{"watch", "--server", addr, "--insecure", "-o", "json"})
	}()
	// The watch is up once an event sent now reaches it.
	deadline := time.Now().Add(20 * time.Second)
	for seq := int64(1); !strings.Contains(out.String(), `"seq":"`); seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("the watch printed nothing; stderr: %s", errb.String())
		}
		ingest(t, addr, lossEvent(seq))
		time.Sleep(100 * time.Millisecond)
	}
	before := strings.Count(out.String(), "\n")

	stop()
	// Stored while no aggregator serves: what a restarted aggregator
	// takes from the agents before the watcher is back.
	if _, err := st.Put(context.Background(), []*pb.Event{lossEvent(100)}); err != nil {
		t.Fatal(err)
	}
	aggregatorAt(t, st, addr)
	waitOutput(t, "the event stored while the watch was down", &out, &errb, `"seq":"100"`)
	waitOutput(t, "the watch's note", &errb, &out, "watching again; 1 events stored since")
	ingest(t, addr, lossEvent(101))
	waitOutput(t, "an event after the watch is back", &out, &errb, `"seq":"101"`)
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != before+2 || !strings.Contains(lines[before], `"seq":"100"`) || !strings.Contains(lines[before+1], `"seq":"101"`) {
		t.Fatalf("after %d lines, want seq 100 then 101, once each:\n%s", before, out.String())
	}
	t.Logf("stderr:\n%s", errb.String())
}
