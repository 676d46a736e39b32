package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/oom"
)

// awkward makes reports whose judging has every hard case at once: many
// workloads (containers of multi-container pods, pod cgroups, cgroupfs and
// systemd paths, system services, the root cgroup, bare runtimes), tasks
// whose cgroup is not known, sizes that tie, PIDs printed twice or out of
// order, victims inside and outside the dump, group kills, limit kills of
// every scope and reports without a task dump. It is deterministic.
type awkward struct {
	rng     *rand.Rand
	cgroups []string
	seq     int64
	mono    time.Duration
	// rising makes the dump's PIDs rise, each printed once, as they
	// mostly do.
	rising bool
}

func newAwkward(seed uint64) *awkward {
	g := &awkward{rng: rand.New(rand.NewPCG(seed, 0x6a756467)), seq: 1, mono: 100 * time.Second}
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[g.rng.IntN(16)]
		}
		return string(b)
	}
	for p := 0; p < 40; p++ {
		uid := hex(8) + "_" + hex(4) + "_4" + hex(3) + "_a" + hex(3) + "_" + hex(12)
		qos := [...]string{"burstable", "besteffort", ""}[p%3]
		pod := "/kubepods.slice/kubepods-" + qos + ".slice/kubepods-" + qos + "-pod" + uid + ".slice"
		if qos == "" {
			pod = "/kubepods.slice/kubepods-pod" + uid + ".slice"
		}
		g.cgroups = append(g.cgroups, pod)
		for c := 0; c <= p%4; c++ {
			g.cgroups = append(g.cgroups, pod+"/cri-containerd-"+hex(64)+".scope")
		}
		if p%7 == 0 {
			dashed := uid[:8] + "-" + uid[9:13] + "-" + uid[14:18] + "-" + uid[19:23] + "-" + uid[24:]
			g.cgroups = append(g.cgroups, "/kubepods/besteffort/pod"+dashed+"/"+hex(64))
		}
	}
	g.cgroups = append(g.cgroups, "/", "/system.slice/containerd.service", "/system.slice/kubelet.service",
		"/user.slice/user-1000.slice/session-3.scope", "/docker/"+hex(64), "/kubepods.slice/kubepods-burstable.slice")
	return g
}

// cgroupOf is where the reader would place pid: "" for about a third.
func (g *awkward) cgroupOf(pid int) string {
	h := uint64(pid) * 0x9e3779b97f4a7c15
	if h>>61 < 3 {
		return ""
	}
	return g.cgroups[(h>>20)%uint64(len(g.cgroups))]
}

var awkwardComms = [...]string{"java", "pause", "python3", "sh", "envoy", "redis-server"}

