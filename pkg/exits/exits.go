// Package exits explains container exits that ended in a signal: it joins
// each exit the container runtime reports (exit code 128+N) with the
// kernel's OOM kills of the same container, and turns it into an event of
// its own with a verdict (the container's own limit, its pod's limit, the
// node, a signal from elsewhere, a graceful stop) and a sentence that says
// why. It also reports the OOM kills inside a container that did not end
// it (a child process killed while the main process kept running).
//
// The runtime's exit and the kernel's report reach the agent in either
// order, seconds apart: an exit is held briefly for its OOM kill, and an
// OOM kill's container is checked after a grace period. Every piece of
// state is bounded by a count and a time window.
package exits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/recent"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Verdicts of a container exit event (ContainerExit.verdict).
const (
	// VerdictOOMLimit: the kernel's OOM killer killed the container at its
	// own memory limit.
	VerdictOOMLimit = "oom-limit"
	// VerdictOOMPodLimit: killed at its pod's memory limit.
	VerdictOOMPodLimit = "oom-pod-limit"
	// VerdictOOMNode: killed because the node (or a cgroup above the pod, a
	// cpuset or a memory policy) ran out of memory.
	VerdictOOMNode = "oom-node"
	// VerdictOOMChild: an OOM kill inside a container that kept running.
	VerdictOOMChild = "oom-child"
	// VerdictNotOOM: killed by a signal the kernel's OOM killer did not
	// send.
	VerdictNotOOM = "not-oom"
	// VerdictGraceful: ended on SIGTERM (exit code 143).
	VerdictGraceful = "graceful"
)

// Defaults of Options.
const (
	DefaultWindow     = 30 * time.Second
	DefaultHold       = 3 * time.Second
	DefaultGrace      = 10 * time.Second
	DefaultMaxPending = 1024
	DefaultMaxKills   = 512
	DefaultMaxChecks  = 256
	DefaultMaxSeen    = 4096
)

// clockSkew is how far after an exit an OOM kill may be stamped and still
// explain it: the kernel stamps records with local_clock, the runtime its
// exit with CLOCK_REALTIME, and the two differ by up to milliseconds (more
// after a wall-clock step).
const clockSkew = 2 * time.Second

// maxEvidence bounds the kernel lines copied into an exit event.
const maxEvidence = 20

// Exit codes of a process killed by a signal: 128 + the signal number
// (1 to 64 on Linux). Higher codes are not signals.
const (
	minSignalExit = 128 + 1
	maxSignalExit = 128 + 64
	exitSIGKILL   = 128 + 9
	exitSIGTERM   = 128 + 15
)

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("invalid exit joiner options")

// Sink takes events durably (the agent's spool).
type Sink interface {
	Put(ctx context.Context, events ...*pb.Event) error
}

// States tells whether a container is still running: running is true
// when the runtime says it runs, known false when the runtime does not
// know the container (or cannot be asked).
type States interface {
	ContainerState(ctx context.Context, id string) (running, known bool)
}

