package exits

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cri"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// exitEvent builds the event of a held exit, joined with kill k (victim
// index v) or, when k is nil, with none. j.mu is held.
func (j *Joiner) exitEvent(p *pending, k *kill, v int, stop time.Time) *pb.Event {
	c := p.c
	fin := finishedAt(c, p.arrived)
	x := &pb.ContainerExit{
		ExitCode:      c.ExitCode,
		RuntimeReason: c.Reason,
		FinishedAt:    timestamp(c.FinishedAt),
	}
	var victim *pb.Process
	if k != nil {
		victim = k.victims[v]
		x.Workload = proto.Clone(victim.GetWorkload()).(*pb.Workload)
		x.OomEventId = k.id
		x.Evidence = slices.Clone(k.evidence)
	}
	x.Workload = withRuntime(x.Workload, c)
	var b strings.Builder
	b.WriteString(exitSubject(x.Workload, c))
	switch {
	case c.ExitCode == exitSIGKILL && k != nil:
		x.Verdict = verdictOf(k)
		b.WriteString(": the kernel's OOM killer killed ")
		b.WriteString(killedLabel(k, v))
		b.WriteString(" because ")
		b.WriteString(j.cause(k, v, x, c))
		b.WriteString(".")
	case c.ExitCode == exitSIGKILL:
		x.Verdict = VerdictNotOOM
		fmt.Fprintf(&b, ": it was killed with SIGKILL, but the kernel logged no OOM kill in this container in the %s before it exited, "+
			"so something else sent the signal (kubelet when the termination grace period ran out, a failed liveness probe, a user or the runtime).",
			seconds(j.opts.Window))
		if !stop.IsZero() {
			x.StopRequestedAt = timestamp(stop)
			fmt.Fprintf(&b, " A stop was requested at %s, %s before it exited.", clock(stop), seconds(fin.Sub(stop)))
		} else {
			b.WriteString(" The runtime did not say whether or when a stop was requested.")
		}
		if c.Reason == "OOMKilled" {
			b.WriteString(" The runtime reports OOMKilled, yet no kernel OOM kill of this container is on record for that time: the kill was earlier, or its record was lost.")
		}
	case c.ExitCode == exitSIGTERM:
		x.Verdict = VerdictGraceful
		b.WriteString(": it ended on SIGTERM, the signal a stop sends first: a graceful stop, not an OOM kill.")
		if !stop.IsZero() {
			x.StopRequestedAt = timestamp(stop)
			fmt.Fprintf(&b, " A stop was requested at %s, %s before it exited.", clock(stop), seconds(fin.Sub(stop)))
		}
		if k != nil {
			b.WriteString(j.earlier(k, v, x, c, fin))
		}
	default:
		x.Verdict = VerdictNotOOM
		sig := c.ExitCode - 128
		fmt.Fprintf(&b, ": it was killed by %s (signal %d), which the kernel's OOM killer does not send.", signalName(sig), sig)
		if k != nil {
			b.WriteString(j.earlier(k, v, x, c, fin))
		}
	}
	if k != nil && x.Verdict != VerdictOOMLimit && x.Verdict != VerdictNotOOM && x.Verdict != VerdictGraceful {
		x.Culprit = cloneCulprit(k.culprit)
		x.Collateral = collateral(k, v)
		x.CollateralVerdict = wire.VerdictToPB(collateralVerdict(k, v))
	}
	x.Explanation = b.String()
	x.ExitVerdict = wire.ExitVerdictToPB(x.Verdict)
	return &pb.Event{
		Node:    j.opts.Node,
		BootId:  j.opts.BootID,
		Seq:     Seq(c),
		Time:    timestamp(fin),
		Payload: &pb.Event_Exit{Exit: x},
	}
}

// cloneCulprit copies the kill's culprit: every event gets its own.
func cloneCulprit(c *pb.Culprit) *pb.Culprit {
	if c == nil {
		return nil
	}
	return proto.Clone(c).(*pb.Culprit)
}

func cloneDuration(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return proto.Clone(d).(*durationpb.Duration)
}

// earlier mentions an OOM kill in the container before an exit it did not
// cause.
func (j *Joiner) earlier(k *kill, v int, x *pb.ContainerExit, c cri.Container, fin time.Time) string {
	return fmt.Sprintf(" Earlier, %s before the exit, the kernel's OOM killer had killed %s in it because %s.",
		seconds(fin.Sub(k.at)), killedLabel(k, v), j.cause(k, v, x, c))
}

