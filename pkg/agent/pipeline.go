// Package agent is oomwatch's node agent: it reads the kernel log, turns
// every OOM kill into an event, spools it on disk and streams it to the
// aggregator.
package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/pkg/proc"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Sink takes events durably: when Put returns nil they survive a crash,
// except those a Sink that is also a Holder reports as held.
type Sink interface {
	Put(ctx context.Context, events ...*pb.Event) error
}

// Enricher adds what the node knows beyond the kernel's words (names from
// the container runtime, cgroup figures) to an event, in place, and judges
// again what they change (enrich.Enricher calls analysis.Refine).
type Enricher interface {
	Enrich(ctx context.Context, ev *analysis.Event)
}

// Observer sees the kernel records that may be part of an OOM report as
// they are read, before the Assembler takes them: every record while a
// report is open, and outside one those the Assembler does not skip (see
// oom.Assembler.Skip: a report's first line, a summary, a kill line, a line
// that names the OOM killer). The other records, nearly all of them, are not
// shown: the hot path stays the Assembler's test.
type Observer interface {
	Observe(msg []byte)
}

// Checkpointer records how far the kernel log has been handled.
type Checkpointer interface {
	Save(seq int64) error
}

// Holder is a Sink that may take events without making them durable (the
// disk refused them): HeldFrom returns the smallest sequence number of the
// OOM events it holds that way. The checkpoint stays before it, so that a
// restart reads those kernel records again instead of skipping them.
type Holder interface {
	HeldFrom() (seq int64, ok bool)
}

