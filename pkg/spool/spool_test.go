package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

var ctx = context.Background()

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// oomEvent is an OOM kill event of boot b with sequence number seq, at
// epoch+seq seconds.
func oomEvent(b string, seq int) *pb.Event {
	return &pb.Event{Node: "n1", BootId: b, Seq: int64(seq), Time: timestamppb.New(epoch.Add(time.Duration(seq) * time.Second)),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "node", Reason: fmt.Sprintf("kill %d", seq)}}}
}

func oomEvents(b string, from, to int) []*pb.Event {
	var out []*pb.Event
	for i := from; i < to; i++ {
		out = append(out, oomEvent(b, i))
	}
	return out
}

func mustOpen(t testing.TB, dir string, opts Options) (*Spool, Recovery) {
	t.Helper()
	s, rec, err := Open(dir, opts, quietLog())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, rec
}

// drain returns every event Next hands out.
func drain(s *Spool) []*pb.Event { return s.Next(1 << 30) }

// keys returns the string keys of events.
func keys(evs []*pb.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = KeyOf(e).String()
	}
	return out
}

func wantKeys(t *testing.T, got []*pb.Event, want []*pb.Event) {
	t.Helper()
	if g, w := keys(got), keys(want); !slices.Equal(g, w) {
		t.Fatalf("events:\n got %v\nwant %v", g, w)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d differs:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestKeyMatchesWire(t *testing.T) {
	for _, ev := range []*pb.Event{
		{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{}}},
		{Payload: &pb.Event_Loss{Loss: &pb.Loss{}}},
		{Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{}}},
		{},
	} {
		if got, want := eventid.TypeOf(ev), eventid.TypeOf(ev); got != want {
			t.Errorf("eventid.TypeOf(%v) = %q, wire says %q", ev, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	s, rec := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	if rec.Events != 0 || rec.Err() != nil {
		t.Fatalf("fresh spool recovery = %+v", rec)
	}
	evs := append(oomEvents("b1", 0, 3),
		&pb.Event{Node: "n1", BootId: "b1", Seq: 7, Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 3}}},
		&pb.Event{Node: "n1", BootId: "b1", Seq: 0, Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{ExitCode: 137}}})
	if err := s.Put(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Notify():
	default:
		t.Error("Put did not notify")
	}
	if s.Len() != len(evs) || s.Bytes() <= 0 {
		t.Errorf("Len %d Bytes %d", s.Len(), s.Bytes())
	}
	wantKeys(t, drain(s), evs)
	if got := s.Next(10); len(got) != 0 {
		t.Errorf("Next after all handed out = %v", keys(got))
	}
}