// verdictOf maps an OOM kill to the verdict of the exit it caused.
func verdictOf(k *kill) string {
	if k.kind == analysis.KindLimit {
		switch k.scope {
		case analysis.ScopeContainer, "":
			return VerdictOOMLimit
		case analysis.ScopePod:
			return VerdictOOMPodLimit
		}
	}
	return VerdictOOMNode
}

// collateral tells whether the container's process was killed for memory
// another workload held: the kill's own judgement for its first victim;
// for a memory.oom.group victim, whether the culprit ran elsewhere.
func collateral(k *kill, v int) bool {
	if v == 0 {
		return k.collateral
	}
	cid := k.victims[v].GetWorkload().GetContainerId()
	return k.culprit != nil && cid != "" && k.culprit.GetWorkload().GetContainerId() != cid
}

// collateralVerdict is collateral three-valued: the kill's own verdict for
// its first victim; for a memory.oom.group victim, unknown when the
// culprit's or the victim's container is not known.
func collateralVerdict(k *kill, v int) string {
	if v == 0 {
		return k.verdict
	}
	switch {
	case collateral(k, v):
		return analysis.CollateralYes
	case k.culprit == nil || k.victims[v].GetWorkload().GetContainerId() == "" ||
		k.culprit.GetWorkload().GetContainerId() == "":
		return analysis.CollateralUnknown
	}
	return analysis.CollateralNo
}

// cause says why the kill happened, from the container's point of view.
func (j *Joiner) cause(k *kill, v int, x *pb.ContainerExit, c cri.Container) string {
	w := x.GetWorkload()
	switch verdictOf(k) {
	case VerdictOOMLimit:
		if k.scope == "" {
			return "a memory cgroup limit was hit (the kernel did not name the cgroup)" + limitOf(k.limit)
		}
		limit := k.limit
		if limit <= 0 {
			limit = c.MemoryLimitBytes
		}
		if limit <= 0 {
			limit = w.GetContainerResources().GetMemoryLimitBytes()
		}
		return "the container hit its own memory limit" + limitOf(limit)
	case VerdictOOMPodLimit:
		limit := k.limit
		if limit <= 0 {
			limit = w.GetPodResources().GetMemoryLimitBytes()
		}
		return podLabel(w) + " hit its memory limit" + limitOf(limit) + "; " + holder(k, v, "the kernel's report does not say which container held the memory")
	}
	var s string
	switch k.kind {
	case analysis.KindNode:
		s = "the node ran out of memory"
	case analysis.KindLimit:
		if k.scope == analysis.ScopeAllocatable {
			s = "the pods together hit the node-allocatable limit" + limitOf(k.limit) + ", which kubelet sets on " + path.Base(k.memcg)
			break
		}
		s = "the cgroup " + cgroupName(k.memcg) + ", above the pod, hit its memory limit" + limitOf(k.limit)
	case analysis.KindCpuset:
		s = "the memory nodes its cpuset allows ran out"
	case analysis.KindMempolicy:
		s = "the memory nodes its memory policy allows ran out"
	default:
		s = "memory ran out (the kernel did not say which limit)"
	}
	if collateral(k, v) {
		return s + "; it was a collateral victim: " + holder(k, v, "")
	}
	return s + "; " + holder(k, v, "the report names no memory holder")
}

// holder says who held the memory: the culprit, relative to the victim's
// container.
func holder(k *kill, v int, none string) string {
	c := k.culprit
	if c == nil {
		return none
	}
	own := k.victims[v].GetWorkload()
	cw := c.GetWorkload()
	rss := ""
	if c.RssBytes != nil {
		rss = ", " + size(c.GetRssBytes())
	}
	proc := fmt.Sprintf("%s, pid %d%s", c.GetComm(), c.GetPid(), rss)
	switch {
	case cw.GetContainerId() != "" && cw.GetContainerId() == own.GetContainerId():
		return "this container held the most memory (" + proc + ")"
	case cw.GetContainerId() != "" && cw.GetPodUid() != "" && cw.GetPodUid() == own.GetPodUid():
		return "its sibling " + vocab.Container(vocab.OfPB(cw)) + " held the most memory (" + proc + ")"
	}
	return "the largest memory holder was " + workloadName(cw) + " (" + proc + ")"
}