// PipelineConfig wires a Pipeline.
type PipelineConfig struct {
	Node     string
	BootID   string
	Proc     proc.FS
	Sink     Sink
	Enricher Enricher     // may be nil
	Check    Checkpointer // may be nil
	// Requests, when set, weighs memory holders by usage over request.
	Requests analysis.Requests
	// Recent is how old (kernel time) a report may be for the PIDs it names
	// to be looked up in /proc: older ones may have been reused.
	Recent time.Duration
	// Idle is how long the kernel log must be quiet before an open report
	// is closed. The kernel prints a report's kill lines (group kills
	// included) back to back, so a short wait loses nothing. Default 250 ms.
	Idle time.Duration
	// Hold is how long (kernel time) a finished report waits for the
	// reports printed after it before it is judged. A kill's culprit is
	// often the kernel's next victim, milliseconds later, gone from /proc
	// before the agent can read it; that next report's kill line names its
	// cgroup. Default DefaultHold; a quiet log (Idle) releases at once.
	Hold time.Duration
	// CheckpointEvery bounds how often the checkpoint is written. Default 2 s.
	CheckpointEvery time.Duration
	// Observe, when set, is told of every event put (for metrics).
	Observe func(ev *pb.Event)
	// Records, when set, is told of the kernel records read: n since its
	// last call. It is called for every recordsBatch records at most, when
	// a report's record is read, on every tick and when the pipeline stops:
	// a counter per record would cost the hot path an atomic add.
	Records func(n int)
	// Forged, when set, is told of every record written by userspace that
	// reads like part of an OOM report (and was left out of every report).
	Forged func()
	// Counters, when set, reads the OOM-kill counters of the node's
	// container cgroups: a kill line the kernel printed without its report
	// (rate-limited) goes to the only container whose counter rose.
	Counters KillCounters
	// Warnings, when set, names the memory warnings that preceded each
	// kill in its preceding_warnings, before it is spooled.
	Warnings KillWarnings
	// Quiet, when set, is called on a goroutine of its own when the
	// pipeline goes idle (no report open, no event waiting, the checkpoint
	// saved) for the first time after the start (the backlog read) or after
	// a report: the agent then gives the memory the report took back to
	// the system. Ordinary records do not call it.
	Quiet func()
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KillWarnings names the warnings that came before a kill (Warnings).
type KillWarnings interface {
	Preceding(ev *analysis.Event) []*pb.PrecedingWarning
}

// Prefetcher is an Enricher that wants to hear of a victim's cgroup as soon
// as a kill is attributed to it, while its container may still exist.
type Prefetcher interface {
	Prefetch(cgroup string)
}

// Pipeline turns kernel records into events.
type Pipeline struct {
	cfg    PipelineConfig
	log    *logrus.Entry
	asm    *oom.Assembler
	stream *analysis.Stream
	ready  []analysis.Event
	// seq of the last record whose reports are all handled
	safe      int64
	lastSeq   int64
	savedSafe int64
	lastSave  time.Time
	// saveErr is the checkpoint's last save error, nil once a save works;
	// saveErrLogged is when a failure was last logged.
	saveErr       error
	saveErrLogged time.Time
	// reads remembers when recent records were read, so each kill's log
	// line can say when its report's last record came in.
	reads  [256]readAt
	nreads int
	// nread counts the records read; published is nread when Records was
	// last told.
	nread     int
	published int
	// mu serialises the reader and the tick; tick is the ticker, in mode;
	// quietSince is when the tick last saw nread at tickRead.
	mu         sync.Mutex
	tick       *time.Ticker
	mode       int
	quietSince time.Time
	tickRead   int
	// seen holds the cgroups of the open report's tasks, looked up as they
	// were read; lastMono is the kernel time of the last record.
	seen     map[int]string
	lastMono time.Duration
	// up is the uptime read from /proc at upAt (see uptime).
	up   time.Duration
	upAt time.Time
	// attr places the kills the kernel names only by PID.
	attr *attributor
	// observer is the Enricher when it is an Observer.
	observer Observer
	// idle is set by take when no report is open and no event is ready or
	// held: an ordinary record then takes the short path (skipped).
	idle bool
	// busy is set while the tick is fast (a report open or events
	// waiting), and from the start: Quiet is due when the tick stops.
	busy bool
	// forged counts userspace records that imitate OOM report lines;
	// forgedLogged is when one was last logged, forgedQuiet how many were
	// not logged since.
	forged       int64
	forgedLogged time.Time
	forgedQuiet  int64
}

// forgedLogEvery bounds how often a forged record is logged: whoever can
// write to /dev/kmsg must not be able to flood the agent's log.
const forgedLogEvery = 10 * time.Second

type readAt struct {
	seq int64
	at  time.Time
}

// taskRow tells a row of a report's task dump (and its header), which
// the kernel prints as "[  pid  ] ..." and "[ 1234] ...": no record that
// ends a report (a kill, the summary, the reaper) starts with '['.
func taskRow(msg []byte) bool { return len(msg) > 0 && msg[0] == '[' }

// readTime returns when the record seq was read, or now (a report that
// ended inside its task dump, closed by the quiet: about when it did).
func (p *Pipeline) readTime(seq int64) time.Time {
	for i := 0; i < len(p.reads) && i < p.nreads; i++ {
		if r := p.reads[(p.nreads-1-i)%len(p.reads)]; r.seq == seq {
			return r.at
		}
	}
	return time.Now()
}

// NewPipeline returns a Pipeline.
func NewPipeline(cfg PipelineConfig, log *logrus.Entry) *Pipeline {
	if cfg.Idle <= 0 {
		cfg.Idle = 250 * time.Millisecond
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 2 * time.Second
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.Recent <= 0 {
		cfg.Recent = time.Minute
	}
	p := &Pipeline{cfg: cfg, log: log, safe: -1, lastSeq: -1, savedSafe: -1, busy: true}
	p.stream = analysis.NewStream(analysis.StreamOptions{Cgroups: p.lookup, Requests: cfg.Requests, Hold: cfg.Hold}, func(e analysis.Event) {
		p.ready = append(p.ready, e)
	})
	p.attr = newAttributor(cfg.Proc, cfg.Counters, cfg.Now, log)
	if pf, ok := cfg.Enricher.(Prefetcher); ok {
		p.attr.onFound = pf.Prefetch
	}
	p.observer, _ = cfg.Enricher.(Observer)
	p.asm = oom.NewAssembler(oom.Options{TaskSeen: p.taskSeen, KillSeen: p.killSeen, Forged: p.forgedRecord}, p.stream.Add)
	p.seen = map[int]string{}
	return p
}

// DefaultHold is PipelineConfig.Hold's default: a cascade's next kill comes
// within milliseconds (8 and 14 ms in this project's real-kernel tests).
const DefaultHold = 250 * time.Millisecond

// forgedRecord counts a record that userspace wrote to /dev/kmsg imitating
// an OOM report, and logs it, at most once per forgedLogEvery.
func (p *Pipeline) forgedRecord(rec *kernlog.Record) {
	p.forged++
	if p.cfg.Forged != nil {
		p.cfg.Forged()
	}
	now := time.Now()
	if !p.forgedLogged.IsZero() && now.Sub(p.forgedLogged) < forgedLogEvery {
		p.forgedQuiet++
		return
	}
	msg := rec.Message
	if len(msg) > 200 {
		msg = msg[:200]
	}
	p.log.WithFields(logrus.Fields{
		"seq": rec.Seq, "facility": rec.Priority >> 3, "message": string(msg),
		"forged_total": p.forged, "not_logged": p.forgedQuiet,
	}).Warn("kernel log record written by userspace imitates an OOM report; ignored")
	p.forgedLogged, p.forgedQuiet = now, 0
}

// Lookups while a report is read: the trigger, and the dump's tasks of at
// least lookupMinPages (the culprit is a large task), at most lookupMax a
// report. Records are read as they are printed, so these tasks still live.
const (
	lookupMinPages = 256
	lookupMax      = 2000
)

// taskSeen looks a task's cgroup up as soon as the report names it.
func (p *Pipeline) taskSeen(pid int, rssPages int64) {
	if rssPages >= 0 && rssPages < lookupMinPages {
		return
	}
	if _, ok := p.seen[pid]; ok || len(p.seen) >= lookupMax {
		return
	}
	if p.lastMono > 0 && !p.recent(p.lastMono) {
		return
	}
	if rssPages < 0 {
		// The trigger: a report starts. A storm's later victims still
		// live; the kernel may soon name them by PID alone.
		p.attr.snapshot()
	}
	cg, err := p.cfg.Proc.Cgroup(pid)
	if err != nil {
		cg = ""
	}
	p.seen[pid] = cg
	p.attr.remember(pid, cg)
}

// recent tells whether a record of kernel time mono is at most Recent
// old, so that the PIDs it names still name the same processes. A record
// the uptime last read from /proc shows old already is old without a
// clock read (uptime never returns less: /proc/uptime only rises): a
// backlog's dump asks for each of its (up to 10,000) tasks.
func (p *Pipeline) recent(mono time.Duration) bool {
	if !p.upAt.IsZero() && p.up-mono > p.cfg.Recent {
		return false
	}
	up, err := p.uptime()
	return err == nil && up-mono <= p.cfg.Recent
}

// uptimeEvery is how long an uptime read from /proc serves, moved on by
// Go's monotonic clock (Proc.Uptime's resolution is 10 ms anyway).
const uptimeEvery = 100 * time.Millisecond

// uptime returns the node's uptime, reading /proc/uptime at most every
// uptimeEvery: a report's task dump asks on every large task's row, and a
// dump of 10,000 tasks is printed within milliseconds.
func (p *Pipeline) uptime() (time.Duration, error) {
	now := time.Now()
	if since := now.Sub(p.upAt); !p.upAt.IsZero() && since >= 0 && since < uptimeEvery {
		return p.up + since, nil
	}
	up, err := p.cfg.Proc.Uptime()
	if err != nil {
		p.upAt = time.Time{}
		return 0, err
	}
	p.up, p.upAt = up, now
	return up, nil
}

// killSeen attributes a kill as its line is read, when it is recent: the
// kernel log read at start holds kills whose PIDs may name other processes
// by now.
func (p *Pipeline) killSeen(pid int, cgroup string) {
	if cgroup == "" && p.lastMono > 0 && !p.recent(p.lastMono) {
		return
	}
	p.attr.killSeen(pid, cgroup)
}

// lookup reads the cgroups of a report's live tasks, for reports recent
// enough that their PIDs still name the same processes: from the
// cgroup.procs files of the limited cgroup's subtree for a memory cgroup
// OOM (of the whole hierarchy for a node-wide one), then /proc (see
// proc.FS.CgroupsUnder). One /proc/<pid>/cgroup per task of a 10,000-task
// dump costs the agent's memory cgroup ~17 MiB of kernel slab.
func (p *Pipeline) lookup(r *oom.Report, pids []int) map[int]string {
	fresh := false
	if r.HasMono {
		up, err := p.cfg.Proc.Uptime()
		fresh = err == nil && up-r.Mono <= p.cfg.Recent
	}
	out := map[int]string{}
	// The PIDs left to read from /proc: none for an old report, whose
	// dump (of up to 10,000 tasks) is not listed again.
	var rest []int
	if fresh {
		rest = make([]int, 0, len(pids))
	}
	for _, pid := range pids {
		if cg, ok := p.attr.lookup(pid); ok {
			out[pid] = cg
		} else if cg := p.seen[pid]; cg != "" {
			out[pid] = cg
		} else if fresh {
			rest = append(rest, pid)
		}
	}
	// The tasks looked up while the report was read are forgotten with it.
	clear(p.seen)
	if !fresh {
		return out
	}
	for pid, cg := range p.cfg.Proc.CgroupsUnder(analysis.LimitOf(r), rest) {
		out[pid] = cg
		p.attr.remember(pid, cg)
	}
	return out
}

// handleGap reports lost records as an event. A report open across the gap
// lost its middle: it is closed.
func (p *Pipeline) handleGap(ctx context.Context, g *devkmsg.Gap) error {
	ev := &pb.Event{Node: p.cfg.Node, BootId: p.cfg.BootID, Seq: g.NextSeq, Time: timestamppb.New(g.Detected),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{
			Cause: "kernel-gap", Lost: g.Lost, AfterSeq: g.AfterSeq, NextSeq: g.NextSeq,
			Detail: fmt.Sprintf("%d kernel records lost on node %s between sequence %d and %d (the kernel log overflowed before they were read)",
				g.Lost, p.cfg.Node, g.AfterSeq, g.NextSeq),
		}}}
	p.log.WithFields(logrus.Fields{"lost": g.Lost, "after_seq": g.AfterSeq, "next_seq": g.NextSeq}).
		Warn("kernel log records lost")
	if err := p.put(ctx, ev); err != nil {
		return err
	}
	p.asm.Flush()
	return p.flush(ctx)
}

// handleRecord feeds one record to the Assembler.
func (p *Pipeline) handleRecord(rec *kernlog.Record) {
	if p.asm.Skip(rec) {
		p.count(rec)
		return
	}
	if rec.HasMono {
		p.lastMono = rec.Mono
	}
	p.nread++
	p.publish()
	if p.observer != nil {
		p.observer.Observe(rec.Message)
	}
	open := p.asm.Open()
	p.asm.Feed(rec)
	if (open || p.asm.Open()) && !taskRow(rec.Message) {
		// Only a report's records need their read time (its kill's log
		// line says when its last record came in), and of those not the
		// task dump's rows, which never end a report: the clock is not
		// read for each of a large dump's 10,000 rows.
		p.reads[p.nreads%len(p.reads)] = readAt{seq: rec.Seq, at: time.Now()}
		p.nreads++
	}
	p.lastSeq = rec.Seq
}

// count is handleRecord for a record the Assembler skipped: neither the
// Observer nor the read times need it.
func (p *Pipeline) count(rec *kernlog.Record) {
	if rec.HasMono {
		p.lastMono = rec.Mono
	}
	p.nread++
	if p.nread-p.published >= recordsBatch {
		p.publish()
	}
	p.lastSeq = rec.Seq
}

// recordsBatch bounds how many records are read before Records is told.
const recordsBatch = 1024

// publish tells Records of the records read since it was last told.
func (p *Pipeline) publish() {
	if n := p.nread - p.published; n > 0 && p.cfg.Records != nil {
		p.cfg.Records(n)
	}
	p.published = p.nread
}

// advance moves the checkpoint up to the last record read, or to just
// before the report still being assembled or waiting to be judged.
func (p *Pipeline) advance() {
	safe := p.lastSeq
	if open, ok := p.asm.OpenSeq(); ok {
		safe = min(safe, open-1)
	}
	if held, ok := p.stream.HeldFrom(); ok {
		safe = min(safe, held-1)
	}
	if safe > p.safe {
		p.safe = safe
	}
}

// attribute is the one step of the path that completes an event with what
// the node knows beyond the kernel's report: where the processes the kernel
// named by PID alone ran, the node's memory, and the Enricher's names,
// limits and figures (after which analysis.Refine judges again what they
// change). analysis.Analyze made the event from the report alone.
func (p *Pipeline) attribute(ctx context.Context, ev *analysis.Event) {
	p.attr.label(ev)
	if mem, err := p.cfg.Proc.MemInfo(); err == nil {
		ev.Node = &analysis.NodeMemory{MemTotalBytes: mem.TotalBytes, MemAvailableBytes: mem.AvailableBytes}
	}
	if p.cfg.Enricher != nil {
		p.cfg.Enricher.Enrich(ctx, ev)
	}
}

// flush sends the events judged so far.
func (p *Pipeline) flush(ctx context.Context) error {
	if len(p.ready) == 0 {
		return nil
	}
	events := p.ready
	p.ready = nil
	out := make([]*pb.Event, 0, len(events))
	for i := range events {
		ev := &events[i]
		p.attribute(ctx, ev)
		e := wire.FromAnalysis(p.cfg.Node, p.cfg.BootID, *ev)
		out = append(out, e)
		v := ev.Victims[0]
		f := logrus.Fields{"kind": ev.Kind, "seq": ev.Seq, "victim_pid": v.PID, "victim_comm": v.Comm,
			"collateral": ev.Collateral, "complete": ev.Complete,
			"last_record_read": p.readTime(ev.EndSeq).UTC().Format(time.RFC3339Nano)}
		if ev.LimitScope != "" {
			f["limit_scope"] = ev.LimitScope
		}
		if ev.AttributedBy != analysis.AttributedReport {
			f["attributed_by"] = ev.AttributedBy
		}
		if v.PodUID != "" {
			f["pod_uid"] = v.PodUID
		}
		if v.PodName != "" {
			f["pod"] = v.Namespace + "/" + v.PodName
		}
		if v.ContainerID != "" {
			f["container_id"] = v.ContainerID
		}
		if p.cfg.Warnings != nil {
			// The reason stays the kernel's story: readers render the
			// warnings from the field (vocab.Preceding).
			if pw := p.cfg.Warnings.Preceding(ev); len(pw) > 0 {
				e.GetOom().PrecedingWarnings = pw
				f["warned"] = vocab.Preceding(pw)
			}
		}
		p.log.WithFields(f).Info(ev.Reason)
	}
	return p.put(ctx, out...)
}

func (p *Pipeline) put(ctx context.Context, events ...*pb.Event) error {
	if err := p.cfg.Sink.Put(ctx, events...); err != nil {
		return fmt.Errorf("spool events: %w", err)
	}
	if p.cfg.Observe != nil {
		for _, e := range events {
			p.cfg.Observe(e)
		}
	}
	return nil
}

// checkpointBehind tells whether there is a checkpoint to save: it is
// short of the last record handled (held back, or not saved yet).
func (p *Pipeline) checkpointBehind() bool {
	return p.cfg.Check != nil && p.safe >= 0 && p.safe != p.savedSafe
}

// checkpointTarget is what the checkpoint may claim: the last record
// handled, but never a record of an event the sink holds without its being
// durable.
func (p *Pipeline) checkpointTarget() int64 {
	t := p.safe
	if h, ok := p.cfg.Sink.(Holder); ok {
		if from, held := h.HeldFrom(); held && from-1 < t {
			t = from - 1
		}
	}
	return t
}

// saveErrEvery bounds how often a failing checkpoint is logged.
const saveErrEvery = time.Minute

// saveCheckpoint saves the checkpoint when it is behind, at most every
// CheckpointEvery unless force. A failure is logged (rate-limited) and
// tried again later: the checkpoint then claims less than was handled, and
// a restart reads those records again (the aggregator drops the copies).
func (p *Pipeline) saveCheckpoint(force bool) {
	if !p.checkpointBehind() {
		return
	}
	if !force && time.Since(p.lastSave) < p.cfg.CheckpointEvery {
		return
	}
	target := p.checkpointTarget()
	if target == p.savedSafe {
		return
	}
	p.lastSave = time.Now()
	if err := p.cfg.Check.Save(target); err != nil {
		if p.saveErr == nil || time.Since(p.saveErrLogged) >= saveErrEvery {
			p.log.WithError(err).WithFields(logrus.Fields{"saved_seq": p.savedSafe, "handled_seq": target}).
				Error("cannot save the checkpoint: a restart would read the kernel records after the saved one again")
			p.saveErrLogged = time.Now()
		}
		p.saveErr = err
		return
	}
	if p.saveErr != nil {
		p.log.WithField("seq", target).Info("the checkpoint is saved again")
		p.saveErr = nil
	}
	p.savedSafe = target
}
