// Package e2e proves the whole chain on a real kernel: each scenario boots
// Debian's cloud kernel in qemu with the agent, the aggregator and oomctl
// inside, builds kubelet-shaped cgroup trees, makes the kernel kill, and
// checks what `oomctl events -o json` reports.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// event is what the test reads of `oomctl events -o json`: the envelope,
// an OOM kill in the engine's words (kind "limit", verdict "yes"), a
// loss's count.
type event = clitest.Event

var (
	buildOnce sync.Once
	bins      map[string]string
	assets    vm.Assets
	setupErr  error
)

// setup builds the static binaries and makes sure qemu and the kernel are
// here (installing them when missing).
func setup(t *testing.T) (vm.Assets, map[string]string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "oomwatch-e2e-bin")
		if err != nil {
			setupErr = err
			return
		}
		bins = map[string]string{}
		for name, pkg := range scenario.Binaries() {
			p, err := vm.BuildStatic(t.Context(), filepath.Join(dir, name), pkg)
			if err != nil {
				setupErr = fmt.Errorf("build %s: %w", name, err)
				return
			}
			bins[name] = p
		}
		assets, setupErr = vm.EnsureAssets(t.Context(), t.Logf)
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return assets, bins
}

// runScenario boots a guest for sc and returns the events it reported.
func runScenario(t *testing.T, sc scenario.Scenario) ([]event, *vm.Result) {
	t.Helper()
	as, bins := setup(t)
	files := map[string]vm.File{}
	for name, p := range bins {
		files["/bin/"+name] = vm.File{HostPath: p}
	}
	mem := sc.MemoryMB
	if mem == 0 {
		mem = 384
	}
	res, err := vm.Run(t.Context(), vm.Config{Assets: as, Files: files, Script: scenario.GuestScript(sc),
		Cmdline: sc.Cmdline, MemoryMB: mem, DiskMB: sc.DiskMB, CPUs: 2, Timeout: 5 * time.Minute})
	art := artifacts(t, sc.Name, res)
	if err != nil {
		t.Fatalf("guest: %v (artifacts in %s)", err, art)
	}
	if res.PowerOffHung {
		t.Logf("the guest finished but did not power off; qemu stopped (console in %s)", art)
	}
	raw, err := res.File("events.json")
	if err != nil {
		t.Fatalf("events.json: %v (artifacts in %s)", err, art)
	}
	evs, err := clitest.ReadEvents(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("bad JSON from oomctl: %v (artifacts in %s)", err, art)
	}
	events := make([]event, len(evs))
	for i, e := range evs {
		events[i] = clitest.Flatten(e)
	}
	// oomctl lists newest first; the scenario reads oldest first.
	sort.SliceStable(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	return events, res
}

// artifacts writes what the guest exported under test/e2e/artifacts for
// review, and returns the folder.
func artifacts(t *testing.T, name string, res *vm.Result) string {
	dir := filepath.Join("artifacts", name)
	if res == nil {
		return dir
	}
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "console.txt"), res.Console, 0o644)
	for _, f := range res.FileNames() {
		if b, err := res.File(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
	}
	return dir
}

var latencies struct {
	sync.Mutex
	d, storm []time.Duration
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenario.All() {
		t.Run(sc.Name, func(t *testing.T) {
			events, res := runScenario(t, sc)
			var ooms []event
			var losses int64
			for _, e := range events {
				switch e.Type {
				case "oom":
					ooms = append(ooms, e)
				case "loss":
					losses += e.Lost
				}
				if e.Node != "e2e-node" {
					t.Errorf("event %s names node %q", e.ID, e.Node)
				}
			}
			if len(ooms) < sc.Events {
				t.Fatalf("%d OOM events, want at least %d", len(ooms), sc.Events)
			}
			noDuplicates(t, ooms)
			checkMetrics(t, res, ooms)
			if sc.Expect.ForgedRecords > 0 {
				checkForged(t, sc, ooms, res)
			}
			recordLatency(t, res, ooms, sc.Expect.Storm)
			if w := sc.Expect.Warnings; w != nil {
				checkWarnings(t, *w, res)
				if sc.Expect.Kind == "" {
					return
				}
			}
			if sc.Expect.Storm {
				checkStorm(t, sc, ooms, losses, res)
				return
			}
			if sc.Expect.EachOwnPod {
				checkEachOwnPod(t, sc, ooms)
				return
			}
			checkFirst(t, sc.Expect, ooms[0])
			checkTable(t, sc.Expect, res)
		})
	}
	latencies.Lock()
	defer latencies.Unlock()
	for _, l := range []struct {
		what string
		d    []time.Duration
	}{{"single kills", latencies.d}, {"OOM storm", latencies.storm}} {
		if len(l.d) == 0 {
			continue
		}
		d := l.d
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		msg := fmt.Sprintf("e2e latency, kernel record read -> event queryable at the aggregator (%s): p50 %v, max %v over %d kills",
			l.what, d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), len(d))
		t.Log(msg)
		fmt.Println(msg)
	}
}

