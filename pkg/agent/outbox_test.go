package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/sender"
	"github.com/oomwatch/oomwatch/pkg/spool"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The sender drains an outbox.
var _ sender.Queue = (*Outbox)(nil)

// fakeStore is a spool in memory whose writes fail while err is set.
type fakeStore struct {
	mu      sync.Mutex
	err     error
	ackErr  error
	pending []*pb.Event
	cur     int
	puts    int
	notify  chan struct{}
}

func newFakeStore() *fakeStore { return &fakeStore{notify: make(chan struct{}, 1)} }

func (s *fakeStore) fail(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }

func (s *fakeStore) Put(_ context.Context, evs ...*pb.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	for _, e := range evs {
		if eventid.TypeOf(e) == "" {
			return spool.ErrInvalidEvent
		}
	}
	if s.err != nil {
		return fmt.Errorf("spool put: %w: write seg-0.log: %w", spool.ErrStorage, s.err)
	}
	for _, e := range evs {
		if !slices.ContainsFunc(s.pending, func(p *pb.Event) bool { return spool.KeyOf(p) == spool.KeyOf(e) }) {
			s.pending = append(s.pending, e)
		}
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *fakeStore) Next(n int) []*pb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.Event
	for s.cur < len(s.pending) && len(out) < n {
		out = append(out, s.pending[s.cur])
		s.cur++
	}
	return out
}

func (s *fakeStore) Ack(b, typ string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.pending, func(p *pb.Event) bool { return spool.KeyOf(p) == spool.Key{BootID: b, Type: typ, Seq: seq} })
	if i < 0 {
		return nil
	}
	s.pending = slices.Delete(s.pending, i, i+1)
	if i < s.cur {
		s.cur--
	}
	return s.ackErr
}

func (s *fakeStore) Rewind() { s.mu.Lock(); s.cur = 0; s.mu.Unlock() }

func (s *fakeStore) Notify() <-chan struct{} { return s.notify }

func (s *fakeStore) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.pending) }

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func kill(seq int64) *pb.Event {
	return &pb.Event{Node: "n1", BootId: "boot-1", Seq: seq, Time: timestamppb.New(time.Unix(1_800_000_000+seq, 0)),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "limit"}}}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newOutbox(store Store, opts OutboxOptions) (*Outbox, *clock) {
	opts.Node, opts.BootID = "n1", "boot-1"
	o := NewOutbox(store, opts, quiet())
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	o.now = c.now
	return o, c
}

func seqs(evs []*pb.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.GetSeq()
	}
	return out
}

// TestOutboxDiskErrors: whatever the spool's storage error, events are kept
// in memory and handed to the sender, the checkpoint is held before them,
// and they leave memory when acknowledged.
func TestOutboxDiskErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			st := newFakeStore()
			o, _ := newOutbox(st, OutboxOptions{})
			if err := o.Put(context.Background(), kill(10)); err != nil {
				t.Fatal(err)
			}
			st.fail(errno)
			if err := o.Put(context.Background(), kill(20), kill(30)); err != nil {
				t.Fatalf("Put on a failing disk = %v, want nil (kept in memory)", err)
			}
			if err := o.Put(context.Background(), kill(40)); err != nil {
				t.Fatal(err)
			}
			if from, ok := o.HeldFrom(); !ok || from != 20 {
				t.Errorf("HeldFrom = %d, %v; want 20", from, ok)
			}
			if got := seqs(o.Next(10)); !slices.Equal(got, []int64{10, 20, 30, 40}) {
				t.Errorf("Next = %v", got)
			}
			s := o.Stats()
			if s.Writable || s.Held != 3 || s.Direct != 3 || s.WriteErrors != 1 || s.Lost != 0 {
				t.Errorf("stats %+v", s)
			}
			// Within RetryEvery the spool is not asked again.
			if st.puts != 2 {
				t.Errorf("%d puts reached the spool, want 2", st.puts)
			}
			for _, seq := range []int64{20, 10} {
				if err := o.Ack("boot-1", "oom", seq); err != nil {
					t.Fatal(err)
				}
			}
			if from, ok := o.HeldFrom(); !ok || from != 30 {
				t.Errorf("HeldFrom after an ack = %d, %v; want 30", from, ok)
			}
			o.Rewind()
			if got := seqs(o.Next(10)); !slices.Equal(got, []int64{30, 40}) {
				t.Errorf("Next after Rewind = %v", got)
			}
			if st.len() != 0 {
				t.Errorf("the spool still holds %d events", st.len())
			}
		})
	}
}

