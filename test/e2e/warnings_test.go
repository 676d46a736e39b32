package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// checkWarnings asserts a warnings scenario (issue 17): the warnings its
// first kill names (kinds, role, lead, IDs of stored warnings), and the
// pods that must have raised none. It logs the lead times as
// "lead time forecast=31s near-limit=25s" and the kill's `oomctl explain`.
func checkWarnings(t *testing.T, want scenario.WarnExpect, res *vm.Result) {
	t.Helper()
	warnings := readEvents(t, res, "warnings.json")
	stored := map[string]*pb.MemoryWarning{}
	for _, e := range warnings {
		w := e.GetWarning()
		if w == nil {
			t.Errorf("oomctl warnings listed a non-warning event %s", e.GetId())
			continue
		}
		stored[e.GetId()] = w
		t.Logf("warning %s: %s %s on %q (pod %s), since %s: %s", e.GetId(), vocab.WarningKind(w.GetWarningKind()),
			w.GetState(), w.GetWorkload().GetCgroup(), w.GetWorkload().GetPodUid(),
			w.GetSince().AsTime().Format("15:04:05"), w.GetSummary())
	}
	t.Logf("%d warnings stored (sample interval %s)", len(stored), scenario.WarnSampleInterval)

	for _, uid := range want.QuietPods {
		n := 0
		for id, w := range stored {
			if w.GetWorkload().GetPodUid() == uid {
				n++
				t.Errorf("false alarm for pod %s: %s %s", uid, id, w.GetSummary())
			}
		}
		t.Logf("false alarms for pod %s: %d", uid, n)
	}
	if len(want.QuietPods) > 0 {
		checkQuietShape(t, res)
		if b, err := res.File("mounts.txt"); err != nil || !strings.HasPrefix(string(b), "/dev/nvme0n1 /mnt ") {
			t.Errorf("the page cache's file is not on the guest's disk: mounts %q, %v", b, err)
		} else {
			t.Logf("page cache filesystem: %s", strings.TrimSpace(string(b)))
		}
	}

	kinds := slices.Clone(want.Preceding)
	if want.PressureIfPSI {
		psi, err := res.File("psi.txt")
		switch {
		case err != nil:
			t.Errorf("psi.txt: %v", err)
		case strings.HasPrefix(string(psi), "absent"):
			t.Logf("the guest kernel has no PSI (/proc/pressure/memory absent): node pressure not asserted")
		default:
			for _, name := range []string{"psi.before", "psi.kill", "psi.txt"} {
				if b, err := res.File(name); err == nil {
					t.Logf("guest /proc/pressure/memory (%s): %s", name, strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "; "))
				}
			}
			if b, err := res.File("meminfo.before"); err == nil {
				t.Logf("before the growth: %s", strings.TrimSpace(string(b)))
			}
			kinds = append(kinds, "pressure")
		}
	}
	if len(kinds) == 0 {
		return
	}
	var kill *pb.Event
	for _, e := range readEvents(t, res, "events.json") {
		if eventid.TypeOf(e) == eventid.TypeOOM && (kill == nil || e.GetSeq() < kill.GetSeq()) {
			kill = e
		}
	}
	if kill == nil {
		t.Fatalf("no OOM kill to check warnings against")
	}
	if k := clitest.Flatten(kill).Kind; want.KillKind != "" && k != want.KillKind {
		t.Errorf("first kill's kind %q, want %q", k, want.KillKind)
	}
	var line []string
	for _, kind := range kinds {
		// Every warning of the kind (the container's and its pod's) must
		// have come early enough; the shortest lead is the one reported.
		var matched []*pb.PrecedingWarning
		for _, pw := range kill.GetOom().GetPrecedingWarnings() {
			if vocab.WarningKind(pw.GetWarningKind()) == kind && pw.GetRole() == want.Role {
				matched = append(matched, pw)
			}
		}
		if len(matched) == 0 {
			t.Errorf("the kill %s names no %s warning with role %s; it names: %s", kill.GetId(), kind, want.Role, precedingList(kill))
			continue
		}
		shortest := matched[0].GetLead().AsDuration()
		for _, pw := range matched {
			lead := pw.GetLead().AsDuration()
			shortest = min(shortest, lead)
			if lead < want.MinLead {
				t.Errorf("%s warning %s (%q) opened %v before the kill, want at least %v", kind, pw.GetEventId(), pw.GetCgroup(), lead, want.MinLead)
			}
			w, ok := stored[pw.GetEventId()]
			switch {
			case !ok:
				t.Errorf("the kill names %s warning %s, which the aggregator does not hold", kind, pw.GetEventId())
			case vocab.WarningKind(w.GetWarningKind()) != kind:
				t.Errorf("the kill's %s warning %s is stored as %s", kind, pw.GetEventId(), vocab.WarningKind(w.GetWarningKind()))
			}
		}
		line = append(line, fmt.Sprintf("%s=%.0fs", kind, shortest.Seconds()))
	}
	t.Logf("lead time %s (role %s, kill %s)", strings.Join(line, " "), want.Role, kill.GetId())
	if !want.Explain {
		return
	}
	b, err := res.File("explain.txt")
	if err != nil {
		t.Fatalf("explain.txt: %v", err)
	}
	t.Logf("oomctl explain of the kill:\n%s", b)
	if !strings.Contains(string(b), "Warned ") {
		t.Errorf("oomctl explain does not say the kill was warned of")
	}
}

