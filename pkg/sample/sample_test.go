package sample

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

const (
	uidBurst = "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0"
	uidGuar  = "f0e1d2c3-b4a5-4697-8877-665544332211"
	uidBE    = "3902af1e-8ce1-42e1-a2a5-dc04f4240c4f"
	idApp    = "4a5f0c2b9d8e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"
	idSide   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	idGuar   = "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff"
	idBE     = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
)

var (
	modes   = []cgroupstat.Mode{cgroupstat.ModeV2, cgroupstat.ModeV1}
	layouts = []struct {
		name  string
		paths func(qos, uid, id string) (pod, ctr string)
		root  string
	}{
		{workload.DriverCgroupfs, cgroupfsPaths, "/kubepods"},
		{workload.DriverSystemd, systemdPaths, "/kubepods.slice"},
	}
	psiSome = "some avg10=12.50 avg60=4.00 avg300=1.00 total=98765\nfull avg10=3.25 avg60=1.00 avg300=0.25 total=4321\n"
)

// node writes a small node: a burstable pod with two containers, a
// guaranteed pod with one, a besteffort pod with one, and the kubepods
// root limited to 12 GiB.
func node(tr *tree, paths func(qos, uid, id string) (string, string), root string) {
	tr.group(root, mem{usage: 6 << 30, inactive: 1 << 30, limit: "12884901888"})
	pod, app := paths("burstable", uidBurst, idApp)
	_, side := paths("burstable", uidBurst, idSide)
	tr.group(pod, mem{usage: 300 << 20, inactive: 20 << 20})
	tr.group(app, mem{usage: 250 << 20, inactive: 10 << 20, limit: "268435456", high: "251658240",
		highEvents: 40, maxEvents: 7, oom: 1, oomKill: 1, psi: psiSome})
	tr.group(side, mem{usage: 50 << 20, inactive: 10 << 20})
	pod, ctr := paths("guaranteed", uidGuar, idGuar)
	tr.group(pod, mem{usage: 100 << 20, inactive: 1 << 20, limit: "134217728"})
	tr.group(ctr, mem{usage: 100 << 20, inactive: 1 << 20, limit: "134217728"})
	pod, ctr = paths("besteffort", uidBE, idBE)
	tr.group(pod, mem{usage: 8 << 20})
	tr.group(ctr, mem{usage: 8 << 20})
	if tr.mode == cgroupstat.ModeV2 {
		// QoS slices have memory files of their own; they are not sampled.
		qos, _ := paths("burstable", uidBurst, "")
		tr.group(qos[:strings.LastIndex(qos, "/")], mem{usage: 300 << 20})
	}
}

func sampleOnce(t testing.TB, cfg Config) (*Sampler, *Snapshot) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := s.Sample(time.Unix(1700000000, 0), &snap); err != nil {
		t.Fatal(err)
	}
	return s, &snap
}

// sampleGroup samples tr and returns the group cg, failing when the round
// counted errors or did not find it.
func sampleGroup(t *testing.T, tr *tree, cg string) (*Snapshot, *Group) {
	t.Helper()
	_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
	g := find(snap, cg)
	if g == nil || snap.Errors != 0 {
		t.Fatalf("group %s: %+v (errors %d: %v)", cg, g, snap.Errors, snap.Err)
	}
	return snap, g
}

func find(snap *Snapshot, cg string) *Group {
	for i := range snap.Groups {
		if snap.Groups[i].Workload.Cgroup == cg {
			return &snap.Groups[i]
		}
	}
	return nil
}

