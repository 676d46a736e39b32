package aggregator

import (
	"context"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Watchers of warnings get each revision their filter selects; a watcher
// of open warnings gets the resolution too, not a stale replay; a watcher
// of kills gets none.
func TestWatchWarnings(t *testing.T) {
	// The server's clock runs from t0+5m.
	shift := time.Since(t0) - 5*time.Minute
	e := start(t, Config{Now: func() time.Time { return time.Now().Add(-shift) }})
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
	all := watch(&pb.EventFilter{Types: []string{"warning"}})
	waitFor(t, func() bool { return e.srv.Stats().Watchers == 4 })

	a := e.agent(t, ctx, conn, "node-a")
	resolved := agentWarning("node-a", 0, 2)
	resolved.GetWarning().State, resolved.GetWarning().Resolution = pb.WarningState_WARNING_STATE_RESOLVED, "cleared"
	near := agentWarning("node-a", time.Minute, 0)
	near.GetWarning().WarningKind = pb.WarningKind_WARNING_KIND_NEAR_LIMIT
	near.Seq++
	// A replay after a long outage: opened 40m before, last sent 20m
	// before (stale), then its resolution.
	replay := agentWarning("node-a", -40*time.Minute, 20)
	replayed := agentWarning("node-a", -40*time.Minute, 25)
	replayed.GetWarning().State, replayed.GetWarning().Resolution = pb.WarningState_WARNING_STATE_RESOLVED, "cleared"
	sent := []*pb.Event{agentWarning("node-a", 0, 0), agentWarning("node-a", 0, 1), resolved, oom("node-a", 50, "shop", "cart-1"), near,
		replay, replayed}
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
	expect("open warnings", open, sent[0], sent[1], sent[2], sent[4], sent[6])
	expect("near-limit", nearLimit, sent[4])
	expect("kills", kills, sent[3])
	// Staleness is open_warnings_only's: every warning's watcher gets the
	// replay.
	expect("warnings", all, sent[0], sent[1], sent[2], sent[4], sent[5], sent[6])
}
