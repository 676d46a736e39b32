package vocab

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Bytes formats a size with binary units: "512 B", "24.0 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// warningKinds are the words of the warning kinds, as issue #17 and the
// agent's flags name them.
var warningKinds = map[pb.WarningKind]string{
	pb.WarningKind_WARNING_KIND_NEAR_LIMIT:    "near-limit",
	pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM: "limit-reclaim",
	pb.WarningKind_WARNING_KIND_PRESSURE:      "pressure",
	pb.WarningKind_WARNING_KIND_NODE_LOW:      "node-low",
	pb.WarningKind_WARNING_KIND_FORECAST:      "forecast",
}

// WarningKind is a warning kind's word ("near-limit", ...), "unknown" for
// a value outside the API.
func WarningKind(k pb.WarningKind) string {
	if w, ok := warningKinds[k]; ok {
		return w
	}
	return "unknown"
}

// WarningKindOf is the kind of a word, UNSPECIFIED for an unknown one.
func WarningKindOf(word string) pb.WarningKind {
	for k, w := range warningKinds {
		if w == word {
			return k
		}
	}
	return pb.WarningKind_WARNING_KIND_UNSPECIFIED
}

// Duration is a duration as people say it: "38s", "4m12s", "2h5m".
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Duration(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// Warning is the sentence of a warning: who, what and the figures.
//
//	container api (pod shop/cart-7d9) will reach its 64.0 MiB limit in
//	about 38s: working set 40.1 MiB (63%), growing 1.0 MiB/s
func Warning(m *pb.MemoryWarning) string {
	who := "the node"
	if w := m.GetWorkload(); w.GetCgroup() != "" {
		who = Subject(OfPB(w))
	}
	f := m.GetFigures()
	var s string
	switch m.GetWarningKind() {
	case pb.WarningKind_WARNING_KIND_FORECAST:
		s = fmt.Sprintf("%s will reach its %s limit in about %s: working set %s (%s), growing %s/s",
			who, Bytes(f.GetLimitBytes()), Duration(f.GetTimeLeft().AsDuration()), Bytes(f.GetWorkingSetBytes()),
			percent(f.GetRatio()), Bytes(int64(f.GetGrowthBytesPerSecond())))
	case pb.WarningKind_WARNING_KIND_NEAR_LIMIT:
		s = fmt.Sprintf("%s is near its %s limit: working set %s (%s)", who, Bytes(f.GetLimitBytes()),
			Bytes(f.GetWorkingSetBytes()), percent(f.GetRatio()))
		if r := f.GetGrowthBytesPerSecond(); r > 0 && f.GetTimeLeft() != nil {
			s += fmt.Sprintf(", growing %s/s, about %s left", Bytes(int64(r)), Duration(f.GetTimeLeft().AsDuration()))
		}
	case pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM:
		s = fmt.Sprintf("%s is being reclaimed at its %s limit: usage hit the limit %d more times (%.1f/s) with the working set at %s",
			who, Bytes(f.GetLimitBytes()), f.GetMaxEventsDelta(), f.GetMaxEventsPerSecond(), percent(f.GetRatio()))
	case pb.WarningKind_WARNING_KIND_PRESSURE:
		s = fmt.Sprintf("%s is stalled on memory: all its tasks waited %.1f%% of the last 10 s (PSI full avg10)",
			who, f.GetPsiFullAvg10())
	case pb.WarningKind_WARNING_KIND_NODE_LOW:
		s = fmt.Sprintf("the node is low on memory: %s available of %s", Bytes(f.GetMemAvailableBytes()), Bytes(f.GetMemTotalBytes()))
		if t := f.GetEvictionThresholdBytes(); t > 0 {
			s += fmt.Sprintf(", kubelet evicts below %s", Bytes(t))
		}
	default:
		s = who + ": " + WarningKind(m.GetWarningKind())
	}
	if m.GetState() == pb.WarningState_WARNING_STATE_RESOLVED {
		why := m.GetResolution()
		if why == "" {
			why = "resolved"
		}
		s = "resolved (" + why + "): " + s
	}
	return s
}

// Subject names a workload as the subject of a sentence: "container api
// (pod shop/cart-7d9)", "pod shop/cart-7d9", or Host's words.
func Subject(n Names) string {
	p, c := Pod(n), Container(n)
	switch {
	case p != "" && c != "":
		return c + " (" + p + ")"
	case p != "":
		return p
	}
	return Host(n)
}

// Preceding says which warnings came before a kill: "warned 4m12s before:
// forecast, near-limit 93%", "" when none did.
func Preceding(ws []*pb.PrecedingWarning) string {
	if len(ws) == 0 {
		return ""
	}
	var lead time.Duration
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		lead = max(lead, w.GetLead().AsDuration())
		p := WarningKind(w.GetWarningKind())
		f := w.GetFigures()
		switch w.GetWarningKind() {
		case pb.WarningKind_WARNING_KIND_NEAR_LIMIT, pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM:
			p += " " + percent(f.GetRatio())
		case pb.WarningKind_WARNING_KIND_PRESSURE:
			p += fmt.Sprintf(" %.0f%%", f.GetPsiFullAvg10())
		}
		if w.GetRole() != "" && w.GetRole() != "victim" {
			p += " (" + w.GetRole() + ")"
		}
		parts = append(parts, p)
	}
	return "warned " + Duration(lead) + " before: " + strings.Join(parts, ", ")
}