// checkForged asserts that only the real kills reached the aggregator and
// that the agent counted the records userspace forged.
func checkForged(t *testing.T, sc scenario.Scenario, ooms []event, res *vm.Result) {
	t.Helper()
	if len(ooms) != sc.Events {
		for _, e := range ooms {
			for _, v := range e.Victims {
				t.Logf("OOM event %s: victim %s[%d]", e.ID, v.Comm, v.PID)
			}
		}
		t.Errorf("%d OOM events, want exactly %d: a forged record became a kill", len(ooms), sc.Events)
	}
	b, err := res.File("agent.metrics")
	if err != nil {
		t.Fatalf("agent.metrics: %v", err)
	}
	if n := sumMetric(string(b), "oomwatch_kernel_records_forged_total"); n < float64(sc.Expect.ForgedRecords) {
		t.Errorf("oomwatch_kernel_records_forged_total %v, want at least %d", n, sc.Expect.ForgedRecords)
	}
}

func noDuplicates(t *testing.T, ooms []event) {
	t.Helper()
	seen := map[int64]bool{}
	for _, e := range ooms {
		if seen[e.Seq] {
			t.Errorf("event seq %d reported twice", e.Seq)
		}
		seen[e.Seq] = true
	}
}

func checkFirst(t *testing.T, want scenario.Expect, e event) {
	t.Helper()
	if len(e.Victims) < want.MinVictims {
		t.Fatalf("%d victims, want >= %d: %+v", len(e.Victims), want.MinVictims, e)
	}
	v := e.Victims[0]
	eq := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v (reason: %s)", what, got, want, e.Reason)
		}
	}
	eq("kind", e.Kind, want.Kind)
	eq("limit_scope", e.LimitScope, want.Scope)
	if want.OOMMemcg != "" {
		eq("oom_memcg", e.OOMMemcg, want.OOMMemcg)
	}
	eq("victim pod_uid", v.PodUID, want.PodUID)
	eq("victim container_id", v.ContainerID, want.Container)
	eq("victim qos", v.QoS, want.QoS)
	eq("victim runtime", v.Runtime, want.Runtime)
	eq("victim comm", v.Comm, want.VictimComm)
	if want.Unit != "" {
		eq("victim unit", v.Unit, want.Unit)
	}
	eq("collateral", e.Collateral, want.Collateral)
	verdict := want.Verdict
	if verdict == "" {
		verdict = "no"
		if want.Collateral {
			verdict = "yes"
		}
	}
	eq("collateral verdict", e.CollateralVerdict, verdict)
	eq("complete", e.Complete, true)
	if e.Trigger == nil {
		t.Errorf("no trigger")
	} else {
		switch tr := e.Trigger; {
		case tr.PodUID == want.TriggerPodUID:
		case want.TriggerPodUID != "" && tr.PodUID == "" && (tr.Cgroup == "" || tr.Cgroup == e.OOMMemcg):
			// The trigger died before the agent read /proc: a grower the
			// kernel killed milliseconds after its first victim, faster
			// than a loaded TCG guest lets the agent read. The agent then
			// places it where the kernel says it was charging (a limit
			// kill's cgroup), or nowhere; never elsewhere.
			t.Logf("trigger pid %d was gone before the agent read it: placed at %q", tr.PID, tr.Cgroup)
		case want.Kind == "node" && tr.Comm != "hog" && tr.PodUID == "":
			// A node runs out of memory for whichever task asks for a
			// page then: in the guest that may be the aggregator or the
			// agent themselves, not the growing pod (seen in CI: "Triggered
			// by aggregator (pid 112) in the root cgroup"). A hog, the
			// scenario's own tasks, must still be placed in its pod.
			t.Logf("trigger %s[%d] in %q, not the scenario's grower: it asked for memory when the node ran out", tr.Comm, tr.PID, tr.Cgroup)
		default:
			eq("trigger pod_uid", tr.PodUID, want.TriggerPodUID)
		}
		if e.Trigger.PID == 0 {
			t.Errorf("trigger without PID")
		}
	}
	if e.Culprit == nil {
		t.Errorf("no culprit")
	} else {
		eq("culprit pod_uid", e.Culprit.PodUID, want.CulpritPodUID)
		if want.CulpritContainer != "" {
			eq("culprit container_id", e.Culprit.ContainerID, want.CulpritContainer)
		}
	}
	for i, g := range e.Victims[1:] {
		if !g.GroupMember {
			t.Errorf("victim %d is not marked a group member", i+1)
		}
	}
	// Names, requests and limits, from the runtime and the API.
	if want.VictimPod != "" {
		eq("victim pod", v.Namespace+"/"+v.PodName, want.VictimPod)
		eq("victim container name", v.ContainerName, want.VictimContainerName)
		if v.Image == "" {
			t.Errorf("victim has no image")
		}
		if r := v.ContainerResources; r == nil || !r.SpecRead {
			t.Errorf("victim's container resources not from the pod spec: %+v", r)
		} else {
			eq("victim request", r.MemoryRequestBytes, want.VictimRequestMiB<<20)
			eq("victim limit", r.MemoryLimitBytes, want.VictimLimitMiB<<20)
		}
		if r := v.PodResources; r == nil || !r.SpecRead {
			t.Errorf("victim's pod resources not from the pod spec: %+v", r)
		}
	}
	if want.CulpritPod != "" && e.Culprit != nil {
		eq("culprit pod", e.Culprit.Namespace+"/"+e.Culprit.PodName, want.CulpritPod)
		if !strings.Contains(e.Reason, want.CulpritPod) {
			t.Errorf("the reason does not name the culprit %s: %s", want.CulpritPod, e.Reason)
		}
	}
}

