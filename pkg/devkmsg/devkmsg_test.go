package devkmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// testBoot is the boot time the fake-kernel tests pass in Options.
var testBoot = time.Unix(1_600_000_000, 111_222_333)

func testLog(t *testing.T) *logrus.Entry {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// rec is the record the fake kernel's seq must become.
func rec(seq int64) Item {
	mono := time.Duration(usecOf(seq)) * time.Microsecond
	return Item{Record: kernlog.Record{
		Seq:      seq,
		Mono:     mono,
		HasMono:  true,
		Wall:     testBoot.Add(mono),
		Priority: prioOf(seq),
		Message:  []byte(fmt.Sprintf("msg %d; a=b", seq)),
	}}
}

func recs(first, last int64) []Item {
	var items []Item
	for s := first; s <= last; s++ {
		items = append(items, rec(s))
	}
	return items
}

func gap(after, next int64) Item {
	return Item{Gap: &Gap{AfterSeq: after, NextSeq: next, Lost: next - after - 1}}
}

func cat(parts ...[]Item) []Item {
	var all []Item
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// collect runs src until it has produced want items (then cancels) or
// returns, and returns the items and Run's error.
func collect(t *testing.T, src *Source, want int) ([]Item, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Item)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	var items []Item
	for it := range out {
		items = append(items, it)
		if len(items) == want {
			cancel()
		}
	}
	return items, <-errc
}

// zeroDetected clears Gap.Detected, which the expectations cannot know.
func zeroDetected(t *testing.T, items []Item) {
	t.Helper()
	for _, it := range items {
		if it.Gap != nil {
			if it.Gap.Detected.IsZero() {
				t.Errorf("gap %+v has no Detected time", *it.Gap)
			}
			it.Gap.Detected = time.Time{}
		}
	}
}

func describe(items []Item) string {
	s := ""
	for _, it := range items {
		if it.Gap != nil {
			s += fmt.Sprintf(" gap(%d..%d lost %d)", it.Gap.AfterSeq, it.Gap.NextSeq, it.Gap.Lost)
		} else {
			s += fmt.Sprintf(" %d@%v", it.Record.Seq, it.Record.Mono)
		}
	}
	return s
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		after  int64
		newest int64
		steps  []step
		want   []Item
	}{
		{
			name:  "continuation lines stripped, exact clock",
			after: -1,
			steps: []step{{oldest: []int64{1}, first: 1, last: 3}},
			want:  recs(1, 3),
		},
		{
			name:  "overflow reopens and reports the exact loss",
			after: -1,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 12, overflow: true},
				{oldest: []int64{20}, first: 20, last: 22},
			},
			want: cat(recs(10, 12), []Item{gap(12, 20)}, recs(20, 22)),
		},
		{
			name:  "reopen drops records already delivered",
			after: -1,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 12, overflow: true},
				{oldest: []int64{11}, first: 11, last: 14},
			},
			want: recs(10, 14),
		},
		{
			name:  "reopen right after the last delivered record is no gap",
			after: -1,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 12, overflow: true},
				{oldest: []int64{13}, first: 13, last: 14},
			},
			want: recs(10, 14),
		},
		{
			name:  "two overflows in a row",
			after: -1,
			steps: []step{
				{oldest: []int64{1}, first: 1, last: 2, overflow: true},
				{oldest: []int64{5}, first: 5, last: 6, overflow: true},
				{oldest: []int64{100}, first: 100, last: 100},
			},
			want: cat(recs(1, 2), []Item{gap(2, 5)}, recs(5, 6), []Item{gap(6, 100)}, recs(100, 100)),
		},
		{
			name:  "reopen failures then recovery",
			after: -1,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 11, overflow: true},
				{oldest: []int64{12}, err: true},
				{oldest: []int64{14}, err: true},
				{oldest: []int64{15}, first: 15, last: 16},
			},
			want: cat(recs(10, 11), []Item{gap(11, 15)}, recs(15, 16)),
		},
		{
			name:  "record dropped by the parser is a gap",
			after: -1,
			steps: []step{{oldest: []int64{1}, first: 1, last: 4, skip: 3}},
			want:  cat(recs(1, 2), []Item{gap(2, 4)}, recs(4, 4)),
		},
		{
			name:   "resume after checkpoint",
			after:  11,
			newest: 13,
			steps:  []step{{oldest: []int64{10}, first: 10, last: 13}},
			want:   recs(12, 13),
		},
		{
			name:   "checkpoint older than the oldest record",
			after:  5,
			newest: 13,
			steps:  []step{{oldest: []int64{10}, first: 10, last: 13}},
			want:   cat([]Item{gap(5, 10)}, recs(10, 13)),
		},
		{
			name:   "checkpoint just before the oldest record",
			after:  9,
			newest: 13,
			steps:  []step{{oldest: []int64{10}, first: 10, last: 13}},
			want:   recs(10, 13),
		},
		{
			name:   "checkpoint beyond the newest record means a new boot",
			after:  1000,
			newest: 13,
			steps:  []step{{oldest: []int64{10}, first: 10, last: 13}},
			want:   recs(10, 13),
		},
		{
			name:   "checkpoint equal to the newest record waits for new ones",
			after:  13,
			newest: 13,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 13, overflow: true},
				{oldest: []int64{12}, first: 12, last: 15},
			},
			want: recs(14, 15),
		},
		{
			name:  "oldest record overwritten before the parser opened: pinned on a re-read",
			after: -1,
			steps: []step{{oldest: []int64{9, 10}, first: 10, last: 12}},
			want:  recs(10, 12),
		},
		{
			name:  "empty log when calibrating: pinned on the first record",
			after: -1,
			steps: []step{{oldest: []int64{-1, 1}, first: 1, last: 2}},
			want:  recs(1, 2),
		},
		{
			name:  "clock pinned on a record skipped as already delivered",
			after: -1,
			steps: []step{
				{oldest: []int64{10}, first: 10, last: 12, overflow: true},
				{oldest: []int64{11}, first: 11, last: 13},
			},
			want: recs(10, 13),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(tt.newest, tt.steps...)
			src := New(testLog(t), k.options(tt.after))
			got, err := collect(t, src, len(tt.want))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run() = %v, want context.Canceled", err)
			}
			zeroDetected(t, got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("items:\n got%s\nwant%s", describe(got), describe(tt.want))
			}
		})
	}
}

