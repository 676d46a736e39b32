package analysis

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) {
	// Syslog and dmesg -T stamps carry no zone: read them as UTC so the
	// golden files do not depend on the machine.
	time.Local = time.UTC
	os.Exit(m.Run())
}

// fixtureYear gives the year of fixtures whose syslog stamps carry none.
var fixtureYear = map[string]int{
	"forum-5.8-global-oom-invoker-ne-victim.txt": 2020,
}

func analyzeFile(t *testing.T, name string) []Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	year := fixtureYear[name]
	if year == 0 {
		year = 2026
	}
	var out []Event
	if _, err := ReadLogYear(f, year, StreamOptions{Hold: time.Minute}, func(e Event) { out = append(out, e) }); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func fixtures(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, pat := range []string{"*.txt", "*.kmsg"} {
		m, err := filepath.Glob(filepath.Join("testdata", pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			names = append(names, filepath.Base(p))
		}
	}
	if len(names) < 12 {
		t.Fatalf("found %d fixtures, want the 12 shared kernel logs", len(names))
	}
	return names
}

// TestGolden compares the JSON of every fixture with its golden file.
func TestGolden(t *testing.T) {
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			for _, e := range analyzeFile(t, name) {
				if err := enc.Encode(e); err != nil {
					t.Fatal(err)
				}
			}
			checkGolden(t, filepath.Join("testdata", name+".golden.json"), buf.Bytes())
		})
	}
}

// checkGolden compares got with the golden file, or writes it with -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/analysis -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s; run with -update and review the diff\n%s", golden, firstDiff(string(got), string(want)))
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return ""
}

// verdict is what docs/verdicts.md's table promises for each shared fixture.
type verdict struct {
	kind, scope        string
	victimPID          int
	podUID, container  string
	qos                string
	collateral         string // yes, no or unknown; "" means no
	culpritPID         int
	complete           bool
	victims            int
	triggerPID         int
	culpritKnown       bool
	chosenForScoreAdj  bool
	victimCgroupSuffix string
}

