package kubeevents

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// warning is revision rev of a warning of kind, of shop/cart-7d9's api
// (pod true) or of the node.
func warning(seq int64, kind pb.WarningKind, pod bool, rev int64, at time.Time) *pb.Event {
	m := &pb.MemoryWarning{WarningKind: kind, State: pb.WarningState_WARNING_STATE_OPEN, Since: timestamppb.New(at),
		Summary: "api (pod shop/cart-7d9) will reach its 512.0 MiB limit in about 4m"}
	if pod {
		m.Workload = &pb.Workload{Cgroup: "/kubepods/pod1/c1", Namespace: "shop", PodName: "cart-7d9",
			PodUid: "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0", ContainerName: "api"}
	}
	return &pb.Event{Node: "node-a", BootId: "b1", Seq: seq, Revision: rev, Time: timestamppb.New(at),
		Payload: &pb.Event_Warning{Warning: m}}
}

func TestWarningEvents(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		ev     *pb.Event
		ns     string
		reason string
		object string
	}{
		{"forecast", warning(1, pb.WarningKind_WARNING_KIND_FORECAST, true, 0, now), "shop", ReasonNearLimit, "Pod/cart-7d9"},
		{"near-limit", warning(2, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, true, 0, now), "shop", ReasonNearLimit, "Pod/cart-7d9"},
		{"limit-reclaim", warning(3, pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM, true, 0, now), "shop", ReasonNearLimit, "Pod/cart-7d9"},
		{"pod pressure", warning(4, pb.WarningKind_WARNING_KIND_PRESSURE, true, 0, now), "shop", ReasonNearLimit, "Pod/cart-7d9"},
		{"node-low", warning(5, pb.WarningKind_WARNING_KIND_NODE_LOW, false, 0, now), "default", ReasonNodeLow, "Node/node-a"},
		{"node pressure", warning(6, pb.WarningKind_WARNING_KIND_PRESSURE, false, 0, now), "default", ReasonNodeLow, "Node/node-a"},
		// Handle sees a warning once, when first stored: a later revision
		// first stored is one whose opening was lost on the way.
		{"opening lost", warning(7, pb.WarningKind_WARNING_KIND_FORECAST, true, 3, now), "shop", ReasonNearLimit, "Pod/cart-7d9"},
		{"stale", warning(9, pb.WarningKind_WARNING_KIND_FORECAST, true, 0, now.Add(-wire.WarningStale-time.Second)), "", "", ""},
		{"no summary", func() *pb.Event {
			e := warning(10, pb.WarningKind_WARNING_KIND_NODE_LOW, false, 0, now)
			e.GetWarning().Summary = ""
			return e
		}(), "default", ReasonNodeLow, "Node/node-a"},
		{"a system service's", func() *pb.Event {
			e := warning(11, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, false, 0, now)
			e.GetWarning().Workload = &pb.Workload{Cgroup: "/system.slice/containerd.service"}
			return e
		}(), "", "", ""},
		{"a resolution", func() *pb.Event {
			e := warning(8, pb.WarningKind_WARNING_KIND_NODE_LOW, false, 0, now)
			e.GetWarning().State = pb.WarningState_WARNING_STATE_RESOLVED
			return e
		}(), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewSimpleClientset()
			w := New(c.CoreV1(), Options{Now: func() time.Time { return now }}, logrus.NewEntry(logrus.New()))
			if err := w.Handle(context.Background(), tt.ev); err != nil {
				t.Fatal(err)
			}
			all := events(t, c, "")
			if tt.reason == "" {
				if len(all) != 0 {
					t.Fatalf("%d Events, want none", len(all))
				}
				return
			}
			if len(all) != 1 {
				t.Fatalf("%d Events, want 1", len(all))
			}
			e := all[0]
			// The agent's summary, or the sentence made here when it sent none.
			msg := tt.ev.GetWarning().GetSummary()
			if msg == "" {
				msg = vocab.Warning(tt.ev.GetWarning())
			}
			if e.Namespace != tt.ns || e.Reason != tt.reason || e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name != tt.object ||
				e.Type != "Warning" || msg == "" || e.Message != msg {
				t.Fatalf("event %+v", e)
			}
			if tt.object == "Pod/cart-7d9" && e.InvolvedObject.FieldPath != "spec.containers{api}" {
				t.Errorf("field path %q", e.InvolvedObject.FieldPath)
			}
		})
	}
}

// One Event per object and reason per WarningEventEvery: a pod whose
// warnings open and resolve in turn, or open of several kinds at once, is
// not flooded.
func TestWarningEventsRateLimited(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	at := now
	c := fake.NewSimpleClientset()
	w := New(c.CoreV1(), Options{Now: func() time.Time { return at }}, logrus.NewEntry(logrus.New()))
	handle := func(ev *pb.Event) {
		if err := w.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	handle(warning(1, pb.WarningKind_WARNING_KIND_FORECAST, true, 0, at))
	handle(warning(2, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, true, 0, at))
	handle(warning(3, pb.WarningKind_WARNING_KIND_NODE_LOW, false, 0, at))
	at = now.Add(4 * time.Minute)
	handle(warning(4, pb.WarningKind_WARNING_KIND_FORECAST, true, 0, at))
	if n := len(events(t, c, "shop")); n != 1 {
		t.Fatalf("%d Pod Events within 5 minutes, want 1", n)
	}
	if n := len(events(t, c, "default")); n != 1 {
		t.Fatalf("%d Node Events, want 1", n)
	}
	at = now.Add(WarningEventEvery)
	handle(warning(5, pb.WarningKind_WARNING_KIND_FORECAST, true, 0, at))
	if n := len(events(t, c, "shop")); n != 2 {
		t.Fatalf("%d Pod Events after 5 minutes, want 2", n)
	}
	if st := w.Stats(); st.Written != 3 || st.RateLimited != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The objects remembered are bounded: past maxWarnedObjects, new objects
// are refused until the old ones age out.
func TestWarningEventsBounded(t *testing.T) {
	at := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	w := New(fake.NewSimpleClientset().CoreV1(), Options{}, logrus.NewEntry(logrus.New()))
	for i := range maxWarnedObjects {
		if !w.warnAllowed(string(rune(i)), at) {
			t.Fatalf("object %d refused", i)
		}
	}
	if w.warnAllowed("one more", at.Add(time.Minute)) || len(w.lastWarn) != maxWarnedObjects {
		t.Fatalf("past the bound: %d remembered", len(w.lastWarn))
	}
	if !w.warnAllowed("one more", at.Add(WarningEventEvery)) || len(w.lastWarn) != 1 {
		t.Fatalf("after the window: %d remembered", len(w.lastWarn))
	}
}
