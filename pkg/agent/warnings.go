package agent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/exits"
	"github.com/oomwatch/oomwatch/pkg/sample"
	"github.com/oomwatch/oomwatch/pkg/warn"
	"github.com/oomwatch/oomwatch/pkg/wire"
	"github.com/oomwatch/oomwatch/pkg/workload"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Warnings before the kill (issue #17): every interval the agent samples
// its node's pod and container cgroups (package sample), hands the round
// to the warn engine and sends each warning that opened, moved or resolved
// as a MemoryWarning event through the same outbox as kills. An OOM kill
// names the warnings that preceded it (Warnings.Preceding).

// DefaultSampleInterval is --sample-interval's default.
const DefaultSampleInterval = 10 * time.Second

// Bounds of Warnings.
const (
	// nameTimeout bounds one runtime lookup of a warning's names.
	nameTimeout = 5 * time.Second
	// maxWaiting bounds the warnings whose next revision waits for the
	// previous one to leave the outbox (the aggregator is unreachable);
	// past it resolutions are dropped (the aggregator ages the open
	// warning out after 3*wire.WarningRefresh).
	maxWaiting = 4096
)

// Namer names a workload from the container runtime, as kills are named
// (enrich.Enricher.Name).
type Namer interface {
	Name(ctx context.Context, w *analysis.Workload)
}

// EvictionThreshold is kubelet's hard eviction threshold of
// memory.available (--eviction-hard-memory): Bytes, or Percent of
// MemTotal; the zero value is none.
type EvictionThreshold struct {
	Bytes   int64
	Percent float64
}

// Resolve is the threshold in bytes on a node of memTotal bytes.
func (t EvictionThreshold) Resolve(memTotal int64) int64 {
	if t.Percent > 0 {
		return int64(float64(memTotal) * t.Percent / 100)
	}
	return t.Bytes
}

// SampleRound is what one sampling round did, for metrics.
type SampleRound struct {
	Took time.Duration
	// Cgroups is the cgroups handed to the engine.
	Cgroups int
	// Errors counts figures left unknown, cgroups left out as malformed,
	// and 1 for a round that read nothing.
	Errors int
	// Open counts the warnings open after the round, by kind word.
	Open map[string]int
}

// WarningsConfig wires Warnings.
type WarningsConfig struct {
	Node, BootID string
	// Sample says where the cgroups are and bounds a round (MaxGroups).
	Sample sample.Config
	// Warn are the engine's thresholds.
	Warn warn.Config
	// Interval is the time between rounds (DefaultSampleInterval when 0).
	Interval time.Duration
	// Eviction is kubelet's hard eviction threshold of memory.available.
	Eviction EvictionThreshold
	// Sink takes the warning events: the agent's outbox. When it is an
	// exits.Holder, a warning's next revision waits until the previous
	// one has left it (the spool keeps one event per key).
	Sink  Sink
	Namer Namer // may be nil: warnings then carry IDs only
	// Refresh is how often an open warning is sent again
	// (wire.WarningRefresh when 0).
	Refresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Round, when set, is told of every round (metrics).
	Round func(SampleRound)
}

// Warnings samples the node's cgroups and sends the warnings the engine
// raises. Run runs its rounds; Preceding, safe to call from the pipeline's
// goroutine meanwhile, names the warnings that came before a kill.
type Warnings struct {
	cfg     WarningsConfig
	log     *logrus.Entry
	sampler *sample.Sampler
	snap    sample.Snapshot
	groups  []warn.CgroupSample
	// sent holds the warnings sent and not resolved, and those whose next
	// revision waits; only Run's goroutine uses it.
	sent map[int64]*sentWarning
	// failed tells that the last round read nothing (said once).
	failed bool

	// mu guards the engine, shared with the pipeline.
	mu     sync.Mutex
	engine *warn.Engine
}

// sentWarning is a warning's event as last sent, and its next change when
// it waits.
type sentWarning struct {
	rev  int64        // the last revision sent, -1 before the first
	at   time.Time    // when it was last sent
	wl   *pb.Workload // its names, looked up when it opened
	next *warn.Warning
}

// NewWarnings returns Warnings, or an error when the thresholds are out of
// range or the cgroup mount has no memory hierarchy.
func NewWarnings(cfg WarningsConfig, log *logrus.Entry) (*Warnings, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSampleInterval
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = wire.WarningRefresh
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e, err := warn.New(cfg.Warn)
	if err != nil {
		return nil, err
	}
	s, err := sample.New(cfg.Sample)
	if err != nil {
		return nil, err
	}
	return &Warnings{cfg: cfg, log: log, sampler: s, engine: e, sent: map[int64]*sentWarning{}}, nil
}

// Run samples every interval until ctx ends. It returns nil then, or the
// outbox's error when it refuses events for good.
func (w *Warnings) Run(ctx context.Context) error {
	w.log.WithFields(logrus.Fields{"interval": w.cfg.Interval.String(), "cgroup_mode": w.sampler.Mode().String()}).
		Info("sampling pod and container memory for warnings")
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.Round(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round samples once, judges the samples and sends what changed. It
// returns an error only when the sink refuses the events.
func (w *Warnings) Round(ctx context.Context) error {
	start := time.Now()
	now := w.cfg.Now()
	st := SampleRound{}
	if err := w.sampler.Sample(now, &w.snap); err != nil {
		// The node's figures may still have been read: the engine hears
		// of them, and of time passing (a cgroup unseen for its GoneAfter
		// is resolved as gone).
		st.Errors++
		if !w.failed {
			w.log.WithError(err).Warn("cannot sample the cgroups: no cgroup warnings until they read again")
		}
		w.failed = true
	} else if w.failed {
		w.log.Info("the cgroups read again")
		w.failed = false
	}
	node, bad := w.samples(&w.snap)
	st.Errors += w.snap.Errors + bad
	st.Cgroups = len(w.groups)
	if w.snap.Truncated {
		st.Errors++
	}
	w.mu.Lock()
	changes := w.engine.Observe(node, w.groups)
	open := w.engine.Open()
	w.mu.Unlock()
	err := w.send(ctx, now, changes, open)
	st.Took = time.Since(start)
	st.Open = map[string]int{}
	for _, o := range open {
		st.Open[o.Kind.String()]++
	}
	if w.cfg.Round != nil {
		w.cfg.Round(st)
	}
	return err
}

// samples converts the snapshot into the engine's samples (into w.groups)
// and returns the node's, and how many groups were left out as malformed.
func (w *Warnings) samples(snap *sample.Snapshot) (warn.NodeSample, int) {
	var node warn.NodeSample
	if n := snap.Node; n.HaveMemInfo {
		node = warn.NodeSample{At: snap.Time, MemTotal: n.MemTotalBytes, MemAvailable: n.MemAvailableBytes,
			EvictionThreshold: w.cfg.Eviction.Resolve(n.MemTotalBytes)}
		if n.HavePSI {
			node.PSIKnown, node.PSIFullAvg10 = true, n.PSI.Full.Avg10
		}
	}
	w.groups = w.groups[:0]
	bad := 0
	add := func(g *sample.Group) {
		cg := g.Workload.Cgroup
		if !g.Has(sample.FieldUsage | sample.FieldWorkingSet) {
			return // counted by the sampler
		}
		if cg == "" || !utf8.ValidString(cg) {
			// An event's strings must be UTF-8; a directory name need not be.
			bad++
			return
		}
		s := warn.CgroupSample{At: snap.Time, Cgroup: cg,
			Workload:   warn.Workload{PodUID: g.Workload.PodUID, ContainerID: g.Workload.ContainerID},
			WorkingSet: g.WorkingSetBytes, Usage: g.UsageBytes}
		if g.Has(sample.FieldLimit) {
			s.Limit = g.LimitBytes
		}
		if g.Has(sample.FieldEvents) || g.Has(sample.FieldFailcnt) {
			s.MaxEvents = g.Events.Max
		}
		if g.Has(sample.FieldPSI) {
			s.PSIKnown, s.PSIFullAvg10 = true, g.PSI.Full.Avg10
		}
		w.groups = append(w.groups, s)
	}
	// kubepods is a limit that kills where kubelet enforces node
	// allocatable on it.
	if kp := &snap.Node.Kubepods; kp.Workload.Cgroup != "" && kp.Has(sample.FieldLimit) && kp.LimitBytes > 0 {
		add(kp)
	}
	for i := range snap.Groups {
		add(&snap.Groups[i])
	}
	return node, bad
}

// send turns the round's changes, and the open warnings due for a
// refresh, into events for the sink. A warning's next revision waits
// while the sink still holds the previous one.
func (w *Warnings) send(ctx context.Context, now time.Time, changes, open []warn.Warning) error {
	for _, c := range changes {
		seq := wire.WarningSeq(c)
		s := w.sent[seq]
		if s == nil {
			if c.State == warn.Resolved {
				continue // never sent (dropped while waiting)
			}
			s = &sentWarning{rev: -1, wl: w.name(ctx, c.Cgroup)}
			w.sent[seq] = s
		}
		s.next = &c
	}
	for _, o := range open {
		s := w.sent[wire.WarningSeq(o)]
		if s != nil && s.next == nil && now.Sub(s.at) >= w.cfg.Refresh {
			o.At = now
			s.next = &o
		}
	}
	holder, _ := w.cfg.Sink.(exits.Holder)
	var (
		events  []*pb.Event
		waiting []int64
	)
	for _, seq := range w.due() {
		s := w.sent[seq]
		if s.rev >= 0 && holder != nil && holder.Holds(w.cfg.BootID, eventid.TypeWarning, seq) {
			waiting = append(waiting, seq)
			continue
		}
		s.rev++
		s.at = now
		events = append(events, wire.FromWarning(w.cfg.Node, w.cfg.BootID, *s.next, s.rev, proto.Clone(s.wl).(*pb.Workload)))
		if s.next.State == warn.Resolved {
			delete(w.sent, seq)
		} else {
			s.next = nil
		}
	}
	w.bound(waiting)
	if len(events) == 0 {
		return nil
	}
	for _, ev := range events {
		w.log.WithFields(logrus.Fields{"seq": ev.GetSeq(), "revision": ev.GetRevision(),
			"state": ev.GetWarning().GetState().String()}).Debug(ev.GetWarning().GetSummary())
	}
	if err := w.cfg.Sink.Put(ctx, events...); err != nil {
		return fmt.Errorf("spool warnings: %w", err)
	}
	return nil
}

// due returns the warnings with a change to send, in the order of their
// changes.
func (w *Warnings) due() []int64 {
	var out []int64
	for seq, s := range w.sent {
		if s.next != nil {
			out = append(out, seq)
		}
	}
	slices.SortFunc(out, func(a, b int64) int {
		if c := w.sent[a].next.At.Compare(w.sent[b].next.At); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return out
}

// bound drops the oldest resolutions that wait past maxWaiting.
func (w *Warnings) bound(waiting []int64) {
	if len(waiting) <= maxWaiting {
		return
	}
	dropped := 0
	for _, seq := range waiting[:len(waiting)-maxWaiting] {
		if s := w.sent[seq]; s.next.State == warn.Resolved {
			delete(w.sent, seq)
			dropped++
		}
	}
	if dropped > 0 {
		w.log.WithField("dropped", dropped).Warn("too many warning resolutions wait for the aggregator: dropped the oldest (it ages their warnings out)")
	}
}

// name is the workload of a warning's cgroup (nil for the node), named by
// the runtime as kills are.
func (w *Warnings) name(ctx context.Context, cgroup string) *pb.Workload {
	if cgroup == "" {
		return nil
	}
	aw := analysis.WorkloadOf(cgroup)
	if w.cfg.Namer != nil {
		ctx, cancel := context.WithTimeout(ctx, nameTimeout)
		w.cfg.Namer.Name(ctx, &aw)
		cancel()
	}
	return wire.Workload(aw)
}

// Preceding returns the warnings that came before a kill for its victim's
// cgroup and pod (role victim), its culprit's (role culprit) and the node
// (role node), each once.
func (w *Warnings) Preceding(ev *analysis.Event) []*pb.PrecedingWarning {
	at := w.cfg.Now()
	if ev.Time != nil {
		at = *ev.Time
	}
	var victim, culprit string
	if len(ev.Victims) > 0 {
		victim = ev.Victims[0].Cgroup
	}
	if ev.Culprit != nil {
		culprit = ev.Culprit.Cgroup
	}
	w.mu.Lock()
	ps := w.engine.Preceding(victim, podCgroupOf(victim), at)
	nv := len(ps)
	if culprit != "" && culprit != victim {
		ps = append(ps, w.engine.Preceding(culprit, podCgroupOf(culprit), at)...)
	}
	w.mu.Unlock()
	seen := make(map[int64]bool, len(ps))
	roles := make(map[int64]string, len(ps))
	keep := ps[:0]
	for i, p := range ps {
		seq := wire.WarningSeq(p.Warning)
		if seen[seq] {
			continue
		}
		seen[seq] = true
		switch {
		case p.Node():
			roles[seq] = wire.RoleNode
		case i < nv:
			roles[seq] = wire.RoleVictim
		default:
			roles[seq] = wire.RoleCulprit
		}
		keep = append(keep, p)
	}
	if len(keep) == 0 {
		return nil
	}
	return wire.Preceding(w.cfg.Node, w.cfg.BootID, keep, func(x warn.Warning) string { return roles[wire.WarningSeq(x)] })
}

// podCgroupOf is the pod cgroup a cgroup lies in ("" when none).
func podCgroupOf(cg string) string {
	for p := cg; p != "" && p != "/" && p != "."; p = parent(p) {
		if workload.FromCgroup(p).Kind == workload.KindPod {
			return p
		}
	}
	return ""
}