// report returns the next report, of n dump rows (none when n is 0).
func (g *awkward) report(n int) *oom.Report {
	r := g.rng
	g.mono += time.Duration(1+r.IntN(20)) * time.Second
	rep := &oom.Report{Seq: g.seq, Mono: g.mono, HasMono: true, Complete: r.IntN(5) != 0, PageSize: 4096,
		HasTaskDump: n > 0}
	g.seq += int64(n + 30)
	rep.EndSeq = g.seq - 1
	pid := 1000 + r.IntN(1000)
	for i := 0; i < n; i++ {
		switch k := r.IntN(100); {
		case g.rising:
			pid += 1 + r.IntN(30)
		case k < 3 && i > 0:
			pid = rep.Tasks[r.IntN(i)].PID // printed twice
		case k < 5:
			pid = 300 + r.IntN(700) // out of order
		default:
			pid += 1 + r.IntN(30)
		}
		rss := int64(r.IntN(6)) * 100 // ties
		if r.IntN(50) == 0 {
			rss = int64(r.IntN(100000))
		}
		rep.Tasks = append(rep.Tasks, oom.Task{PID: pid, Comm: awkwardComms[r.IntN(len(awkwardComms))], UID: r.IntN(2),
			RSSPages: rss, RSSBytes: rss * 4096, OOMScoreAdj: -1000 + r.IntN(2001), HasUID: true, HasRSS: true,
			HasAdj: r.IntN(10) != 0})
	}
	// The victim: a dump row, or a process the dump does not show.
	var v oom.Victim
	if n > 0 && r.IntN(4) != 0 {
		v.Task = rep.Tasks[r.IntN(n)]
	} else {
		v.Task = oom.Task{PID: 50000 + r.IntN(1000), Comm: "victim", RSSBytes: int64(r.IntN(4)) * 409600, HasRSS: r.IntN(5) != 0,
			OOMScoreAdj: r.IntN(1001), HasAdj: true}
	}
	if r.IntN(3) != 0 {
		v.Cgroup = g.cgroups[r.IntN(len(g.cgroups))]
	}
	v.Seq, v.Mono, v.HasMono = rep.EndSeq, g.mono, true
	switch k := r.IntN(4); {
	case k == 0 && v.Cgroup != "":
		// A limit kill of the victim's own cgroup or its parent.
		memcg := v.Cgroup
		if r.IntN(2) == 0 {
			memcg = filepath.Dir(memcg)
		}
		rep.Summary = &oom.Summary{Constraint: "CONSTRAINT_MEMCG", OOMMemcg: memcg, TaskMemcg: v.Cgroup, PID: v.PID}
		v.Message = "Memory cgroup out of memory"
		rep.HasMemcgUsage, rep.MemcgUsageKB, rep.MemcgLimitKB = true, 1000, 1000
	case k == 1:
		// A storm's bare kill line: a limit kill whose limit is not named.
		v.Message = "Memory cgroup out of memory"
	default:
		rep.Summary = &oom.Summary{Constraint: "CONSTRAINT_NONE", GlobalOOM: true, TaskMemcg: v.Cgroup, PID: v.PID}
		v.Message = "Out of memory"
	}
	rep.Victims = append(rep.Victims, v)
	if r.IntN(5) == 0 {
		// memory.oom.group: the victim again, then members, some in the dump.
		rep.GroupCgroup = v.Cgroup
		again := v
		again.GroupMember = true
		rep.Victims = append(rep.Victims, again)
		for m := 0; m < 1+r.IntN(3); m++ {
			gm := oom.Victim{Message: v.Message, Cgroup: v.Cgroup, GroupMember: true, Seq: v.Seq, Mono: v.Mono, HasMono: true}
			if n > 0 && r.IntN(2) == 0 {
				gm.Task = rep.Tasks[r.IntN(n)]
			} else {
				gm.Task = oom.Task{PID: 60000 + r.IntN(1000), Comm: "member", RSSBytes: int64(r.IntN(4)) * 409600, HasRSS: true}
			}
			rep.Victims = append(rep.Victims, gm)
		}
	}
	if r.IntN(4) != 0 {
		t := &oom.Trigger{Comm: "java", PID: 70000 + r.IntN(100), OOMScoreAdj: r.IntN(1000), HasAdj: true}
		if n > 0 && r.IntN(2) == 0 {
			t.PID, t.Comm = rep.Tasks[r.IntN(n)].PID, rep.Tasks[0].Comm
		}
		rep.Trigger = t
	}
	return rep
}

// awkwardRequests requests memory for some pods and containers.
type awkwardRequests struct{}

func (awkwardRequests) MemoryRequest(podUID, containerID string) (int64, bool) {
	h := 0
	for i := 0; i < len(podUID); i++ {
		h = h*31 + int(podUID[i])
	}
	for i := 0; i < len(containerID); i++ {
		h = h*31 + int(containerID[i])
	}
	if h&3 == 0 {
		return 0, false
	}
	return int64(h&0xff) * 4096 * 10, true
}

// TestJudgeAwkwardReports judges streams of awkward reports, of up to
// 10,000 tasks, and compares their events with the golden file written
// when judging was first made cheaper per task: they must not change.
// The events' raw lines come from the Assembler and are none here.
func TestJudgeAwkwardReports(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct {
		sizes    []int
		requests bool
		rising   bool
	}{
		{sizes: []int{10000, 0, 10000, 3, 0}, rising: true},
		{sizes: []int{10000, 10000, 0}, requests: true, rising: true},
		{sizes: []int{1, 2, 5, 6, 0, 7, 40, 0, 200, 0}, rising: true},
		{sizes: []int{2000, 0, 0, 1, 3000}, requests: true, rising: true},
		{sizes: []int{10000, 0, 10000, 3, 0}},
		{sizes: []int{10000, 10000, 0}, requests: true},
		{sizes: []int{1, 2, 5, 6, 0, 7, 40, 0, 200, 0}},
		{sizes: []int{1, 2, 5, 6, 0, 7, 40, 0, 200, 0}, requests: true},
		{sizes: []int{2000, 0, 0, 1, 3000}},
		{sizes: []int{2000, 0, 0, 1, 3000}, requests: true},
	} {
		for seed := uint64(1); seed <= 4; seed++ {
			g := newAwkward(seed)
			g.rising = tc.rising
			opts := StreamOptions{Hold: 30 * time.Second, MaxHeld: 3, Cgroups: func(_ *oom.Report, pids []int) map[int]string {
				out := map[int]string{}
				for _, pid := range pids {
					if cg := g.cgroupOf(pid); cg != "" {
						out[pid] = cg
					}
				}
				return out
			}}
			if tc.requests {
				opts.Requests = awkwardRequests{}
			}
			fmt.Fprintf(&buf, "# sizes %v, requests %v, rising %v, seed %d\n", tc.sizes, tc.requests, tc.rising, seed)
			s := NewStream(opts, func(e Event) {
				b, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				buf.Write(b)
				buf.WriteByte('\n')
			})
			for _, n := range tc.sizes {
				s.Add(g.report(n))
			}
			s.Flush()
		}
	}
	checkGolden(t, filepath.Join("testdata", "judge-awkward.golden.jsonl"), buf.Bytes())
}

