// Package wire converts between the engine's events (package analysis) and
// the protobuf messages the agent sends and the aggregator keeps.
//
// oomwatch has one event model, the engine's Go types, and the proto
// mirrors it one to one: every field of analysis.Event has its field in
// OOMKill, and every word of a closed set (kind, limit scope, collateral
// verdict, culprit source, exit verdict, event type) its enum value. The
// engine stays free of protobuf (oomctl analyze runs it offline, its JSON
// is the golden files' format) and the API gets typed enums; this package
// is the only place the two meet, in both directions (enums.go pairs the
// words with the enums). Writers set an enum and, for readers of earlier
// releases, the string field it supersedes; readers take the enum, and the
// string of an event written before the enum existed.
package wire

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// FromAnalysis wraps an engine event for the wire.
func FromAnalysis(node, bootID string, ev analysis.Event) *pb.Event {
	out := &pb.Event{Node: node, BootId: bootID, Seq: ev.Seq}
	if ev.Time != nil {
		out.Time = timestamppb.New(*ev.Time)
	}
	if ev.UptimeSeconds != nil {
		out.Monotonic = durationpb.New(analysis.SecondsDuration(*ev.UptimeSeconds))
	}
	out.Payload = &pb.Event_Oom{Oom: OOMKill(ev)}
	return out
}

// OOMKill converts the payload of an engine event.
func OOMKill(ev analysis.Event) *pb.OOMKill {
	k := &pb.OOMKill{
		Kind:                  ev.Kind,
		OomKind:               KindToPB(ev.Kind),
		LimitScope:            ev.LimitScope,
		Scope:                 ScopeToPB(ev.LimitScope),
		Constraint:            ev.Constraint,
		OomMemcg:              ev.OOMMemcg,
		Complete:              ev.Complete,
		Collateral:            ev.Collateral,
		ChosenForScoreAdj:     ev.ChosenForScoreAdj,
		Reason:                ev.Reason,
		MemcgUsageBytes:       ev.MemcgUsageBytes,
		MemcgLimitBytes:       ev.MemcgLimitBytes,
		MemswUsageBytes:       ev.MemswUsageBytes,
		MemswLimitBytes:       ev.MemswLimitBytes,
		GroupCgroup:           ev.GroupCgroup,
		EndSeq:                ev.EndSeq,
		Lines:                 ev.Lines,
		LinesDropped:          int32(ev.LinesDropped),
		AttributedBy:          ev.AttributedBy,
		AttributionCandidates: int32(ev.AttributionCandidates),
		CollateralVerdict:     VerdictToPB(ev.CollateralVerdict),
		LimitedResources:      resources(ev.Limited),
		LimitFrom:             ev.LimitFrom,
	}
	for _, v := range ev.Victims {
		k.Victims = append(k.Victims, process(v))
	}
	if ev.Trigger != nil {
		k.Trigger = process(*ev.Trigger)
	}
	for _, p := range ev.TopConsumers {
		k.TopConsumers = append(k.TopConsumers, process(p))
	}
	if c := ev.Culprit; c != nil {
		k.Culprit = &pb.Culprit{Pid: int32(c.PID), Comm: c.Comm, RssBytes: c.RSSBytes, Tasks: int32(c.Tasks),
			Source: c.Source, CulpritSource: SourceToPB(c.Source), RankedBy: c.RankedBy, Workload: Workload(c.Workload)}
	}
	if ev.Node != nil {
		k.NodeMemory = &pb.NodeMemory{MemTotalBytes: ev.Node.MemTotalBytes, MemAvailableBytes: ev.Node.MemAvailableBytes}
	}
	return k
}

func process(p analysis.Process) *pb.Process {
	out := &pb.Process{Pid: int32(p.PID), Comm: p.Comm, RssBytes: p.RSSBytes, GroupMember: p.GroupMember,
		SelectionOnly: p.SelectionOnly, Workload: Workload(p.Workload)}
	if p.UID != nil {
		u := int32(*p.UID)
		out.Uid = &u
	}
	if p.OOMScoreAdj != nil {
		a := int32(*p.OOMScoreAdj)
		out.OomScoreAdj = &a
	}
	return out
}

// Workload converts a workload: a kill's, or a warning's cgroup named as
// kills are.
func Workload(w analysis.Workload) *pb.Workload {
	out := &pb.Workload{
		Cgroup: w.Cgroup, WorkloadKind: w.WorkloadKind, PodUid: w.PodUID, ContainerId: w.ContainerID,
		Runtime: w.Runtime, Qos: w.QoS, Unit: w.Unit, Namespace: w.Namespace, PodName: w.PodName,
		ContainerName: w.ContainerName, Image: w.Image, Labels: w.Labels,
		ContainerResources: resources(w.ContainerResources), PodResources: resources(w.PodResources),
	}
	return out
}

