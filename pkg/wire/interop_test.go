package wire_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// previousEvent is the Event message of the previous release's schema
// (testdata/previous-release.binpb: `buf build -o` at the release before
// the enums, commit 2c2d047), which its agents and aggregators speak.
func previousEvent(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "previous-release.binpb"))
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("oomwatch.v1.Event")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

// events are a kill and an exit as this release's agent sends them.
func events(t *testing.T) []*pb.Event {
	t.Helper()
	f, err := os.Open("../analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kill *pb.Event
	if _, err := analysis.ReadLog(f, analysis.StreamOptions{}, func(e analysis.Event) {
		if kill == nil && e.Kind == analysis.KindLimit && e.Culprit != nil {
			kill = wire.FromAnalysis("node-a", "0f5d6c1e-7b7a-4c55-9a43-3f1b2c0d9e8f", e)
		}
	}); err != nil || kill == nil {
		t.Fatalf("no limit kill with a culprit in the fixture (%v)", err)
	}
	kill.Time = timestamppb.New(time.Now().Add(-time.Minute))
	exit := &pb.Event{Node: "node-a", BootId: kill.BootId, Seq: 77, Time: kill.Time, Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{
		ExitCode: 137, Verdict: "oom-pod-limit", ExitVerdict: wire.ExitVerdictToPB("oom-pod-limit"),
		Culprit:  proto.Clone(kill.GetOom().GetCulprit()).(*pb.Culprit),
		Workload: kill.GetOom().GetVictims()[0].GetWorkload(), OomEventId: "node-a/" + kill.BootId + "/oom/1"}}}
	return []*pb.Event{kill, exit}
}

// stripUnknown drops what the previous schema does not know, recursively:
// what its agent could never have sent.
func stripUnknown(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				stripUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			stripUnknown(v.Message())
		}
		return true
	})
	m.SetUnknown(nil)
}

// get reads a field path of a dynamic message ("oom", "culprit", "source").
func get(m protoreflect.Message, path ...string) string {
	for i, name := range path {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return "<no field " + name + ">"
		}
		if i == len(path)-1 {
			return m.Get(fd).String()
		}
		m = m.Get(fd).Message()
	}
	return ""
}

// This release's events, read by the previous release: every word it
// reads is where it reads it.
func TestPreviousReleaseReadsThisRelease(t *testing.T) {
	old := previousEvent(t)
	for _, e := range events(t) {
		raw, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		m := dynamicpb.NewMessage(old)
		if err := proto.Unmarshal(raw, m); err != nil {
			t.Fatalf("the previous release cannot decode this release's event: %v", err)
		}
		if k := e.GetOom(); k != nil {
			if get(m, "oom", "kind") != "limit" || get(m, "oom", "limit_scope") != wire.Scope(k) ||
				get(m, "oom", "culprit", "source") != wire.Source(k.GetCulprit()) || wire.Scope(k) == "" {
				t.Errorf("the previous release reads kind %q scope %q source %q", get(m, "oom", "kind"),
					get(m, "oom", "limit_scope"), get(m, "oom", "culprit", "source"))
			}
		}
		if x := e.GetExit(); x != nil && get(m, "exit", "verdict") != "oom-pod-limit" {
			t.Errorf("the previous release reads exit verdict %q", get(m, "exit", "verdict"))
		}
	}
}

// The previous release's events, sent to this release's aggregator: it
// accepts, stores and reads them, and a query by enum finds them.
func TestThisReleaseReadsPreviousRelease(t *testing.T) {
	old := previousEvent(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "events.db"), logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hello := &pb.Hello{Node: "node-a", BootId: "0f5d6c1e-7b7a-4c55-9a43-3f1b2c0d9e8f"}
	for _, cur := range events(t) {
		raw, _ := proto.Marshal(cur)
		m := dynamicpb.NewMessage(old)
		if err := proto.Unmarshal(raw, m); err != nil {
			t.Fatal(err)
		}
		stripUnknown(m)
		prev, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var e pb.Event
		if err := proto.Unmarshal(prev, &e); err != nil {
			t.Fatal(err)
		}
		if k := e.GetOom(); k != nil && (k.GetOomKind() != 0 || k.GetScope() != 0 || k.GetCulprit().GetCulpritSource() != 0) {
			t.Fatalf("the stand-in for the previous release sent enums: %v", k)
		}
		if err := aggregator.ValidateEvent(&e, hello); err != nil {
			t.Fatalf("this release refuses the previous release's event: %v", err)
		}
		if _, err := st.Put(ctx, []*pb.Event{&e}); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, e.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if k := got.GetOom(); k != nil {
			want := cur.GetOom()
			if wire.Kind(k) != wire.Kind(want) || wire.Scope(k) != wire.Scope(want) || wire.Source(k.GetCulprit()) != wire.Source(want.GetCulprit()) {
				t.Errorf("read back as %s %s %s, want %s %s %s", wire.Kind(k), wire.Scope(k), wire.Source(k.GetCulprit()),
					wire.Kind(want), wire.Scope(want), wire.Source(want.GetCulprit()))
			}
		}
		if x := got.GetExit(); x != nil && wire.Why(x) != "oom-pod-limit" {
			t.Errorf("exit read back as %q", wire.Why(x))
		}
	}
	// A reader of this release asks by enum; one of the previous release
	// by string: both find the previous release's events.
	for _, f := range []*pb.EventFilter{
		{OomKind: pb.OOMKind_OOM_KIND_LIMIT},
		{Kind: "limit"},
		{ExitVerdicts: []pb.ExitVerdict{pb.ExitVerdict_EXIT_VERDICT_OOM_POD_LIMIT}},
		{EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_EXIT}},
	} {
		if err := wire.FoldFilter(f); err != nil {
			t.Fatal(err)
		}
		evs, _, err := st.List(ctx, f, 10, "")
		if err != nil || len(evs) != 1 {
			t.Errorf("filter %v: %d events (%v), want 1", f, len(evs), err)
		}
	}
}