// Options configure a Joiner. Zero values take the defaults.
type Options struct {
	// Node and BootID are set on every event.
	Node, BootID string
	// Window is how long before an exit an OOM kill of the container may
	// be to explain it. Default 30 s.
	Window time.Duration
	// Hold is how long an exit waits for its OOM kill to be reported
	// before it is decided without one. Default 3 s.
	Hold time.Duration
	// Grace is how long after an OOM kill in a container the container
	// must still run for the kill to be reported as oom-child. Default 10 s.
	Grace time.Duration
	// MaxPending bounds the exits held; past it the oldest is dropped
	// undecided (counted in Stats.Dropped). Default 1024.
	MaxPending int
	// MaxKills bounds the OOM kills remembered; past it the oldest is
	// forgotten. Default 512.
	MaxKills int
	// MaxChecks bounds the oom-child checks waiting; past it the oldest is
	// dropped. Default 256.
	MaxChecks int
	// MaxSeen bounds the exits remembered to drop duplicates and the stop
	// requests remembered. Default 4096.
	MaxSeen int
	// StoryGap: OOM kills in one running container less than this apart
	// are one oom-child event (a story), updated as kills come. Default 1 min.
	StoryGap time.Duration
	// UpdateEvery bounds how often a story's event is sent again. Default 2 s.
	UpdateEvery time.Duration
	// MaxStories bounds the stories kept open; past it the oldest is
	// forgotten (a later kill in its container starts a new one). Default 256.
	MaxStories int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate reports negative durations and bounds.
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"window", o.Window}, {"hold", o.Hold}, {"grace", o.Grace}, {"story gap", o.StoryGap}, {"update every", o.UpdateEvery}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrOptions, d.name, d.v)
		}
	}
	if o.MaxPending < 0 || o.MaxKills < 0 || o.MaxChecks < 0 || o.MaxSeen < 0 || o.MaxStories < 0 {
		return fmt.Errorf("%w: negative bound", ErrOptions)
	}
	return nil
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxKills <= 0 {
		o.MaxKills = DefaultMaxKills
	}
	if o.MaxChecks <= 0 {
		o.MaxChecks = DefaultMaxChecks
	}
	if o.MaxSeen <= 0 {
		o.MaxSeen = DefaultMaxSeen
	}
	if o.StoryGap <= 0 {
		o.StoryGap = DefaultStoryGap
	}
	if o.UpdateEvery <= 0 {
		o.UpdateEvery = DefaultUpdateEvery
	}
	if o.MaxStories <= 0 {
		o.MaxStories = DefaultMaxStories
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Stats count what a Joiner did since it was made.
type Stats struct {
	// Exits counts exits seen (duplicates excluded); Ignored those that
	// were not signal exits (codes below 129 or above 192).
	Exits, Ignored uint64
	// Duplicates counts exits seen again (same container and finish time).
	Duplicates uint64
	// Kills counts OOM kill events seen.
	Kills uint64
	// Reported counts the events put, by verdict.
	Reported map[string]uint64
	// Dropped counts exits dropped undecided because MaxPending exits
	// were held (a burst, or a sink too slow).
	Dropped uint64
	// ChecksDropped counts oom-child checks dropped past MaxChecks;
	// KillsForgotten OOM kills forgotten past MaxKills.
	ChecksDropped, KillsForgotten uint64
	// PutErrors counts events the sink refused (they are lost).
	PutErrors uint64
}

// Joiner joins container exits with the kernel's OOM kills. Exit, OOM and
// StopRequested are safe for concurrent use and return at once; Run decides
// and puts the events.
type Joiner struct {
	sink   Sink
	states States
	log    *logrus.Entry
	opts   Options
	wake   chan struct{}

	mu      sync.Mutex
	kills   []*kill    // oldest first
	pending []*pending // oldest first
	checks  []*check   // oldest first
	stories []*story   // oldest first
	seen    *recent.Map[string, struct{}]
	exited  *recent.Map[string, struct{}]  // container IDs seen exiting
	stops   *recent.Map[string, time.Time] // container ID -> stop requested at
	stats   Stats
	// warned is the part of stats.Dropped and stats.ChecksDropped
	// already logged.
	warnedDropped, warnedChecks uint64
}

type pending struct {
	c        cri.Container
	arrived  time.Time
	deadline time.Time
}

type check struct {
	k   *kill
	v   int // index into k.victims
	cid string
	due time.Time
	// more are the container's later kills while this check waits (a
	// storm): one check per container, decided once.
	more []childRef
}

// maxMore bounds the kills one check gathers; past it they are counted
// (moreDropped) but not listed.
const maxMore = 4096

// New returns a Joiner putting its events into sink and asking states
// whether a container still runs (nil: never report oom-child). Invalid
// options (see Options.Validate) take the defaults.
func New(sink Sink, states States, log *logrus.Entry, opts Options) *Joiner {
	opts.defaults()
	return &Joiner{
		sink:   sink,
		states: states,
		log:    log,
		opts:   opts,
		wake:   make(chan struct{}, 1),
		seen:   recent.NewMap[string, struct{}](opts.MaxSeen),
		exited: recent.NewMap[string, struct{}](opts.MaxSeen),
		stops:  recent.NewMap[string, time.Time](opts.MaxSeen),
		stats:  Stats{Reported: map[string]uint64{}},
	}
}

// Exit takes a container exit from the runtime (cri.CacheOptions.OnExit).
// Exits with a signal code (129 to 192) are held until their OOM kill is
// seen or the hold ends; other exits only cancel the container's oom-child
// check. The same exit seen twice is reported once.
func (j *Joiner) Exit(c cri.Container) {
	id := normID(c.ID)
	if id == "" {
		return
	}
	c.ID = id
	now := j.opts.Now()
	j.mu.Lock()
	j.exited.Put(id, struct{}{})
	if c.ExitCode < minSignalExit || c.ExitCode > maxSignalExit {
		j.stats.Ignored++
		j.mu.Unlock()
		j.log.WithFields(logrus.Fields{"container_id": id, "exit_code": c.ExitCode}).Debug("container exit: not a signal")
		return
	}
	key := exitKey(c)
	if j.seen.Has(key) {
		j.stats.Duplicates++
		j.mu.Unlock()
		return
	}
	j.seen.Put(key, struct{}{})
	j.stats.Exits++
	if len(j.pending) >= j.opts.MaxPending {
		n := len(j.pending) - j.opts.MaxPending + 1
		clear(j.pending[:n])
		j.pending = j.pending[n:]
		j.stats.Dropped += uint64(n)
	}
	j.pending = append(j.pending, &pending{c: c, arrived: now, deadline: now.Add(j.opts.Hold)})
	j.mu.Unlock()
	j.nudge()
}

// OOM takes an event the agent produced (agent.PipelineConfig.Observe);
// events other than OOM kills are ignored. Each container a victim ran in
// is checked Grace later: if it still runs, the kill is reported as
// oom-child.
func (j *Joiner) OOM(ev *pb.Event) {
	o := ev.GetOom()
	if o == nil || len(o.GetVictims()) == 0 {
		return
	}
	now := j.opts.Now()
	k := newKill(ev, now)
	j.mu.Lock()
	j.stats.Kills++
	j.kills = append(j.kills, k)
	if n := len(j.kills) - j.opts.MaxKills; n > 0 {
		clear(j.kills[:n])
		j.kills = j.kills[n:]
		j.stats.KillsForgotten += uint64(n)
	}
	if j.states != nil {
		for i, v := range k.victims {
			cid := normID(v.GetWorkload().GetContainerId())
			if cid == "" || j.exited.Has(cid) {
				continue
			}
			if c := j.waiting(cid); c != nil {
				c.add(k, i)
				continue
			}
			j.checks = append(j.checks, &check{k: k, v: i, cid: cid, due: now.Add(j.opts.Grace)})
		}
		if n := len(j.checks) - j.opts.MaxChecks; n > 0 {
			clear(j.checks[:n])
			j.checks = j.checks[n:]
			j.stats.ChecksDropped += uint64(n)
		}
	}
	j.mu.Unlock()
	j.nudge()
}

// StopRequested records when a stop of the container was asked for, for
// the runtimes or sources that tell: an exit by SIGKILL without an OOM kill
// then says how long after the request it came. containerd's CRI does not
// report it.
func (j *Joiner) StopRequested(containerID string, at time.Time) {
	id := normID(containerID)
	if id == "" || at.IsZero() {
		return
	}
	j.mu.Lock()
	j.stops.Put(id, at)
	j.mu.Unlock()
}

// Stats returns the counters.
func (j *Joiner) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Reported = make(map[string]uint64, len(j.stats.Reported))
	for k, v := range j.stats.Reported {
		s.Reported[k] = v
	}
	return s
}