// TestRunMessagesNotAliased checks each Item owns its Message.
func TestRunMessagesNotAliased(t *testing.T) {
	k := newFakeKernel(0, step{oldest: []int64{1}, first: 1, last: 3})
	got, _ := collect(t, New(testLog(t), k.options(-1)), 3)
	if len(got) != 3 {
		t.Fatalf("got %d items, want 3", len(got))
	}
	for i := range got {
		for j := range got[i].Record.Message {
			got[i].Record.Message[j] = 'X'
		}
	}
	for _, p := range k.parsers {
		for _, m := range p.msgs {
			if m.Message[0] == 'X' {
				t.Errorf("parser message %q was modified through a Record", m.Message)
			}
		}
	}
}

// TestClockEstimate covers records delivered before the clock is pinned: the
// parser's base time follows kmsgparser's formula, the first records are
// estimated, later ones exact.
func TestClockEstimate(t *testing.T) {
	k := newFakeKernel(0, step{oldest: []int64{9, 12}, first: 10, last: 13, library: true})
	got, err := collect(t, New(testLog(t), k.options(-1)), 4)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	if len(got) != 4 {
		t.Fatalf("got%s, want 4 records", describe(got))
	}
	for _, it := range got {
		r := it.Record
		want := time.Duration(usecOf(r.Seq)) * time.Microsecond
		diff := r.Mono - want
		switch {
		case r.Seq >= 12 && diff != 0:
			t.Errorf("seq %d: Mono = %v, want exactly %v once pinned", r.Seq, r.Mono, want)
		case diff < -2*time.Millisecond || diff > 2*time.Millisecond:
			// The bracket around a fake NewParser is microseconds wide.
			t.Errorf("seq %d: estimated Mono = %v, want %v within 2ms", r.Seq, r.Mono, want)
		}
		if !r.HasMono || !r.Wall.Equal(testBoot.Add(r.Mono)) {
			t.Errorf("seq %d: HasMono=%v Wall=%v, want true, boot+Mono", r.Seq, r.HasMono, r.Wall)
		}
	}
}

