package webui

import (
	"fmt"
	"sort"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// A storm (many kills of one container's processes) shows as a count per
// container, each with its victims folded in a <details> element, opened on
// demand.

// victimGroup is the victims of one container in an incident.
type victimGroup struct {
	Who     who
	Kills   int
	Largest proc
	// Victims are the processes killed, oldest first (bounded).
	Victims []proc
	// More counts those left out.
	More int
	// Open unfolds a small group at once.
	Open bool
}

// Bounds of the victim lists.
const (
	// maxGroupVictims bounds the victims listed per container.
	maxGroupVictims = 1000
	// openGroupBelow: groups of fewer kills are shown unfolded.
	openGroupBelow = 4
	// foldTimelineFrom: a timeline of this many kills or more is folded.
	foldTimelineFrom = 25
)

// victimGroups groups an incident's kills by their first victim's
// container, largest groups first.
func victimGroups(kills []*pb.Event) []victimGroup {
	type acc struct {
		g       victimGroup
		largest int64
	}
	byKey := map[string]*acc{}
	var order []*acc
	for _, e := range kills {
		vs := e.GetOom().GetVictims()
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		w := v.GetWorkload()
		key := w.GetContainerId()
		if key == "" {
			key = w.GetPodUid() + "\x00" + w.GetCgroup()
		}
		a := byKey[key]
		if a == nil {
			a = &acc{g: victimGroup{Who: whoOf(w)}, largest: -1}
			byKey[key] = a
			order = append(order, a)
		}
		a.g.Kills++
		if len(a.g.Victims) < maxGroupVictims {
			a.g.Victims = append(a.g.Victims, procOf(v))
		} else {
			a.g.More++
		}
		if v.GetRssBytes() > a.largest {
			a.largest, a.g.Largest = v.GetRssBytes(), procOf(v)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].g.Kills > order[j].g.Kills })
	out := make([]victimGroup, len(order))
	for i, a := range order {
		a.g.Open = a.g.Kills < openGroupBelow
		out[i] = a.g
	}
	return out
}

// story is an oom-child exit's kills, for the pod page.
type story struct {
	Kills   int32
	Span    string
	Victims []string
	More    int
}

// storyOf describes an oom-child story of more than one kill; nil else.
func storyOf(x *pb.ContainerExit) *story {
	if x.GetChildKills() <= 1 {
		return nil
	}
	s := &story{Kills: x.GetChildKills()}
	if f, l := x.GetFirstKillAt(), x.GetLastKillAt(); f != nil && l != nil {
		s.Span = span(l.AsTime().Sub(f.AsTime()))
	}
	for _, v := range x.GetVictims() {
		name := fmt.Sprintf("%s (pid %d)", v.GetComm(), v.GetPid())
		if v.RssBytes != nil {
			name += ", " + analysis.Bytes(v.GetRssBytes())
		}
		if v.GetAt() != nil {
			name += ", " + v.GetAt().AsTime().UTC().Format(time.TimeOnly)
		}
		s.Victims = append(s.Victims, name)
	}
	s.More = int(x.GetChildKills()) - len(s.Victims)
	return s
}