func TestPutErrors(t *testing.T) {
	s, _ := mustOpen(t, t.TempDir(), Options{MaxBytes: 1000})
	defer s.Close()
	big := oomEvent("b1", 1)
	big.GetOom().Lines = []string{strings.Repeat("x", 2000)}
	tests := []struct {
		name   string
		events []*pb.Event
		want   error
	}{
		{"nil event", []*pb.Event{oomEvent("b1", 0), nil}, ErrInvalidEvent},
		{"no payload", []*pb.Event{{BootId: "b1", Seq: 1}}, ErrInvalidEvent},
		{"too large", []*pb.Event{oomEvent("b1", 0), big}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(ctx, tt.events...); !errors.Is(err, tt.want) {
				t.Fatalf("Put = %v, want %v", err, tt.want)
			}
			if s.Len() != 0 {
				t.Fatalf("a failed Put left %d events", s.Len())
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, oomEvent("b1", 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v", err)
	}
	s.Close()
	if err := s.Put(ctx, oomEvent("b1", 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v", err)
	}
	if err := s.Ack("b1", "oom", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v", err)
	}
}

func TestRestartKeepsOrder(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		close bool
	}{
		{"closed", Options{}, true},
		{"killed", Options{}, false},
		{"killed, many segments", Options{SegmentBytes: 300}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := mustOpen(t, dir, tt.opts)
			// Sequence numbers out of order, two boots, several batches.
			want := []*pb.Event{oomEvent("b2", 9), oomEvent("b1", 3), oomEvent("b2", 1)}
			if err := s.Put(ctx, want...); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				batch := []*pb.Event{oomEvent("b1", 100+i), oomEvent("b3", 50-i)}
				if err := s.Put(ctx, batch...); err != nil {
					t.Fatal(err)
				}
				want = append(want, batch...)
			}
			if tt.close {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s2, rec := mustOpen(t, dir, tt.opts)
			defer s2.Close()
			if rec.Err() != nil || rec.Events != len(want) {
				t.Fatalf("recovery %+v, err %v", rec, rec.Err())
			}
			wantKeys(t, drain(s2), want)
			// And again, after the second instance appended nothing.
			s2.Close()
			s3, _ := mustOpen(t, dir, tt.opts)
			defer s3.Close()
			wantKeys(t, drain(s3), want)
		})
	}
}

func TestIdempotentPut(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, Options{})
	first := oomEvent("b1", 1)
	other := oomEvent("b1", 1)
	other.GetOom().Reason = "replaced?"
	if err := s.Put(ctx, first, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, other, oomEvent("b1", 2)); err != nil {
		t.Fatal(err)
	}
	// Same seq, other type or boot: other keys.
	loss := &pb.Event{BootId: "b1", Seq: 1, Payload: &pb.Event_Loss{Loss: &pb.Loss{}}}
	if err := s.Put(ctx, loss, oomEvent("b2", 1)); err != nil {
		t.Fatal(err)
	}
	want := []*pb.Event{first, oomEvent("b1", 2), loss, oomEvent("b2", 1)}
	wantKeys(t, drain(s), want)
	if st := s.Stats(); st.Duplicates != 2 || st.Put != 4 {
		t.Errorf("stats %+v", st)
	}
	s.Close()
	s2, _ := mustOpen(t, dir, Options{})
	defer s2.Close()
	if err := s2.Put(ctx, other); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, drain(s2), want)
}

func TestNextRewindAck(t *testing.T) {
	s, _ := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	evs := oomEvents("b1", 0, 6)
	if err := s.Put(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, s.Next(2), evs[0:2])
	wantKeys(t, s.Next(2), evs[2:4])
	if err := s.Ack("b1", "oom", 1); err != nil {
		t.Fatal(err)
	}
	// Acking an unknown key is fine.
	if err := s.Ack("b1", "oom", 99); err != nil {
		t.Fatal(err)
	}
	s.Rewind()
	wantKeys(t, s.Next(3), []*pb.Event{evs[0], evs[2], evs[3]})
	if err := s.Put(ctx, oomEvent("b1", 6)); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, s.Next(10), []*pb.Event{evs[4], evs[5], oomEvent("b1", 6)})
	if s.Len() != 6 {
		t.Errorf("Len = %d, want 6", s.Len())
	}
}

func TestAckDoesNotResurrect(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		sync bool
	}{
		{"one segment, killed", Options{}, false},
		{"many segments, killed", Options{SegmentBytes: 200}, false},
		{"many segments, synced", Options{SegmentBytes: 200}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := mustOpen(t, dir, tt.opts)
			evs := oomEvents("b1", 0, 20)
			for i := 0; i < len(evs); i += 4 {
				if err := s.Put(ctx, evs[i:i+4]...); err != nil {
					t.Fatal(err)
				}
			}
			var want []*pb.Event
			for i, e := range evs {
				if i%3 == 0 {
					want = append(want, e)
					continue
				}
				if err := s.Ack(e.GetBootId(), "oom", e.GetSeq()); err != nil {
					t.Fatal(err)
				}
			}
			if tt.sync {
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			s2, _ := mustOpen(t, dir, tt.opts)
			wantKeys(t, drain(s2), want)
			for _, e := range want {
				if err := s2.Ack(e.GetBootId(), "oom", e.GetSeq()); err != nil {
					t.Fatal(err)
				}
			}
			s2.Close()
			s3, _ := mustOpen(t, dir, tt.opts)
			defer s3.Close()
			if got := drain(s3); len(got) != 0 {
				t.Fatalf("acked events came back: %v", keys(got))
			}
			if n := len(segFiles(t, dir)); n != 1 {
				t.Errorf("%d segment files left after everything was acked, want 1", n)
			}
		})
	}
}

