package wire

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/warn"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestRoundTrip checks that every engine field survives the wire: the JSON
// of an event read back equals the JSON of the event sent.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{
		"debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg",
		"public-2026-k8s-v2-memcg-oomgroup-and-global.txt",
		"cadvisor-3.13-memcg-v1-memorymonster.txt",
	} {
		f, err := os.Open("../analysis/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var events []analysis.Event
		if _, err := analysis.ReadLog(f, analysis.StreamOptions{}, func(e analysis.Event) { events = append(events, e) }); err != nil {
			t.Fatal(err)
		}
		f.Close()
		for _, ev := range events {
			limit := int64(32 << 20)
			ev.Victims[0].ContainerResources = &analysis.Resources{MemoryLimitBytes: limit, CgroupRead: true, EventsOOMKill: 1}
			ev.Victims[0].Labels = map[string]string{"app": "x"}
			ev.Victims[0].SelectionOnly = true
			su, sl := int64(3<<30), int64(3<<30)
			ev.MemswUsageBytes, ev.MemswLimitBytes = &su, &sl
			ev.Node = &analysis.NodeMemory{MemTotalBytes: 1 << 30, MemAvailableBytes: 1 << 20}
			pe := FromAnalysis("node-a", "boot-1", ev)
			if eventid.TypeOf(pe) != eventid.TypeOOM || pe.Node != "node-a" || pe.BootId != "boot-1" || pe.Seq != ev.Seq {
				t.Fatalf("envelope %v", pe)
			}
			back := ToAnalysis(pe)
			a, _ := json.Marshal(ev)
			b, _ := json.Marshal(back)
			if string(a) != string(b) {
				t.Fatalf("%s: round trip differs\nsent %s\n got %s", name, a, b)
			}
		}
	}
}

// Events of an agent before collateral_verdict carry only the bool; they
// are read by today's rule from what else they carry.
func TestVerdictOfOldAgents(t *testing.T) {
	placed := &pb.Workload{Cgroup: "/kubepods/besteffort/pod1/c1"}
	other := &pb.Workload{Cgroup: "/kubepods/burstable/pod2/c2"}
	for _, tc := range []struct {
		name string
		k    *pb.OOMKill
		want string
	}{
		{"container scope", &pb.OOMKill{LimitScope: "container", Culprit: &pb.Culprit{}}, "no"},
		{"no culprit", &pb.OOMKill{Kind: "node", Victims: []*pb.Process{{Workload: placed}}}, "unknown"},
		{"own workload", &pb.OOMKill{Kind: "node", Victims: []*pb.Process{{Workload: placed}}, Culprit: &pb.Culprit{Workload: placed}}, "no"},
		{"placed culprit", &pb.OOMKill{Kind: "node", Collateral: true, Victims: []*pb.Process{{Workload: placed}}, Culprit: &pb.Culprit{Workload: other}}, "yes"},
		{"unplaced culprit", &pb.OOMKill{Kind: "node", Collateral: true, Victims: []*pb.Process{{Workload: placed}}, Culprit: &pb.Culprit{Pid: 9}}, "unknown"},
		{"unplaced victim", &pb.OOMKill{Kind: "limit", Collateral: true, Victims: []*pb.Process{{Pid: 7}}, Culprit: &pb.Culprit{Workload: other}}, "unknown"},
		{"new agent", &pb.OOMKill{Collateral: false, CollateralVerdict: pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN}, "unknown"},
	} {
		if got := Verdict(tc.k); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A kill's preceding warning carries the figures the warning opened with:
// its lead is from then, and the latest figures are the kill's own story.
func TestPrecedingFiguresAreTheOpening(t *testing.T) {
	since := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	w := warn.Warning{Kind: warn.Forecast, State: warn.Updated, Cgroup: "/kubepods/pod1/c1", Since: since, At: since.Add(28 * time.Second),
		Opening: warn.Figures{WorkingSet: 32 << 20, Limit: 64 << 20, Ratio: 0.5, TimeLeft: 30 * time.Second},
		Figures: warn.Figures{WorkingSet: 63 << 20, Limit: 64 << 20, Ratio: 0.98, TimeLeft: time.Second}}
	got := Preceding("n", "b", []warn.Precursor{{Warning: w, Lead: 30 * time.Second}}, func(warn.Warning) string { return "victim" })
	if len(got) != 1 || got[0].GetFigures().GetWorkingSetBytes() != 32<<20 || got[0].GetLead().AsDuration() != 30*time.Second {
		t.Fatalf("preceding %v: want the opening figures (32 MiB) and a 30 s lead", got)
	}
}

// TestMonotonicToTheMicrosecond: the kernel's stamps are whole
// microseconds, and the wire keeps them so, although the seconds' float
// lies a hair under most of them.
func TestMonotonicToTheMicrosecond(t *testing.T) {
	for _, us := range []int64{517923918, 2170372798, 65267042541, 1, 999999999999, 70667120897701} {
		s := (time.Duration(us) * time.Microsecond).Seconds()
		got := FromAnalysis("n", "b", analysis.Event{UptimeSeconds: &s}).GetMonotonic().AsDuration()
		if got != time.Duration(us)*time.Microsecond {
			t.Errorf("%d µs went out as %v", us, got)
		}
	}
}