// BenchmarkJudgeNodeReport10k judges one node-level report of 10,000
// tasks as the agent's Stream does (learn, judge, remember), with the
// tasks' cgroups unknown (a report read from the backlog at the agent's
// start, as the bench's live row reads it) and with every one known, from
// a few hundred workloads.
func BenchmarkJudgeNodeReport10k(b *testing.B) {
	g := newAwkward(7)
	rep := g.report(10000)
	rep.Victims = rep.Victims[:1]
	for _, known := range []bool{false, true} {
		b.Run("cgroups known "+strconv.FormatBool(known), func(b *testing.B) {
			cgroups := map[int]string{}
			if known {
				for _, t := range rep.Tasks {
					cgroups[t.PID] = g.cgroups[t.PID%len(g.cgroups)]
				}
			}
			opts := StreamOptions{Cgroups: func(*oom.Report, []int) map[int]string { return cgroups }}
			events := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := NewStream(opts, func(Event) { events++ })
				s.Add(rep)
				s.Flush()
			}
			if events != b.N {
				b.Fatalf("%d events for %d reports", events, b.N)
			}
		})
	}
}

// TestCulpritUnitAsBefore compares culpritUnit with the way it summed
// units before it was made cheaper per task (a key string and a map entry
// per unit, refCulpritUnit), on many small holder lists full of ties:
// PIDs rising or not, printed twice, cgroups known or not.
func TestCulpritUnitAsBefore(t *testing.T) {
	g := newAwkward(3)
	cgroups := append([]string{"", "", ""}, g.cgroups[:12]...)
	rng := rand.New(rand.NewPCG(5, 6))
	for round := 0; round < 20000; round++ {
		n := rng.IntN(12)
		var hs []Holder
		pid := 100
		rising := rng.IntN(2) == 0
		for i := 0; i < n; i++ {
			switch {
			case !rising && i > 0 && rng.IntN(4) == 0:
				pid = hs[rng.IntN(i)].PID
			case !rising && rng.IntN(5) == 0:
				pid = 1 + rng.IntN(100)
			default:
				pid += 1 + rng.IntN(3)
			}
			cg := cgroups[rng.IntN(len(cgroups))]
			for _, h := range hs {
				if h.PID == pid && rng.IntN(3) != 0 {
					cg = h.Cgroup // mostly one cgroup per PID
				}
			}
			hs = append(hs, Holder{PID: pid, Comm: fmt.Sprint("c", i), Cgroup: cg, RSSBytes: int64(rng.IntN(4)) << 20})
		}
		scope := [...]string{"", ScopePod, ScopeContainer, ScopeOther}[rng.IntN(4)]
		victim := Holder{PID: 50 + rng.IntN(100), Cgroup: cgroups[rng.IntN(len(cgroups))]}
		if n > 0 && rng.IntN(3) != 0 {
			victim = hs[rng.IntN(n)]
		}
		victimKey := unitKey(victim, scope)
		var reqs Requests
		if rng.IntN(2) == 0 {
			reqs = awkwardRequests{}
		}
		got, gotOK, gotBy := culpritUnit(hs, scope, victimKey, reqs)
		want, wantOK, wantBy := refCulpritUnit(hs, scope, victimKey, reqs)
		if !reflect.DeepEqual(got, want) || gotOK != wantOK || gotBy != wantBy {
			t.Fatalf("round %d: holders %+v, scope %q, victim %q:\ngot  %+v %v %v\nwant %+v %v %v",
				round, hs, scope, victimKey, got, gotOK, gotBy, want, wantOK, wantBy)
		}
		if u, ok := largest(hs, scope); ok != wantOK || (ok && reqs == nil && !reflect.DeepEqual(u, want)) {
			t.Fatalf("round %d: largest %+v %v, want %+v %v", round, u, ok, want, wantOK)
		}
	}
}