// checkTable asserts that `oomctl events` (the table) names pods and
// containers by name.
func checkTable(t *testing.T, want scenario.Expect, res *vm.Result) {
	t.Helper()
	if want.VictimPod == "" {
		return
	}
	txt, err := res.File("events.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(txt), want.VictimPod) {
		t.Errorf("oomctl events does not show %s:\n%s", want.VictimPod, txt)
	}
}

// checkStorm asserts the storm's counts: every kill the kernel still held
// at the end was delivered, once; kills missing from the events are
// accounted for by reported losses.
func checkStorm(t *testing.T, sc scenario.Scenario, ooms []event, lost int64, res *vm.Result) {
	t.Helper()
	kmsg, err := res.File("kmsg")
	if err != nil {
		t.Fatal(err)
	}
	delivered := map[int]bool{}
	for _, e := range ooms {
		for _, v := range e.Victims {
			delivered[v.PID] = true
		}
	}
	// Every kill line still in the kernel's buffer must be among the events.
	inBuffer := 0
	missing := 0
	for _, line := range strings.Split(string(kmsg), "\n") {
		i := strings.Index(line, "Killed process ")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+len("Killed process "):])
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		inBuffer++
		if !delivered[pid] {
			missing++
		}
	}
	kills := -1
	if me, err := res.File("memory.events"); err == nil {
		for _, l := range strings.Split(string(me), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "oom_kill" {
				kills, _ = strconv.Atoi(f[1])
			}
		}
	}
	t.Logf("storm: kernel counted %d kills in the pod; %d OOM events delivered (%d complete); %d kill lines still in the buffer at the end, %d of them missing; %d kernel records reported lost",
		kills, len(ooms), countComplete(ooms), inBuffer, missing, lost)
	if inBuffer == 0 {
		t.Fatalf("no kill line left in the kernel buffer: the storm did not happen")
	}
	if missing != 0 {
		t.Errorf("%d kills still in the kernel buffer were not delivered", missing)
	}
	if kills >= 0 && len(delivered) > kills {
		t.Errorf("%d distinct victims delivered but the kernel killed %d", len(delivered), kills)
	}
	if kills >= 0 && len(delivered) < kills && lost == 0 {
		t.Errorf("%d kills not delivered and no loss reported", kills-len(delivered))
	}
	for _, e := range ooms {
		if e.Kind != "limit" {
			t.Errorf("storm event kind %q, want limit", e.Kind)
		}
	}
	first := ooms[0]
	if first.Complete && first.Victims[0].PodUID != sc.Expect.PodUID {
		t.Errorf("first storm victim pod %q, want %q", first.Victims[0].PodUID, sc.Expect.PodUID)
	}
	checkStormVerdicts(t, sc.Expect, ooms)
	checkStormIncidents(t, sc.Expect, res)
}

