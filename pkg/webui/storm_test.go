package webui

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// A storm's incident page counts its victims by container, each list
// folded in a <details> element, and folds the long timeline.
func TestStormIncidentFolds(t *testing.T) {
	e := newEnv(t, Options{KillsPerPage: 10})
	code, body, _ := e.get(t, "/incidents/node-c/22222222-2222-3333-4444-555555555555/100")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`<h2 id="victims-h">Victims by container</h2>`,
		`<details class="victims">`,
		`<summary>system service batch.service: 30 kills, the largest java (pid 4100)`,
		`<ol><li>java (pid 4100)`,
		`<details class="victims"><summary>Every kill, oldest first (30)</summary>`,
		`<table class="list timeline">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("storm page lacks %s", want)
		}
	}
	if strings.Contains(body, `<details class="victims" open>`) {
		t.Error("a storm's list of victims is open")
	}
}

// An oom-child story on the pod page says how many processes were killed,
// with the list folded.
func TestPodPageStory(t *testing.T) {
	e := newEnv(t, Options{})
	at := time.Date(2026, 11, 27, 8, 40, 0, 0, time.UTC)
	k := named(9, at)
	x := &pb.ContainerExit{Workload: proto.Clone(k.GetOom().GetVictims()[0].GetWorkload()).(*pb.Workload), RuntimeReason: "Running",
		Verdict: "oom-child", Explanation: "Container api of pod shop/cart-7d9 is still running: the kernel's OOM killer killed 412 of its processes.",
		ChildKills: 412, FirstKillAt: timestamppb.New(at), LastKillAt: timestamppb.New(at.Add(3 * time.Second)), VictimsDropped: 410,
		Victims: []*pb.ChildKill{{Pid: 11, Comm: "sleep", RssBytes: proto.Int64(4096), At: timestamppb.New(at)},
			{Pid: 12, Comm: "hog", RssBytes: proto.Int64(129 << 20), At: timestamppb.New(at.Add(time.Second))}}}
	story := &pb.Event{Node: "node-b", BootId: k.BootId, Seq: 123, Revision: 4, Time: timestamppb.New(at), Payload: &pb.Event_Exit{Exit: x}}
	if _, err := e.st.Put(context.Background(), []*pb.Event{story}); err != nil {
		t.Fatal(err)
	}
	code, body, _ := e.get(t, "/pods/9a8b7c6d-1111-2222-3333-444455556666")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		"killed 412 of its processes.",
		`<details class="victims"><summary>412 processes killed in 3.0 s</summary>`,
		"<li>sleep (pid 11), 4.0 KiB, 08:40:00</li><li>hog (pid 12), 129.0 MiB, 08:40:01</li>",
		"and 410 more the agent did not list",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("pod page lacks %s", want)
		}
	}
}