func (j *Joiner) nudge() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Run decides held exits and oom-child checks as they come due and puts
// their events into the sink, until ctx ends; it returns nil then. Events
// the sink refuses are logged and counted, not retried.
func (j *Joiner) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := j.process(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(j.opts.Now()), time.Millisecond)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-j.wake:
		case <-timer.C:
		}
	}
}

// process decides what is due, puts the events and returns the next
// deadline (zero when nothing waits).
func (j *Joiner) process(ctx context.Context) time.Time {
	now := j.opts.Now()
	var out []*pb.Event
	j.mu.Lock()
	j.expireKills(now)
	keep := j.pending[:0]
	for _, p := range j.pending {
		k, v := j.match(p.c)
		if k == nil && now.Before(p.deadline) {
			keep = append(keep, p)
			continue
		}
		stop, _ := j.stops.Get(p.c.ID)
		out = append(out, j.exitEvent(p, k, v, stop))
	}
	clear(j.pending[len(keep):])
	j.pending = keep
	var due []*check
	keepc := j.checks[:0]
	for _, c := range j.checks {
		if now.Before(c.due) {
			keepc = append(keepc, c)
			continue
		}
		if !j.exited.Has(c.cid) {
			due = append(due, c)
		}
	}
	clear(j.checks[len(keepc):])
	j.checks = keepc
	dropped, checks := j.stats.Dropped-j.warnedDropped, j.stats.ChecksDropped-j.warnedChecks
	j.warnedDropped, j.warnedChecks = j.stats.Dropped, j.stats.ChecksDropped
	j.mu.Unlock()
	if dropped > 0 {
		j.log.WithField("dropped", dropped).Warn("too many container exits held at once: some were dropped without an event")
	}
	if checks > 0 {
		j.log.WithField("dropped", checks).Warn("too many OOM kills in containers at once: some were not checked for oom-child")
	}

	// The runtime is asked once per container: a storm kills hundreds of
	// one container's processes.
	type state struct{ running, known bool }
	states := map[string]state{}
	for _, c := range due {
		st, ok := states[c.cid]
		if !ok {
			st.running, st.known = j.states.ContainerState(ctx, c.cid)
			states[c.cid] = st
		}
		j.mu.Lock()
		exited := j.exited.Has(c.cid)
		if st.known && st.running && !exited {
			j.addChildren(c, j.opts.Now())
		}
		j.mu.Unlock()
		if !st.known || !st.running || exited {
			j.log.WithFields(logrus.Fields{"container_id": c.cid, "known": st.known, "running": st.running, "oom_event": c.k.id}).
				Debug("OOM kill in a container that did not keep running")
		}
	}
	j.mu.Lock()
	out = append(out, j.storyEvents(j.opts.Now())...)
	j.mu.Unlock()
	j.put(ctx, out)

	j.mu.Lock()
	defer j.mu.Unlock()
	var next time.Time
	for _, p := range j.pending {
		if next.IsZero() || p.deadline.Before(next) {
			next = p.deadline
		}
	}
	for _, c := range j.checks {
		if next.IsZero() || c.due.Before(next) {
			next = c.due
		}
	}
	if t := j.nextStory(j.opts.Now()); !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next
}

