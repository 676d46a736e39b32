package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/command"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/sample"
	"github.com/oomwatch/oomwatch/pkg/sample/sampletest"
	"github.com/oomwatch/oomwatch/pkg/warn"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The container of the kernel log fixture
// debian-6.1-kmsg-v2-systemd-container-limit.kmsg, killed at its limit.
const (
	hogUID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
	hogID  = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"
)

// fakeNamer names every container "api" in pod shop/cart.
type fakeNamer struct{}

func (fakeNamer) Name(_ context.Context, w *analysis.Workload) {
	if w.PodUID != "" {
		w.Namespace, w.PodName = "shop", "cart"
	}
	if w.ContainerID != "" {
		w.ContainerName = "api"
	}
}

// holdingSink is a fakeSink that holds the keys of hold (exits.Holder).
type holdingSink struct {
	fakeSink
	hmu  sync.Mutex
	hold map[int64]bool
}

func (s *holdingSink) Holds(_, typ string, seq int64) bool {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return typ == eventid.TypeWarning && s.hold[seq]
}

// fakeClock is a clock a test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestWarnings(t *testing.T, tr *sampletest.Tree, sink Sink, c *fakeClock) *Warnings {
	t.Helper()
	w, err := NewWarnings(WarningsConfig{Node: "node-a", BootID: "boot-1",
		Sample: sample.Config{CgroupRoot: tr.Root, ProcRoot: tr.Proc}, Warn: warn.DefaultConfig(),
		Eviction: EvictionThreshold{Bytes: 100 << 20}, Sink: sink, Namer: fakeNamer{}, Now: c.now},
		logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// round runs one round, failing on its error.
func round(t *testing.T, w *Warnings) {
	t.Helper()
	if err := w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// checkEvent fails unless ev is an event the spool and the aggregator take.
func checkEvent(t *testing.T, ev *pb.Event) {
	t.Helper()
	if _, err := proto.Marshal(ev); err != nil {
		t.Fatalf("event does not marshal: %v: %v", err, ev)
	}
	if _, err := eventid.Parse(eventid.String(ev)); err != nil || eventid.TypeOf(ev) == "" {
		t.Fatalf("event ID %q: %v", eventid.String(ev), err)
	}
	if m := ev.GetWarning(); m != nil {
		if f, err := wire.CheckWarning(m); err != nil {
			t.Fatalf("warning field %s: %v", f, err)
		}
		if m.GetSummary() == "" {
			t.Fatalf("warning without summary: %v", m)
		}
	}
}

// warningsOf returns the warning events of cgroup cg by kind, in order.
func warningsOf(events []*pb.Event, cg string) map[pb.WarningKind][]*pb.Event {
	out := map[pb.WarningKind][]*pb.Event{}
	for _, ev := range events {
		if m := ev.GetWarning(); m != nil && m.GetWorkload().GetCgroup() == cg {
			out[m.GetWarningKind()] = append(out[m.GetWarningKind()], ev)
		}
	}
	return out
}

// growing writes the hog's pod and container, the container's working set
// at ws of its 64 MiB limit.
func growing(tr *sampletest.Tree, ws int64) (pod, ctr string) {
	pod, ctr = sampletest.SystemdPaths("burstable", hogUID, hogID)
	tr.Group("/kubepods.slice", sampletest.Mem{Usage: 2 << 30, Inactive: 512 << 20})
	tr.Group(pod, sampletest.Mem{Usage: ws + 2<<20, Inactive: 1 << 20})
	tr.Group(ctr, sampletest.Mem{Usage: ws + 1<<20, Inactive: 1 << 20, Limit: fmt.Sprint(64 << 20)})
	return pod, ctr
}

func TestWarningsGrowthToKill(t *testing.T) {
	for _, mode := range []cgroupstat.Mode{cgroupstat.ModeV2, cgroupstat.ModeV1} {
		t.Run(mode.String(), func(t *testing.T) {
			tr := sampletest.New(t, mode)
			sink := &fakeSink{}
			c := &fakeClock{t: time.Unix(1700000000, 0)}
			w := newTestWarnings(t, tr, sink, c)
			// 1 MiB/s from 32 MiB toward the 64 MiB limit, sampled every 10 s.
			var ctr string
			for i := range 4 {
				_, ctr = growing(tr, int64(32+10*i)<<20)
				round(t, w)
				c.t = c.t.Add(10 * time.Second)
			}
			got := warningsOf(sink.events, ctr)
			for _, k := range []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningKind_WARNING_KIND_NEAR_LIMIT} {
				if len(got[k]) == 0 {
					t.Fatalf("no %v warning before the kill; events: %v", k, sink.events)
				}
			}

			// The kernel kills the container: its kill names the warnings.
			items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg")
			kills := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "5.0", nil), Warnings: w, Now: c.now}, items)
			var kill *pb.OOMKill
			for _, ev := range kills.events {
				if k := ev.GetOom(); k != nil && k.GetVictims()[0].GetWorkload().GetCgroup() == ctr {
					kill = k
					checkEvent(t, ev)
				}
			}
			if kill == nil {
				t.Fatalf("no kill of %s in %v", ctr, kills.events)
			}
			ids := map[string]pb.WarningKind{}
			for k, evs := range got {
				ids[eventid.String(evs[0])] = k
			}
			victim := 0
			for _, p := range kill.GetPrecedingWarnings() {
				k, ok := ids[p.GetEventId()]
				switch {
				case p.GetRole() != wire.RoleVictim:
					t.Errorf("preceding %s: role %q, want victim", p.GetEventId(), p.GetRole())
				case !ok || k != p.GetWarningKind():
					t.Errorf("preceding %s (%v) names no warning event sent: %v", p.GetEventId(), p.GetWarningKind(), ids)
				case p.GetLead().AsDuration() <= 0:
					t.Errorf("preceding %s: lead %v", p.GetEventId(), p.GetLead().AsDuration())
				default:
					victim++
				}
			}
			if victim < 2 {
				t.Errorf("kill names %d of the victim's warnings, want forecast and near-limit: %v", victim, kill.GetPrecedingWarnings())
			}

			// Its cgroup is gone: the warnings resolve once GoneAfter passed.
			tr.Remove(ctr)
			for range 5 {
				round(t, w)
				c.t = c.t.Add(10 * time.Second)
			}
			got = warningsOf(sink.events, ctr)
			for k, evs := range got {
				seq := evs[0].GetSeq()
				for i, ev := range evs {
					checkEvent(t, ev)
					if ev.GetRevision() != int64(i) || ev.GetSeq() != seq {
						t.Errorf("%v event %d: seq %d revision %d, want seq %d revision %d", k, i, ev.GetSeq(), ev.GetRevision(), seq, i)
					}
					if wl := ev.GetWarning().GetWorkload(); wl.GetPodUid() != hogUID || wl.GetContainerId() != hogID || wl.GetContainerName() != "api" || wl.GetPodName() != "cart" {
						t.Errorf("%v event %d names %v", k, i, wl)
					}
				}
				last := evs[len(evs)-1].GetWarning()
				if last.GetState() != pb.WarningState_WARNING_STATE_RESOLVED || last.GetResolution() != "gone" {
					t.Errorf("%v: last event %v %q, want resolved gone", k, last.GetState(), last.GetResolution())
				}
				if k == pb.WarningKind_WARNING_KIND_FORECAST && len(evs) < 3 {
					t.Errorf("forecast: %d events, want open, update(s) as time ran out, resolution", len(evs))
				}
			}
			if len(w.sent) != 0 {
				t.Errorf("%d warnings still tracked after every one resolved", len(w.sent))
			}
		})
	}
}