// TestClockPinsBounded checks the direct reads used to pin the clock stop
// when they never match.
func TestClockPinsBounded(t *testing.T) {
	k := newFakeKernel(0, step{oldest: nil, first: 1, last: 20, library: true})
	got, _ := collect(t, New(testLog(t), k.options(-1)), 20)
	if len(got) != 20 {
		t.Fatalf("got %d items, want 20", len(got))
	}
	if n := k.oldestCalls(); n != maxPins {
		t.Errorf("Oldest called %d times, want %d", n, maxPins)
	}
}

func TestClockPin(t *testing.T) {
	base := time.Unix(1_700_000_000, 5)
	ts := func(usec int64) time.Time { return base.Add(time.Duration(usec) * time.Microsecond) }
	tests := []struct {
		name    string
		pend    int64
		oldest  []int64 // successive Oldest results (seq; usec = seq*10)
		msgs    []int64
		exactAt int64 // seq at which the clock becomes exact, -1 never
	}{
		{name: "pending matches first", pend: 5, msgs: []int64{5, 6}, exactAt: 5},
		{name: "pending ahead", pend: 7, msgs: []int64{5, 6, 7, 8}, exactAt: 7},
		{name: "pending missed, re-read matches", pend: 4, oldest: []int64{5}, msgs: []int64{5, 6}, exactAt: 5},
		{name: "pending missed, re-read ahead", pend: 4, oldest: []int64{6}, msgs: []int64{5, 6}, exactAt: 6},
		{name: "no pending, re-reads fail", pend: -1, msgs: []int64{1, 2, 3, 4, 5, 6}, exactAt: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clock{pendSeq: tt.pend, pendUsec: tt.pend * 10, pins: 1}
			c.estimate(100, base, base.Add(2*time.Microsecond), 100)
			reads := 0
			oldest := func() (int64, int64, error) {
				reads++
				if len(tt.oldest) == 0 {
					return 0, 0, ErrNoRecord
				}
				s := tt.oldest[0]
				tt.oldest = tt.oldest[1:]
				return s, s * 10, nil
			}
			got := int64(-1)
			for _, seq := range tt.msgs {
				if pinned, _ := c.pin(seq, ts(seq*10), oldest); pinned {
					got = seq
				}
				if c.exact && c.mono(ts(seq*10)) != time.Duration(seq*10)*time.Microsecond {
					t.Errorf("seq %d: mono = %v, want %dµs", seq, c.mono(ts(seq*10)), seq*10)
				}
			}
			if got != tt.exactAt {
				t.Errorf("exact at seq %d, want %d", got, tt.exactAt)
			}
			if reads > maxPins-1 {
				t.Errorf("%d re-reads, want at most %d", reads, maxPins-1)
			}
		})
	}
}

func TestClockEstimateBound(t *testing.T) {
	tA := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		u1, u2    int64
		width     time.Duration
		wantBound time.Duration
	}{
		{name: "same second", u1: 50, u2: 50, width: 10 * time.Microsecond, wantBound: 5 * time.Microsecond},
		{name: "second boundary inside the bracket", u1: 50, u2: 51, width: 10 * time.Microsecond, wantBound: 500*time.Millisecond + 5*time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c clock
			c.estimate(tt.u1, tA, tA.Add(tt.width), tt.u2)
			if c.bound != tt.wantBound {
				t.Errorf("bound = %v, want %v", c.bound, tt.wantBound)
			}
			// Every base kmsgparser could have computed lies within bound.
			for _, now := range []time.Time{tA, tA.Add(tt.width)} {
				for _, up := range []int64{tt.u1, tt.u2} {
					b := now.Add(-time.Duration(up) * time.Second)
					if d := b.Sub(c.base).Abs(); d > c.bound {
						t.Errorf("base %v is %v from the estimate, beyond bound %v", b, d, c.bound)
					}
				}
			}
		})
	}
}