func TestBounds(t *testing.T) {
	size := func() int64 {
		s, _ := mustOpen(t, t.TempDir(), Options{})
		defer s.Close()
		if err := s.Put(ctx, oomEvent("b1", 10)); err != nil {
			t.Fatal(err)
		}
		return s.Bytes()
	}()
	tests := []struct {
		name    string
		opts    Options
		batches [][]*pb.Event
		// want is the surviving seqs of boot b1; dropped their count.
		want      []int
		dropFirst int
		dropLast  int
	}{
		{
			name:    "events, one per put",
			opts:    Options{MaxEvents: 3},
			batches: [][]*pb.Event{oomEvents("b1", 10, 11), oomEvents("b1", 11, 12), oomEvents("b1", 12, 13), oomEvents("b1", 13, 14), oomEvents("b1", 14, 15)},
			want:    []int{12, 13, 14}, dropFirst: 10, dropLast: 11,
		},
		{
			name:    "events, one batch larger than the spool",
			opts:    Options{MaxEvents: 3},
			batches: [][]*pb.Event{oomEvents("b1", 10, 12), oomEvents("b1", 12, 17)},
			want:    []int{14, 15, 16}, dropFirst: 10, dropLast: 13,
		},
		{
			name:    "bytes",
			opts:    Options{MaxBytes: 4*size + size/2},
			batches: [][]*pb.Event{oomEvents("b1", 10, 13), oomEvents("b1", 13, 16), oomEvents("b1", 16, 18)},
			want:    []int{14, 15, 16, 17}, dropFirst: 10, dropLast: 13,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := mustOpen(t, dir, tt.opts)
			for _, b := range tt.batches {
				if err := s.Put(ctx, b...); err != nil {
					t.Fatal(err)
				}
			}
			var want []*pb.Event
			for _, seq := range tt.want {
				want = append(want, oomEvent("b1", seq))
			}
			ndrop := int64(tt.dropLast - tt.dropFirst + 1)
			wantReport := DropReport{
				Count: ndrop, Types: map[string]int64{"oom": ndrop},
				FirstTime: epoch.Add(time.Duration(tt.dropFirst) * time.Second),
				LastTime:  epoch.Add(time.Duration(tt.dropLast) * time.Second),
				Boots:     []BootDrops{{BootID: "b1", Count: ndrop, FirstSeq: int64(tt.dropFirst), LastSeq: int64(tt.dropLast)}},
			}
			check := func(s *Spool) {
				t.Helper()
				wantKeys(t, drain(s), want)
				if got := s.Dropped(); !sameReport(got, wantReport) {
					t.Fatalf("Dropped() = %+v\nwant %+v", got, wantReport)
				}
			}
			check(s)
			if st := s.Stats(); st.Dropped != ndrop {
				t.Errorf("Stats().Dropped = %d", st.Dropped)
			}
			// Killed before reporting: the count survives.
			s2, _ := mustOpen(t, dir, tt.opts)
			check(s2)
			s2.Close()
			s3, _ := mustOpen(t, dir, tt.opts)
			defer s3.Close()
			check(s3)
		})
	}
}

func sameReport(a, b DropReport) bool {
	return a.Count == b.Count && a.FirstTime.Equal(b.FirstTime) && a.LastTime.Equal(b.LastTime) &&
		fmt.Sprint(a.Types) == fmt.Sprint(b.Types) && slices.Equal(a.Boots, b.Boots)
}

