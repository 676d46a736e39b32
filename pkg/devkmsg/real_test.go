package devkmsg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// rawRecord is one record read directly from /dev/kmsg.
type rawRecord struct {
	h    kernlog.Header
	body []byte
}

// readAllRaw reads every record now in /dev/kmsg, skipping the test if it
// cannot be opened (not root, no device).
func readAllRaw(t *testing.T) map[int64]rawRecord {
	t.Helper()
	fd, err := openRaw(DevKmsg)
	if err != nil {
		t.Skipf("no readable %s: %v", DevKmsg, err)
	}
	defer unix.Close(fd)
	recs := map[int64]rawRecord{}
	buf := make([]byte, maxRecord)
	for {
		n, err := readRecord(fd, buf, DevKmsg)
		if errors.Is(err, ErrNoRecord) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseHeader(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		b := buf[h.Len:n]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
		recs[h.Seq] = rawRecord{h: h, body: bytes.Clone(b)}
	}
}

// TestRealDevKmsg reads this machine's /dev/kmsg through kmsgparser and
// checks every record against a direct read of the same sequence number:
// Mono must be the kernel's microseconds exactly, not kmsgparser's estimate.
func TestRealDevKmsg(t *testing.T) {
	t.Run("kmsgparser", func(t *testing.T) { checkReal(t, Options{After: -1}) })
	// The same device under another path (as a container that mounts the
	// host's elsewhere sees it) is read by the Source's own parser.
	t.Run("device elsewhere", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kmsg")
		if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
			t.Skipf("cannot make a kmsg device node: %v", err)
		}
		checkReal(t, Options{After: -1, Device: path})
	})
}

// TestDeviceNotCharDevice: a Device that is a regular file is refused
// with a clear error rather than read as if it kept one record per read.
func TestDeviceNotCharDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, []byte("6,1,2,-;hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openDevice(path)
	if err == nil || !strings.Contains(err.Error(), "not a character device") {
		t.Fatalf("openDevice(regular file) = %v, want a not-a-character-device error", err)
	}
}

func checkReal(t *testing.T, opts Options) {
	raw := readAllRaw(t)
	if len(raw) == 0 {
		t.Skip("kernel log is empty")
	}
	const want = 20
	before := runtime.NumGoroutine()
	boot, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Item)
	errc := make(chan error, 1)
	go func() { errc <- New(testLog(t), opts).Run(ctx, out) }()

	last := int64(-1)
	got := 0
	for it := range out {
		if it.Gap != nil {
			t.Logf("gap while reading the backlog: %+v", *it.Gap)
			last = it.Gap.NextSeq - 1
			continue
		}
		r := it.Record
		if r.Seq <= last {
			t.Errorf("seq %d after %d", r.Seq, last)
		}
		last = r.Seq
		rr, ok := raw[r.Seq]
		if !ok {
			// Overwritten since, or newer than our direct read.
			t.Logf("seq %d not in the direct read", r.Seq)
		} else {
			if want := time.Duration(rr.h.Usec) * time.Microsecond; !r.HasMono || r.Mono != want {
				t.Errorf("seq %d: Mono = %v (HasMono %v), want exactly %v", r.Seq, r.Mono, r.HasMono, want)
			}
			if r.Priority != rr.h.Priority || !bytes.Equal(r.Message, rr.body) {
				t.Errorf("seq %d: %d %q, want %d %q", r.Seq, r.Priority, r.Message, rr.h.Priority, rr.body)
			}
		}
		if d := r.Wall.Sub(boot.Add(r.Mono)).Abs(); d > time.Millisecond {
			t.Errorf("seq %d: Wall %v is %v from BootTime+Mono", r.Seq, r.Wall, d)
		}
		if r.Wall.After(time.Now()) {
			t.Errorf("seq %d: Wall %v is in the future", r.Seq, r.Wall)
		}
		got++
		if got == want || got == len(raw) {
			cancel()
		}
	}
	cancelled := time.Now()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	// Closing kmsgparser's file must end its blocked read promptly.
	if d := time.Since(cancelled); d > drainTimeout/2 {
		t.Errorf("Run took %v to stop after cancel", d)
	}
	waitGoroutines(t, before)
}