// TestVerdicts states, fixture by fixture, the answer an SRE must get.
// Unlike the golden files it is written by hand from the kernel lines.
func TestVerdicts(t *testing.T) {
	want := map[string][]verdict{
		"cadvisor-3.13-global-badsysprogram.txt": {
			{kind: "node", victimPID: 1532, complete: true, victims: 1, triggerPID: 1532, culpritPID: 1532, culpritKnown: true},
		},
		"cadvisor-3.13-memcg-v1-memorymonster.txt": {
			{kind: "limit", scope: "other", victimPID: 13536, complete: true, victims: 1, triggerPID: 13536, culpritPID: 13536, culpritKnown: true, victimCgroupSuffix: "/mem2"},
		},
		"cadvisor-4.8-memcg-v1-docker-gunpowder.txt": {
			{kind: "limit", scope: "container", victimPID: 1381, container: "2e088fe462e25e60be1dafafe2c05c47bda1a97978648d10ad2b7484fc0b8f50", complete: true, victims: 1, triggerPID: 1381, culpritPID: 1381, culpritKnown: true},
			{kind: "limit", scope: "container", victimPID: 1667, container: "6c6fcab8562fd3150854986b78552c732f234fd405b624207b8843528a145e70", complete: true, victims: 1, triggerPID: 1667, culpritPID: 1667, culpritKnown: true},
		},
		"cadvisor-5.0-memcg-oomkill-summary-line.txt": {
			{kind: "limit", scope: "pod", victimPID: 966, podUID: "fbdfe8e3-1c87-4ff2-907c-b2ec8e25d012", container: "ef807430361e6e82b45db92e2e9b6fbec98f419b12c591e655c1a725565e73a8", qos: "burstable", victims: 1, collateral: "unknown"},
		},
		"npd-pre5.1-memcg-two-line.txt": {
			{kind: "limit", victimPID: 1012, victims: 1, culpritPID: 1012, culpritKnown: true, collateral: "unknown"},
		},
		"sapcc-kmsg-raw-memcg-v1-cgroupfs-and-v2-systemd.txt": {
			{kind: "limit", scope: "container", victimPID: 3401999, podUID: "d11ab7b0-d6db-4a24-a7de-4a2faf1e6980", container: "9f02d9fa0049eb2655fc83c765f142362b2cb403b57b70ba3185071015ca3b64", qos: "burstable", victims: 1},
			{kind: "limit", scope: "pod", victimPID: 255629, podUID: "dfc377c9-c533-4d51-af9e-6e0e0b3db83b", container: "2260b35b008a15bd118e629c0c5d74e7f3a1fe18c724fbac61a54862fea196dc", qos: "burstable", victims: 1, collateral: "unknown"},
		},
		"gpud-memcg-v2-nested-lxc-kubepods.txt": {
			{kind: "limit", scope: "pod", victimPID: 863987, podUID: "a8697f49-441d-4d4f-90d2-6d8e1fa3bbe7", container: "3fc28fa1c647ceede9f6b340d0b16c9f1f663698972d22a52e296f291638e014", qos: "burstable", victims: 1, collateral: "unknown"},
		},
		"forum-5.8-global-oom-invoker-ne-victim.txt": {
			{kind: "node", victimPID: 18006, complete: true, victims: 1, triggerPID: 25017, culpritPID: 18006, culpritKnown: true, victimCgroupSuffix: "session-27.scope"},
		},
		"public-2026-k8s-v2-memcg-oomgroup-and-global.txt": {
			{kind: "limit", scope: "pod", victimPID: 268654, podUID: "2c7713fd-2aed-4fa2-a60f-f006ab94b3df", container: "cabbede", qos: "burstable", complete: true, victims: 2, culpritPID: 268654, culpritKnown: true},
			{kind: "node", victimPID: 2630150, podUID: "7145627f-44a7-433c-a896-a8c81a4df533", container: "914914", qos: "besteffort", complete: true, victims: 1, collateral: "unknown", culpritKnown: true},
		},
		"report-6.1-global-oom-k8s-collateral-oomgroup.txt": {
			{kind: "node", victimPID: 10843, podUID: "3902af1e-8ce1-42e1-a2a5-dc04f4240c4f", container: "ed9dcd836d0c7e3e379b2387ef5e15e70f1c932dbce0fce685606bb2f4d62036", qos: "burstable", victims: 1, collateral: "yes", culpritPID: 115727, culpritKnown: true, chosenForScoreAdj: true},
			{kind: "node", victimPID: 115727, complete: true, victims: 1, triggerPID: 1241, culpritPID: 115727, culpritKnown: true},
		},
		"debian-6.1-kmsg-v2-systemd-container-limit.kmsg": {
			{kind: "limit", scope: "container", victimPID: 93, podUID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", container: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809", qos: "burstable", complete: true, victims: 1, triggerPID: 93, culpritPID: 93, culpritKnown: true},
		},
		"debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg": {
			{kind: "node", victimPID: 94, podUID: "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0", container: "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", qos: "besteffort", complete: true, victims: 1, triggerPID: 96, collateral: "yes", culpritPID: 96, culpritKnown: true, chosenForScoreAdj: true},
			{kind: "node", victimPID: 96, podUID: "f0e1d2c3-b4a5-4697-8877-665544332211", container: "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff", qos: "guaranteed", complete: true, victims: 1, triggerPID: 96, culpritPID: 96, culpritKnown: true},
		},
	}
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			exp, ok := want[name]
			if !ok {
				t.Fatalf("no expected verdicts for fixture %s", name)
			}
			got := analyzeFile(t, name)
			if len(got) != len(exp) {
				t.Fatalf("got %d events, want %d", len(got), len(exp))
			}
			for i, w := range exp {
				e := got[i]
				v := e.Victims[0]
				check := func(what string, got, want any) {
					t.Helper()
					if got != want {
						t.Errorf("event %d %s = %v, want %v", i, what, got, want)
					}
				}
				check("kind", e.Kind, w.kind)
				check("limit_scope", e.LimitScope, w.scope)
				check("victim pid", v.PID, w.victimPID)
				check("victim pod_uid", v.PodUID, w.podUID)
				check("victim container_id", v.ContainerID, w.container)
				check("victim qos", v.QoS, w.qos)
				wantVerdict := w.collateral
				if wantVerdict == "" {
					wantVerdict = "no"
				}
				check("collateral_verdict", e.CollateralVerdict, wantVerdict)
				check("collateral", e.Collateral, wantVerdict == "yes")
				check("complete", e.Complete, w.complete)
				check("victims", len(e.Victims), w.victims)
				check("chosen_for_score_adj", e.ChosenForScoreAdj, w.chosenForScoreAdj)
				check("culprit known", e.Culprit != nil, w.culpritKnown)
				if e.Culprit != nil && w.culpritPID != 0 {
					check("culprit pid", e.Culprit.PID, w.culpritPID)
				}
				if w.triggerPID != 0 {
					if e.Trigger == nil {
						t.Errorf("event %d has no trigger, want pid %d", i, w.triggerPID)
					} else {
						check("trigger pid", e.Trigger.PID, w.triggerPID)
					}
				}
				if w.victimCgroupSuffix != "" && !strings.HasSuffix(v.Cgroup, w.victimCgroupSuffix) {
					t.Errorf("event %d victim cgroup %q, want suffix %q", i, v.Cgroup, w.victimCgroupSuffix)
				}
				if e.Reason == "" {
					t.Errorf("event %d has no reason", i)
				}
				if e.Collateral && !strings.Contains(e.Reason, "Collateral") {
					t.Errorf("event %d: collateral but the reason does not say so: %s", i, e.Reason)
				}
			}
		})
	}
}
