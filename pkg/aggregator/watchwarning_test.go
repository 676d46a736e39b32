package aggregator

import (
	"context"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Watchers of warnings get each revision their filter selects; a watcher
// of open warnings gets the resolution too; a watcher of kills gets none.
func TestWatchWarnings(t *testing.T) {
	e := start(t, Config{})
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q := pb.NewQueryServiceClient(conn)
	watch := func(f *pb.EventFilter) pb.QueryService_WatchClient {
		w, err := q.Watch(ctx, &pb.WatchRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	open := watch(&pb.EventFilter{OpenWarningsOnly: true, Namespace: "shop"})
	nearLimit := watch(&pb.EventFilter{WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_NEAR_LIMIT}})
	kills := watch(&pb.EventFilter{EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_OOM}})
	waitFor(t, func() bool { return e.srv.Stats().Watchers == 3 })

	a := e.agent(t, ctx, conn, "node-a")
	resolved := agentWarning("node-a", 0, 2)
	resolved.GetWarning().State, resolved.GetWarning().Resolution = pb.WarningState_WARNING_STATE_RESOLVED, "cleared"
	near := agentWarning("node-a", time.Minute, 0)
	near.GetWarning().WarningKind = pb.WarningKind_WARNING_KIND_NEAR_LIMIT
	near.Seq++
	sent := []*pb.Event{agentWarning("node-a", 0, 0), agentWarning("node-a", 0, 1), resolved, oom("node-a", 50, "shop", "cart-1"), near}
	for _, ev := range sent {
		if err := a.send(ev); err != nil {
			t.Fatal(err)
		}
		if _, err := a.acks(1); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(name string, w pb.QueryService_WatchClient, want ...*pb.Event) {
		t.Helper()
		for _, ev := range want {
			r, err := w.Recv()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got := r.GetEvent()
			if got.GetSeq() != ev.GetSeq() || got.GetRevision() != ev.GetRevision() || got.GetWarning().GetState() != ev.GetWarning().GetState() {
				t.Fatalf("%s: got seq %d revision %d %v, want seq %d revision %d", name, got.GetSeq(), got.GetRevision(),
					got.GetWarning().GetState(), ev.GetSeq(), ev.GetRevision())
			}
		}
	}
	expect("open warnings", open, sent[0], sent[1], sent[2], sent[4])
	expect("near-limit", nearLimit, sent[4])
	expect("kills", kills, sent[3])
}