// killedLabel names the process killed in the container.
func killedLabel(k *kill, v int) string {
	p := k.victims[v]
	s := fmt.Sprintf("%s (pid %d)", p.GetComm(), p.GetPid())
	if n := k.counts[v] - 1; n > 0 {
		s += fmt.Sprintf(" and %d more of its processes", n)
	}
	if k.group[v] {
		s += " (memory.oom.group)"
	}
	return s
}

// exitSubject names the container: "Container api of pod shop/cart-7d9".
func exitSubject(w *pb.Workload, c cri.Container) string {
	n := vocab.OfPB(w)
	if n.ContainerName == "" && n.ContainerID == "" {
		n.ContainerID = c.ID
	}
	s := "Container " + vocab.ContainerRef(n)
	if p := vocab.Pod(n); p != "" {
		s += " of " + p
	}
	if c.ExitCode != 0 || c.State == cri.StateExited {
		s += fmt.Sprintf(" exited with code %d", c.ExitCode)
		if c.Reason != "" {
			s += " (" + c.Reason + ")"
		}
	}
	return s
}

// podLabel names the container's pod, "its pod" when nothing is known.
func podLabel(w *pb.Workload) string {
	if p := vocab.Pod(vocab.OfPB(w)); p != "" {
		return p
	}
	return "its pod"
}

// workloadName names a culprit's workload.
func workloadName(w *pb.Workload) string {
	if s := vocab.Workload(vocab.OfPB(w)); s != "" {
		return s
	}
	return "a process outside any container"
}

func cgroupName(p string) string {
	if p == "" {
		return "an unnamed cgroup"
	}
	return p
}

// withRuntime fills the workload from what the runtime said of the
// container: names win over the kernel's, which has only paths and IDs.
func withRuntime(w *pb.Workload, c cri.Container) *pb.Workload {
	if w == nil {
		w = &pb.Workload{WorkloadKind: "container"}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&w.ContainerId, c.ID)
	set(&w.ContainerName, c.Name)
	set(&w.PodUid, c.PodUID)
	set(&w.Namespace, c.PodNamespace)
	set(&w.PodName, c.PodName)
	set(&w.Image, c.Image)
	if c.MemoryLimitBytes > 0 {
		if w.ContainerResources == nil {
			w.ContainerResources = &pb.Resources{}
		}
		if w.ContainerResources.MemoryLimitBytes == 0 {
			w.ContainerResources.MemoryLimitBytes = c.MemoryLimitBytes
		}
	}
	return w
}

func limitOf(n int64) string {
	if n <= 0 {
		return ""
	}
	return " of " + size(n)
}

// size formats a size as analysis.Bytes does, without a trailing ".0".
func size(n int64) string {
	return strings.Replace(analysis.Bytes(n), ".0 ", " ", 1)
}

// seconds formats a duration for a sentence: "30s", "1.5s", "120ms".
func seconds(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.String()
}

func clock(t time.Time) string {
	return t.UTC().Format("15:04:05.000Z")
}

func signalName(n int32) string {
	if s := unix.SignalName(syscall.Signal(n)); s != "" {
		return s
	}
	return fmt.Sprintf("signal %d", n)
}

// Evidence picks the kernel lines that tell the kill: the invocation, the
// cgroup's usage and limit, the summary and the kill lines, at most
// maxEvidence of them, in order. A report with none of them gives its
// first lines.
func Evidence(lines []string) []string {
	var out []string
	for _, l := range lines {
		if len(out) == maxEvidence {
			break
		}
		if relevant(l) {
			out = append(out, kernlog.EscapeLine(l))
		}
	}
	if len(out) == 0 {
		out = append(out, kernlog.EscapeLines(lines[:min(len(lines), maxEvidence)])...)
	}
	return out
}

// relevantMarks are substrings of the report lines worth showing, from
// kernels 3.x to 6.x.
var relevantMarks = []string{
	"invoked oom-killer",
	"killed as a result of limit of", // v1 memcg, before 4.19
	"memory: usage ",                 // memcg usage and limit
	"oom-kill:",                      // summary, 4.19+
	"Memory cgroup out of memory",    // memcg kill
	"Out of memory",                  // node kill
	"Killed process",                 // the kill itself
	"are going to be killed due to memory.oom.group",
	"oom_reaper: reaped process",
}

func relevant(l string) bool {
	for _, m := range relevantMarks {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}
