package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
)

// itemParser is a kmsgparser.Parser over recorded items: it delivers them
// as kmsgparser would (the message with a trailing newline, a timestamp
// from a whole-second boot time), then waits, as /dev/kmsg does, until
// Close.
type itemParser struct {
	items     []devkmsg.Item
	boot      time.Time
	closed    chan struct{}
	closeOnce sync.Once
}

func (p *itemParser) SeekEnd() error                         { return nil }
func (p *itemParser) SetLogger(kmsgparser.Logger)            {}
func (p *itemParser) Close() error                           { p.closeOnce.Do(func() { close(p.closed) }); return nil }
func (p *itemParser) timestamp(mono time.Duration) time.Time { return p.boot.Add(mono) }

func (p *itemParser) Parse() <-chan kmsgparser.Message {
	out := make(chan kmsgparser.Message, 1)
	go func() {
		defer close(out)
		for _, it := range p.items {
			r := it.Record
			m := kmsgparser.Message{Priority: r.Priority, SequenceNumber: int(r.Seq),
				Timestamp: p.timestamp(r.Mono), Message: string(r.Message) + "\n"}
			select {
			case out <- m:
			case <-p.closed:
				return
			}
		}
		<-p.closed
	}()
	return out
}

// TestPipelineRunReader runs a report through RunReader, the agent's path
// on /dev/kmsg: the report is closed once the log is quiet, and the end of
// the context stops the reader's plain receive.
func TestPipelineRunReader(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	var first []devkmsg.Item
	for _, it := range items {
		if it.Record.Seq <= 410 {
			first = append(first, it)
		}
	}
	boot := time.Now().Add(-time.Hour).Truncate(time.Second)
	parser := &itemParser{items: first, boot: boot, closed: make(chan struct{})}
	src := devkmsg.New(logrus.NewEntry(logrus.New()), devkmsg.Options{
		After:     -1,
		BootTime:  boot,
		NewParser: func() (kmsgparser.Parser, error) { return parser, nil },
		Oldest: func() (int64, int64, error) {
			r := first[0].Record
			return r.Seq, r.Mono.Microseconds(), nil
		},
		Newest: func() (int64, error) { return first[len(first)-1].Record.Seq, nil },
	})
	sink := &fakeSink{}
	check := &fakeCheck{}
	p := NewPipeline(PipelineConfig{Node: "node-a", BootID: "boot-1", Sink: sink, Check: check,
		Proc: fakeProc(t, "5.0", nil), Idle: 50 * time.Millisecond, CheckpointEvery: 10 * time.Millisecond},
		logrus.NewEntry(logrus.New()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.RunReader(ctx, r) }()
	for {
		sink.mu.Lock()
		n := len(sink.events)
		sink.mu.Unlock()
		if n > 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let the checkpoint follow the event before stopping.
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RunReader() = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunReader did not return after cancel")
	}
	r.Close()
	if len(sink.events) != 1 {
		t.Fatalf("%d events, want 1", len(sink.events))
	}
	e := sink.events[0]
	if e.Seq != 359 || e.GetOom().GetKind() != "node" {
		t.Fatalf("event %v", e)
	}
	if e.GetMonotonic().AsDuration() != 3373704*time.Microsecond {
		t.Fatalf("monotonic %v", e.GetMonotonic().AsDuration())
	}
	if len(check.saved) == 0 || check.saved[len(check.saved)-1] != 410 {
		t.Fatalf("checkpoint saves %v, want the last at 410", check.saved)
	}
}
