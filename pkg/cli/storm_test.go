package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/exits"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// stormEvents is a storm as the agent sends it: 30 OOM kills of the
// processes of container runner of pod ci/runner-1 within 3 s, the
// container still running (one oom-child story), and one kill of another
// pod in the same minute.
func stormEvents(t *testing.T) []*pb.Event {
	t.Helper()
	const limit = "debian-6.1-kmsg-v2-systemd-container-limit.kmsg"
	runner := ctrID('f')
	var kills []*pb.Event
	for i := range 30 {
		k := kill(t, limit, 0, int64(1000+10*i), t0.Add(time.Duration(i)*100*time.Millisecond), xPodUID, "runner-1", runner, "runner")
		v := k.GetOom().GetVictims()[0]
		v.Pid, v.Comm = int32(3000+i), "sleep"
		rss := int64(4096 * (1 + i))
		if i == 7 {
			v.Comm, rss = "hog", 129<<20
		}
		v.RssBytes = &rss
		kills = append(kills, k)
	}
	other := kill(t, limit, 0, 2000, t0.Add(2*time.Second), xOther, "api-0", ctrID('e'), "api")

	sink := &collector{}
	j := exits.New(sink, running{runner: true}, quiet(), exits.Options{Node: xNode, BootID: xBoot, Grace: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	for _, k := range kills {
		j.OOM(k)
	}
	for deadline := time.Now().Add(10 * time.Second); sink.len() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no oom-child story")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.len() != 1 || sink.evs[0].GetExit().GetChildKills() != 30 {
		t.Fatalf("%d events, the first with %d kills; want one story of 30", sink.len(), sink.evs[0].GetExit().GetChildKills())
	}
	for _, k := range kills {
		k.GetOom().Culprit.Workload.Namespace = "ci"
		k.GetOom().Victims[0].Workload.Namespace = "ci"
	}
	sink.evs[0].GetExit().Workload.Namespace = "ci"
	return append(append(sink.evs, kills...), other)
}

// A storm is one row with its count in oomctl events and incidents, its
// victims collapsed; --all lists them.
func TestStormTables(t *testing.T) {
	addr := startAggregator(t, stormEvents(t))
	cmd := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(t, "", append(args, "--server", addr, "--insecure")...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		t.Logf("oomctl %s\n%s", strings.Join(args, " "), out)
		return out
	}
	rows := func(out string) int { return strings.Count(strings.TrimSpace(out), "\n") }

	out := cmd("events")
	// The header, the story, the storm's kills in one row, the other kill.
	if rows(out) != 3 {
		t.Errorf("events: %d rows, want 3", rows(out))
	}
	for _, want := range []string{"limit/container ×30", "ci/runner-1/runner hog[3007] +29 more", "129.0 MiB",
		"exit:oom-child", "ci/runner-1/runner 30 killed", "killed 30 of its processes", "shop/api-0/api"} {
		if !strings.Contains(out, want) {
			t.Errorf("events lacks %q", want)
		}
	}
	if out := cmd("events", "--all"); rows(out) != 32 {
		t.Errorf("events --all: %d rows, want 32", rows(out))
	}

	out = cmd("incidents")
	if rows(out) != 1 || !strings.Contains(out, "31") || !strings.Contains(out, "ci/runner-1/runner ×30, shop/api-0/api") {
		t.Errorf("incidents: want one incident of 31 kills, victims collapsed")
	}
	out = cmd("incidents", "--all")
	for _, want := range []string{"ci/runner-1/runner: 30 kills (largest hog[3007] 129.0 MiB): sleep[", "hog[3007] 129.0 MiB, sleep[3008]",
		"shop/api-0/api: 1 kill"} {
		if !strings.Contains(out, want) {
			t.Errorf("incidents --all lacks %q", want)
		}
	}

	out = cmd("explain", "runner-1")
	for _, want := range []string{
		"Pod ci/runner-1 (uid " + xPodUID + "): 1 exit, newest first.",
		"30 OOM kills in container runner, which kept running [oom-child]",
		"  Killed: sleep (pid 3000, 4.0 KiB, 12:00:00.000Z), ",
		"and 25 more (--all lists them).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q", want)
		}
	}
	out = cmd("explain", "runner-1", "--all")
	if strings.Contains(out, "more") || !strings.Contains(out, fmt.Sprintf("sleep (pid %d, ", 3029)) {
		t.Errorf("explain --all does not list every victim")
	}
}

// A watch prints a story again each time it grows, marked as an update.
func TestWatchMarksStoryUpdates(t *testing.T) {
	var b strings.Builder
	p := newPrinter(&b, "table")
	p.live = true
	story := func(rev int64, kills int32) *pb.Event {
		return &pb.Event{Node: xNode, BootId: xBoot, Seq: 5, Revision: rev, Time: timestamppb.New(t0),
			Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{Verdict: exits.VerdictOOMChild, ChildKills: kills,
				Workload: &pb.Workload{Namespace: "ci", PodName: "runner-1", ContainerName: "runner"}}}}
	}
	p.event(story(1, 3))
	p.flush()
	p.event(story(2, 40))
	p.flush()
	out := b.String()
	if strings.Count(out, "(updated)") != 1 || !strings.Contains(out, "40 killed") || !strings.Contains(out, "3 killed") {
		t.Fatalf("watch output:\n%s", out)
	}
}