// TestOutboxBoundAndLoss: the memory queue is bounded; what it drops is
// counted and reported once as a spool-unwritable loss, which is itself
// kept until delivered.
func TestOutboxBoundAndLoss(t *testing.T) {
	st := newFakeStore()
	st.fail(syscall.ENOSPC)
	o, _ := newOutbox(st, OutboxOptions{MaxEvents: 3})
	ctx := context.Background()
	for seq := int64(1); seq <= 5; seq++ {
		if err := o.Put(ctx, kill(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(o.Next(10)); !slices.Equal(got, []int64{3, 4, 5}) {
		t.Fatalf("held %v, want the newest 3", got)
	}
	if s := o.Stats(); s.Lost != 2 || s.Held != 3 || s.Direct != 5 {
		t.Fatalf("stats %+v", s)
	}
	r, err := o.TakeLost(ctx)
	if err != nil || r.Count != 2 || r.Boots[0].FirstSeq != 1 || r.Boots[0].LastSeq != 2 {
		t.Fatalf("TakeLost = %+v, %v", r, err)
	}
	evs := o.Next(10)
	if len(evs) != 1 || evs[0].GetLoss().GetCause() != CauseUnwritable || evs[0].GetLoss().GetLost() != 2 {
		t.Fatalf("after TakeLost Next = %v", evs)
	}
	loss := evs[0]
	t.Logf("loss detail: %s", loss.GetLoss().GetDetail())
	// More drops: the loss event stays, the oldest kills go.
	for seq := int64(6); seq <= 8; seq++ {
		o.Put(ctx, kill(seq))
	}
	o.Rewind()
	got := o.Next(10)
	if len(got) != 3 || !slices.ContainsFunc(got, func(e *pb.Event) bool { return e.GetLoss() != nil }) {
		t.Fatalf("held %v: the loss report must be kept", seqs(got))
	}
	// While the first report waits, no second one is made.
	if r, err := o.TakeLost(ctx); err != nil || r.Count != 0 {
		t.Fatalf("TakeLost while the report waits = %+v, %v", r, err)
	}
	if err := o.Ack(loss.GetBootId(), "loss", loss.GetSeq()); err != nil {
		t.Fatal(err)
	}
	r, err = o.TakeLost(ctx)
	// The report took kill 3's place (all were sent: the oldest went);
	// then the kills never sent went first: 6, 7 and 8.
	if err != nil || r.Count != 4 || r.Boots[0].FirstSeq != 3 || r.Boots[0].LastSeq != 8 {
		t.Fatalf("second TakeLost = %+v, %v; want the 4 kills dropped since", r, err)
	}
	if s := o.Stats(); s.Lost != 6 {
		t.Fatalf("stats %+v", s)
	}
}

// TestOutboxResumes: once the disk takes writes again, the events held in
// memory go to the spool (on the next Put, or by Run on its own) and the
// checkpoint is free again.
func TestOutboxResumes(t *testing.T) {
	t.Run("next put", func(t *testing.T) {
		st := newFakeStore()
		st.fail(syscall.ENOSPC)
		o, clk := newOutbox(st, OutboxOptions{})
		ctx := context.Background()
		o.Put(ctx, kill(1), kill(2))
		st.fail(nil)
		o.Put(ctx, kill(3))
		if st.len() != 0 {
			t.Fatal("the spool was asked before RetryEvery")
		}
		clk.add(DefaultRetryEvery)
		if err := o.Put(ctx, kill(4)); err != nil {
			t.Fatal(err)
		}
		if st.len() != 4 {
			t.Fatalf("spool holds %d events, want 4", st.len())
		}
		if _, held := o.HeldFrom(); held {
			t.Error("events still held after they were spooled")
		}
		if s := o.Stats(); !s.Writable || s.Held != 0 || s.Respooled != 3 {
			t.Errorf("stats %+v", s)
		}
		if got := seqs(o.Next(10)); !slices.Equal(got, []int64{1, 2, 3, 4}) {
			t.Errorf("Next = %v", got)
		}
	})
	t.Run("by itself", func(t *testing.T) {
		st := newFakeStore()
		st.fail(syscall.EIO)
		o := NewOutbox(st, OutboxOptions{Node: "n1", BootID: "boot-1", RetryEvery: 10 * time.Millisecond}, quiet())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error)
		go func() { done <- o.Run(ctx) }()
		o.Put(ctx, kill(1))
		time.Sleep(50 * time.Millisecond)
		if st.len() != 0 {
			t.Fatal("spooled on a failing disk")
		}
		st.fail(nil)
		deadline := time.Now().Add(5 * time.Second)
		for o.Stats().Held > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the held event never reached the healed spool")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if st.len() != 1 || !o.Stats().Writable {
			t.Fatalf("spool %d, stats %+v", st.len(), o.Stats())
		}
		// The spool's notifications reach the sender through the outbox.
		for len(o.Notify()) > 0 {
			<-o.Notify()
		}
		o.Put(ctx, kill(2))
		select {
		case <-o.Notify():
		case <-time.After(5 * time.Second):
			t.Fatal("no notification for a spooled event")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestOutboxErrors: errors that no disk fixes are returned; an ack the
// spool cannot write is counted, not returned.
func TestOutboxErrors(t *testing.T) {
	st := newFakeStore()
	o, _ := newOutbox(st, OutboxOptions{})
	if err := o.Put(context.Background(), &pb.Event{Seq: 1}); !errors.Is(err, spool.ErrInvalidEvent) {
		t.Errorf("Put of an invalid event = %v", err)
	}
	st.fail(syscall.ENOSPC)
	if err := o.Put(context.Background(), kill(1), &pb.Event{Seq: 2}); !errors.Is(err, spool.ErrInvalidEvent) || o.Stats().Held != 0 {
		t.Errorf("Put of an invalid event on a full disk = %v, %d held", err, o.Stats().Held)
	}
	st.fail(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Put(ctx, kill(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with an ended context = %v", err)
	}
	o.Put(context.Background(), kill(2))
	st.ackErr = fmt.Errorf("spool ack: %w: %w", spool.ErrNotDurable, syscall.ENOSPC)
	if err := o.Ack("boot-1", "oom", 2); err != nil {
		t.Errorf("Ack not durable = %v, want nil", err)
	}
	if s := o.Stats(); s.AckErrors != 1 || !s.Writable {
		t.Errorf("stats %+v", s)
	}
	st.ackErr = errors.New("spool closed")
	o.Put(context.Background(), kill(3))
	if err := o.Ack("boot-1", "oom", 3); err == nil {
		t.Error("Ack hid a real error")
	}
}

// failingCheck is a checkpointer whose saves fail while err is set.
type failingCheck struct {
	mu    sync.Mutex
	err   error
	saved []int64
	fails int
}

func (c *failingCheck) Save(seq int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		c.fails++
		return c.err
	}
	c.saved = append(c.saved, seq)
	return nil
}

func (c *failingCheck) last() (int64, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.saved) == 0 {
		return -1, 0, c.fails
	}
	return c.saved[len(c.saved)-1], len(c.saved), c.fails
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPipelineCheckpointOnFullDisk: with the spool and the checkpoint
// failing, the pipeline goes on; the checkpoint never claims the records
// of kills held only in memory, and catches up as they are acknowledged.
func TestPipelineCheckpointOnFullDisk(t *testing.T) {
	st := newFakeStore()
	st.fail(syscall.ENOSPC)
	o := NewOutbox(st, OutboxOptions{Node: "node-a", BootID: "boot-1"}, quiet())
	check := &failingCheck{err: fmt.Errorf("save checkpoint: %w", syscall.ENOSPC)}
	p := NewPipeline(PipelineConfig{Node: "node-a", BootID: "boot-1", Proc: fakeProc(t, "3600.0", nil), Sink: o, Check: check,
		Idle: 5 * time.Millisecond, CheckpointEvery: 5 * time.Millisecond}, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	items := make(chan devkmsg.Item, 64)
	go SyntheticSource("node-a", 3, 0)(ctx, -1, items)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, items) }()

	waitUntil(t, "3 kills held in memory", func() bool { return o.Stats().Held == 3 })
	waitUntil(t, "a failed checkpoint save", func() bool { _, _, fails := check.last(); return fails > 0 })
	check.mu.Lock()
	check.err = nil
	check.mu.Unlock()
	// Kill k's report starts at record 5k+1: the checkpoint may claim
	// nothing while the first kill is only in memory.
	waitUntil(t, "a checkpoint save", func() bool { _, n, _ := check.last(); return n > 0 })
	if seq, _, _ := check.last(); seq != 0 {
		t.Fatalf("checkpoint at %d with kill 1 (records 1 to 5) held only in memory", seq)
	}
	evs := o.Next(10)
	if len(evs) != 3 {
		t.Fatalf("%d events handed out", len(evs))
	}
	o.Ack("boot-1", "oom", evs[0].GetSeq())
	waitUntil(t, "the checkpoint up to kill 2", func() bool { seq, _, _ := check.last(); return seq == 5 })
	o.Ack("boot-1", "oom", evs[2].GetSeq())
	o.Ack("boot-1", "oom", evs[1].GetSeq())
	waitUntil(t, "the checkpoint at the last record", func() bool { seq, _, _ := check.last(); return seq == 15 })
	check.mu.Lock()
	saved := slices.Clone(check.saved)
	check.mu.Unlock()
	if !slices.IsSorted(saved) {
		t.Errorf("checkpoint went back: %v", saved)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("pipeline: %v", err)
	}
}

// TestOutboxDropInFlight: the full queue drops the events never sent
// before those sent (which the aggregator may have stored without its ack
// reaching back), so that stored and reported lost add up exactly.
func TestOutboxDropInFlight(t *testing.T) {
	st := newFakeStore()
	st.fail(syscall.ENOSPC)
	o, _ := newOutbox(st, OutboxOptions{MaxEvents: 2})
	ctx := context.Background()
	o.Put(ctx, kill(1), kill(2))
	if got := seqs(o.Next(10)); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("Next = %v", got)
	}
	// 1 and 2 are in flight when the stream breaks; 3 and 4 arrive.
	o.Put(ctx, kill(3), kill(4))
	if s := o.Stats(); s.Lost != 2 || s.Held != 2 {
		t.Fatalf("stats %+v", s)
	}
	o.Rewind()
	if got := seqs(o.Next(10)); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after Rewind Next = %v: the sent ones must stay", got)
	}
	r, err := o.TakeLost(ctx)
	if err != nil || r.Count != 2 || r.Boots[0].FirstSeq != 3 || r.Boots[0].LastSeq != 4 {
		t.Fatalf("TakeLost = %+v, %v; want kills 3 and 4", r, err)
	}
	// Only sent events left: the oldest goes, never the report.
	if got := o.Next(10); len(got) != 1 || got[0].GetLoss() == nil {
		t.Fatalf("Next = %v, want the loss report", seqs(got))
	}
	if s := o.Stats(); s.Held != 2 || s.Lost != 3 {
		t.Fatalf("stats %+v: want kill 1 dropped for the report", s)
	}
}

// Holds sees an event pending in the spool and one kept in memory while
// the spool fails, and neither once acknowledged: an oom-child story's
// update waits on it (exits.Holder).
func TestOutboxHolds(t *testing.T) {
	sp, _, err := spool.Open(t.TempDir(), spool.Options{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	o, _ := newOutbox(sp, OutboxOptions{})
	ctx := context.Background()
	e := kill(7)
	if err := o.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if !o.Holds(e.GetBootId(), eventid.TypeOf(e), 7) || o.Holds(e.GetBootId(), eventid.TypeOf(e), 8) {
		t.Fatal("Holds does not see the spooled event")
	}
	if err := o.Ack(e.GetBootId(), eventid.TypeOf(e), 7); err != nil {
		t.Fatal(err)
	}
	if o.Holds(e.GetBootId(), eventid.TypeOf(e), 7) {
		t.Fatal("Holds an acknowledged event")
	}

	st := newFakeStore()
	st.fail(fmt.Errorf("%w: disk full", spool.ErrStorage))
	o, _ = newOutbox(st, OutboxOptions{})
	if err := o.Put(ctx, kill(9)); err != nil {
		t.Fatal(err)
	}
	if !o.Holds(kill(9).GetBootId(), eventid.TypeOf(kill(9)), 9) {
		t.Fatal("Holds does not see the event kept in memory")
	}
}