func resources(r *analysis.Resources) *pb.Resources {
	if r == nil {
		return nil
	}
	return &pb.Resources{
		MemoryRequestBytes: r.MemoryRequestBytes, MemoryLimitBytes: r.MemoryLimitBytes,
		MemoryMaxBytes: r.MemoryMaxBytes, MemoryCurrentBytes: r.MemoryCurrentBytes, MemoryPeakBytes: r.MemoryPeakBytes,
		MemoryMinBytes: r.MemoryMinBytes, MemoryLowBytes: r.MemoryLowBytes, EventsOom: r.EventsOOM,
		EventsOomKill: r.EventsOOMKill, EventsOomGroupKill: r.EventsOOMGroupKill, OomGroup: r.OOMGroup,
		PodOverheadBytes: r.PodOverheadBytes, CgroupRead: r.CgroupRead, SpecRead: r.SpecRead,
	}
}

// VerdictToPB converts an analysis collateral verdict.
func VerdictToPB(v string) pb.CollateralVerdict {
	switch v {
	case analysis.CollateralYes:
		return pb.CollateralVerdict_COLLATERAL_VERDICT_YES
	case analysis.CollateralNo:
		return pb.CollateralVerdict_COLLATERAL_VERDICT_NO
	case analysis.CollateralUnknown:
		return pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN
	}
	return pb.CollateralVerdict_COLLATERAL_VERDICT_UNSPECIFIED
}

// verdictFromPB is VerdictToPB reversed; false for UNSPECIFIED (an agent
// before the field) and values outside the enum.
func verdictFromPB(v pb.CollateralVerdict) (string, bool) {
	switch v {
	case pb.CollateralVerdict_COLLATERAL_VERDICT_YES:
		return analysis.CollateralYes, true
	case pb.CollateralVerdict_COLLATERAL_VERDICT_NO:
		return analysis.CollateralNo, true
	case pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN:
		return analysis.CollateralUnknown, true
	}
	return "", false
}

// Verdict returns an OOM kill's collateral verdict (analysis.CollateralYes,
// No or Unknown). An agent before the field sent only the boolean, which it
// set whenever the culprit's key differed from the victim's, placed or not;
// its events are read by today's rule from what they carry: true is yes
// only when both workloads are placed, false is no for a container-scope
// kill or a culprit of the victim's own, unknown when no culprit was named.
func Verdict(k *pb.OOMKill) string {
	if v, ok := verdictFromPB(k.GetCollateralVerdict()); ok {
		return v
	}
	c := k.GetCulprit()
	var victim string
	if v := k.GetVictims(); len(v) > 0 {
		victim = v[0].GetWorkload().GetCgroup()
	}
	switch {
	case Scope(k) == analysis.ScopeContainer:
		return analysis.CollateralNo
	case c == nil:
		return analysis.CollateralUnknown
	case !k.GetCollateral():
		return analysis.CollateralNo
	case victim == "" || c.GetWorkload().GetCgroup() == "":
		return analysis.CollateralUnknown
	}
	return analysis.CollateralYes
}

// ExitVerdict is Verdict for a container exit: its own verdict, or, from
// an agent before the field, its bool (an exit carries no culprit's
// cgroup to judge by).
func ExitVerdict(x *pb.ContainerExit) string {
	if v, ok := verdictFromPB(x.GetCollateralVerdict()); ok {
		return v
	}
	if x.GetCollateral() {
		return analysis.CollateralYes
	}
	return analysis.CollateralNo
}

