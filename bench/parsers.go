package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/go-logr/logr"
	"github.com/google/cadvisor/utils/oomparser"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/pkg/proc"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// CAdvisorVersion is the cAdvisor module version bench/go.mod pins; the
// table names it. Keep it in step with go.mod.
const CAdvisorVersion = "v0.60.6"

// Finding is one kill as a parser reported it, reduced to what the table
// scores.
type Finding struct {
	// PID is the victim's PID, 0 when not reported.
	PID int
	// PIDInText reports a PID read back from the parser's free text (an
	// event message) rather than from a field.
	PIDInText bool
	// Cgroup is the victim's cgroup as reported, "" when not reported.
	Cgroup string
	// Kind is KindNode or KindLimit, "" when the parser cannot tell.
	Kind string
	// KindInText reports that only the kill line in free text says whether
	// the node or a limit ran out of memory.
	KindInText bool
}

// Output is what a parser reported on one input, in its own types.
type Output interface {
	// Findings converts the output for scoring. It runs outside the timed
	// loop.
	Findings() []Finding
}

// Parser reads every record of an input the way one product does.
type Parser interface {
	// Name is the row label.
	Name() string
	// Parse reads in whole and returns what was reported.
	Parse(in *Input) (Output, error)
}

// Parsers returns the parsers compared, oomwatch's first.
func Parsers() []Parser {
	return []Parser{OomwatchReader{}, OomwatchLive{}, CAdvisor{}, NPD{LastLineShortcut: false}, NPD{LastLineShortcut: true}, FrontEndFloor{}}
}

// FrontEndFloor is no parser but the floor under the live rows: the same
// kmsgparser front end, its channel drained by a loop that does nothing
// with the messages. Every consumer of kmsgparser (oomwatch's live path,
// cAdvisor, NPD) pays at least this per record: kmsgparser's goroutine (a
// string of the record, its header split, three strconv calls, the garbage)
// and the receive on its channel with the park and wake-up it costs. What
// a consumer costs beyond it is its own work after the channel.
type FrontEndFloor struct{}

// Name implements Parser.
func (FrontEndFloor) Name() string { return "floor: kmsgparser alone, drained" }

// Parse implements Parser. Its Output reports no kills: it reads none.
func (FrontEndFloor) Parse(in *Input) (Output, error) {
	p, _ := newFrontEnd(newMemDevice(in, false), bootTime)
	n := 0
	for range p.Parse() {
		n++
	}
	if n != in.Records() {
		return nil, fmt.Errorf("kmsgparser delivered %d records of %d", n, in.Records())
	}
	return floorOutput{}, nil
}

// floorOutput is FrontEndFloor's Output: no findings.
type floorOutput struct{}

// Findings implements Output.
func (floorOutput) Findings() []Finding { return nil }

// bootTime is the boot time the memory-backed kmsgparser dates records from.
var bootTime = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// OomwatchReader is oomwatch's reader and assembler: kernlog.Reader over an
// io.Reader of the records, each fed to oom.Assembler (what `oomctl analyze`
// and analysis.ReadLog run).
type OomwatchReader struct{}

// Name implements Parser.
func (OomwatchReader) Name() string { return "oomwatch kernlog.Reader+Assembler" }

