// Command e2eprobe measures oomwatch's end-to-end latency inside the qemu
// guest of the e2e-latency hook (bench.EndToEndLatency), where the agent
// and the aggregator run: for each of -n kills it runs the -kill command
// (which makes the kernel kill once), waits for the kill's event through
// the aggregator's Watch, then asks ListEvents (what `oomctl events` does)
// until the event is listed, and writes one JSON line: the time the event
// was listed minus the wall-clock time of the kernel's last record of the
// report (the event's end_seq).
//
// Kernel records carry the kernel's clock (local_clock, microseconds since
// boot), not the wall clock. The probe relates the two just before each
// kill by writing a marker record to /dev/kmsg between two readings of the
// wall clock and reading back the timestamp the kernel gave it: the offset
// is known to within the write's duration, which it also reports.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Sample is one kill, one JSON line of -out.
type Sample struct {
	Kill int    `json:"kill"`
	ID   string `json:"id"`
	// EndSeq is the report's last record; EndWall its kernel timestamp on
	// the wall clock (Unix ns).
	EndSeq  int64 `json:"end_seq"`
	EndWall int64 `json:"end_wall_ns"`
	// Listed is when ListEvents first returned the event (Unix ns);
	// Latency is Listed - EndWall.
	Listed  int64 `json:"listed_ns"`
	Latency int64 `json:"latency_ns"`
	// Received is the aggregator's receive time of the event; Polls how
	// many ListEvents calls it took.
	Received int64 `json:"received_ns"`
	Polls    int   `json:"polls"`
	// OffsetError bounds the clock conversion's error: the duration of the
	// marker's write.
	OffsetError int64 `json:"offset_error_ns"`
	// AgentSkew is the event's time minus the probe's conversion of the
	// same record's kernel timestamp when the agent's clock conversion can
	// be compared (its monotonic field is set): a check of both.
	AgentSkew *int64 `json:"agent_skew_ns,omitempty"`
	// Extra counts further OOM events the kill caused.
	Extra int `json:"extra_events"`
}

func main() {
	server := flag.String("server", "127.0.0.1:7443", "aggregator address (plaintext)")
	node := flag.String("node", "e2e-node", "the agent's node name")
	n := flag.Int("n", 20, "kills")
	kill := flag.String("kill", "", "shell script that makes the kernel kill once")
	out := flag.String("out", "latency.jsonl", "JSON lines, one per kill")
	timeout := flag.Duration("timeout", 60*time.Second, "wait for each kill's event at most this long")
	flag.Parse()
	if err := run(*server, *node, *n, *kill, *out, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "e2eprobe:", err)
		os.Exit(1)
	}
}

func run(server, node string, n int, kill, out string, timeout time.Duration) error {
	if kill == "" {
		return errors.New("-kill is required")
	}
	log, err := openLog()
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx := context.Background()
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	filter := &pb.EventFilter{Node: node, Types: []string{"oom"}}
	watch, err := client.Watch(ctx, &pb.WatchRequest{Filter: filter})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	events := make(chan *pb.Event, 64)
	watchErr := make(chan error, 1)
	go func() {
		for {
			r, err := watch.Recv()
			if err != nil {
				watchErr <- err
				return
			}
			events <- r.GetEvent()
		}
	}()
	enc := json.NewEncoder(f)
	for i := 1; i <= n; i++ {
		offset, offErr, err := log.calibrate(i)
		if err != nil {
			return err
		}
		cmd := exec.Command("/bin/sh", "-c", kill)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2eprobe: kill %d: %v\n", i, err)
		}
		var ev *pb.Event
		select {
		case ev = <-events:
		case err := <-watchErr:
			return fmt.Errorf("watch: %w", err)
		case <-time.After(timeout):
			return fmt.Errorf("kill %d: no event within %s", i, timeout)
		}
		s := Sample{Kill: i, ID: ev.GetId(), EndSeq: ev.GetOom().GetEndSeq(), Received: ev.GetReceived().AsTime().UnixNano()}
		// Listed: the first ListEvents answer that holds the event, as
		// `oomctl events --node N --type oom` would show it.
		for !listed(ctx, client, filter, ev.GetId()) {
			s.Polls++
			time.Sleep(time.Millisecond)
		}
		s.Polls++
		s.Listed = time.Now().UnixNano()
		usec, ok := log.wait(s.EndSeq, 5*time.Second)
		if !ok {
			return fmt.Errorf("kill %d: record %d not in /dev/kmsg", i, s.EndSeq)
		}
		s.EndWall = offset + usec*1000
		s.Latency = s.Listed - s.EndWall
		s.OffsetError = offErr
		if m := ev.GetMonotonic(); m != nil && ev.GetTime() != nil {
			// The agent dates the event from a record whose monotonic time
			// it also sends: the same conversion, done by the probe.
			skew := ev.GetTime().AsTime().UnixNano() - (offset + m.AsDuration().Nanoseconds())
			s.AgentSkew = &skew
		}
		// Let the kill settle and count what else it caused.
		time.Sleep(time.Second)
	drain:
		for {
			select {
			case <-events:
				s.Extra++
			default:
				break drain
			}
		}
		if err := enc.Encode(s); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "e2eprobe: kill %d: %s, %.1f ms\n", i, s.ID, float64(s.Latency)/1e6)
	}
	return nil
}