// TestWarningsRefreshAndHold: an open warning whose figures do not move
// is sent again every refresh period; a revision waits while the sink
// still holds the previous one.
func TestWarningsRefreshAndHold(t *testing.T) {
	tr := sampletest.New(t, cgroupstat.ModeV2)
	sink := &holdingSink{hold: map[int64]bool{}}
	c := &fakeClock{t: time.Unix(1700000000, 0)}
	w := newTestWarnings(t, tr, sink, c)
	w.cfg.Refresh = time.Minute
	_, ctr := growing(tr, 61<<20) // 95%, steady
	var evs []*pb.Event
	for range 20 { // 200 s
		round(t, w)
		c.t = c.t.Add(10 * time.Second)
	}
	evs = warningsOf(sink.events, ctr)[pb.WarningKind_WARNING_KIND_NEAR_LIMIT]
	// Opened after 30 s; sent again at 60 s intervals with nothing moving.
	if len(evs) < 3 {
		t.Fatalf("%d near-limit events in 200 s with a 1 min refresh, want open and 2+ refreshes: %v", len(evs), evs)
	}
	for i, ev := range evs {
		checkEvent(t, ev)
		if ev.GetRevision() != int64(i) || ev.GetWarning().GetState() != pb.WarningState_WARNING_STATE_OPEN {
			t.Errorf("event %d: revision %d state %v", i, ev.GetRevision(), ev.GetWarning().GetState())
		}
		if i > 0 {
			if gap := ev.GetTime().AsTime().Sub(evs[i-1].GetTime().AsTime()); gap < time.Minute {
				t.Errorf("refresh %d came %v after the previous send", i, gap)
			}
		}
	}

	// The sink holds the last revision: the resolution waits for it.
	seq := evs[0].GetSeq()
	sink.hmu.Lock()
	sink.hold[seq] = true
	sink.hmu.Unlock()
	n := len(sink.events)
	growing(tr, 32<<20)
	for range 3 {
		round(t, w)
		c.t = c.t.Add(10 * time.Second)
	}
	if len(warningsOf(sink.events[n:], ctr)) != 0 {
		t.Fatalf("a revision was sent while the sink held the previous one: %v", sink.events[n:])
	}
	sink.hmu.Lock()
	sink.hold[seq] = false
	sink.hmu.Unlock()
	round(t, w)
	got := warningsOf(sink.events[n:], ctr)[pb.WarningKind_WARNING_KIND_NEAR_LIMIT]
	if len(got) != 1 || got[0].GetRevision() != evs[len(evs)-1].GetRevision()+1 ||
		got[0].GetWarning().GetState() != pb.WarningState_WARNING_STATE_RESOLVED {
		t.Fatalf("after the hold: %v, want one resolution at revision %d", got, evs[len(evs)-1].GetRevision()+1)
	}
}

