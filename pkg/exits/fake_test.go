package exits

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeSink keeps what is put, and can fail or block.
type fakeSink struct {
	mu     sync.Mutex
	events []*pb.Event
	err    error
	block  bool
	put    chan *pb.Event // when set, every event is also sent here
}

func (s *fakeSink) Put(ctx context.Context, events ...*pb.Event) error {
	s.mu.Lock()
	block, err := s.block, s.err
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.events = append(s.events, events...)
	ch := s.put
	s.mu.Unlock()
	for _, e := range events {
		if ch != nil {
			select {
			case ch <- e:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (s *fakeSink) take() []*pb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

// fakeStates answers ContainerState from a map: present means known,
// the value says running.
type fakeStates struct {
	mu    sync.Mutex
	m     map[string]bool
	asked []string
}

func (f *fakeStates) ContainerState(_ context.Context, id string) (running, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	running, known = f.m[id]
	return running, known
}

func (f *fakeStates) set(id string, running bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]bool{}
	}
	f.m[id] = running
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func testLog(t testing.TB) *logrus.Entry {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}
