package exits

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// stormKill is the i-th kill of a storm in the fixture's container: its
// own OOM event, victim PID and size, at base + i*step.
func stormKill(t *testing.T, i int, step time.Duration) *pb.Event {
	e := proto.Clone(fixture(t, "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, base)).(*pb.Event)
	e.Seq += int64(i) * 40
	e.Time = timestamppb.New(base.Add(time.Duration(i) * step))
	v := e.GetOom().GetVictims()[0]
	v.Pid = int32(2000 + i)
	rss := int64(1<<20) * int64(1+i%7)
	v.RssBytes = &rss
	v.Comm = "sleep"
	if i == 3 {
		v.Comm = "hog"
	}
	return e
}

// holdingSink is a fakeSink that holds what it was given until acked, as
// the agent's spool does.
type holdingSink struct {
	fakeSink
	mu   sync.Mutex
	held map[int64]bool
}

func (h *holdingSink) Put(ctx context.Context, evs ...*pb.Event) error {
	h.mu.Lock()
	for _, e := range evs {
		if h.held[e.GetSeq()] {
			h.mu.Unlock()
			panic("an event put while an earlier revision is still held: the spool would drop it as a duplicate")
		}
		h.held[e.GetSeq()] = true
	}
	h.mu.Unlock()
	return h.fakeSink.Put(ctx, evs...)
}

func (h *holdingSink) Holds(_, _ string, seq int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[seq]
}

func (h *holdingSink) ack() {
	h.mu.Lock()
	clear(h.held)
	h.mu.Unlock()
}

// TestOOMChildStory: 300 kills of one running container's children in 15 s
// are one oom-child event, sent when the first is due and updated (same
// identity, higher revision) as kills come, never while the previous
// revision is still held; the last says how many, the largest, first and
// last time, and lists the victims (bounded).
func TestOOMChildStory(t *testing.T) {
	ctx := context.Background()
	states := &fakeStates{}
	clk := &fakeClock{t: base}
	sink := &holdingSink{held: map[int64]bool{}}
	j := New(sink, states, testLog(t), Options{Node: node, BootID: bootID, Now: clk.Now})
	const n = 300
	step := 50 * time.Millisecond
	first := stormKill(t, 0, step)
	w := victimContainer(t, first)
	states.set(w.GetContainerId(), true)
	var events []*pb.Event
	for now := time.Duration(0); now <= 40*time.Second; now += step {
		if i := int(now / step); i < n {
			j.OOM(stormKill(t, i, step))
		}
		j.process(ctx)
		events = append(events, sink.take()...)
		// The aggregator is slow for a while: what the sink holds is
		// acknowledged only after.
		if now < 10*time.Second || now > 16*time.Second {
			sink.ack()
		}
		clk.Add(step)
	}
	if len(events) < 2 || len(events) > 8 {
		t.Fatalf("%d events for one story, want a few updates of one", len(events))
	}
	var rev int64
	for _, e := range events {
		if e.GetSeq() != childSeq(w.GetContainerId(), oomID(first)) || e.GetExit().GetVerdict() != VerdictOOMChild {
			t.Fatalf("event %d/%s is not the story's", e.GetSeq(), e.GetExit().GetVerdict())
		}
		if e.GetRevision() <= rev {
			t.Fatalf("revision %d after %d", e.GetRevision(), rev)
		}
		rev = e.GetRevision()
	}
	if events[0].GetRevision() != 1 || !events[0].GetTime().AsTime().Equal(base) {
		t.Errorf("first event: revision %d, time %v", events[0].GetRevision(), events[0].GetTime().AsTime())
	}
	x := events[len(events)-1].GetExit()
	if x.GetChildKills() != n || len(x.GetVictims()) != maxStoryVictims || x.GetVictimsDropped() != n-maxStoryVictims {
		t.Fatalf("last revision: %d kills, %d victims listed, %d dropped", x.GetChildKills(), len(x.GetVictims()), x.GetVictimsDropped())
	}
	if x.GetLargest().GetRssBytes() != 7<<20 || !x.GetFirstKillAt().AsTime().Equal(base) ||
		!x.GetLastKillAt().AsTime().Equal(base.Add((n-1)*step)) {
		t.Errorf("largest %v, first %v, last %v", x.GetLargest(), x.GetFirstKillAt().AsTime(), x.GetLastKillAt().AsTime())
	}
	want := "is still running: the kernel's OOM killer killed 300 of its processes between 12:00:00.000Z and 12:00:14.950Z (the largest sleep (pid 2006, 7 MiB)), not its main process, because the container hit its own memory limit of 24 MiB; the container was still running 10s after the last kill was logged."
	if !strings.Contains(x.GetExplanation(), want) {
		t.Errorf("explanation\n  %s\nlacks\n  %s", x.GetExplanation(), want)
	}
	if got := j.Stats().Reported[VerdictOOMChild]; got != uint64(len(events)) {
		t.Errorf("reported %d, put %d", got, len(events))
	}
}

// Kills of one container more than StoryGap apart are two stories; kills
// of two containers are two stories.
func TestOOMChildStoriesApart(t *testing.T) {
	ctx := context.Background()
	states := &fakeStates{}
	j, sink, clk := newJoiner(t, states, Options{})
	a := stormKill(t, 0, 0)
	w := victimContainer(t, a)
	states.set(w.GetContainerId(), true)
	b := stormKill(t, 1, 2*time.Minute)
	other := stormKill(t, 2, time.Second)
	other.GetOom().GetVictims()[0].GetWorkload().ContainerId = strings.Repeat("e", 64)
	states.set(strings.Repeat("e", 64), true)
	j.OOM(a)
	j.OOM(other)
	clk.Add(2 * time.Minute)
	j.OOM(b)
	var events []*pb.Event
	for range 20 {
		clk.Add(time.Second)
		j.process(ctx)
		events = append(events, sink.take()...)
	}
	seqs := map[int64]int32{}
	for _, e := range events {
		seqs[e.GetSeq()] = e.GetExit().GetChildKills()
	}
	if len(seqs) != 3 {
		t.Fatalf("%d stories, want 3: %v", len(seqs), seqs)
	}
	for s, n := range seqs {
		if n != 1 {
			t.Errorf("story %d has %d kills, want 1", s, n)
		}
	}
}

// The same kill seen twice is counted once.
func TestOOMChildStoryDedupe(t *testing.T) {
	ctx := context.Background()
	states := &fakeStates{}
	j, sink, clk := newJoiner(t, states, Options{})
	a := stormKill(t, 0, 0)
	states.set(victimContainer(t, a).GetContainerId(), true)
	j.OOM(a)
	j.OOM(proto.Clone(a).(*pb.Event))
	clk.Add(DefaultGrace + time.Second)
	j.process(ctx)
	e := one(t, sink.take())
	if e.GetExit().GetChildKills() != 1 {
		t.Fatalf("%d kills, want 1", e.GetExit().GetChildKills())
	}
}