func TestTakeDropped(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MaxEvents: 4, SegmentBytes: 400}
	s, _ := mustOpen(t, dir, opts)
	lossOf := func(r DropReport) *pb.Event { return r.Loss("n1", "b1", 1000+r.Count, epoch) }
	if r, err := s.TakeDropped(ctx, func(DropReport) *pb.Event { t.Fatal("called without drops"); return nil }); err != nil || r.Count != 0 {
		t.Fatalf("TakeDropped with nothing dropped = %+v, %v", r, err)
	}
	if err := s.Put(ctx, oomEvents("b1", 0, 7)...); err != nil {
		t.Fatal(err)
	}
	// Pending: 3 4 5 6; dropped 0 1 2.
	if err := s.Put(ctx, &pb.Event{BootId: "b1", Seq: 1003, Payload: &pb.Event_Loss{Loss: &pb.Loss{}}}); err != nil {
		t.Fatal(err)
	}
	// Pending: 4 5 6 loss/1003; dropped 0 1 2 3.
	if r, err := s.TakeDropped(ctx, lossOf); err != nil || r.Count != 4 {
		t.Fatalf("TakeDropped = %+v, %v", r, err)
	}
	// Taking put loss/1004 and dropped 4: the new report counts only 4.
	if got := s.Dropped(); got.Count != 1 || got.Boots[0].FirstSeq != 4 {
		t.Fatalf("after take, Dropped() = %+v", got)
	}
	wantPending := []string{"b1/oom/5", "b1/oom/6", "b1/loss/1003", "b1/loss/1004"}
	if got := keys(drain(s)); !slices.Equal(got, wantPending) {
		t.Fatalf("pending %v, want %v", got, wantPending)
	}
	s.Rewind()
	var lossEv *pb.Event
	for _, e := range drain(s) {
		if e.GetSeq() == 1004 {
			lossEv = e
		}
	}
	if l := lossEv.GetLoss(); l.GetCause() != CauseOverflow || l.GetLost() != 4 ||
		!l.GetFrom().AsTime().Equal(epoch) || !l.GetTo().AsTime().Equal(epoch.Add(3*time.Second)) ||
		!strings.Contains(l.GetDetail(), "seq 0 to 3") {
		t.Errorf("loss event %v", lossEv)
	}
	// Taking again with a key that is pending fails and keeps the report.
	if _, err := s.TakeDropped(ctx, func(r DropReport) *pb.Event { return r.Loss("n1", "b1", 1004, epoch) }); !errors.Is(err, ErrKeyPending) {
		t.Fatalf("TakeDropped with a pending key = %v", err)
	}
	if s.Dropped().Count != 1 {
		t.Fatal("failed TakeDropped lost the report")
	}
	// Killed now: the reset and the loss event survive together.
	s2, _ := mustOpen(t, dir, opts)
	if got := keys(drain(s2)); !slices.Equal(got, wantPending) {
		t.Fatalf("after restart pending %v, want %v", got, wantPending)
	}
	if got := s2.Dropped(); got.Count != 1 {
		t.Fatalf("after restart Dropped() = %+v", got)
	}
	// Ack everything, so that segments holding the drop records go: the
	// report lives on in the state records.
	for _, k := range wantPending {
		p := strings.Split(k, "/")
		var seq int64
		fmt.Sscan(p[2], &seq)
		if err := s2.Ack(p[0], p[1], seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Put(ctx, oomEvents("b2", 0, 3)...); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, _ := mustOpen(t, dir, opts)
	defer s3.Close()
	if got := s3.Dropped(); got.Count != 1 || got.Boots[0].FirstSeq != 4 {
		t.Fatalf("after acks and restart Dropped() = %+v", got)
	}
	if r, err := s3.TakeDropped(ctx, lossOf); err != nil || r.Count != 1 {
		t.Fatalf("TakeDropped = %+v, %v", r, err)
	}
	if got := s3.Dropped(); got.Count != 0 {
		t.Fatalf("after take Dropped() = %+v", got)
	}
}

// TestOpenShrinksToBounds: bounds smaller than the spool's contents drop the
// oldest at Open.
func TestOpenShrinksToBounds(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, Options{})
	if err := s.Put(ctx, oomEvents("b1", 0, 10)...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, rec := mustOpen(t, dir, Options{MaxEvents: 4})
	defer s2.Close()
	if rec.Dropped != 6 || rec.Events != 4 {
		t.Fatalf("recovery %+v", rec)
	}
	wantKeys(t, drain(s2), oomEvents("b1", 6, 10))
	if s2.Dropped().Count != 6 {
		t.Errorf("Dropped() = %+v", s2.Dropped())
	}
}

// TestCompaction: one old pending event must not keep every later segment
// alive.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1000}
	s, _ := mustOpen(t, dir, opts)
	pinned := oomEvent("b0", 0)
	if err := s.Put(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := s.Put(ctx, oomEvent("b1", i)); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack("b1", "oom", int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segFiles(t, dir)); n > 8 {
		t.Errorf("%d segments for one pending event", n)
	}
	if st := s.Stats(); st.DiskBytes > 4*opts.SegmentBytes || st.TidyErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := s.Put(ctx, oomEvent("b1", 1000)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, _ := mustOpen(t, dir, opts)
	defer s2.Close()
	wantKeys(t, drain(s2), []*pb.Event{pinned, oomEvent("b1", 1000)})
}

// putOneByOne puts each event in its own record.
func putOneByOne(t *testing.T, s *Spool, evs []*pb.Event) {
	t.Helper()
	for _, e := range evs {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// recordOf returns the offset and size of the put record of the event with
// seq in a segment file's contents.
func recordOf(t *testing.T, data []byte, seq int64) (int, int) {
	t.Helper()
	off, n := -1, 0
	scan(data, func(r rawRecord) {
		if r.typ != recPut {
			return
		}
		p, err := decodePut(r.body)
		ev := &pb.Event{}
		if err == nil && proto.Unmarshal(p.event, ev) == nil && ev.GetSeq() == seq {
			off, n = int(r.off), int(r.size)
		}
	})
	if off < 0 {
		t.Fatalf("no record of seq %d", seq)
	}
	return off, n
}

func TestCorruption(t *testing.T) {
	all := oomEvents("b1", 0, 10)
	without := func(seqs ...int) []*pb.Event {
		var out []*pb.Event
		for _, e := range all {
			if !slices.Contains(seqs, int(e.GetSeq())) {
				out = append(out, e)
			}
		}
		return out
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 5000)
	for i := range garbage {
		garbage[i] = byte(rnd.UintN(256))
	}
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir, seg string, data []byte)
		want    []*pb.Event
		// file is the corrupt file's name, "" for the segment.
		file     string
		badBytes int64
	}{
		{
			name: "torn last record",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				off, n := recordOf(t, data, 9)
				os.WriteFile(seg, data[:off+n/2], 0o600)
			},
			want: without(9),
		},
		{
			name: "torn frame header",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				off, _ := recordOf(t, data, 9)
				os.WriteFile(seg, data[:off+5], 0o600)
			},
			want: without(9), badBytes: 5,
		},
		{
			name: "flipped bytes in a record's event",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				off, n := recordOf(t, data, 4)
				data[off+n-3] ^= 0xff
				data[off+n-2] ^= 0x01
				os.WriteFile(seg, data, 0o600)
			},
			want: without(4),
		},
		{
			name: "flipped length",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				off, _ := recordOf(t, data, 5)
				data[off+5] ^= 0x40
				os.WriteFile(seg, data, 0o600)
			},
			want: without(5),
		},
		{
			name: "garbage inside the segment",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				off, _ := recordOf(t, data, 6)
				out := append(append(slices.Clone(data[:off]), garbage...), data[off:]...)
				os.WriteFile(seg, out, 0o600)
			},
			want: all, badBytes: int64(len(garbage)),
		},
		{
			name: "garbage file after the segment",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				os.WriteFile(filepath.Join(dir, segName(1000)), garbage, 0o600)
			},
			want: all, file: segName(1000), badBytes: int64(len(garbage)),
		},
		{
			name: "garbage file before the segment",
			corrupt: func(t *testing.T, dir, seg string, data []byte) {
				if err := os.Rename(seg, filepath.Join(dir, segName(5))); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, segName(4)), garbage[:100], 0o600)
			},
			want: all, file: segName(4), badBytes: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := mustOpen(t, dir, Options{})
			putOneByOne(t, s, all)
			s.Close()
			segs := segFiles(t, dir)
			if len(segs) != 1 {
				t.Fatalf("segments %v", segs)
			}
			data, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, dir, segs[0], data)
			// A file that is no segment is left alone.
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600)

			s2, rec := mustOpen(t, dir, Options{})
			if err := rec.Err(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Recovery.Err() = %v", err)
			}
			if len(rec.Corrupt) != 1 {
				t.Fatalf("corrupt files %+v", rec.Corrupt)
			}
			c := rec.Corrupt[0]
			wantName := tt.file
			if wantName == "" {
				wantName = filepath.Base(segs[0])
			}
			if c.Name != wantName || c.BadRanges < 1 || c.BadBytes <= 0 || (tt.badBytes > 0 && c.BadBytes != tt.badBytes) {
				t.Errorf("corrupt file %+v, want %s with %d bad bytes", c, wantName, tt.badBytes)
			}
			if c.MovedTo == "" {
				t.Errorf("corrupt file not kept")
			} else if _, err := os.Stat(c.MovedTo); err != nil {
				t.Errorf("corrupt file not at %s: %v", c.MovedTo, err)
			}
			if rec.Events != len(tt.want) {
				t.Errorf("recovered %d events, want %d", rec.Events, len(tt.want))
			}
			wantKeys(t, drain(s2), tt.want)
			if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
				t.Errorf("foreign file touched: %v", err)
			}
			// Still usable, and clean at the next start.
			if err := s2.Put(ctx, oomEvent("b1", 20)); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			s3, rec := mustOpen(t, dir, Options{})
			defer s3.Close()
			if rec.Err() != nil {
				t.Fatalf("second open: %v", rec.Err())
			}
			wantKeys(t, drain(s3), append(slices.Clone(tt.want), oomEvent("b1", 20)))
		})
	}
}