// WarningState is a warning's state in a table: "open", "stale" (open, but
// its agent has not refreshed it: stopped, or restarted and forgot it),
// "resolved" or "resolved (<why>)".
func WarningState(m *pb.MemoryWarning, stale bool) string {
	switch {
	case m.GetState() == pb.WarningState_WARNING_STATE_RESOLVED:
		if r := m.GetResolution(); r != "" {
			return "resolved (" + r + ")"
		}
		return "resolved"
	case stale:
		return "stale"
	}
	return "open"
}

func percent(r float64) string { return fmt.Sprintf("%.0f%%", r*100) }

// WarningFigures are a warning's figures in a table cell, by kind: "93% of
// 64.0 MiB" (near-limit, limit-reclaim), "38s left at 1.0 MiB/s"
// (forecast), "PSI 23%" (pressure), "180.0 MiB free of 2.0 GiB"
// (node-low); "-" when none apply.
func WarningFigures(k pb.WarningKind, f *pb.WarningFigures) string {
	if f == nil {
		return "-"
	}
	ofLimit := func() string {
		if f.GetLimitBytes() <= 0 {
			return Bytes(f.GetWorkingSetBytes())
		}
		return percent(f.GetRatio()) + " of " + Bytes(f.GetLimitBytes())
	}
	switch k {
	case pb.WarningKind_WARNING_KIND_NEAR_LIMIT:
		return ofLimit()
	case pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM:
		s := ofLimit()
		if n := f.GetMaxEventsDelta(); n > 0 {
			s += fmt.Sprintf(", %d at the limit", n)
		}
		return s
	case pb.WarningKind_WARNING_KIND_FORECAST:
		if f.GetTimeLeft() == nil {
			return ofLimit()
		}
		return fmt.Sprintf("%s left at %s/s", Duration(f.GetTimeLeft().AsDuration()), Bytes(int64(f.GetGrowthBytesPerSecond())))
	case pb.WarningKind_WARNING_KIND_PRESSURE:
		return fmt.Sprintf("PSI %.0f%%", f.GetPsiFullAvg10())
	case pb.WarningKind_WARNING_KIND_NODE_LOW:
		s := Bytes(f.GetMemAvailableBytes()) + " free"
		if t := f.GetMemTotalBytes(); t > 0 {
			s += " of " + Bytes(t)
		}
		return s
	}
	return "-"
}

// PrecedingSentence is the sentence of a warning that preceded a kill, as
// Warning words it, its subject named by who (nil: by its cgroup, or the
// node when it has none).
//
//	container api (pod shop/cart-7d9) will reach its 64.0 MiB limit in
//	about 40s: working set 40.1 MiB (63%), growing 1.0 MiB/s
func PrecedingSentence(w *pb.PrecedingWarning, who *pb.Workload) string {
	if who == nil && w.GetCgroup() != "" {
		who = &pb.Workload{Cgroup: w.GetCgroup()}
	}
	if who != nil && who.GetCgroup() == "" {
		// Warning names a workload only when it has a cgroup.
		c := proto.Clone(who).(*pb.Workload)
		c.Cgroup = w.GetCgroup()
		if c.Cgroup == "" {
			c.Cgroup = "?"
		}
		who = c
	}
	return Warning(&pb.MemoryWarning{WarningKind: w.GetWarningKind(), Workload: who, Figures: w.GetFigures()})
}

// PrecedingWho names the workload a warning of a kill was about, from the
// kill's own workloads: the one with the warning's cgroup, else, for a
// cgroup of the victim's or culprit's pod, that pod; nil when none is
// known (the sentence then names the cgroup, or the node).
func PrecedingWho(o *pb.OOMKill, pw *pb.PrecedingWarning) *pb.Workload {
	cg := pw.GetCgroup()
	if cg == "" {
		return nil
	}
	var byRole *pb.Workload
	var all []*pb.Workload
	for i, v := range o.GetVictims() {
		all = append(all, v.GetWorkload())
		if i == 0 && pw.GetRole() == "victim" {
			byRole = v.GetWorkload()
		}
	}
	all = append(all, o.GetCulprit().GetWorkload(), o.GetTrigger().GetWorkload())
	if pw.GetRole() == "culprit" {
		byRole = o.GetCulprit().GetWorkload()
	}
	// The same cgroup may be named in one place and not another (the
	// enricher names victims and the culprit): the named one wins.
	var found *pb.Workload
	for _, w := range all {
		if w.GetCgroup() == cg && (found == nil || found.GetPodName() == "" && w.GetPodName() != "") {
			found = w
		}
	}
	if found != nil {
		return found
	}
	// A pod's cgroup holds its UID, with "_" for "-" under systemd.
	if uid := byRole.GetPodUid(); uid != "" &&
		(strings.Contains(cg, uid) || strings.Contains(cg, strings.ReplaceAll(uid, "-", "_"))) {
		return &pb.Workload{Cgroup: cg, WorkloadKind: "pod", PodUid: uid, Namespace: byRole.GetNamespace(), PodName: byRole.GetPodName(),
			Qos: byRole.GetQos()}
	}
	return nil
}

// PrecedingState says where a warning was when the kill came: "opened",
// or "opened; resolved 20s before the kill".
func PrecedingState(w *pb.PrecedingWarning, kill time.Time) string {
	if r := w.GetResolvedAt(); r != nil {
		return "opened; resolved " + Duration(kill.Sub(r.AsTime())) + " before the kill"
	}
	return "opened"
}
