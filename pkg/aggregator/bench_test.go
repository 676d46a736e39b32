package aggregator

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// BenchmarkIngest streams events from many agents at once over gRPC on
// loopback into a real store, each agent keeping up to 256 events
// unacknowledged as the agent's sender does. OOMWATCH_BENCH_STREAMS sets
// the number of agents (default 64), OOMWATCH_BENCH_BATCH the commit size
// (default Config's). It reports acknowledged events/s, with one response
// per event (agents of earlier releases) and with batch acks.
func BenchmarkIngest(b *testing.B) {
	for _, batch := range []bool{false, true} {
		name := "acks=one"
		if batch {
			name = "acks=batch"
		}
		b.Run(name, func(b *testing.B) { benchIngest(b, batch) })
	}
}

func benchIngest(b *testing.B, batchAcks bool) {
	streams := 64
	if v := os.Getenv("OOMWATCH_BENCH_STREAMS"); v != "" {
		var err error
		if streams, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	e := start(b, Config{BatchMax: benchBatch()})
	per := max(1, b.N/streams)
	// Several connections, as several agents would have.
	clients := make([]pb.IngestServiceClient, 4)
	for i := range clients {
		clients[i] = pb.NewIngestServiceClient(e.dial(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- benchAgent(ctx, clients[s%len(clients)], fmt.Sprintf("node-%d", s), per, batchAcks)
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	st := e.srv.Stats()
	if st.Ingested != uint64(per*streams) {
		b.Fatalf("ingested %d, want %d", st.Ingested, per*streams)
	}
	b.ReportMetric(float64(per*streams)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(st.Ingested)/float64(st.Commits), "events/commit")
	// CPU of server and agents together: on a busy machine a steadier
	// figure than events/s.
	b.ReportMetric(float64(cpu.Microseconds())/float64(per*streams), "cpu-µs/event")
}

// benchAgent sends n events as node with a window of 256.
func benchAgent(ctx context.Context, c pb.IngestServiceClient, node string, n int, batchAcks bool) error {
	st, err := c.Stream(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: node, BootId: boot, BatchAcks: batchAcks}}}); err != nil {
		return err
	}
	window := make(chan struct{}, 256)
	recvErr := make(chan error, 1)
	go func() {
		for acked := 0; acked < n; {
			r, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			k := max(1, len(r.GetAcks()))
			for range k {
				<-window
			}
			acked += k
		}
		recvErr <- nil
	}()
	for i := range n {
		select {
		case window <- struct{}{}:
		case err := <-recvErr:
			return fmt.Errorf("stream ended early: %v", err)
		}
		pod := (i*7 + len(node)) % 500
		ev := oom(node, int64(i), "ns-"+strconv.Itoa(pod%50), "pod-"+strconv.Itoa(pod))
		if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: ev}}); err != nil {
			return err
		}
	}
	if err := <-recvErr; err != nil {
		return err
	}
	return st.CloseSend()
}

// benchBatch is OOMWATCH_BENCH_BATCH, 0 when unset.
func benchBatch() int {
	n, _ := strconv.Atoi(os.Getenv("OOMWATCH_BENCH_BATCH"))
	return n
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