func TestCorruptAckIsAtLeastOnce(t *testing.T) {
	// An ack lost in a corrupt segment brings its event back (sent again,
	// the aggregator deduplicates); everything else stays acked.
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, Options{})
	putOneByOne(t, s, oomEvents("b1", 0, 4))
	for seq := range 4 {
		if err := s.Ack("b1", "oom", int64(seq)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	// Tear the last ack (of seq 3).
	os.WriteFile(seg, data[:len(data)-2], 0o600)
	s2, rec := mustOpen(t, dir, Options{})
	defer s2.Close()
	if rec.Err() == nil {
		t.Fatal("torn ack not reported")
	}
	wantKeys(t, drain(s2), oomEvents("b1", 3, 4))
}

func TestKeepCorrupt(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		os.WriteFile(filepath.Join(dir, segName(uint64(100+i))), []byte("garbage"), 0o600)
		s, rec := mustOpen(t, dir, Options{KeepCorrupt: 2})
		s.Close()
		if len(rec.Corrupt) != 1 {
			t.Fatalf("run %d: corrupt %+v", i, rec.Corrupt)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, CorruptDir))
	if len(ents) != 2 {
		t.Errorf("%d files kept, want 2", len(ents))
	}
	os.WriteFile(filepath.Join(dir, segName(200)), []byte("garbage"), 0o600)
	s, rec := mustOpen(t, dir, Options{KeepCorrupt: -1})
	s.Close()
	if len(rec.Corrupt) != 1 || rec.Corrupt[0].MovedTo != "" {
		t.Errorf("corrupt %+v", rec.Corrupt)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(200))); err == nil {
		t.Error("corrupt file not removed")
	}
}

