package exits

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Defaults of the oom-child stories (Options).
const (
	// DefaultStoryGap: kills of one container less than this apart are one
	// story, as the aggregator groups a node's kills into incidents.
	DefaultStoryGap = time.Minute
	// DefaultUpdateEvery bounds how often a story's event is sent again.
	DefaultUpdateEvery = 2 * time.Second
	// DefaultMaxStories bounds the stories kept open.
	DefaultMaxStories = 256
	// maxStoryVictims bounds the victims listed in one story's event.
	maxStoryVictims = 100
)

// Holder is a Sink that can tell whether it still holds an event not yet
// delivered (the agent's spool). A story's update waits until the previous
// revision is gone, so that the spool, which keeps one event per identity,
// never takes it for a duplicate.
type Holder interface {
	Holds(bootID, typ string, seq int64) bool
}

// story is the oom-child story of one container in one incident: the OOM
// kills of its processes while it kept running.
type story struct {
	cid     string
	first   *kill
	firstV  int
	seq     int64
	rev     int64
	count   int
	victims []*pb.ChildKill
	dropped int
	largest *pb.ChildKill
	firstAt time.Time
	lastAt  time.Time
	// start is the event's time, the first kill's: it never moves, so the
	// aggregator's updates keep the event in its place.
	start time.Time
	// kills holds the IDs of the OOM events counted, so that none counts
	// twice.
	kills    map[string]bool
	dirty    bool
	lastEmit time.Time
	arrived  time.Time // when the last kill was added
}

// childRef is what a story keeps of one kill in its container.
type childRef struct {
	id    string
	at    time.Time
	n     int // victims of the container in the kill
	child *pb.ChildKill
}

func refOf(k *kill, v int) childRef {
	p := k.victims[v]
	return childRef{id: k.id, at: k.at, n: k.counts[v],
		child: &pb.ChildKill{Pid: p.GetPid(), Comm: p.GetComm(), RssBytes: p.RssBytes, At: timestamp(k.at), OomEventId: k.id}}
}

// waiting returns the check waiting for container cid, if any. j.mu is
// held.
func (j *Joiner) waiting(cid string) *check {
	for i := len(j.checks) - 1; i >= 0; i-- {
		if c := j.checks[i]; c.cid == cid {
			return c
		}
	}
	return nil
}

// add gathers a later kill of the check's container.
func (c *check) add(k *kill, v int) {
	if len(c.more) < maxMore {
		c.more = append(c.more, refOf(k, v))
		return
	}
	// Counted, not listed: the last slot keeps the latest time.
	last := &c.more[len(c.more)-1]
	last.n += k.counts[v]
	if k.at.After(last.at) {
		last.at = k.at
	}
}

// addChildren adds the kills of check c, whose container still runs, to
// the container's stories. j.mu is held.
func (j *Joiner) addChildren(c *check, now time.Time) {
	j.addChild(c, c.k, c.v, refOf(c.k, c.v), now)
	for _, r := range c.more {
		j.addChild(c, nil, 0, r, now)
	}
}

// addChild adds one kill to its container's story; k and v name the kill
// in full when a story may start with it. j.mu is held.
func (j *Joiner) addChild(c *check, k *kill, v int, r childRef, now time.Time) {
	if k == nil {
		k, v = c.k, c.v
	}
	var s *story
	for _, x := range j.stories {
		if x.cid == c.cid && r.at.Sub(x.lastAt) < j.opts.StoryGap && x.firstAt.Sub(r.at) < j.opts.StoryGap {
			s = x
			break
		}
	}
	if s == nil {
		// A story starts with its first kill; a later kill of a check
		// whose first kill is in an older story starts the new one in
		// that kill's words.
		s = &story{cid: c.cid, first: k, firstV: v, seq: childSeq(c.cid, r.id), firstAt: r.at, lastAt: r.at,
			start: r.at, kills: map[string]bool{}}
		j.stories = append(j.stories, s)
		if n := len(j.stories) - j.opts.MaxStories; n > 0 {
			clear(j.stories[:n])
			j.stories = j.stories[n:]
		}
	}
	if s.kills[r.id] {
		return
	}
	if len(s.kills) < maxMore {
		s.kills[r.id] = true
	}
	s.count += r.n
	ck := r.child
	if s.largest == nil || ck.GetRssBytes() > s.largest.GetRssBytes() {
		s.largest = ck
	}
	if len(s.victims) < maxStoryVictims {
		s.victims = append(s.victims, ck)
	} else {
		s.dropped++
	}
	if r.at.Before(s.firstAt) {
		s.firstAt = r.at
	}
	if r.at.After(s.lastAt) {
		s.lastAt = r.at
	}
	s.dirty = true
	s.arrived = now
}

