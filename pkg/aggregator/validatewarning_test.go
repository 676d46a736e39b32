package aggregator

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/warn"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// agentWarning is a forecast as the agent sends it (wire.FromWarning),
// revision rev, opened at t0+at.
func agentWarning(node string, at time.Duration, rev int64) *pb.Event {
	w := warn.Warning{Kind: warn.Forecast, State: warn.Opened, Cgroup: "/kubepods/burstable/pod1/c1",
		Since: t0.Add(at), At: t0.Add(at + time.Duration(rev)*time.Minute),
		Figures: warn.Figures{WorkingSet: 400 << 20, Usage: 420 << 20, Limit: 512 << 20, Ratio: 0.78,
			GrowthRate: 1 << 20, TimeLeft: 112 * time.Second, FitWindow: 2 * time.Minute, FitPoints: 12, FitR2: 0.98},
		Thresholds: warn.Thresholds{Open: 300, Resolve: 600}}
	return wire.FromWarning(node, boot, w, rev, &pb.Workload{Namespace: "shop", PodName: "cart-1", ContainerName: "api"})
}

// killWarned is a kill naming n warnings of node.
func killWarned(seq int64, n int, node string) *pb.Event {
	e := oom("node-a", seq, "shop", "cart-1")
	w := agentWarning("node-a", 0, 0)
	for i := range n {
		id := eventid.ID{Node: node, BootID: boot, Type: eventid.TypeWarning, Seq: w.GetSeq() + int64(i)}
		p := &pb.PrecedingWarning{EventId: id.String(), WarningKind: pb.WarningKind_WARNING_KIND_FORECAST, Role: wire.RoleVictim}
		if n <= MaxPrecedingWarnings {
			// A flood is sent bare, under the size limit: the count
			// refuses it.
			p.Since, p.Figures = w.GetWarning().GetSince(), w.GetWarning().GetFigures()
		}
		e.GetOom().PrecedingWarnings = append(e.GetOom().PrecedingWarnings, p)
	}
	return e
}

func TestValidateWarning(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, e := range []*pb.Event{agentWarning("node-a", 0, 0), agentWarning("node-a", 0, 4), killWarned(5, 3, "node-a")} {
		if err := ValidateEventAt(e, testHello, now, DefaultMaxClockSkew); err != nil {
			t.Fatalf("the agent's own event refused: %v", err)
		}
		if err := checkLimits(e); err != nil {
			t.Fatal(err)
		}
	}
	w := func(f func(m *pb.MemoryWarning)) *pb.Event {
		e := agentWarning("node-a", 0, 2)
		f(e.GetWarning())
		return e
	}
	for _, tc := range []struct {
		name, field string
		e           *pb.Event
	}{
		{"unknown kind", "warning.warning_kind", w(func(m *pb.MemoryWarning) { m.WarningKind = 42 })},
		{"no kind", "warning.warning_kind", w(func(m *pb.MemoryWarning) { m.WarningKind = 0 })},
		{"unknown state", "warning.state", w(func(m *pb.MemoryWarning) { m.State = 7 })},
		{"no since", "warning.since", w(func(m *pb.MemoryWarning) { m.Since = nil })},
		{"since after the revision", "warning.since", w(func(m *pb.MemoryWarning) { m.Since = timestamppb.New(t0.Add(50 * time.Minute)) })},
		{"since before 2000", "warning.since", w(func(m *pb.MemoryWarning) { m.Since = timestamppb.New(time.Unix(5, 0)) })},
		{"NaN ratio", "warning.figures.ratio", w(func(m *pb.MemoryWarning) { m.Figures.Ratio = math.NaN() })},
		{"infinite rate", "warning.figures.growth_bytes_per_second", w(func(m *pb.MemoryWarning) { m.Figures.GrowthBytesPerSecond = math.Inf(1) })},
		{"negative working set", "warning.figures.working_set_bytes", w(func(m *pb.MemoryWarning) { m.Figures.WorkingSetBytes = -1 })},
		{"negative PSI", "warning.figures.psi_full_avg10", w(func(m *pb.MemoryWarning) { m.Figures.PsiFullAvg10 = -3 })},
		{"PSI past 100", "warning.figures.psi_full_avg10", w(func(m *pb.MemoryWarning) { m.Figures.PsiFullAvg10 = 101 })},
		{"r2 past 1", "warning.figures.fit_r2", w(func(m *pb.MemoryWarning) { m.Figures.FitR2 = 2 })},
		{"negative time left", "warning.figures.time_left", w(func(m *pb.MemoryWarning) { m.Figures.TimeLeft.Seconds = -60 })},
		{"NaN threshold", "warning.thresholds.open", w(func(m *pb.MemoryWarning) { m.Thresholds.Open = math.NaN() })},
		{"huge summary", "warning.summary", w(func(m *pb.MemoryWarning) { m.Summary = strings.Repeat("s", MaxStringBytes+1) })},
		{"control character", "warning.summary", w(func(m *pb.MemoryWarning) { m.Summary = "a\nb" })},
		{"long namespace", "warning.workload.namespace", w(func(m *pb.MemoryWarning) { m.Workload.Namespace = strings.Repeat("n", MaxStringBytes+1) })},
		{"long resolution", "warning.resolution", w(func(m *pb.MemoryWarning) { m.Resolution = strings.Repeat("r", MaxStringBytes+1) })},
		{"10,000 preceding warnings", "oom.preceding_warnings", killWarned(6, 10000, "node-a")},
		{"another node's warning", "oom.preceding_warnings[0].event_id", killWarned(6, 1, "node-b")},
		{"not a warning's ID", "oom.preceding_warnings[0].event_id", func() *pb.Event {
			e := killWarned(6, 1, "node-a")
			e.GetOom().PrecedingWarnings[0].EventId = "node-a/" + boot + "/oom/7"
			return e
		}()},
		{"garbled ID", "oom.preceding_warnings[0].event_id", func() *pb.Event {
			e := killWarned(6, 1, "node-a")
			e.GetOom().PrecedingWarnings[0].EventId = "node-a"
			return e
		}()},
		{"preceding kind", "oom.preceding_warnings[0].warning_kind", func() *pb.Event {
			e := killWarned(6, 1, "node-a")
			e.GetOom().PrecedingWarnings[0].WarningKind = 99
			return e
		}()},
		{"preceding NaN", "oom.preceding_warnings[0].figures.ratio", func() *pb.Event {
			e := killWarned(6, 1, "node-a")
			e.GetOom().PrecedingWarnings[0].Figures.Ratio = math.NaN()
			return e
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateEventAt(tc.e, testHello, now, DefaultMaxClockSkew)
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("ValidateEventAt = %v, want ErrInvalidEvent naming %s", err, tc.field)
			}
		})
	}
	if err := ValidateEventAt(agentWarning("node-b", 0, 0), testHello, now, DefaultMaxClockSkew); !errors.Is(err, ErrWrongNode) {
		t.Fatalf("another node's warning: %v, want ErrWrongNode", err)
	}
}