// Parse implements Parser.
func (OomwatchReader) Parse(in *Input) (Output, error) {
	var out oomwatchOutput
	a := oom.NewAssembler(oom.Options{}, func(r *oom.Report) { out = append(out, r) })
	rd := kernlog.NewReader(bytes.NewReader(in.Data))
	for rd.Next() {
		a.Feed(rd.Record())
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	a.Flush()
	return out, nil
}

// oomwatchOutput is the Assembler's reports.
type oomwatchOutput []*oom.Report

// Findings implements Output, judging each report as oomwatch does.
func (o oomwatchOutput) Findings() []Finding {
	var f []Finding
	for _, r := range o {
		ev := analysis.Analyze(r, analysis.Context{})
		kind := ""
		if ev.Kind == analysis.KindNode || ev.Kind == analysis.KindLimit {
			kind = ev.Kind
		}
		for _, v := range ev.Victims {
			f = append(f, Finding{PID: v.PID, Cgroup: v.Cgroup, Kind: kind})
		}
	}
	return f
}

// OomwatchLive is oomwatch's live path as the agent runs it: a
// devkmsg.Reader (kmsgparser over the device, sequence and clock checks, on
// kmsgparser's channel) read by agent.Pipeline.RunReader, which feeds
// oom.Assembler, judges the reports and spools the events. Everything the
// agent does per record is in it: the pipeline's lock and bookkeeping, the
// records counter (the agent's is a Prometheus counter, told in batches),
// the checkpoint's (into a Checkpointer that keeps nothing: the agent's
// writes at most every 2 s); and what it does per report: judging it and
// making its event.
type OomwatchLive struct{}

// Name implements Parser.
func (OomwatchLive) Name() string { return "oomwatch live: devkmsg+Assembler" }

// Parse implements Parser.
func (OomwatchLive) Parse(in *Input) (Output, error) {
	var out eventOutput
	if in.Records() == 0 {
		return out, nil
	}
	last, err := lastSeq(in)
	if err != nil {
		return nil, err
	}
	root, err := procFixture()
	if err != nil {
		return nil, err
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	log := logrus.NewEntry(logger)
	dev := newMemDevice(in, true)
	src := devkmsg.New(log, devkmsg.Options{
		After:    -1,
		BootTime: bootTime,
		NewParser: func() (kmsgparser.Parser, error) {
			// The device blocks at the end, as /dev/kmsg does.
			p, _ := newFrontEnd(dev, bootTime)
			return p, nil
		},
		Oldest: func() (int64, int64, error) { return firstRecord(in) },
		Newest: func() (int64, error) { return last, nil },
	})
	sink := &eventSink{}
	var records atomic.Int64
	pipe := agent.NewPipeline(agent.PipelineConfig{
		Node: "bench", BootID: "bench", Proc: proc.New(root), Sink: sink, Check: nopCheck{},
		Records: func(n int) { records.Add(int64(n)) },
	}, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Once kmsgparser asks for the record after the last, every record is
	// on its channel or handled: the end of ctx then stops the reader, and
	// RunReader returns once it has handled them.
	go func() {
		<-dev.drained
		cancel()
	}()
	if err := pipe.RunReader(ctx, r); !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("RunReader: %w", err)
	}
	if n := records.Load(); n != int64(in.Records()) {
		return nil, fmt.Errorf("the pipeline read %d records of %d", n, in.Records())
	}
	if err := pipe.Drain(context.Background()); err != nil {
		return nil, err
	}
	return eventOutput(sink.events), nil
}

// eventSink keeps the events the pipeline spools.
type eventSink struct {
	mu     sync.Mutex
	events []*pb.Event
}

// Put implements agent.Sink.
func (s *eventSink) Put(_ context.Context, evs ...*pb.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	return nil
}

// nopCheck is a checkpoint that keeps nothing.
type nopCheck struct{}

// Save implements agent.Checkpointer.
func (nopCheck) Save(int64) error { return nil }

var (
	procOnce sync.Once
	procRoot string
	procErr  error
)

// procFixture returns a /proc for the live row: an uptime, far past every
// input's records, and nothing else. The pipeline then judges every report
// as one read from the backlog, as the agent does at its start: it checks
// the uptime but looks no task up in /proc (a live agent reads the cgroups
// of a report's large tasks, at most 2,000 a report, which cAdvisor does
// not). The real /proc would name the bench's processes, not the input's.
func procFixture() (string, error) {
	procOnce.Do(func() {
		procRoot = filepath.Join(os.TempDir(), "oomwatch-bench-proc")
		if procErr = os.MkdirAll(procRoot, 0o755); procErr != nil {
			return
		}
		procErr = os.WriteFile(filepath.Join(procRoot, "uptime"), []byte("1000000000.00 1.00\n"), 0o644)
	})
	return procRoot, procErr
}

// eventOutput is the events the pipeline spooled.
type eventOutput []*pb.Event

// Findings implements Output, from each OOM event's victims.
func (o eventOutput) Findings() []Finding {
	var f []Finding
	for _, e := range o {
		k := e.GetOom()
		if k == nil {
			continue
		}
		kind := ""
		if k.GetKind() == analysis.KindNode || k.GetKind() == analysis.KindLimit {
			kind = k.GetKind()
		}
		for _, v := range k.GetVictims() {
			f = append(f, Finding{PID: int(v.GetPid()), Cgroup: v.GetWorkload().GetCgroup(), Kind: kind})
		}
	}
	return f
}

var quietKlog sync.Once

// silenceKlog discards cAdvisor's klog output: StreamOoms logs an error
// when its input ends, as it never should on /dev/kmsg.
func silenceKlog() { klog.SetLogger(logr.Discard()) }

// CAdvisor is cAdvisor's OOM parser (utils/oomparser): its StreamOoms loop
// fed by kmsgparser, exactly as cAdvisor runs it, with kmsgparser reading
// the records from memory instead of /dev/kmsg.
type CAdvisor struct{}

// Name implements Parser.
func (CAdvisor) Name() string { return "cAdvisor oomparser " + CAdvisorVersion }

// Parse implements Parser.
func (CAdvisor) Parse(in *Input) (Output, error) {
	quietKlog.Do(silenceKlog)
	p, _ := newFrontEnd(newMemDevice(in, false), bootTime)
	op := &oomparser.OomParser{}
	// oomparser.New always opens /dev/kmsg; the parser field is the only
	// state, and is set the way New sets it.
	if err := setField(reflectElem(op), "parser", p); err != nil {
		return nil, err
	}
	// cAdvisor's manager reads OOMs from a channel of 10.
	ch := make(chan *oomparser.OomInstance, 10)
	go func() {
		op.StreamOoms(ch)
		close(ch)
	}()
	var out cadvisorOutput
	for o := range ch {
		out = append(out, o)
	}
	return out, nil
}

// cadvisorOutput is StreamOoms's instances.
type cadvisorOutput []*oomparser.OomInstance

// Findings implements Output. cAdvisor names the victim's cgroup
// ContainerName (VictimContainerName is the cgroup whose limit was hit);
// both stay "/" when its regexp, which requires oom_memcg=, does not match.
func (o cadvisorOutput) Findings() []Finding {
	var f []Finding
	for _, x := range o {
		fi := Finding{PID: x.Pid}
		if x.ContainerName != "/" {
			fi.Cgroup = x.ContainerName
		}
		switch x.Constraint {
		case "CONSTRAINT_MEMCG":
			fi.Kind = KindLimit
		case "CONSTRAINT_NONE":
			fi.Kind = KindNode
		}
		f = append(f, fi)
	}
	return f
}

// NPD is node-problem-detector's kernel monitor with its OOMKilling rule
// (see npd.go): kmsgparser, the kmsg log watcher, a 10-line log buffer, and
// the rule matched on every new line.
type NPD struct {
	// LastLineShortcut selects NPD's matcher since PR #1329 (merged
	// 2026-08-22): rules that cannot span lines are matched against the
	// newest line only. Without it the rule is matched against the joined
	// buffer, as in every release before.
	LastLineShortcut bool
}

// Name implements Parser.
func (n NPD) Name() string {
	if n.LastLineShortcut {
		return "NPD OOMKilling, last-line match (#1329)"
	}
	return "NPD OOMKilling, 10-line joined buffer"
}

// Parse implements Parser.
func (n NPD) Parse(in *Input) (Output, error) {
	p, _ := newFrontEnd(newMemDevice(in, false), bootTime)
	mon, err := newNPDMonitor(n.LastLineShortcut)
	if err != nil {
		return nil, err
	}
	var out npdOutput
	mon.run(p, bootTime, func(e npdEvent) { out = append(out, e) })
	return out, nil
}

// npdOutput is NPD's events.
type npdOutput []npdEvent

var killedPID = regexp.MustCompile(`Killed process (\d+)`)

// Findings implements Output. An NPD event carries the matched log lines as
// its message and nothing parsed: the PID, and whether the kill line said
// "Memory cgroup out of memory" or "Out of memory", are only in that text.
func (o npdOutput) Findings() []Finding {
	var f []Finding
	for _, e := range o {
		fi := Finding{PIDInText: true, KindInText: true}
		if m := killedPID.FindStringSubmatch(e.Message); m != nil {
			fi.PID, _ = strconv.Atoi(m[1])
		}
		f = append(f, fi)
	}
	return f
}