func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, Options{SegmentBytes: 8 << 10})
	const total = 2000
	var wg sync.WaitGroup
	putErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 25 {
			if err := s.Put(ctx, oomEvents("b1", i, i+25)...); err != nil {
				putErr <- err
				return
			}
		}
	}()
	acked := map[int64]bool{}
	deadline := time.After(60 * time.Second)
	rnd := rand.New(rand.NewPCG(3, 4))
	for len(acked) < total {
		evs := s.Next(64)
		if len(evs) == 0 {
			select {
			case <-s.Notify():
			case err := <-putErr:
				t.Fatal(err)
			case <-deadline:
				t.Fatalf("only %d acked", len(acked))
			case <-time.After(10 * time.Millisecond):
				// Nothing new: send again what was not acknowledged.
				s.Rewind()
			}
			continue
		}
		for _, e := range evs {
			// Lose some acks, as on a reconnect.
			if rnd.IntN(10) == 0 {
				continue
			}
			if err := s.Ack(e.GetBootId(), eventid.TypeOf(e), e.GetSeq()); err != nil {
				t.Fatal(err)
			}
			acked[e.GetSeq()] = true
		}
		if rnd.IntN(5) == 0 {
			s.Rewind()
		}
		_ = s.Len()
		_ = s.Stats()
	}
	wg.Wait()
	if s.Len() != 0 {
		t.Fatalf("Len = %d after all acked", s.Len())
	}
	s.Close()
	s2, _ := mustOpen(t, dir, Options{})
	defer s2.Close()
	if got := drain(s2); len(got) != 0 {
		t.Fatalf("acked events came back: %v", keys(got))
	}
}