// storyEvents returns the events of the stories due: new ones at once,
// updated ones at most every UpdateEvery and once the sink no longer holds
// the previous revision. It forgets stories over. j.mu is held.
func (j *Joiner) storyEvents(now time.Time) []*pb.Event {
	var out []*pb.Event
	keep := j.stories[:0]
	for _, s := range j.stories {
		if !s.dirty && now.Sub(s.arrived) > j.opts.StoryGap+j.opts.Grace {
			continue
		}
		keep = append(keep, s)
		if !s.dirty || (s.rev > 0 && now.Sub(s.lastEmit) < j.opts.UpdateEvery) {
			continue
		}
		if h, ok := j.sink.(Holder); ok && s.rev > 0 && h.Holds(j.opts.BootID, eventid.TypeExit, s.seq) {
			continue
		}
		s.rev++
		s.dirty = false
		s.lastEmit = now
		out = append(out, j.storyEvent(s))
	}
	clear(j.stories[len(keep):])
	j.stories = keep
	return out
}

// nextStory returns when a dirty story may be sent next (zero: none
// waits). j.mu is held.
func (j *Joiner) nextStory(now time.Time) time.Time {
	var next time.Time
	for _, s := range j.stories {
		if !s.dirty {
			continue
		}
		t := s.lastEmit.Add(j.opts.UpdateEvery)
		if !t.After(now) {
			// Held by the sink: look again shortly.
			t = now.Add(j.opts.UpdateEvery / 4)
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// storyEvent builds the oom-child event of a story.
func (j *Joiner) storyEvent(s *story) *pb.Event {
	k := s.first
	w := proto.Clone(k.victims[s.firstV].GetWorkload()).(*pb.Workload)
	if w.GetContainerId() == "" {
		w.ContainerId = s.cid
	}
	if w.GetWorkloadKind() == "" {
		w.WorkloadKind = "container"
	}
	x := &pb.ContainerExit{
		Workload:       w,
		RuntimeReason:  "Running",
		Verdict:        VerdictOOMChild,
		ExitVerdict:    wire.ExitVerdictToPB(VerdictOOMChild),
		OomEventId:     k.id,
		Evidence:       slices.Clone(k.evidence),
		ChildKills:     int32(min(s.count, 1<<30)),
		Largest:        proto.Clone(s.largest).(*pb.ChildKill),
		FirstKillAt:    timestamp(s.firstAt),
		LastKillAt:     timestamp(s.lastAt),
		VictimsDropped: int32(s.dropped),
	}
	for _, v := range s.victims {
		x.Victims = append(x.Victims, proto.Clone(v).(*pb.ChildKill))
	}
	if verdictOf(k) != VerdictOOMLimit {
		x.Culprit = cloneCulprit(k.culprit)
		x.Collateral = collateral(k, s.firstV)
		x.CollateralVerdict = wire.VerdictToPB(collateralVerdict(k, s.firstV))
	}
	var b strings.Builder
	b.WriteString(exitSubject(w, cri.Container{ID: s.cid}))
	b.WriteString(" is still running: the kernel's OOM killer killed ")
	if s.count <= 1 {
		b.WriteString(killedLabel(k, s.firstV))
	} else {
		fmt.Fprintf(&b, "%d of its processes between %s and %s (the largest %s)", s.count, clock(s.firstAt), clock(s.lastAt),
			childLabel(s.largest))
	}
	b.WriteString(", not its main process, because ")
	b.WriteString(j.cause(k, s.firstV, x, cri.Container{ID: s.cid}))
	last := "the kill"
	if s.count > 1 {
		last = "the last kill"
	}
	fmt.Fprintf(&b, "; the container was still running %s after %s was logged.", seconds(j.opts.Grace), last)
	x.Explanation = b.String()
	return &pb.Event{
		Node:      j.opts.Node,
		BootId:    j.opts.BootID,
		Seq:       s.seq,
		Revision:  s.rev,
		Time:      timestamp(s.start),
		Monotonic: cloneDuration(k.mono),
		Payload:   &pb.Event_Exit{Exit: x},
	}
}

// childLabel names a killed child: "hog (pid 1903, 129 MiB)".
func childLabel(c *pb.ChildKill) string {
	if c == nil {
		return "unknown"
	}
	if c.RssBytes != nil {
		return fmt.Sprintf("%s (pid %d, %s)", c.GetComm(), c.GetPid(), size(c.GetRssBytes()))
	}
	return fmt.Sprintf("%s (pid %d)", c.GetComm(), c.GetPid())
}
