package store

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// story is revision rev of an oom-child story with kills kills.
func story(rev int64, kills int32) *pb.Event {
	e := exit("n1", 77, 0, "oom-child", "ci", "runner-1", "runner", false)
	e.Revision = rev
	e.GetExit().ChildKills = kills
	return e
}

// TestUpdateByRevision: an event put again with a higher revision replaces
// the stored one (Updated), in place; the same or a lower revision is a
// duplicate and changes nothing; an event without revision is never
// updated.
func TestUpdateByRevision(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	steps := []struct {
		name      string
		events    []*pb.Event
		want      []PutResult
		wantKills int32
	}{
		{"first", []*pb.Event{story(1, 3)}, []PutResult{{Stored: true}}, 3},
		{"update", []*pb.Event{story(2, 40)}, []PutResult{{Updated: true}}, 40},
		{"replay of the update", []*pb.Event{story(2, 40)}, []PutResult{{Duplicate: true}}, 40},
		{"late older revision", []*pb.Event{story(1, 3)}, []PutResult{{Duplicate: true}}, 40},
		{"two in one batch", []*pb.Event{story(3, 50), story(5, 90), story(4, 60)},
			[]PutResult{{Updated: true}, {Updated: true}, {Duplicate: true}}, 90},
	}
	for _, st := range steps {
		got, err := s.Put(ctx, st.events)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for i := range st.want {
			if got[i] != st.want[i] {
				t.Errorf("%s: event %d: %+v, want %+v", st.name, i, got[i], st.want[i])
			}
		}
		e, err := s.Get(ctx, eventid.String(story(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if e.GetExit().GetChildKills() != st.wantKills {
			t.Errorf("%s: stored %d kills, want %d", st.name, e.GetExit().GetChildKills(), st.wantKills)
		}
	}
	// Still one event, found by its pod.
	evs, _, err := s.List(ctx, &pb.EventFilter{Pod: "runner-1"}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].GetRevision() != 5 {
		t.Fatalf("listing %d events %v", len(evs), evs)
	}

	// Without a revision, a second put is a duplicate, whatever it says.
	plain := loss("n1", 9, 0)
	put(t, s, plain)
	changed := proto.Clone(plain).(*pb.Event)
	changed.GetLoss().Lost = 99
	if got, _ := s.Put(ctx, []*pb.Event{changed}); !got[0].Duplicate {
		t.Fatalf("an event without revision was not a duplicate: %+v", got[0])
	}
	// An OOM kill is never rewritten, whatever its revision.
	k := oom("n1", 11, 0, "limit", "ci", "runner-1", "runner")
	k.Revision = 1
	put(t, s, k)
	k2 := proto.Clone(k).(*pb.Event)
	k2.Revision = 2
	k2.GetOom().Reason = "rewritten"
	if got, _ := s.Put(ctx, []*pb.Event{k2}); !got[0].Duplicate {
		t.Fatalf("an OOM kill was updated: %+v", got[0])
	}
	if e, _ := s.Get(ctx, eventid.String(k)); e.GetOom().GetReason() == "rewritten" {
		t.Fatal("the stored OOM kill was rewritten")
	}
	// An update may not move the event in time: its place in every
	// listing is its first time.
	moved := story(9, 100)
	moved.Time = timestamppb.New(t0.Add(-3600e9))
	if got, _ := s.Put(ctx, []*pb.Event{moved}); !got[0].Duplicate {
		t.Fatalf("an update that moves the event's time was taken: %+v", got[0])
	}
}