// TestWarningsHostileTree: garbage figures, huge counters and odd
// directory names neither crash the loop nor make an event the spool or
// the aggregator would refuse.
func TestWarningsHostileTree(t *testing.T) {
	for _, mode := range []cgroupstat.Mode{cgroupstat.ModeV2, cgroupstat.ModeV1} {
		t.Run(mode.String(), func(t *testing.T) {
			tr := sampletest.New(t, mode)
			sink := &fakeSink{}
			c := &fakeClock{t: time.Unix(1700000000, 0)}
			w := newTestWarnings(t, tr, sink, c)
			odd := []string{
				"/kubepods/burstable/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0\xff\xfe",
				"/kubepods/burstable/pod../../etc;rm -rf $(x)",
				"/kubepods/burstable/pod\u202e0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0",
			}
			tr.Group("/kubepods", sampletest.Mem{Usage: 1 << 30, Limit: "1"})
			garbage, _ := sampletest.CgroupfsPaths("burstable", "3902af1e-8ce1-42e1-a2a5-dc04f4240c4f", "")
			tr.Group(garbage, sampletest.Mem{Usage: 1 << 20})
			for i := range 12 {
				for j, pod := range odd {
					id := strings.Repeat(fmt.Sprintf("%x", j+1), 64)
					tr.Group(pod, sampletest.Mem{Usage: 1 << 30})
					tr.Group(pod+"/"+id, sampletest.Mem{Usage: 63 << 20, Limit: fmt.Sprint(64 << 20),
						MaxEvents: 1<<63 + uint64(i)<<60, PSI: "some avg10=100.00 avg60=1e308 avg300=NaN total=18446744073709551615\nfull avg10=99.99 avg60=0 avg300=0 total=18446744073709551615\n"})
				}
				tr.Write(tr.Dir(garbage)+"/memory.current", "\x00\x01garbage\n")
				tr.Write(tr.Dir(garbage)+"/memory.max", "-1\n")
				tr.Write(tr.Dir(garbage)+"/memory.stat", strings.Repeat("inactive_file 18446744073709551615\n", 100))
				round(t, w)
				c.t = c.t.Add(10 * time.Second)
			}
			for _, ev := range sink.events {
				checkEvent(t, ev)
			}
			if len(sink.events) == 0 {
				t.Errorf("no warning at all from a tree of containers at their limit")
			}
			// A kill of one of them names what it can, and still marshals.
			k := &analysis.Event{Victims: []analysis.Process{{Workload: analysis.WorkloadOf(odd[0] + "/" + strings.Repeat("1", 64))}}}
			for _, p := range w.Preceding(k) {
				if _, err := proto.Marshal(p); err != nil {
					t.Errorf("preceding warning does not marshal: %v", err)
				}
			}
		})
	}
}

