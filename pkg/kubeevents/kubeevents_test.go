package kubeevents

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func kill(seq int64, kind string, collateral bool, at time.Time) *pb.Event {
	return &pb.Event{Node: "node-a", BootId: "b1", Seq: seq, Time: timestamppb.New(at),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: kind, Collateral: collateral,
			Reason: "The node ran out of memory; the kernel killed hog. Collateral: the largest memory holder was pod batch/etl-2.",
			Victims: []*pb.Process{{Pid: 7, Comm: "hog", Workload: &pb.Workload{Namespace: "shop", PodName: "cart-7d9",
				PodUid: "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0", ContainerName: "api"}}}}}}
}

func events(t *testing.T, c *fake.Clientset, ns string) []corev1.Event {
	t.Helper()
	l, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestReasonsTellKillsApart(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		kind       string
		collateral bool
		reason     string
	}{
		{"limit", "limit", false, ReasonLimit},
		{"node, largest holder", "node", false, ReasonNode},
		{"collateral", "node", true, ReasonCollateral},
		{"pod-limit collateral", "limit", true, ReasonCollateral},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewSimpleClientset()
			w := New(c.CoreV1(), Options{Now: func() time.Time { return now }}, logrus.NewEntry(logrus.New()))
			if err := w.Handle(context.Background(), kill(int64(i), tt.kind, tt.collateral, now)); err != nil {
				t.Fatal(err)
			}
			evs := events(t, c, "shop")
			if len(evs) != 1 {
				t.Fatalf("%d pod events", len(evs))
			}
			e := evs[0]
			if e.Reason != tt.reason || e.InvolvedObject.Kind != "Pod" || e.InvolvedObject.Name != "cart-7d9" ||
				e.InvolvedObject.FieldPath != "spec.containers{api}" || e.Type != corev1.EventTypeWarning ||
				!strings.Contains(e.Message, "batch/etl-2") {
				t.Fatalf("event %+v", e)
			}
			nodeEvents := events(t, c, "default")
			if wantNode := tt.kind == "node"; (len(nodeEvents) == 1) != wantNode {
				t.Fatalf("%d node events for kind %s", len(nodeEvents), tt.kind)
			}
		})
	}
}

func TestDeduplicatedAcrossWriters(t *testing.T) {
	now := time.Now()
	c := fake.NewSimpleClientset()
	ev := kill(1, "limit", false, now)
	for i := 0; i < 3; i++ {
		// A new Writer each time: an aggregator restart replays the event.
		w := New(c.CoreV1(), Options{}, logrus.NewEntry(logrus.New()))
		if err := w.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if i > 0 && w.Stats().Duplicates != 1 {
			t.Fatalf("replay %d not seen as a duplicate: %+v", i, w.Stats())
		}
	}
	if n := len(events(t, c, "shop")); n != 1 {
		t.Fatalf("%d events for one kill", n)
	}
}

func TestOneNodeEventPerIncidentAndRateLimit(t *testing.T) {
	now := time.Now()
	c := fake.NewSimpleClientset()
	w := New(c.CoreV1(), Options{QPS: 0.001, Burst: 5}, logrus.NewEntry(logrus.New()))
	for i := 0; i < 10; i++ {
		_ = w.Handle(context.Background(), kill(int64(i), "node", true, now.Add(time.Duration(i)*time.Second)))
	}
	if n := len(events(t, c, "default")); n != 1 {
		t.Fatalf("%d node events for one incident, want 1", n)
	}
	st := w.Stats()
	if st.Written != 5 || st.RateLimited != 6 {
		t.Fatalf("stats %+v: want 5 written (the burst) and the other 6 (10 pod + 1 node) rate-limited", st)
	}
}

func TestUnknownPodSkipped(t *testing.T) {
	c := fake.NewSimpleClientset()
	w := New(c.CoreV1(), Options{}, logrus.NewEntry(logrus.New()))
	ev := kill(1, "limit", false, time.Now())
	ev.GetOom().Victims[0].Workload = &pb.Workload{PodUid: "x"}
	if err := w.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if w.Stats().Skipped != 1 || len(events(t, c, "")) != 0 {
		t.Fatalf("stats %+v", w.Stats())
	}
}