func TestRunCancelNoLeak(t *testing.T) {
	tests := []struct {
		name string
		read int // items to read before cancelling; the consumer then stops reading
	}{
		{name: "idle parser", read: 10},
		{name: "parser blocked sending", read: 3},
		{name: "blocked on out", read: 1},
		{name: "before any record", read: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			// More records than fit in the parser's channel, so its
			// goroutine is blocked sending when Run stops.
			k := newFakeKernel(0, step{oldest: []int64{1}, first: 1, last: 10})
			src := New(testLog(t), k.options(-1))
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan Item)
			errc := make(chan error, 1)
			go func() { errc <- src.Run(ctx, out) }()
			for range tt.read {
				<-out
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run() = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if _, ok := <-out; ok {
				t.Error("out delivered an item after cancel")
			}
			if _, ok := <-out; ok {
				t.Error("out not closed")
			}
			for _, p := range k.parsers {
				select {
				case <-p.closed:
				default:
					t.Error("parser not closed")
				}
			}
			waitGoroutines(t, before)
		})
	}
}

// waitGoroutines fails unless the goroutine count falls back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunReopenGivesUp(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name  string
		steps []step
		cause error
	}{
		{
			name:  "open keeps failing",
			steps: []step{{err: true}, {err: true}, {err: true}, {err: true}, {err: true}, {err: true}, {err: true}, {err: true}},
			cause: errFakeOpen,
		},
		{
			name: "reader keeps stopping before a record",
			steps: []step{
				{oldest: []int64{1}, overflow: true}, {oldest: []int64{1}, overflow: true},
				{oldest: []int64{1}, overflow: true}, {oldest: []int64{1}, overflow: true},
				{oldest: []int64{1}, overflow: true}, {oldest: []int64{1}, overflow: true},
				{oldest: []int64{1}, overflow: true}, {oldest: []int64{1}, overflow: true},
			},
			cause: syscall.EPIPE,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(0, tt.steps...)
			opts := k.options(-1)
			opts.ReopenTimeout = timeout
			start := time.Now()
			got, err := collect(t, New(testLog(t), opts), -1)
			elapsed := time.Since(start)
			if len(got) != 0 {
				t.Errorf("got%s, want nothing", describe(got))
			}
			if !errors.Is(err, ErrReopen) {
				t.Errorf("Run() = %v, want ErrReopen", err)
			}
			if !errors.Is(err, tt.cause) {
				t.Errorf("Run() = %v, want it to wrap %v", err, tt.cause)
			}
			// Backoff 50, 100, then the 150ms left: four attempts, not a spin.
			if k.opens < 2 || k.opens > 6 {
				t.Errorf("%d open attempts in %v, want 2..6", k.opens, timeout)
			}
			if elapsed < timeout || elapsed > timeout+time.Second {
				t.Errorf("gave up after %v, want about %v", elapsed, timeout)
			}
		})
	}
}

func TestBody(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"plain\n", "plain"},
		{"dict\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n", "dict"},
		{"escaped \\x0a newline\n", "escaped \\x0a newline"},
		{"", ""},
		{"\n SUBSYSTEM=x\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := body(tt.in)
			if string(got) != tt.want {
				t.Errorf("body(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got == nil {
				t.Errorf("body(%q) = nil, want a slice", tt.in)
			}
		})
	}
}

