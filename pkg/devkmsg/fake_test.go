package devkmsg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
)

// errFakeOpen is what fakeKernel.NewParser returns for a failing step.
var errFakeOpen = errors.New("fake: cannot open")

// fakeParser is a kmsgparser.Parser that behaves like kmsgparser's: its
// goroutine sends without a way to cancel and closes the channel only when
// its read "fails" (an overflow in the script, or Close).
type fakeParser struct {
	msgs     []kmsgparser.Message
	overflow bool

	log       kmsgparser.Logger
	closed    chan struct{}
	closeOnce sync.Once
	// stopped runs just before the channel closes.
	stopped func()
}

func (f *fakeParser) SeekEnd() error                  { return nil }
func (f *fakeParser) SetLogger(log kmsgparser.Logger) { f.log = log }

func (f *fakeParser) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeParser) Parse() <-chan kmsgparser.Message {
	out := make(chan kmsgparser.Message, 1)
	go func() {
		defer close(out)
		defer f.stopped()
		for _, m := range f.msgs {
			select {
			case <-f.closed:
				f.log.Errorf("error reading /dev/kmsg: %v", &fs.PathError{Op: "read", Path: DevKmsg, Err: os.ErrClosed})
				return
			default:
			}
			out <- m // blocking, like kmsgparser
		}
		if f.overflow {
			// kmsgparser's EPIPE check fails on the wrapped error.
			f.log.Errorf("error reading /dev/kmsg: %v", &fs.PathError{Op: "read", Path: DevKmsg, Err: syscall.EPIPE})
			return
		}
		<-f.closed
		f.log.Errorf("error reading /dev/kmsg: %v", &fs.PathError{Op: "read", Path: DevKmsg, Err: os.ErrClosed})
	}()
	return out
}

// step scripts one NewParser call of a fakeKernel.
type step struct {
	// err makes NewParser fail.
	err bool
	// oldest are the successive results of Oldest while this step is
	// current (the first call is the one just before NewParser); -1 or an
	// exhausted list means ErrNoRecord.
	oldest []int64
	// first..last are the sequence numbers the parser delivers, except skip.
	first, last int64
	skip        int64
	// overflow closes the channel after the last record.
	overflow bool
	// library computes the parser's base time as kmsgparser does; otherwise
	// it is an arbitrary time with no monotonic reading.
	library bool
}

// fakeKernel serves NewParser, Oldest and Newest from a script of steps.
type fakeKernel struct {
	mu      sync.Mutex
	steps   []step
	next    int   // index of the step the next NewParser call uses
	active  int   // index of the step whose parser is running, or -1
	calls   []int // Oldest calls per step
	newest  int64
	parsers []*fakeParser
	opens   int
}

func newFakeKernel(newest int64, steps ...step) *fakeKernel {
	return &fakeKernel{steps: steps, calls: make([]int, len(steps)), newest: newest, active: -1}
}

// usecOf is the fake kernel timestamp of record seq.
func usecOf(seq int64) int64 { return 5_000_000 + seq*1_234 + 7 }

// msgOf is the fake raw message of record seq, with dictionary lines.
func msgOf(seq int64) string {
	return fmt.Sprintf("msg %d; a=b\n SUBSYSTEM=fake\n DEVICE=+fake:%d\n", seq, seq)
}

// prioOf is the fake priority of record seq.
func prioOf(seq int64) int { return int(seq%8) + 3<<3 }

func (k *fakeKernel) options(after int64) Options {
	return Options{
		After:         after,
		ReopenTimeout: time.Second,
		BootTime:      testBoot,
		NewParser:     k.NewParser,
		Oldest:        k.Oldest,
		Newest:        k.Newest,
	}
}

func (k *fakeKernel) NewParser() (kmsgparser.Parser, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.opens++
	if k.next >= len(k.steps) {
		return nil, fmt.Errorf("script exhausted: %w", errFakeOpen)
	}
	st := k.steps[k.next]
	k.next++
	if st.err {
		return nil, errFakeOpen
	}
	var base time.Time
	if st.library {
		var si syscall.Sysinfo_t
		if err := syscall.Sysinfo(&si); err != nil {
			return nil, err
		}
		base = time.Now().Add(-time.Duration(si.Uptime) * time.Second)
	} else {
		base = time.Unix(1_700_000_000+int64(k.next), 987_654_321)
	}
	i := k.next - 1
	k.active = i
	p := &fakeParser{overflow: st.overflow, closed: make(chan struct{})}
	p.stopped = func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.active == i {
			k.active = -1
		}
	}
	for seq := st.first; seq <= st.last && st.last > 0; seq++ {
		if seq == st.skip {
			continue
		}
		p.msgs = append(p.msgs, kmsgparser.Message{
			Priority:       prioOf(seq),
			SequenceNumber: int(seq),
			Timestamp:      base.Add(time.Duration(usecOf(seq)) * time.Microsecond),
			Message:        msgOf(seq),
		})
	}
	k.parsers = append(k.parsers, p)
	return p, nil
}

func (k *fakeKernel) Oldest() (int64, int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// While a parser runs, calls re-pin its clock; otherwise they precede
	// the next NewParser.
	i := k.next
	if k.active >= 0 {
		i = k.active
	}
	if i >= len(k.steps) {
		return 0, 0, ErrNoRecord
	}
	c := k.calls[i]
	k.calls[i]++
	if c >= len(k.steps[i].oldest) || k.steps[i].oldest[c] < 0 {
		return 0, 0, ErrNoRecord
	}
	seq := k.steps[i].oldest[c]
	return seq, usecOf(seq), nil
}

func (k *fakeKernel) Newest() (int64, error) { return k.newest, nil }

func (k *fakeKernel) oldestCalls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.calls {
		n += c
	}
	return n
}