func TestSampleLayouts(t *testing.T) {
	for _, mode := range modes {
		for _, lay := range layouts {
			t.Run(mode.String()+"-"+lay.name, func(t *testing.T) {
				tr := newTree(t, mode)
				node(tr, lay.paths, lay.root)
				_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
				if snap.Errors != 0 || snap.Truncated || snap.Vanished != 0 {
					t.Fatalf("errors %d (%v), truncated %v, vanished %d", snap.Errors, snap.Err, snap.Truncated, snap.Vanished)
				}
				if snap.Mode != mode || !snap.Time.Equal(time.Unix(1700000000, 0)) {
					t.Errorf("mode %v time %v", snap.Mode, snap.Time)
				}
				var want []string
				for _, p := range []struct{ qos, uid string }{{"besteffort", uidBE}, {"burstable", uidBurst}, {"guaranteed", uidGuar}} {
					pod, _ := lay.paths(p.qos, p.uid, "")
					want = append(want, pod)
				}
				if len(snap.Groups) != 7 {
					t.Fatalf("%d groups, want 7: %+v", len(snap.Groups), snap.Groups)
				}
				pods := 0
				for i, g := range snap.Groups {
					if g.Workload.Driver != lay.name {
						t.Errorf("%s: driver %q", g.Workload.Cgroup, g.Workload.Driver)
					}
					switch g.Workload.Kind {
					case workload.KindPod:
						pods++
					case workload.KindContainer:
						// Parents come before their children.
						if i == 0 || !strings.HasPrefix(g.Workload.Cgroup, snap.Groups[i-1].Workload.Cgroup[:strings.LastIndex(snap.Groups[i-1].Workload.Cgroup, "/")]) {
							t.Errorf("container %s not after its pod", g.Workload.Cgroup)
						}
					default:
						t.Errorf("%s: kind %q", g.Workload.Cgroup, g.Workload.Kind)
					}
				}
				if pods != 3 {
					t.Errorf("%d pods, want 3", pods)
				}
				for _, p := range want {
					if find(snap, p) == nil {
						t.Errorf("pod %s not sampled", p)
					}
				}

				_, app := lay.paths("burstable", uidBurst, idApp)
				g := find(snap, app)
				if g == nil {
					t.Fatalf("container %s not sampled", app)
				}
				if g.Workload.PodUID != uidBurst || g.Workload.ContainerID != idApp || g.Workload.QoS != workload.QoSBurstable {
					t.Errorf("workload %+v", g.Workload)
				}
				if g.UsageBytes != 250<<20 || g.LimitBytes != 256<<20 || g.InactiveFileBytes != 10<<20 || g.WorkingSetBytes != 240<<20 {
					t.Errorf("figures %+v", g)
				}
				if mode == cgroupstat.ModeV2 {
					want := FieldUsage | FieldLimit | FieldHigh | FieldInactiveFile | FieldWorkingSet | FieldEvents | FieldPSI
					if g.Have != want || g.HighBytes != 240<<20 {
						t.Errorf("v2 have %b want %b, high %d", g.Have, want, g.HighBytes)
					}
					if g.Events != (cgroupstat.Events{High: 40, Max: 7, OOM: 1, OOMKill: 1}) {
						t.Errorf("events %+v", g.Events)
					}
				} else {
					want := FieldUsage | FieldLimit | FieldInactiveFile | FieldWorkingSet | FieldFailcnt | FieldOOMControl
					if g.Have != want {
						t.Errorf("v1 have %b want %b", g.Have, want)
					}
					if g.Events != (cgroupstat.Events{Max: 7, OOMKill: 1}) {
						t.Errorf("events %+v", g.Events)
					}
				}

				n := snap.Node
				if !n.HaveMemInfo || n.MemTotalBytes != 16384000<<10 || n.MemAvailableBytes != 4096000<<10 {
					t.Errorf("meminfo %+v", n)
				}
				if !n.HavePSI || n.PSI.Some.Avg10 != 2.5 || n.PSI.Full.Total != 65432 {
					t.Errorf("node psi %v %+v", n.HavePSI, n.PSI)
				}
				k := n.Kubepods
				if k.Workload.Cgroup != lay.root || k.Workload.Kind != workload.KindQoS || k.LimitBytes != 12<<30 || k.WorkingSetBytes != 5<<30 {
					t.Errorf("kubepods %+v", k)
				}
			})
		}
	}
}