// listed reports whether ListEvents returns the event id among the newest.
func listed(ctx context.Context, c pb.QueryServiceClient, f *pb.EventFilter, id string) bool {
	r, err := c.ListEvents(ctx, &pb.ListEventsRequest{Filter: f, PageSize: 10})
	if err != nil {
		return false
	}
	for _, e := range r.GetEvents() {
		if e.GetId() == id {
			return true
		}
	}
	return false
}

// kernelLog reads /dev/kmsg from its start and keeps every record's
// timestamp by sequence number, and writes the markers.
type kernelLog struct {
	w       *os.File
	mu      sync.Mutex
	cond    *sync.Cond
	usec    map[int64]int64
	markers map[string]int64
}

func openLog() (*kernelLog, error) {
	r, err := os.Open("/dev/kmsg")
	if err != nil {
		return nil, err
	}
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	l := &kernelLog{w: w, usec: map[int64]int64{}, markers: map[string]int64{}}
	l.cond = sync.NewCond(&l.mu)
	go l.read(r)
	return l, nil
}

// read takes every record: "PRIO,SEQ,USEC,FLAGS;MESSAGE\n" (one per read).
func (l *kernelLog) read(r *os.File) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // records overwritten before this read: skip them
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2eprobe: /dev/kmsg:", err)
			return
		}
		head, msg, ok := bytes.Cut(buf[:n], []byte(";"))
		if !ok {
			continue
		}
		f := bytes.SplitN(head, []byte(","), 4)
		if len(f) < 3 {
			continue
		}
		seq, err1 := strconv.ParseInt(string(f[1]), 10, 64)
		usec, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		line, _, _ := bufio.NewReader(bytes.NewReader(msg)).ReadLine()
		l.mu.Lock()
		l.usec[seq] = usec
		if bytes.HasPrefix(line, []byte(markerPrefix)) {
			l.markers[string(line)] = usec
		}
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

const markerPrefix = "oomwatch-e2eprobe: clock mark "

// calibrate writes marker i and returns the wall clock (Unix ns) at the
// kernel clock's zero, and the write's duration (the bound of its error).
func (l *kernelLog) calibrate(i int) (offset, errBound int64, err error) {
	msg := markerPrefix + strconv.Itoa(i)
	t0 := time.Now()
	if _, err := l.w.Write([]byte(msg + "\n")); err != nil {
		return 0, 0, fmt.Errorf("write /dev/kmsg: %w", err)
	}
	t1 := time.Now()
	mid := t0.UnixNano() + t1.Sub(t0).Nanoseconds()/2
	deadline := time.Now().Add(5 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if usec, ok := l.markers[msg]; ok {
			return mid - usec*1000, t1.Sub(t0).Nanoseconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, errors.New("marker not read back from /dev/kmsg")
		}
		l.waitLocked(deadline)
	}
}

// wait returns record seq's timestamp (µs), waiting up to d for it.
func (l *kernelLog) wait(seq int64, d time.Duration) (int64, bool) {
	deadline := time.Now().Add(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if usec, ok := l.usec[seq]; ok {
			return usec, true
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		l.waitLocked(deadline)
	}
}

// waitLocked waits for the next record or until deadline.
func (l *kernelLog) waitLocked(deadline time.Time) {
	t := time.AfterFunc(time.Until(deadline), func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	l.cond.Wait()
	t.Stop()
}
