package webui

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/vocab"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The views below are what the templates print: every sentence and label
// is made here, in Go, so that the templates stay plain and the wording is
// tested.

// who names a workload for people: names when the agent got them from the
// container runtime, short IDs otherwise; the full IDs go in Title.
type who struct {
	Label string
	Title string
	// PodURL is the pod's page, when the workload is in a pod.
	PodURL string
	// QoS is the pod's QoS class as Kubernetes spells it.
	QoS string
}

// proc is a process and where it ran.
type proc struct {
	Name string // "hog (pid 220)"
	Who  who
	RSS  string // "" when the report gave none
	Adj  string // "oom_score_adj 1000", or ""
}

// culprit is the largest memory holder of a kill or an incident.
type culprit struct {
	Who  who
	Name string // its largest task
	RSS  string
	// More counts its other tasks.
	More int
	// Source says what the culprit was judged from, when not the task dump.
	Source string
}

// Roles a process or workload plays in a kill.
const (
	roleVictim  = "victim"
	roleTrigger = "trigger"
	roleCulprit = "culprit"
)

// kill is one OOM kill as the incident and pod pages show it.
type kill struct {
	ID           string
	N            int
	Anchor       string // "kill-395"
	KernelAnchor string // "kill-395-kernel"
	URL          string // the kill on its incident page
	KernelURL    string // the kernel lines as text
	Time         string
	Clock        string // the time of day, for the timeline
	Age          string
	Datetime     string
	Offset       string // since the incident's start
	Node         string
	Kind         string
	NodeLevel    bool
	Victim       proc
	Group        int // more victims, killed for memory.oom.group
	Trigger      *proc
	SelfTrigger  bool
	Culprit      *culprit
	Collateral   bool
	// Unknown: whether the victim was collateral is not known.
	Unknown      bool
	ChosenForAdj bool
	Reason       string
	Incomplete   bool
	Memcg        string // "usage 24.0 MiB of limit 24.0 MiB"
	Chart        *chart
	Lines        []string
	LinesDropped int
	Seqs         string // "kernel records 395 to 449"
	// Roles are what the pod of the pod page was in this kill.
	Roles []string
	// X places the kill on the incident's timeline strip, 0 to 1000.
	X int
	// Warned says which warnings preceded the kill ("Warned 4m12s
	// before: forecast, near-limit 93%"); Warnings are each, oldest first.
	Warned   string
	Warnings []warnedLine
}

// row is one incident of the incidents page.
type row struct {
	ID         string
	Rev        string // changes when the incident does, for live updates
	URL        string
	Node       string
	Time       string
	Datetime   string
	Age        string
	Duration   string
	Kind       string
	NodeLevel  bool
	Kills      int32
	Collateral int32
	// Unknown counts the kills whose collateral verdict is not known.
	Unknown int32
	Culprit *culprit
}

// qosNames are Kubernetes' spellings of the QoS classes.
var qosNames = map[string]string{"guaranteed": "Guaranteed", "burstable": "Burstable", "besteffort": "BestEffort"}

func qosName(q string) string {
	if n, ok := qosNames[q]; ok {
		return n
	}
	return q
}

// podURL is the pod page of a workload's pod, or "".
func podURL(w *pb.Workload) string {
	switch {
	case w.GetPodUid() != "":
		return "/pods/" + url.PathEscape(w.GetPodUid())
	case w.GetPodName() != "":
		u := "/pods/" + url.PathEscape(w.GetPodName())
		if w.GetNamespace() != "" {
			u += "?" + url.Values{"namespace": {w.GetNamespace()}}.Encode()
		}
		return u
	}
	return ""
}

// containerLabel names a workload's container: its name, else its short ID.
func containerLabel(w *pb.Workload) string { return vocab.ContainerRef(vocab.OfPB(w)) }

// whoOf names a workload down to its container.
func whoOf(w *pb.Workload) who {
	out := who{Label: vocab.Label(vocab.OfPB(w)), Title: titleOf(w), QoS: qosName(w.GetQos()), PodURL: podURL(w)}
	if out.Label == "" {
		out.Label = "cgroup unknown"
	}
	return out
}