func TestWorkingSetAndLimits(t *testing.T) {
	tests := []struct {
		name      string
		mode      cgroupstat.Mode
		m         mem
		wantWS    int64
		wantLimit int64
	}{
		{"v2 usage above inactive", cgroupstat.ModeV2, mem{usage: 100, inactive: 30, limit: "1000"}, 70, 1000},
		{"v2 inactive above usage floors at 0", cgroupstat.ModeV2, mem{usage: 10, inactive: 30}, 0, 0},
		{"v2 max is unlimited", cgroupstat.ModeV2, mem{usage: 10, limit: "max"}, 10, 0},
		{"v1 usage above total_inactive_file", cgroupstat.ModeV1, mem{usage: 100, inactive: 30, limit: "4096"}, 70, 4096},
		{"v1 inactive above usage floors at 0", cgroupstat.ModeV1, mem{usage: 10, inactive: 30}, 0, 0},
		{"v1 PAGE_COUNTER_MAX 4K pages is unlimited", cgroupstat.ModeV1, mem{usage: 10, limit: v1Unlimited}, 10, 0},
		{"v1 PAGE_COUNTER_MAX 64K pages is unlimited", cgroupstat.ModeV1, mem{usage: 10, limit: "9223372036854710272"}, 10, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t, tc.mode)
			_, ctr := cgroupfsPaths("burstable", uidBurst, idApp)
			tr.group(ctr, tc.m)
			_, g := sampleGroup(t, tr, ctr)
			if !g.Has(FieldWorkingSet|FieldLimit) || g.WorkingSetBytes != tc.wantWS || g.LimitBytes != tc.wantLimit {
				t.Errorf("have %b working set %d limit %d; want %d, %d", g.Have, g.WorkingSetBytes, g.LimitBytes, tc.wantWS, tc.wantLimit)
			}
		})
	}
}

func TestPSIPresence(t *testing.T) {
	tests := []struct {
		name    string
		mode    cgroupstat.Mode
		psi     string
		nodePSI bool
		want    bool
	}{
		{"v2 with PSI", cgroupstat.ModeV2, psiSome, true, true},
		{"v2 kernel without PSI", cgroupstat.ModeV2, "", false, false},
		{"v1 has no group PSI", cgroupstat.ModeV1, psiSome, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t, tc.mode)
			if !tc.nodePSI {
				if err := os.RemoveAll(tr.proc + "/pressure"); err != nil {
					t.Fatal(err)
				}
			}
			_, ctr := cgroupfsPaths("burstable", uidBurst, idApp)
			tr.group(ctr, mem{usage: 1 << 20, psi: tc.psi})
			snap, g := sampleGroup(t, tr, ctr)
			if g.Has(FieldPSI) != tc.want {
				t.Errorf("Has(FieldPSI) = %v, want %v", g.Has(FieldPSI), tc.want)
			}
			if tc.want && (g.PSI.Some.Avg10 != 12.5 || g.PSI.Full.Avg60 != 1 || g.PSI.Some.Total != 98765) {
				t.Errorf("psi %+v", g.PSI)
			}
			if !tc.want && g.PSI != (cgroupstat.PSI{}) {
				t.Errorf("unknown PSI filled: %+v", g.PSI)
			}
			if snap.Node.HavePSI != tc.nodePSI {
				t.Errorf("node HavePSI = %v, want %v", snap.Node.HavePSI, tc.nodePSI)
			}
		})
	}
}

