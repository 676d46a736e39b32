package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestIncidentOf checks that the incident of every kill is exactly the
// incident Incidents returns for it, on irregular chains of kills on
// several nodes and boots, with kills at the same instant, and losses and
// exits in between that are not kills.
func TestIncidentOf(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var evs []*pb.Event
	for n := range 4 {
		at := time.Duration(n) * 5 * time.Second
		for i := range 50 {
			// Steps of 0 (two kills at one instant) to 120 s.
			at += time.Duration((i*5+n*3)%13) * 10 * time.Second
			e := oom(fmt.Sprintf("node-%d", n%3), int64(n*1000+i), at, []string{"limit", "node"}[i%7/6], "shop", fmt.Sprintf("p%d", i%4), "c")
			e.GetOom().Collateral = i%3 == 0
			if n == 3 {
				e.BootId = "boot-2"
			}
			evs = append(evs, e)
		}
	}
	evs = append(evs, loss("node-0", 99999, 30*time.Second), exit("node-0", 99998, 31*time.Second, "oom-limit", "shop", "p1", "c", false))
	put(t, s, evs...)

	for _, gap := range []time.Duration{0, 30 * time.Second, 95 * time.Second} {
		all, next, err := s.Incidents(ctx, nil, gap, MaxPageSize, "")
		if err != nil || next != "" {
			t.Fatalf("incidents: %v %q", err, next)
		}
		if len(all) < 10 {
			t.Fatalf("gap %v: only %d incidents: the fixture does not exercise grouping", gap, len(all))
		}
		multi := 0
		for _, want := range all {
			if want.Kills > 1 {
				multi++
			}
			for _, id := range want.EventIds {
				got, err := s.IncidentOf(ctx, id, gap)
				if err != nil {
					t.Fatalf("gap %v: IncidentOf(%s): %v", gap, id, err)
				}
				if !proto.Equal(got.Incident, want) {
					t.Fatalf("gap %v: IncidentOf(%s):\n got %v\nwant %v", gap, id, got.Incident, want)
				}
				if got.Truncated || len(got.Kills) != len(want.EventIds) {
					t.Fatalf("gap %v: IncidentOf(%s): %d kills (truncated %v), want %d", gap, id, len(got.Kills), got.Truncated, len(want.EventIds))
				}
				for i, k := range got.Kills {
					if k.GetId() != want.EventIds[i] {
						t.Fatalf("gap %v: IncidentOf(%s): kill %d is %s, want %s", gap, id, i, k.GetId(), want.EventIds[i])
					}
				}
			}
		}
		if multi < 3 {
			t.Fatalf("gap %v: %d incidents of several kills: the fixture does not exercise chains", gap, multi)
		}
	}

	for _, tc := range []struct {
		id   string
		want error
		gap  time.Duration
	}{
		{id: "node-0/" + boot + "/oom/424242", want: ErrNotFound},
		{id: "node-0/" + boot + "/loss/99999", want: ErrNotFound},
		{id: "node-0/" + boot + "/exit/99998", want: ErrNotFound},
		{id: "", want: ErrNotFound},
		{id: evs[0].GetId(), gap: -time.Second, want: ErrInvalidFilter},
	} {
		if _, err := s.IncidentOf(ctx, tc.id, tc.gap); !errors.Is(err, tc.want) {
			t.Errorf("IncidentOf(%q, %v) = %v, want %v", tc.id, tc.gap, err, tc.want)
		}
	}
}

// TestIncidentOfTruncated checks the bound on an endless storm.
func TestIncidentOfTruncated(t *testing.T) {
	s, _ := open(t)
	evs := make([]*pb.Event, MaxIncidentKills+2)
	for i := range evs {
		evs[i] = oom("node-a", int64(i), time.Duration(i)*time.Second, "limit", "shop", "cart", "api")
	}
	put(t, s, evs...)
	got, err := s.IncidentOf(context.Background(), evs[len(evs)-1].GetId(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(got.Kills) != MaxIncidentKills || got.Incident.Kills != MaxIncidentKills {
		t.Fatalf("truncated %v, %d kills, incident of %d", got.Truncated, len(got.Kills), got.Incident.Kills)
	}
	if got.Kills[0].GetId() != evs[0].GetId() || got.Incident.Id != "node-a/"+boot+"/incident/0" {
		t.Fatalf("first kill %s, incident %s", got.Kills[0].GetId(), got.Incident.Id)
	}
}