// checkStormIncidents asserts what `oomctl incidents` shows of the storm:
// its collateral column is 0 for a storm inside one container, and names
// the other pod as culprit of a storm of collateral kills.
func checkStormIncidents(t *testing.T, want scenario.Expect, res *vm.Result) {
	t.Helper()
	txt, err := res.File("incidents.txt")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(txt), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 7 || f[2] != "limit" {
			continue
		}
		rows++
		switch want.StormVerdict {
		case "no":
			if f[4] != "0" {
				t.Errorf("storm incident shows %s collateral kills: %s", f[4], line)
			}
		case "yes":
			if f[4] == "0" || !strings.Contains(line, want.CulpritPod) {
				t.Errorf("storm incident does not show collateral kills of %s: %s", want.CulpritPod, line)
			}
		}
	}
	if rows == 0 {
		t.Errorf("no limit incident in oomctl incidents:\n%s", txt)
	}
}

// checkStormVerdicts asserts the storm's collateral verdicts: a storm
// inside one container has no collateral victim; a storm whose victims are
// killed for another pod's growth is collateral of that pod, bare
// (rate-limited) kills included.
func checkStormVerdicts(t *testing.T, want scenario.Expect, ooms []event) {
	t.Helper()
	count := map[string]int{}
	inherited := 0
	for _, e := range ooms {
		count[e.CollateralVerdict]++
		if e.LimitFrom == "incident" {
			inherited++
		}
		v := e.Victims[0]
		switch want.StormVerdict {
		case "no":
			if e.CollateralVerdict == "yes" {
				t.Errorf("kill of %s[%d] judged collateral in a storm inside one container: %s", v.Comm, v.PID, e.Reason)
			}
			if v.PodUID == want.PodUID && e.CollateralVerdict != "no" {
				t.Errorf("kill of %s[%d] in the container that hit its own limit judged %q: %s", v.Comm, v.PID, e.CollateralVerdict, e.Reason)
			}
		case "yes":
			if v.PodUID != want.PodUID {
				continue // victim not placed: counted as unknown below
			}
			if e.CollateralVerdict != "yes" {
				t.Errorf("kill of %s[%d] judged %q, want collateral of %s: %s", v.Comm, v.PID, e.CollateralVerdict, want.CulpritPod, e.Reason)
			} else if e.Culprit == nil || e.Culprit.PodUID != want.CulpritPodUID ||
				e.Culprit.Namespace+"/"+e.Culprit.PodName != want.CulpritPod {
				t.Errorf("kill of %s[%d] collateral of %+v, want %s", v.Comm, v.PID, e.Culprit, want.CulpritPod)
			}
		}
	}
	t.Logf("storm verdicts: %d kills: %d collateral, %d not, %d unknown; %d took their limit from the incident",
		len(ooms), count["yes"], count["no"], count["unknown"], inherited)
	if want.StormVerdict == "yes" && count["yes"] == 0 {
		t.Errorf("no kill of the storm judged collateral")
	}
	if want.StormVerdict == "no" && count["no"] < len(ooms)/2 {
		t.Errorf("only %d of %d storm kills judged not collateral", count["no"], len(ooms))
	}
}