// podWho names a workload's pod only (the bars of a node-level kill).
func podWho(w *pb.Workload) who {
	if w.GetPodUid() == "" && w.GetPodName() == "" {
		return whoOf(w)
	}
	t := "pod UID " + w.GetPodUid()
	if w.GetPodUid() == "" {
		t = "pod " + w.GetPodName()
	}
	return who{Label: vocab.Pod(vocab.OfPB(w)), Title: t, PodURL: podURL(w), QoS: qosName(w.GetQos())}
}

// titleOf lists a workload's full identifiers.
func titleOf(w *pb.Workload) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("pod UID", w.GetPodUid())
	add("container ID", w.GetContainerId())
	add("image", w.GetImage())
	add("cgroup", w.GetCgroup())
	return strings.Join(parts, "; ")
}

func procOf(p *pb.Process) proc {
	out := proc{Name: fmt.Sprintf("%s (pid %d)", p.GetComm(), p.GetPid()), Who: whoOf(p.GetWorkload())}
	if p.GetPid() == 0 {
		out.Name = p.GetComm()
	}
	if p.RssBytes != nil {
		out.RSS = analysis.Bytes(p.GetRssBytes())
	}
	if p.OomScoreAdj != nil {
		out.Adj = fmt.Sprintf("oom_score_adj %d", p.GetOomScoreAdj())
	}
	return out
}

func culpritOf(c *pb.Culprit) *culprit {
	if c == nil {
		return nil
	}
	out := &culprit{Who: whoOf(c.GetWorkload()), Name: fmt.Sprintf("%s (pid %d)", c.GetComm(), c.GetPid()), More: max(0, int(c.GetTasks())-1)}
	if c.GetPid() == 0 {
		out.Name = c.GetComm()
	}
	if c.RssBytes != nil {
		out.RSS = analysis.Bytes(c.GetRssBytes())
	}
	switch wire.Source(c) {
	case analysis.SourceVictims:
		out.Source = "judged from the killed processes' sizes (no task dump)"
	case analysis.SourceTrigger:
		out.Source = "judged from the task that was allocating (no task dump)"
	case analysis.SourceIncident:
		out.Source = "judged from other reports of the incident (no task dump)"
	}
	switch c.GetRankedBy() {
	case analysis.RankedOverRequest:
		out.Source = joinNonEmpty("; ", "named for being furthest over its memory request", out.Source)
	case analysis.RankedMajority:
		out.Source = "the victim alone held over half the memory in use under the limit (no task dump)"
	}
	return out
}

// kindLabel says what ran out of memory.
func kindLabel(kind, scope string) string {
	switch kind {
	case analysis.KindNode:
		return "node-level"
	case analysis.KindLimit:
		switch scope {
		case analysis.ScopeContainer:
			return "limit · container"
		case analysis.ScopePod:
			return "limit · pod"
		case analysis.ScopeAllocatable:
			return "limit · node allocatable"
		case analysis.ScopeOther:
			return "limit · other cgroup"
		}
		return "limit"
	case "":
		return "unknown"
	}
	return kind
}

// Times are shown in UTC, with their age.
const (
	timeLayout  = "2006-01-02 15:04:05 UTC"
	stampLayout = "2006-01-02 15:04:05.000 UTC"
)

// age says how long ago t was, roughly.
func age(now, t time.Time) string {
	d := now.Sub(t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, " from now"
	}
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s%s", int(d.Seconds()), suffix)
	case d < time.Hour:
		return fmt.Sprintf("%d min%s", int(d.Minutes()), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h%s", int(d.Hours()), suffix)
	}
	return fmt.Sprintf("%d days%s", int(d.Hours()/24), suffix)
}