// TestRealMarker writes a record to /dev/kmsg between two clock readings and
// tails the device from the current newest record (the checkpoint path) until
// it arrives: its Wall and Mono must fall inside the bracket. This catches a
// boot time off by kmsgparser's up-to-a-second error.
func TestRealMarker(t *testing.T) {
	fd, err := openRaw(DevKmsg)
	if err != nil {
		t.Skipf("no readable %s: %v", DevKmsg, err)
	}
	unix.Close(fd)
	after, err := readNewest(DevKmsg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Item, 16)
	errc := make(chan error, 1)
	go func() { errc <- New(testLog(t), Options{After: after}).Run(ctx, out) }()

	marker := fmt.Sprintf("oomwatch devkmsg test marker %d", time.Now().UnixNano())
	w, err := os.OpenFile(DevKmsg, os.O_WRONLY, 0)
	if err != nil {
		cancel()
		<-errc
		t.Skipf("cannot write %s: %v", DevKmsg, err)
	}
	var m0, m1 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m0)
	w0 := time.Now()
	_, werr := w.WriteString("<13>" + marker + "\n")
	w1 := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1)
	w.Close()
	if werr != nil {
		cancel()
		<-errc
		t.Skipf("cannot write %s: %v", DevKmsg, werr)
	}

	// local_clock and CLOCK_MONOTONIC differ slightly (see BootTime); 50ms
	// is far below kmsgparser's error and far above that difference.
	const slack = 50 * time.Millisecond
	found := false
	for it := range out {
		if it.Gap != nil {
			t.Errorf("unexpected gap %+v", *it.Gap)
			continue
		}
		r := it.Record
		if r.Seq <= after {
			t.Errorf("seq %d delivered despite checkpoint %d", r.Seq, after)
		}
		if string(r.Message) != marker {
			continue
		}
		found = true
		t.Logf("marker seq %d: Mono - CLOCK_MONOTONIC at write = %v..%v, Wall - realtime at write = %v..%v",
			r.Seq, r.Mono-time.Duration(m1.Nano()), r.Mono-time.Duration(m0.Nano()), r.Wall.Sub(w1), r.Wall.Sub(w0))
		if r.Mono < time.Duration(m0.Nano())-slack || r.Mono > time.Duration(m1.Nano())+slack {
			t.Errorf("Mono %v outside CLOCK_MONOTONIC bracket [%v, %v] ± %v", r.Mono, time.Duration(m0.Nano()), time.Duration(m1.Nano()), slack)
		}
		if r.Wall.Before(w0.Add(-slack)) || r.Wall.After(w1.Add(slack)) {
			t.Errorf("Wall %v outside write bracket [%v, %v] ± %v", r.Wall, w0, w1, slack)
		}
		if r.Priority != 13 {
			t.Errorf("Priority = %d, want 13", r.Priority)
		}
		cancel()
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	if !found {
		t.Error("marker record never arrived")
	}
}

// TestRealOverflow floods the kernel log while the consumer stalls, so the
// kernel overwrites records the parser has not read: kmsgparser stops on
// the wrapped EPIPE, Run must reopen and account for every sequence number
// as delivered or inside a Gap. It overwrites this machine's kernel log, so
// it runs only with OOMWATCH_TEST_KMSG_FLOOD=1.
func TestRealOverflow(t *testing.T) {
	if os.Getenv("OOMWATCH_TEST_KMSG_FLOOD") != "1" {
		t.Skip("set OOMWATCH_TEST_KMSG_FLOOD=1 to flood this machine's kernel log")
	}
	after, err := readNewest(DevKmsg)
	if err != nil {
		t.Skipf("no readable %s: %v", DevKmsg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make(chan Item) // nobody reads until the flood is over
	errc := make(chan error, 1)
	go func() { errc <- New(testLog(t), Options{After: after}).Run(ctx, out) }()

	// /dev/kmsg rate-limits writers to 10 records per open file every 5s
	// (printk_devkmsg=ratelimit), so write 10 per open.
	nonce := time.Now().UnixNano()
	written := 0
	write := func() {
		w, err := os.OpenFile(DevKmsg, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for range 10 {
			if _, err := fmt.Fprintf(w, "<13>oomwatch flood %d %d %s\n", nonce, written, bytes.Repeat([]byte("x"), 200)); err != nil {
				t.Fatal(err)
			}
			written++
		}
	}
	for {
		write()
		oldest, _, err := readOldest(DevKmsg)
		if err != nil {
			t.Fatal(err)
		}
		if oldest > after+10 {
			break // the records the stalled parser points at are gone
		}
		if written > 1_000_000 {
			t.Fatal("kernel log never wrapped")
		}
	}
	last := fmt.Sprintf("oomwatch flood %d %d ", nonce, written)
	write() // ten more, read after the gap
	t.Logf("wrote %d records", written)

	next := after + 1
	gaps, delivered := 0, 0
	for it := range out {
		if g := it.Gap; g != nil {
			if g.AfterSeq != next-1 || g.Lost != g.NextSeq-g.AfterSeq-1 || g.Lost <= 0 {
				t.Errorf("gap %+v, want one after seq %d", *g, next-1)
			}
			t.Logf("gap after %d: %d lost", g.AfterSeq, g.Lost)
			gaps++
			next = g.NextSeq
			continue
		}
		r := it.Record
		if r.Seq != next {
			t.Errorf("seq %d, want %d", r.Seq, next)
		}
		next = r.Seq + 1
		delivered++
		if bytes.HasPrefix(r.Message, []byte(last)) {
			cancel()
		}
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	if gaps == 0 {
		t.Error("no gap reported although the kernel log wrapped")
	}
	t.Logf("%d records delivered, %d gaps", delivered, gaps)
}