// readEvents reads one of the guest's `oomctl ... -o json` exports.
func readEvents(t *testing.T, res *vm.Result, name string) []*pb.Event {
	t.Helper()
	raw, err := res.File(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	evs, err := clitest.ReadEvents(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return evs
}

// precedingList says which warnings a kill names, for failure messages.
func precedingList(kill *pb.Event) string {
	var s []string
	for _, pw := range kill.GetOom().GetPrecedingWarnings() {
		s = append(s, fmt.Sprintf("%s/%s lead %v", vocab.WarningKind(pw.GetWarningKind()), pw.GetRole(), pw.GetLead().AsDuration()))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// checkQuietShape asserts that the quiet containers were what they claim
// at the end of the scenario: the steady one at about 80% of its limit,
// the page-cache one near its limit with most of its usage inactive file.
// (A quiet result from containers that never got there would prove
// nothing.)
func checkQuietShape(t *testing.T, res *vm.Result) {
	t.Helper()
	for _, name := range []string{"steady.memory", "cache.memory"} {
		b, err := res.File(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		m := memoryFigures(string(b))
		t.Logf("%s at the end: %s", name, memorySummary(string(b)))
		usage, limit := float64(m["memory.current"]), float64(m["memory.max"])
		if limit == 0 {
			t.Errorf("%s: no limit read", name)
			continue
		}
		switch name {
		case "steady.memory":
			if r := float64(m["anon"]) / limit; r < 0.77 || r > 0.85 {
				t.Errorf("the steady container's anonymous memory is %.0f%% of its limit, want about 80%%", 100*r)
			}
		case "cache.memory":
			if usage < 0.8*limit || float64(m["inactive_file"]) < 0.7*usage {
				t.Errorf("the page-cache container uses %.0f%% of its limit, %.0f%% of it inactive file: want >= 80%%, mostly inactive file",
					100*usage/limit, 100*float64(m["inactive_file"])/usage)
			}
		}
	}
}

// memoryFigures reads "name value" lines of a cgroup's memory files.
func memoryFigures(text string) map[string]int64 {
	m := map[string]int64{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// memorySummary picks the figures of a cgroup's exported memory files that
// say what its usage was made of.
func memorySummary(text string) string {
	var s []string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && slices.Contains([]string{"memory.current", "memory.max", "anon", "file", "active_file", "inactive_file", "max", "oom_kill"}, f[0]) {
			s = append(s, f[0]+"="+f[1])
		}
	}
	return strings.Join(s, " ")
}