func TestBootTime(t *testing.T) {
	b1, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	up, err := uptime()
	if err != nil {
		t.Fatal(err)
	}
	// Two measurements agree far better than kmsgparser's whole second.
	if d := b2.Sub(b1).Abs(); d > 100*time.Microsecond {
		t.Errorf("BootTime moved by %v between two calls", d)
	}
	// CLOCK_MONOTONIC <= CLOCK_BOOTTIME <= sysinfo's rounded-up uptime.
	if earliest := time.Now().Add(-time.Duration(up) * time.Second); b1.Before(earliest.Add(-time.Second)) {
		t.Errorf("BootTime %v is before now - uptime %v", b1, earliest)
	}
	if b1.After(time.Now()) {
		t.Errorf("BootTime %v is in the future", b1)
	}
}

// TestReaderTakeDoesNotAllocate checks the per-record work after kmsgparser
// allocates nothing: the body lands in the Reader's buffer.
func TestReaderTakeDoesNotAllocate(t *testing.T) {
	k := newFakeKernel(0, step{oldest: []int64{1}, first: 1, last: 1})
	ctx := context.Background()
	r, err := New(testLog(t), k.options(-1)).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, ok := <-r.C()
	if _, rec, err := r.Take(ctx, m, ok); err != nil || rec == nil || rec.Seq != 1 {
		t.Fatalf("Take(first) = %+v, %v", rec, err)
	}
	seq := int64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		m.SequenceNumber = int(seq)
		m.Timestamp = m.Timestamp.Add(time.Millisecond)
		gap, rec, err := r.Take(ctx, m, true)
		if gap != nil || rec == nil || err != nil || rec.Seq != seq {
			t.Fatalf("Take(%d) = %v, %+v, %v", seq, gap, rec, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Take allocates %v times per record, want 0", allocs)
	}
}

// TestReaderTake covers what Take returns for each message: the record
// with its body alone, nothing for a message already delivered, the gap and
// the record together after a hole.
func TestReaderTake(t *testing.T) {
	k := newFakeKernel(0, step{oldest: []int64{5}, first: 5, last: 5})
	ctx := context.Background()
	r, err := New(testLog(t), k.options(-1)).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, ok := <-r.C()
	describeTake := func(gap *Gap, rec *kernlog.Record) string {
		s := ""
		if gap != nil {
			s += fmt.Sprintf("gap(%d..%d lost %d) ", gap.AfterSeq, gap.NextSeq, gap.Lost)
		}
		if rec != nil {
			s += fmt.Sprintf("%d %q", rec.Seq, rec.Message)
		}
		return s
	}
	msg := func(seq int64) kmsgparser.Message {
		c := m
		c.SequenceNumber = int(seq)
		c.Message = msgOf(seq)
		return c
	}
	for _, tt := range []struct {
		m    kmsgparser.Message
		want string
	}{
		{m, `5 "msg 5; a=b"`},
		{msg(6), `6 "msg 6; a=b"`},
		{msg(6), ``},
		{msg(4), ``},
		{msg(9), `gap(6..9 lost 2) 9 "msg 9; a=b"`},
	} {
		gap, rec, err := r.Take(ctx, tt.m, ok)
		if err != nil {
			t.Fatal(err)
		}
		if got := describeTake(gap, rec); got != tt.want {
			t.Errorf("Take(%d) = %s, want %s", tt.m.SequenceNumber, got, tt.want)
		}
	}
}

// BenchmarkReaderTake measures the work per record after kmsgparser.
func BenchmarkReaderTake(b *testing.B) {
	k := newFakeKernel(0, step{oldest: []int64{1}, first: 1, last: 1})
	ctx := context.Background()
	r, err := New(logrus.NewEntry(logrus.New()), k.options(-1)).Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	m, ok := <-r.C()
	if _, _, err := r.Take(ctx, m, ok); err != nil {
		b.Fatal(err)
	}
	m.Message = "IPv6: ADDRCONF(NETDEV_CHANGE): veth3f9a2c1: link becomes ready (cni0 port 7 entered forwarding)\n"
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m.SequenceNumber = i + 2
		m.Timestamp = m.Timestamp.Add(time.Microsecond)
		if _, rec, _ := r.Take(ctx, m, true); rec == nil {
			b.Fatal("no record")
		}
	}
}