// TestIngestWarningAttacks plays the hostile agent over the stream: each
// bad warning (or kill naming warnings) ends its stream with
// InvalidArgument, and the good events sent before it stay stored.
func TestIngestWarningAttacks(t *testing.T) {
	bad := func(f func(m *pb.MemoryWarning)) *pb.Event {
		e := agentWarning("node-a", 30*time.Minute, 0)
		f(e.GetWarning())
		return e
	}
	attacks := []struct {
		name   string
		e      *pb.Event
		reason string
	}{
		{"unknown kind", bad(func(m *pb.MemoryWarning) { m.WarningKind = 42 }), RejectInvalid},
		{"NaN figure", bad(func(m *pb.MemoryWarning) { m.Figures.Ratio = math.NaN() }), RejectInvalid},
		{"negative figure", bad(func(m *pb.MemoryWarning) { m.Figures.LimitBytes = -512 }), RejectInvalid},
		{"huge summary", bad(func(m *pb.MemoryWarning) { m.Summary = strings.Repeat("x", 100_000) }), RejectInvalid},
		{"another node", agentWarning("node-b", 30*time.Minute, 0), RejectWrongNode},
		{"10,000 preceding warnings", killWarned(999, 10000, "node-a"), RejectInvalid},
		{"another node's preceding warning", killWarned(999, 1, "node-b"), RejectInvalid},
	}
	e := start(t, Config{})
	conn := e.dial(t, e.creds[0])
	var at time.Duration
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rejected := e.srv.Stats().Rejected[tc.reason]
			st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a", BootId: boot}}}); err != nil {
				t.Fatal(err)
			}
			// A warning opened and updated, accepted before the attack.
			at += time.Second
			good := []*pb.Event{agentWarning("node-a", at, 0), agentWarning("node-a", at, 1)}
			for _, ev := range append(good, tc.e) {
				if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: ev}}); err != nil {
					t.Fatal(err)
				}
			}
			acks := 0
			for {
				if _, err = st.Recv(); err != nil {
					break
				}
				acks++
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("stream ended with %v, want InvalidArgument", err)
			}
			if acks != 2 {
				t.Fatalf("%d acknowledgements of the 2 good events", acks)
			}
			stored, err := e.st.Get(ctx, eventid.String(good[0]))
			if err != nil || stored.GetRevision() != 1 {
				t.Fatalf("the good warning: %v, revision %d", err, stored.GetRevision())
			}
			if tc.e.GetNode() == "node-a" {
				if _, err := e.st.Get(ctx, eventid.String(tc.e)); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("the bad event was stored: %v", err)
				}
			}
			if e.srv.Stats().Rejected[tc.reason] != rejected+1 {
				t.Fatalf("rejected[%s] not counted: %v", tc.reason, e.srv.Stats().Rejected)
			}
		})
	}
}