func (j *Joiner) put(ctx context.Context, out []*pb.Event) {
	if len(out) == 0 {
		return
	}
	err := j.sink.Put(ctx, out...)
	j.mu.Lock()
	for _, e := range out {
		if err != nil {
			j.stats.PutErrors++
		} else {
			j.stats.Reported[wire.Why(e.GetExit())]++
		}
	}
	j.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			j.log.WithError(err).WithField("events", len(out)).Warn("cannot spool container exit events; they are lost")
		}
		return
	}
	for _, e := range out {
		x := e.GetExit()
		f := logrus.Fields{"verdict": wire.Why(x), "exit_code": x.GetExitCode(),
			"container_id": x.GetWorkload().GetContainerId(), "seq": e.GetSeq()}
		if w := x.GetWorkload(); w.GetPodName() != "" {
			f["pod"] = w.GetNamespace() + "/" + w.GetPodName()
		}
		if x.GetOomEventId() != "" {
			f["oom_event_id"] = x.GetOomEventId()
		}
		j.log.WithFields(f).Info(x.GetExplanation())
	}
}

// finishedAt is when c finished, or def when the runtime did not say.
func finishedAt(c cri.Container, def time.Time) time.Time {
	if !c.FinishedAt.IsZero() {
		return c.FinishedAt
	}
	return def
}

// timestamp converts a time, nil for the zero time.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