func countComplete(ooms []event) int {
	n := 0
	for _, e := range ooms {
		if e.Complete {
			n++
		}
	}
	return n
}

// recordLatency matches the agent's log line for each kill (when it read
// the report's last record) with the time the aggregator stored it.
func recordLatency(t *testing.T, res *vm.Result, ooms []event, storm bool) {
	logb, err := res.File("agent.log")
	if err != nil {
		t.Errorf("agent.log: %v", err)
		return
	}
	read := map[int64]time.Time{}
	for _, line := range strings.Split(string(logb), "\n") {
		var l struct {
			Seq  *int64 `json:"seq"`
			Read string `json:"last_record_read"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Seq == nil || l.Read == "" {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, l.Read); err == nil {
			read[*l.Seq] = at
		}
	}
	latencies.Lock()
	defer latencies.Unlock()
	for _, e := range ooms {
		if at, ok := read[e.Seq]; ok && !e.Received.IsZero() {
			if storm {
				latencies.storm = append(latencies.storm, e.Received.Sub(at))
			} else {
				latencies.d = append(latencies.d, e.Received.Sub(at))
			}
		}
	}
}

// checkMetrics scrapes what the agent and the aggregator served in the
// guest: their OOM kill counters must equal the kills delivered, and the
// collateral counters the collateral ones.
func checkMetrics(t *testing.T, res *vm.Result, ooms []event) {
	t.Helper()
	var collateral float64
	for _, e := range ooms {
		if e.Collateral {
			collateral++
		}
	}
	for _, name := range []string{"agent.metrics", "aggregator.metrics"} {
		b, err := res.File(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		kills := sumMetric(string(b), "oomwatch_oom_kills_total")
		coll := sumMetric(string(b), "oomwatch_collateral_kills_total")
		if kills != float64(len(ooms)) || coll != collateral {
			t.Errorf("%s: oomwatch_oom_kills_total %v (want %d), oomwatch_collateral_kills_total %v (want %v)",
				name, kills, len(ooms), coll, collateral)
		}
	}
}

// sumMetric adds up every sample of a metric in Prometheus text format.
func sumMetric(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// checkEachOwnPod asserts that every kill went to its own pod and
// container of the scenario, named, and says how it was attributed; and
// that the kernel did rate-limit (some kills attributed without a report).
func checkEachOwnPod(t *testing.T, sc scenario.Scenario, ooms []event) {
	t.Helper()
	pods := map[string]scenario.Pod{}
	for _, p := range sc.Pods {
		pods[p.UID] = p
	}
	seen := map[string]bool{}
	by := map[string]int{}
	for _, e := range ooms {
		v := e.Victims[0]
		by[e.AttributedBy]++
		p, ok := pods[v.PodUID]
		switch {
		case !ok:
			t.Errorf("kill of %s[%d] attributed to no pod of the scenario (cgroup %q, by %q)", v.Comm, v.PID, v.Cgroup, e.AttributedBy)
			continue
		case seen[p.UID]:
			t.Errorf("two kills attributed to %s", p.Name)
		}
		seen[p.UID] = true
		if v.ContainerID != p.Containers[0].ID || v.ContainerName != p.Containers[0].Name || v.PodName != p.Name {
			t.Errorf("kill of %s[%d]: container %q %q of %q, want %q %q of %q", v.Comm, v.PID, v.ContainerName, v.ContainerID,
				v.PodName, p.Containers[0].Name, p.Containers[0].ID, p.Name)
		}
		if e.AttributedBy == "" || e.AttributedBy == "unattributed" {
			t.Errorf("kill of %s[%d] in %s: attributed by %q", v.Comm, v.PID, p.Name, e.AttributedBy)
		}
	}
	t.Logf("%d kills of %d pods; attributed by %v", len(ooms), len(sc.Pods), by)
	if len(seen) != len(sc.Pods) {
		t.Errorf("kills attributed to %d of %d pods", len(seen), len(sc.Pods))
	}
	if by["report"] == len(ooms) {
		t.Errorf("every kill came with its report: the kernel did not rate-limit")
	}
}