func TestWarningFlags(t *testing.T) {
	base := []string{"--node-name=n", "--server=127.0.0.1:1", "--no-kube-api", "--insecure"}
	tests := []struct {
		args    []string
		env     map[string]string
		wantErr string
		check   func(o *Options) error
	}{
		{args: nil, check: func(o *Options) error {
			ev, _ := o.Eviction()
			c, _ := o.WarnConfig()
			if o.SampleInterval != 10*time.Second || ev.Bytes != 100<<20 || c != warn.DefaultConfig() {
				return fmt.Errorf("defaults: interval %v, eviction %+v, config differs: %v", o.SampleInterval, ev, c != warn.DefaultConfig())
			}
			return nil
		}},
		{args: []string{"--eviction-hard-memory=5%", "--warn-near-limit=0.8", "--warn-pressure=20", "--warn-forecast-horizon=4m"}, check: func(o *Options) error {
			ev, _ := o.Eviction()
			c, err := o.WarnConfig()
			if err != nil || ev.Percent != 5 || ev.Resolve(1<<30) != (1<<30)/20 || c.NearLimitRatio != 0.8 || c.NearLimitResolveRatio >= 0.8 ||
				c.PressureOpen != 20 || c.PressureResolve != 10 || c.ForecastHorizon != 4*time.Minute || c.ForecastResolveHorizon != 6*time.Minute {
				return fmt.Errorf("eviction %+v config %+v: %v", ev, c, err)
			}
			return nil
		}},
		{args: []string{"--eviction-hard-memory=1Gi"}, check: func(o *Options) error {
			if ev, _ := o.Eviction(); ev.Bytes != 1<<30 {
				return fmt.Errorf("eviction %+v", ev)
			}
			return nil
		}},
		{args: []string{"--sample-interval=0"}, check: func(o *Options) error {
			a := &Agent{opts: *o, log: logrus.NewEntry(logrus.New())}
			if a.warnings(PipelineConfig{}) != nil {
				return fmt.Errorf("sampling runs with --sample-interval=0")
			}
			return nil
		}},
		{args: []string{"--eviction-hard-memory=lots"}, wantErr: "--eviction-hard-memory"},
		{args: []string{"--eviction-hard-memory=150%"}, wantErr: "--eviction-hard-memory"},
		{args: []string{"--eviction-hard-memory=-5Mi"}, wantErr: "--eviction-hard-memory"},
		{args: []string{"--warn-near-limit=1.5"}, wantErr: "--warn-near-limit"},
		{args: []string{"--warn-near-limit=NaN"}, wantErr: "--warn-near-limit"},
		{args: []string{"--warn-pressure=0"}, wantErr: "--warn-pressure"},
		{args: []string{"--warn-forecast-horizon=-1m"}, wantErr: "--warn-forecast-horizon"},
		{args: []string{"--sample-interval=-10s"}, wantErr: "--sample-interval"},
		{args: []string{"--sample-interval=1ms"}, wantErr: "--sample-interval"},
		{args: []string{"--warn-pressure=lots"}, wantErr: "invalid value"},
		{env: map[string]string{"OOMWATCH_WARN_NEAR_LIMIT": "2"}, wantErr: "--warn-near-limit"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " ")+fmt.Sprint(tc.env), func(t *testing.T) {
			var o Options
			var stderr strings.Builder
			err := command.Parse("agent", &o, append(append([]string{}, base...), tc.args...),
				func(k string) string { return tc.env[k] }, &stderr, nil)
			if tc.wantErr != "" {
				if err == nil || command.ExitCode(err) == command.ExitOK || !strings.Contains(stderr.String(), tc.wantErr) {
					t.Fatalf("err %v, stderr %q, want an error naming %s", err, stderr.String(), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(&o); err != nil {
				t.Error(err)
			}
		})
	}
}