func TestNodeFigures(t *testing.T) {
	t.Run("no kubepods, no meminfo", func(t *testing.T) {
		tr := newTree(t, cgroupstat.ModeV2)
		if err := os.Remove(tr.proc + "/meminfo"); err != nil {
			t.Fatal(err)
		}
		_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
		if snap.Node.HaveMemInfo || snap.Errors != 1 || snap.Node.Kubepods.Workload.Cgroup != "" || len(snap.Groups) != 0 {
			t.Errorf("snapshot %+v", snap)
		}
	})
	t.Run("malformed node pressure", func(t *testing.T) {
		tr := newTree(t, cgroupstat.ModeV1)
		tr.writeProc("pressure/memory", "some avg10=x\n")
		_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
		if snap.Node.HavePSI || snap.Errors != 1 || !errors.Is(snap.Err, cgroupstat.ErrMalformed) || !snap.Node.HaveMemInfo {
			t.Errorf("snapshot %+v", snap)
		}
	})
	t.Run("kubepods root at another path", func(t *testing.T) {
		tr := newTree(t, cgroupstat.ModeV2)
		tr.group("/kubelet.slice/kubelet-kubepods.slice", mem{usage: 4 << 20, limit: "8388608"})
		_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc, Kubepods: []string{"kubelet.slice/kubelet-kubepods.slice"}})
		if k := snap.Node.Kubepods; k.Workload.Cgroup != "/kubelet.slice/kubelet-kubepods.slice" || k.LimitBytes != 8<<20 {
			t.Errorf("kubepods %+v", k)
		}
	})
	t.Run("no memory controller", func(t *testing.T) {
		if _, err := New(Config{CgroupRoot: t.TempDir()}); !errors.Is(err, ErrNoMemoryController) {
			t.Errorf("New error = %v, want ErrNoMemoryController", err)
		}
	})
}

// TestRemovedMidWalk removes groups while the walk is at them: a container
// listed by its pod but removed before it is opened, and one removed once
// its directory is open. Both are left out and counted, not errors.
func TestRemovedMidWalk(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			tr := newTree(t, mode)
			node(tr, systemdPaths, "/kubepods.slice")
			s, err := New(Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
			if err != nil {
				t.Fatal(err)
			}
			_, app := systemdPaths("burstable", uidBurst, idApp)
			_, side := systemdPaths("burstable", uidBurst, idSide)
			_, guar := systemdPaths("guaranteed", uidGuar, idGuar)
			s.visitHook = func(cg string) {
				var rm string
				switch cg {
				case side:
					rm = app // listed after side, gone before it is opened
				case guar:
					rm = guar // open, its files gone
				default:
					return
				}
				if err := os.RemoveAll(tr.abs(rm)); err != nil {
					t.Fatal(err)
				}
			}
			var snap Snapshot
			if err := s.Sample(time.Now(), &snap); err != nil {
				t.Fatal(err)
			}
			if snap.Errors != 0 || snap.Vanished != 2 || len(snap.Groups) != 5 {
				t.Fatalf("errors %d (%v), vanished %d, %d groups", snap.Errors, snap.Err, snap.Vanished, len(snap.Groups))
			}
			if find(&snap, app) != nil || find(&snap, guar) != nil || find(&snap, side) == nil {
				t.Errorf("groups %+v", snap.Groups)
			}
			// The next round forgets them and reuses the room.
			s.visitHook = nil
			if err := s.Sample(time.Now(), &snap); err != nil {
				t.Fatal(err)
			}
			if snap.Vanished != 0 || len(snap.Groups) != 5 {
				t.Errorf("second round: vanished %d, %d groups", snap.Vanished, len(snap.Groups))
			}
		})
	}
}