func TestForeignFilesLeftAlone(t *testing.T) {
	// Open does not treat other files in its directory as segments.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "seg-1.log"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(dir, segName(3)), 0o700)
	s, rec := mustOpen(t, dir, Options{})
	defer s.Close()
	if rec.Err() != nil || rec.Segments != 0 {
		t.Fatalf("recovery %+v", rec)
	}
}

func TestOptions(t *testing.T) {
	if _, _, err := Open(t.TempDir(), Options{MaxEvents: -1}, quietLog()); !errors.Is(err, ErrOptions) {
		t.Errorf("Open with negative bound = %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, err := Open(filepath.Join(file, "spool"), Options{}, quietLog()); err == nil {
		t.Error("Open under a file succeeded")
	}
}

func TestUnreadableEvent(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, Options{})
	defer s.Close()
	putOneByOne(t, s, oomEvents("b1", 0, 3))
	// Something cuts the segment under the spool's feet.
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	off, _ := recordOf(t, data, 2)
	if err := os.Truncate(seg, int64(off+eventOffset+2)); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, drain(s), oomEvents("b1", 0, 2))
	if st := s.Stats(); st.Unreadable != 1 || st.Pending != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Holds tells a producer whether an earlier revision of an event is still
// pending (a second Put of its key would be dropped as a duplicate).
func TestHolds(t *testing.T) {
	s, _ := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	e := oomEvent("b1", 7)
	if s.Holds("b1", "oom", 7) {
		t.Fatal("holds an event never put")
	}
	if err := s.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if !s.Holds("b1", "oom", 7) || s.Holds("b1", "oom", 8) || s.Holds("b2", "oom", 7) {
		t.Fatal("Holds does not match what is pending")
	}
	if err := s.Ack("b1", "oom", 7); err != nil {
		t.Fatal(err)
	}
	if s.Holds("b1", "oom", 7) {
		t.Fatal("holds an acknowledged event")
	}
}