// span says how long an incident lasted.
func span(d time.Duration) string {
	switch {
	case d <= 0:
		return "one instant"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

// offset is a kill's time since its incident's start.
func offset(d time.Duration) string {
	return "+" + strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + " s"
}

// incidentPath is an incident's page, from its ID
// "<node>/<boot>/incident/<seq>".
func incidentPath(id string) string { return address("/incidents/", id) }

// killPath is a kill's address, from its event ID
// "<node>/<boot>/oom/<seq>": it redirects to the kill on its incident page.
func killPath(id string) string { return address("/kills/", id) }

// address is the page under prefix of an ID's node, boot and sequence
// number, "" for a malformed ID.
func address(prefix, id string) string {
	x, err := eventid.Parse(id)
	if err != nil {
		return ""
	}
	return prefix + url.PathEscape(x.Node) + "/" + url.PathEscape(x.BootID) + "/" + strconv.FormatInt(x.Seq, 10)
}

func rowOf(in *pb.Incident, now time.Time) row {
	start, end := in.GetStart().AsTime(), in.GetEnd().AsTime()
	return row{
		ID:         in.GetId(),
		Rev:        fmt.Sprintf("%d/%d/%d/%d", in.GetKills(), in.GetCollateral(), in.GetCollateralUnknown(), end.UnixNano()),
		URL:        incidentPath(in.GetId()),
		Node:       in.GetNode(),
		Time:       start.UTC().Format(timeLayout),
		Datetime:   start.UTC().Format(time.RFC3339Nano),
		Age:        age(now, start),
		Duration:   span(end.Sub(start)),
		Kind:       kindLabel(wire.IncidentKind(in), ""),
		NodeLevel:  wire.IncidentKind(in) == analysis.KindNode,
		Kills:      in.GetKills(),
		Collateral: in.GetCollateral(),
		Unknown:    in.GetCollateralUnknown(),
		Culprit:    culpritOf(in.GetCulprit()),
	}
}

// killOf builds the view of one kill; start is its incident's start (the
// kill's own time on the pod page).
func killOf(e *pb.Event, start time.Time, now time.Time) kill {
	k := e.GetOom()
	t := e.GetTime().AsTime()
	warned, warnings := warnedOf(e)
	out := kill{
		Warned:       warned,
		Warnings:     warnings,
		ID:           e.GetId(),
		Anchor:       "kill-" + strconv.FormatInt(e.GetSeq(), 10),
		URL:          killPath(e.GetId()),
		Time:         t.UTC().Format(stampLayout),
		Clock:        t.UTC().Format("15:04:05.000"),
		Datetime:     t.UTC().Format(time.RFC3339Nano),
		Age:          age(now, t),
		Offset:       offset(t.Sub(start)),
		Node:         e.GetNode(),
		Kind:         kindLabel(wire.Kind(k), wire.Scope(k)),
		NodeLevel:    wire.Kind(k) == analysis.KindNode,
		Culprit:      culpritOf(k.GetCulprit()),
		Collateral:   k.GetCollateral(),
		Unknown:      wire.Verdict(k) == analysis.CollateralUnknown,
		ChosenForAdj: k.GetChosenForScoreAdj(),
		Reason:       k.GetReason(),
		Incomplete:   !k.GetComplete(),
		Lines:        kernlog.EscapeLines(k.GetLines()),
		LinesDropped: int(k.GetLinesDropped()),
	}
	out.KernelAnchor = out.Anchor + "-kernel"
	out.KernelURL = out.URL + "/kernel.txt"
	if out.Reason == "" {
		ev := wire.ToAnalysis(e)
		out.Reason = analysis.Explain(&ev)
	}
	if v := k.GetVictims(); len(v) > 0 {
		out.Victim = procOf(v[0])
		out.Group = len(v) - 1
	} else {
		out.Victim = proc{Name: "no process", Who: who{Label: "-"}}
	}
	if tr := k.GetTrigger(); tr != nil {
		if len(k.GetVictims()) > 0 && tr.GetPid() != 0 && tr.GetPid() == k.GetVictims()[0].GetPid() {
			out.SelfTrigger = true
		} else {
			p := procOf(tr)
			out.Trigger = &p
		}
	}
	if k.MemcgUsageBytes != nil || k.MemcgLimitBytes != nil {
		var parts []string
		if k.MemcgUsageBytes != nil {
			parts = append(parts, "usage "+analysis.Bytes(k.GetMemcgUsageBytes()))
		}
		if k.MemcgLimitBytes != nil {
			parts = append(parts, "limit "+analysis.Bytes(k.GetMemcgLimitBytes()))
		}
		out.Memcg = strings.Join(parts, " of ")
		if k.MemswLimitBytes != nil {
			// The memory+swap limit was hit, not the memory limit.
			out.Memcg = "memory " + out.Memcg + "; memory+swap usage " + analysis.Bytes(k.GetMemswUsageBytes()) +
				" of limit " + analysis.Bytes(k.GetMemswLimitBytes()) + " (the limit hit)"
		}
	}
	switch {
	case k.GetEndSeq() > e.GetSeq():
		out.Seqs = fmt.Sprintf("kernel records %d to %d", e.GetSeq(), k.GetEndSeq())
	case e.GetSeq() >= 0:
		out.Seqs = fmt.Sprintf("kernel record %d", e.GetSeq())
	}
	out.Chart = chartOf(k)
	return out
}

// maxBars bounds a chart.
const maxBars = 8

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// limitsOf says what Kubernetes asked for a workload's memory: from the
// pod spec when the agent read it, else as far as the runtime told the
// agent. Kubelet never passes memory requests to the runtime, so then
// they are known only through the QoS class: BestEffort has none,
// Guaranteed's equal its limits.
func limitsOf(qos string, r *pb.Resources) string {
	if r.GetSpecRead() {
		// From the pod spec: 0 is "not set".
		req, lim := "no request", "no limit"
		if r.GetMemoryRequestBytes() > 0 {
			req = "request " + analysis.Bytes(r.GetMemoryRequestBytes())
		}
		if r.GetMemoryLimitBytes() > 0 {
			lim = "limit " + analysis.Bytes(r.GetMemoryLimitBytes())
		}
		return req + " · " + lim
	}
	if qos == "BestEffort" {
		return "no request, no limit (BestEffort)"
	}
	limit := int64(-1) // unknown
	switch {
	case r.GetMemoryLimitBytes() > 0:
		limit = r.GetMemoryLimitBytes()
	case r.GetCgroupRead() && r.GetMemoryMaxBytes() > 0:
		limit = r.GetMemoryMaxBytes()
	case r.GetCgroupRead() && r.GetMemoryMaxBytes() == 0:
		limit = 0
	}
	var parts []string
	switch {
	case r.GetMemoryRequestBytes() > 0:
		parts = append(parts, "request "+analysis.Bytes(r.GetMemoryRequestBytes()))
	case qos == "Guaranteed" && limit > 0:
		parts = append(parts, "request "+analysis.Bytes(limit)+" (= limit, Guaranteed)")
	case qos != "":
		parts = append(parts, "request not reported by the runtime")
	}
	switch {
	case limit > 0:
		parts = append(parts, "limit "+analysis.Bytes(limit))
	case limit == 0:
		parts = append(parts, "no limit")
	}
	return strings.Join(parts, " · ")
}

// cgroupFigures are what the agent read from the cgroup's files: after
// the kill, since it reads them when the report is complete.
func cgroupFigures(r *pb.Resources) string {
	if !r.GetCgroupRead() {
		return ""
	}
	var parts []string
	if r.GetMemoryPeakBytes() > 0 {
		parts = append(parts, "peak "+analysis.Bytes(r.GetMemoryPeakBytes()))
	}
	if r.GetMemoryCurrentBytes() >= 0 {
		parts = append(parts, "after the kill "+analysis.Bytes(r.GetMemoryCurrentBytes()))
	}
	if len(parts) == 0 {
		return ""
	}
	return "cgroup: " + strings.Join(parts, ", ")
}

// podRoles says what the pod named key (UID or name, in namespace when
// given) was in a kill: victim, trigger, culprit.
func podRoles(e *pb.Event, key, namespace string) []string {
	match := func(w *pb.Workload) bool {
		if w == nil || (namespace != "" && w.GetNamespace() != namespace) {
			return false
		}
		return w.GetPodUid() == key || w.GetPodName() == key
	}
	k := e.GetOom()
	var roles []string
	for _, v := range k.GetVictims() {
		if match(v.GetWorkload()) {
			roles = append(roles, roleVictim)
			break
		}
	}
	if match(k.GetTrigger().GetWorkload()) {
		roles = append(roles, roleTrigger)
	}
	if match(k.GetCulprit().GetWorkload()) {
		roles = append(roles, roleCulprit)
	}
	return roles
}