// refCulpritUnit is culpritUnit as it was (64c8630).
func refCulpritUnit(hs []Holder, scope, victimKey string, reqs Requests) (unit, bool, bool) {
	units := map[string]*unit{}
	var order []string
	for _, h := range hs {
		k := unitKey(h, scope)
		u := units[k]
		if u == nil {
			u = &unit{key: k, workload: WorkloadOf(h.Cgroup)}
			units[k] = u
			order = append(order, k)
		}
		u.rss += h.RSSBytes
		u.tasks++
		if h.RSSBytes > u.top.RSSBytes || u.tasks == 1 {
			u.top, u.workload = h, WorkloadOf(h.Cgroup)
		}
	}
	var best *unit
	for _, k := range order {
		if u := units[k]; best == nil || u.rss > best.rss {
			best = u
		}
	}
	if best == nil {
		return unit{}, false, false
	}
	if reqs == nil {
		return *best, true, false
	}
	var victimRSS int64
	if v := units[victimKey]; v != nil {
		victimRSS = v.rss
	}
	var over *unit
	var overBy int64
	larger := false
	for _, k := range order {
		u := units[k]
		if k == victimKey || u.rss <= victimRSS {
			continue
		}
		larger = true
		req, known := request(u, reqs)
		if !known {
			continue
		}
		if by := u.rss - req; by > 0 && (over == nil || by > overBy) {
			over, overBy = u, by
		}
	}
	switch {
	case !larger:
		if v := units[victimKey]; v != nil {
			return *v, true, false
		}
	case over != nil && over.key != best.key:
		return *over, true, true
	}
	return *best, true, false
}

// TestLargestHoldersAsBefore compares the holders remember keeps with
// those it kept when it sorted copies of them (a selection sort with
// swaps, 64c8630), on reports full of equal sizes, small and large.
func TestLargestHoldersAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for round := 0; round < 20000; round++ {
		n := rng.IntN(12)
		if round%100 == 0 {
			n = 200 + rng.IntN(200)
		}
		r := &oom.Report{}
		for i := 0; i < n; i++ {
			r.Tasks = append(r.Tasks, oom.Task{PID: 100 + i, RSSBytes: int64(rng.IntN(1 + rng.IntN(6)))})
		}
		for i := 0; i < rng.IntN(3); i++ {
			r.Victims = append(r.Victims, oom.Victim{Task: oom.Task{PID: 1000 + i, RSSBytes: int64(rng.IntN(6)), HasRSS: true}})
		}
		cg := func(int, string) string { return "" }
		hs := holders(r, cg)
		var want []int
		for i := 0; i < len(hs) && i < TopConsumers; i++ {
			m := i
			for j := i + 1; j < len(hs); j++ {
				if hs[j].RSSBytes > hs[m].RSSBytes {
					m = j
				}
			}
			hs[i], hs[m] = hs[m], hs[i]
			want = append(want, hs[i].PID)
		}
		var got []int
		l := newReportHolders(r, cg)
		for _, i := range largestHolders(l, nil) {
			got = append(got, l.At(i).PID)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: kept %v, want %v", round, got, want)
		}
	}
}

// TestVictimUnit checks that victimUnit tells holders as their unit keys
// do, for victims of known and unknown cgroups.
func TestVictimUnit(t *testing.T) {
	g := newAwkward(4)
	cgroups := append([]string{"", "", ""}, g.cgroups[:20]...)
	rng := rand.New(rand.NewPCG(9, 10))
	h := func() Holder { return Holder{PID: 1 + rng.IntN(8), Cgroup: cgroups[rng.IntN(len(cgroups))]} }
	for round := 0; round < 2000; round++ {
		scope := [...]string{"", ScopePod, ScopeContainer, ScopeOther}[rng.IntN(4)]
		key := unitKey(h(), scope)
		v := newVictimUnit(key, scope)
		for i := 0; i < 20; i++ {
			x := h()
			if got, want := v.has(x), unitKey(x, scope) == key; got != want {
				t.Fatalf("victim %q, scope %q: holder %+v has %v, want %v", key, scope, x, got, want)
			}
		}
	}
}
