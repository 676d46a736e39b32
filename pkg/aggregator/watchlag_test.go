package aggregator

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// behind tells whether w was disconnected.
func behind(w *watcher) bool {
	select {
	case <-w.behind:
		return true
	default:
		return false
	}
}

// sizedBatch returns n kills of node whose encoded size is about size
// bytes each, with sequence numbers from seq.
func sizedBatch(node string, seq int64, n, size int) []*pb.Event {
	evs := make([]*pb.Event, n)
	for i := range evs {
		e := oom(node, seq+int64(i), "shop", "cart-1")
		e.GetOom().Lines = []string{strings.Repeat("x", size)}
		evs[i] = e
	}
	return evs
}

// TestHubLagBound plays watchers that stop taking their events, or stop
// halfway through sending them, while others keep up: once the events
// committed since the oldest batch a watcher holds pass the bound, that
// watcher is disconnected, and only it.
func TestHubLagBound(t *testing.T) {
	evSize := heapSize(sizedBatch("n", 0, 1, 1000)[0])
	lag := 20 * evSize // twenty events
	h := newHub(time.Now, lag)
	stalled := h.add(&pb.EventFilter{}, 1<<20)                // never takes
	sending := h.add(&pb.EventFilter{}, 1<<20)                // takes, never done sending
	fast := h.add(&pb.EventFilter{}, 1<<20)                   // takes and sends at once
	web := h.add(&pb.EventFilter{}, 1<<20)                    // the web UI's take
	other := h.add(&pb.EventFilter{Node: "elsewhere"}, 1<<20) // matches nothing
	keepUp := func() {
		fast.takeToSend()
		fast.sent()
		web.take()
	}
	// One batch larger than the bound on its own disconnects nobody: the
	// latest batch is in memory in any case.
	h.publish(sizedBatch("n", 0, 30, 1000))
	sending.takeToSend()
	for _, w := range []*watcher{stalled, sending, fast, web, other} {
		if behind(w) {
			t.Fatal("a watcher was disconnected by the latest batch alone")
		}
	}
	keepUp()
	// Small batches after it: the stalled and sending watchers still hold
	// the first, 30 events ago, past the bound of 20 once the next
	// batch is not the latest.
	h.publish(sizedBatch("n", 100, 5, 1000))
	keepUp()
	if !behind(stalled) || !behind(sending) {
		t.Fatalf("stalled %v, sending %v: want both disconnected", behind(stalled), behind(sending))
	}
	for i := range 50 {
		h.publish(sizedBatch("n", int64(200+10*i), 5, 1000))
		keepUp()
	}
	if behind(fast) || behind(web) || behind(other) {
		t.Fatalf("fast %v, web %v, other %v: a watcher that keeps up was disconnected", behind(fast), behind(web), behind(other))
	}
	if len(h.held) > 1 || h.heldBytes > 6*evSize {
		t.Fatalf("the hub keeps %d batches (%d bytes) that only kept-up watchers took", len(h.held), h.heldBytes)
	}

	// A watcher that is sending is not disconnected while what it holds
	// stays within the bound, and no longer holds anything once sent.
	h2 := newHub(time.Now, lag)
	slow := h2.add(&pb.EventFilter{}, 1<<20)
	h2.publish(sizedBatch("n", 0, 10, 1000))
	slow.takeToSend()
	h2.publish(sizedBatch("n", 10, 5, 1000))
	if behind(slow) {
		t.Fatal("a watcher 15 events behind was disconnected under a bound of 20")
	}
	slow.sent()
	slow.takeToSend()
	slow.sent()
	for i := range 10 {
		h2.publish(sizedBatch("n", int64(20+10*i), 5, 1000))
		slow.takeToSend()
		slow.sent()
	}
	if behind(slow) {
		t.Fatal("a watcher that caught up was disconnected")
	}
}

// TestHeapSize compares heapSize with the heap that decoded events hold:
// ordinary kills, and the events an agent would craft to hold the most
// memory for the fewest bytes sent (empty victims, one-byte lines, many
// labels). The estimate must not fall far below what is held, or the
// watchers' bound would not bound memory. The heap is measured in a
// process of its own: other tests' goroutines free and allocate meanwhile.
func TestHeapSize(t *testing.T) {
	if os.Getenv("OOMWATCH_HEAPSIZE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHeapSize$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "OOMWATCH_HEAPSIZE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}
	crafted := oom("n", 1, "shop", "cart-1")
	for range MaxVictims {
		crafted.GetOom().Victims = append(crafted.GetOom().Victims, &pb.Process{Workload: &pb.Workload{}})
	}
	lines := oom("n", 2, "shop", "cart-1")
	lines.GetOom().Lines = make([]string, MaxLines)
	for i := range lines.GetOom().Lines {
		lines.GetOom().Lines[i] = "x"
	}
	labels := oom("n", 3, "shop", "cart-1")
	labels.GetOom().Victims[0].Workload.Labels = map[string]string{}
	for i := range MaxLabels {
		labels.GetOom().Victims[0].Workload.Labels[fmt.Sprint(i)] = "v"
	}
	for _, tc := range []struct {
		name string
		ev   *pb.Event
	}{
		{"ordinary kill", oom("n", 4, "shop", "cart-1")},
		{"kill of long lines", sizedBatch("n", 5, 1, 3000)[0]},
		{"1,024 empty victims", crafted},
		{"1,000 one-byte lines", lines},
		{"64 labels", labels},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			const n = 500
			keep := make([]*pb.Event, n)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			for i := range keep {
				keep[i] = &pb.Event{}
				if err := proto.Unmarshal(b, keep[i]); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			held := float64(m1.HeapAlloc-m0.HeapAlloc) / n
			est := float64(heapSize(keep[0]))
			t.Logf("encoded %d B, decoded %.0f B, estimated %.0f B", len(b), held, est)
			if est < held*0.7 || est > held*1.5 {
				t.Errorf("estimated %.0f B for %.0f B held", est, held)
			}
			runtime.KeepAlive(keep)
		})
	}
}

// BenchmarkHeapSize is what publish adds per event some watcher takes.
func BenchmarkHeapSize(b *testing.B) {
	ev := oom("n", 1, "shop", "cart-1")
	ev.GetOom().Lines = make([]string, 60)
	for i := range ev.GetOom().Lines {
		ev.GetOom().Lines[i] = strings.Repeat("y", 90)
	}
	b.ReportAllocs()
	for b.Loop() {
		heapSize(ev)
	}
}

// TestWatchBufferHoldsACommit: publish offers a commit's events at once,
// so the default queue is never shorter than a commit.
func TestWatchBufferHoldsACommit(t *testing.T) {
	for _, tc := range []struct{ batch, want int }{{0, 16384}, {100, 16384}, {40000, 40000}} {
		c := Config{BatchMax: tc.batch}
		c.defaults()
		if c.WatchBuffer != tc.want {
			t.Errorf("BatchMax %d: WatchBuffer %d, want %d", tc.batch, c.WatchBuffer, tc.want)
		}
	}
}