// TestMalformedFiles breaks files of one container: each bad file leaves
// its figure unknown and is counted; the group's other figures and the
// other groups are still read.
func TestMalformedFiles(t *testing.T) {
	tests := []struct {
		name    string
		mode    cgroupstat.Mode
		file    string
		content string
		lost    Field
	}{
		{"v2 usage", cgroupstat.ModeV2, "memory.current", "lots\n", FieldUsage | FieldWorkingSet},
		{"v2 limit", cgroupstat.ModeV2, "memory.max", "-\n", FieldLimit},
		{"v2 high", cgroupstat.ModeV2, "memory.high", "", FieldHigh},
		{"v2 stat line", cgroupstat.ModeV2, "memory.stat", "anon 1\ninactive_file x\n", FieldInactiveFile | FieldWorkingSet},
		{"v2 stat without inactive_file", cgroupstat.ModeV2, "memory.stat", "anon 1\n", FieldInactiveFile | FieldWorkingSet},
		{"v2 events", cgroupstat.ModeV2, "memory.events", "oom_kill one\n", FieldEvents},
		{"v2 pressure", cgroupstat.ModeV2, "memory.pressure", "some\n", FieldPSI},
		{"v2 huge file", cgroupstat.ModeV2, "memory.stat", strings.Repeat("anon 1\n", 20000), FieldInactiveFile | FieldWorkingSet},
		{"v1 usage", cgroupstat.ModeV1, "memory.usage_in_bytes", "\n", FieldUsage | FieldWorkingSet},
		{"v1 failcnt", cgroupstat.ModeV1, "memory.failcnt", "1 2\n", FieldFailcnt},
		{"v1 oom_control", cgroupstat.ModeV1, "memory.oom_control", "under_oom 1\n", FieldOOMControl},
		{"v1 stat", cgroupstat.ModeV1, "memory.stat", "cache 1\n", FieldInactiveFile | FieldWorkingSet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t, tc.mode)
			node(tr, cgroupfsPaths, "/kubepods")
			_, app := cgroupfsPaths("burstable", uidBurst, idApp)
			tr.write(tr.dir(app)+"/"+tc.file, tc.content)
			_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
			if snap.Errors != 1 || !errors.Is(snap.Err, cgroupstat.ErrMalformed) {
				t.Fatalf("errors %d, first %v; want 1 malformed", snap.Errors, snap.Err)
			}
			if len(snap.Groups) != 7 {
				t.Fatalf("%d groups, want 7", len(snap.Groups))
			}
			g := find(snap, app)
			all := FieldUsage | FieldLimit | FieldInactiveFile | FieldWorkingSet | FieldFailcnt | FieldOOMControl
			if tc.mode == cgroupstat.ModeV2 {
				all = FieldUsage | FieldLimit | FieldHigh | FieldInactiveFile | FieldWorkingSet | FieldEvents | FieldPSI
			}
			if g.Have != all&^tc.lost {
				t.Errorf("have %b, want %b", g.Have, all&^tc.lost)
			}
			for _, other := range snap.Groups {
				if other.Workload.Cgroup != app && !other.Has(FieldUsage|FieldWorkingSet|FieldLimit) {
					t.Errorf("%s lost figures: %b", other.Workload.Cgroup, other.Have)
				}
			}
		})
	}
}

func TestMaxGroups(t *testing.T) {
	tr := newTree(t, cgroupstat.ModeV2)
	node(tr, cgroupfsPaths, "/kubepods")
	tests := []struct {
		max       int
		visited   int
		groups    int
		truncated bool
	}{
		{1, 1, 0, true},
		{4, 4, 2, true},    // kubepods, besteffort, its pod and container
		{10, 10, 7, false}, // kubepods, 2 QoS, 3 pods, 4 containers
		{0, 10, 7, false},
	}
	for _, tc := range tests {
		_, snap := sampleOnce(t, Config{CgroupRoot: tr.root, ProcRoot: tr.proc, MaxGroups: tc.max})
		if snap.Visited != tc.visited || len(snap.Groups) != tc.groups || snap.Truncated != tc.truncated {
			t.Errorf("MaxGroups %d: visited %d, %d groups, truncated %v; want %d, %d, %v",
				tc.max, snap.Visited, len(snap.Groups), snap.Truncated, tc.visited, tc.groups, tc.truncated)
		}
	}
}
