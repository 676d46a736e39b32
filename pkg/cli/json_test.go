package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// apiJSON writes each message as one compact line of its protojson
// mapping, which reads back as the same message: the RFC 3339 times, enum
// names and proto field names that every -o json prints.
func TestAPIJSONLines(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 42, 46, 0, time.UTC)
	tests := []struct {
		name string
		m    proto.Message
		want []string
	}{
		{"exit", &pb.Event{Id: "n/b/exit/77", Node: "n", BootId: "b", Seq: 77, Time: timestamppb.New(at),
			Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{ExitCode: 137, Verdict: "oom-limit",
				ExitVerdict: pb.ExitVerdict_EXIT_VERDICT_OOM_LIMIT, Explanation: `a "quoted" <word> & more`}}},
			[]string{`{"id":"n/b/exit/77","node":"n","boot_id":"b","seq":"77","time":"2026-11-27T09:42:46Z","exit":{`,
				`"exit_code":137`, `"exit_verdict":"EXIT_VERDICT_OOM_LIMIT"`, `"explanation":"a \"quoted\" <word> & more"`}},
		{"oom", &pb.Event{Id: "n/b/oom/12", Node: "n", BootId: "b", Seq: 12, Time: timestamppb.New(at),
			Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "node", OomKind: pb.OOMKind_OOM_KIND_NODE,
				Victims: []*pb.Process{{Pid: 3, Comm: "x", RssBytes: proto.Int64(4096)}}}}},
			[]string{`"seq":"12"`, `"oom":{"kind":"node","victims":[{"pid":3,"comm":"x","rss_bytes":"4096"}]`, `"oom_kind":"OOM_KIND_NODE"`}},
		{"loss", &pb.Event{Id: "n/b/loss/9", Node: "n", BootId: "b", Seq: 9, Time: timestamppb.New(at.Add(time.Millisecond)),
			Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 40, AfterSeq: 8, NextSeq: 49}}},
			[]string{`"time":"2026-11-27T09:42:46.001Z"`, `"loss":{"cause":"kernel-gap","lost":"40","after_seq":"8","next_seq":"49"}`}},
		{"incident", &pb.Incident{Node: "n", Kind: "limit", OomKind: pb.OOMKind_OOM_KIND_LIMIT, Kills: 3, Start: timestamppb.New(at)},
			[]string{`"start":"2026-11-27T09:42:46Z"`, `"oom_kind":"OOM_KIND_LIMIT"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := apiJSON(&b, tt.m); err != nil {
				t.Fatal(err)
			}
			line := b.String()
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("not one line: %q", line)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(line)); err != nil {
				t.Fatal(err)
			}
			if compact.String() != strings.TrimSuffix(line, "\n") {
				t.Errorf("not compact: %s", line)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("line lacks %s:\n%s", w, line)
				}
			}
			got := tt.m.ProtoReflect().New().Interface()
			var err error
			switch tt.m.(type) {
			case *pb.Event:
				var evs []*pb.Event
				evs, err = clitest.ReadEvents(&b)
				if len(evs) == 1 {
					got = evs[0]
				}
			case *pb.Incident:
				var incs []*pb.Incident
				incs, err = clitest.ReadIncidents(&b)
				if len(incs) == 1 {
					got = incs[0]
				}
			}
			if err != nil || !proto.Equal(got, tt.m) {
				t.Errorf("read back %v (%v), want %v", got, err, tt.m)
			}
		})
	}
}

// `oomctl events -o json` prints every event the aggregator keeps as it
// keeps it, and the tests that run oomctl (end-to-end, Kubernetes,
// faults) read it back with clitest as this test does: whole events,
// flattened to the engine's words, and counted by grepping the lines.
func TestEventsJSONReadsBack(t *testing.T) {
	stored := storyEvents(t)
	loss := &pb.Event{Node: xNode, BootId: xBoot, Seq: 800, Time: timestamppb.New(t0.Add(6 * time.Minute)),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 41, AfterSeq: 758, NextSeq: 800,
			From: timestamppb.New(t0.Add(5 * time.Minute)), To: timestamppb.New(t0.Add(6 * time.Minute))}}}
	stored = append(stored, loss)
	addr := startAggregator(t, stored) // sets each event's id and received
	byID := map[string]*pb.Event{}
	for _, e := range stored {
		byID[e.GetId()] = e
	}

	out, errOut, code := run(t, "", "events", "-o", "json", "--limit", "0", "--server", addr, "--insecure")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	evs, err := clitest.ReadEvents(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(stored) {
		t.Fatalf("%d events read back, %d stored:\n%s", len(evs), len(stored), out)
	}
	types := map[string]int{}
	for _, e := range evs {
		types[eventid.TypeOf(e)]++
		if want := byID[e.GetId()]; !proto.Equal(e, want) {
			t.Errorf("read back\n%v\nstored\n%v", e, want)
		}
	}
	// What the guest scripts of the end-to-end and fault tests grep.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for key, want := range map[string]int{`"oom":{`: types[eventid.TypeOOM], `"loss":{`: types[eventid.TypeLoss],
		`"exit":{`: types[eventid.TypeExit], `"id"`: len(stored)} {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, key) {
				n++
			}
		}
		if n != want || want == 0 {
			t.Errorf("%d lines have %s, want %d", n, key, want)
		}
	}

	// The first kill, flattened as the end-to-end and Kubernetes tests
	// read it.
	var kApi, gap clitest.Event
	for _, e := range evs {
		switch f := clitest.Flatten(e); f.ID {
		case xNode + "/" + xBoot + "/oom/359":
			kApi = f
		case xNode + "/" + xBoot + "/loss/800":
			gap = f
		}
	}
	if kApi.Type != eventid.TypeOOM || kApi.Node != xNode || kApi.BootID != xBoot || kApi.Seq != 359 || kApi.Received.IsZero() ||
		kApi.Time == nil || !kApi.Time.Equal(t0) || kApi.EndSeq <= kApi.Seq {
		t.Errorf("envelope %+v", kApi)
	}
	if kApi.Kind != analysis.KindLimit || kApi.LimitScope != analysis.ScopeContainer || kApi.CollateralVerdict != analysis.CollateralNo ||
		kApi.Collateral || !kApi.Complete || kApi.OOMMemcg == "" || kApi.LimitFrom == "" || kApi.Reason == "" {
		t.Errorf("kill %+v", kApi.Event)
	}
	if len(kApi.Victims) == 0 || kApi.Victims[0].PID != 93 || kApi.Victims[0].Comm != "hog" || kApi.Victims[0].PodUID != xPodUID ||
		kApi.Victims[0].ContainerName != "api" || kApi.Victims[0].ContainerID != ctrID('a') || kApi.Victims[0].RSSBytes == nil {
		t.Errorf("victims %+v", kApi.Victims)
	}
	if kApi.Trigger == nil || kApi.Trigger.Comm != "hog" || kApi.Culprit == nil || kApi.Culprit.Source == "" || len(kApi.Lines) == 0 {
		t.Errorf("trigger %+v culprit %+v, %d lines", kApi.Trigger, kApi.Culprit, len(kApi.Lines))
	}
	if gap.Type != eventid.TypeLoss || gap.Lost != 41 || gap.Seq != 800 || len(gap.Victims) != 0 {
		t.Errorf("loss %+v", gap)
	}
}