// ToAnalysis converts a wire OOM kill back to the engine's form, in its
// words (kind "limit", verdict "yes"): for oomctl's tables, and for
// readers of oomctl's JSON that compare words.
func ToAnalysis(e *pb.Event) analysis.Event {
	k := e.GetOom()
	ev := analysis.Event{
		Kind: Kind(k), LimitScope: Scope(k), Constraint: k.GetConstraint(), OOMMemcg: k.GetOomMemcg(),
		Seq: e.GetSeq(), Complete: k.GetComplete(), Collateral: k.GetCollateral(),
		ChosenForScoreAdj: k.GetChosenForScoreAdj(), Reason: k.GetReason(),
		MemcgUsageBytes: k.MemcgUsageBytes, MemcgLimitBytes: k.MemcgLimitBytes, MemswUsageBytes: k.MemswUsageBytes,
		MemswLimitBytes: k.MemswLimitBytes, GroupCgroup: k.GetGroupCgroup(),
		EndSeq: k.GetEndSeq(), Lines: k.GetLines(), LinesDropped: int(k.GetLinesDropped()),
		AttributedBy: k.GetAttributedBy(), AttributionCandidates: int(k.GetAttributionCandidates()),
		CollateralVerdict: Verdict(k), LimitFrom: k.GetLimitFrom(), Limited: fromResources(k.GetLimitedResources()),
	}
	if e.Time != nil {
		t := e.Time.AsTime()
		ev.Time = &t
	}
	if e.Monotonic != nil {
		s := e.Monotonic.AsDuration().Seconds()
		ev.UptimeSeconds = &s
	}
	for _, v := range k.GetVictims() {
		ev.Victims = append(ev.Victims, fromProcess(v))
	}
	if k.Trigger != nil {
		p := fromProcess(k.Trigger)
		ev.Trigger = &p
	}
	for _, p := range k.GetTopConsumers() {
		ev.TopConsumers = append(ev.TopConsumers, fromProcess(p))
	}
	if c := k.Culprit; c != nil {
		ev.Culprit = &analysis.Culprit{PID: int(c.GetPid()), Comm: c.GetComm(), RSSBytes: c.RssBytes,
			Tasks: int(c.GetTasks()), Source: Source(c), RankedBy: c.GetRankedBy(), Workload: fromWorkload(c.GetWorkload())}
	}
	if n := k.NodeMemory; n != nil {
		ev.Node = &analysis.NodeMemory{MemTotalBytes: n.GetMemTotalBytes(), MemAvailableBytes: n.GetMemAvailableBytes()}
	}
	return ev
}

func fromProcess(p *pb.Process) analysis.Process {
	out := analysis.Process{PID: int(p.GetPid()), Comm: p.GetComm(), RSSBytes: p.RssBytes,
		GroupMember: p.GetGroupMember(), SelectionOnly: p.GetSelectionOnly(), Workload: fromWorkload(p.GetWorkload())}
	if p.Uid != nil {
		u := int(*p.Uid)
		out.UID = &u
	}
	if p.OomScoreAdj != nil {
		a := int(*p.OomScoreAdj)
		out.OOMScoreAdj = &a
	}
	return out
}

func fromWorkload(w *pb.Workload) analysis.Workload {
	if w == nil {
		return analysis.Workload{}
	}
	return analysis.Workload{
		Cgroup: w.GetCgroup(), WorkloadKind: w.GetWorkloadKind(), PodUID: w.GetPodUid(),
		ContainerID: w.GetContainerId(), Runtime: w.GetRuntime(), QoS: w.GetQos(), Unit: w.GetUnit(),
		Namespace: w.GetNamespace(), PodName: w.GetPodName(), ContainerName: w.GetContainerName(),
		Image: w.GetImage(), Labels: w.GetLabels(),
		ContainerResources: fromResources(w.GetContainerResources()), PodResources: fromResources(w.GetPodResources()),
	}
}

func fromResources(r *pb.Resources) *analysis.Resources {
	if r == nil {
		return nil
	}
	return &analysis.Resources{
		MemoryRequestBytes: r.GetMemoryRequestBytes(), MemoryLimitBytes: r.GetMemoryLimitBytes(),
		MemoryMaxBytes: r.GetMemoryMaxBytes(), MemoryCurrentBytes: r.GetMemoryCurrentBytes(),
		MemoryPeakBytes: r.GetMemoryPeakBytes(), MemoryMinBytes: r.GetMemoryMinBytes(),
		MemoryLowBytes: r.GetMemoryLowBytes(), EventsOOM: r.GetEventsOom(), EventsOOMKill: r.GetEventsOomKill(),
		EventsOOMGroupKill: r.GetEventsOomGroupKill(), OOMGroup: r.GetOomGroup(),
		PodOverheadBytes: r.GetPodOverheadBytes(), CgroupRead: r.GetCgroupRead(), SpecRead: r.GetSpecRead(),
	}
}

// WatchStartHeader is the response header of Watch that holds the
// aggregator's time (RFC 3339) once the watcher was added: a client that
// loses its watch lists the events stored since then, or since the last
// it received (EventFilter.received_since), when it watches again.
const WatchStartHeader = "oomwatch-watch-start"

// KillLabels returns the labels an OOM kill is counted under in the
// agent's and the aggregator's metrics: kind, scope, the victim's namespace
// and QoS class ("" when unknown).
func KillLabels(k *pb.OOMKill) (kind, scope, namespace, qos string) {
	kind, scope = Kind(k), Scope(k)
	if v := k.GetVictims(); len(v) > 0 {
		w := v[0].GetWorkload()
		namespace, qos = w.GetNamespace(), w.GetQos()
	}
	return
}
