package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// A storm is many OOM kills of one container's processes close in time (a
// fork bomb, a pool of workers at their limit). Tables show it as one row
// with its count; --all lists every kill.

// stormGap: kills of one container on one node less than this apart are
// one storm, as incidents group kills.
const stormGap = time.Minute

// collapser buffers the OOM kill rows of storms and prints each as one.
// Listings come newest first: a storm's group stays open while its kills
// keep coming less than stormGap apart, other rows in between included,
// and groups are printed in the order of their newest row.
type collapser struct {
	p      *printer
	all    bool
	groups []*stormGroup
}

type stormGroup struct {
	key string
	evs []*pb.Event
}

// stormKey is what kills of one storm share: node, kind and the victim's
// container; "" when the victim's container is unknown (such kills are
// never merged: they may be anyone's).
func stormKey(e *pb.Event) string {
	o := e.GetOom()
	if o == nil || len(o.GetVictims()) == 0 {
		return ""
	}
	w := o.GetVictims()[0].GetWorkload()
	id := w.GetContainerId()
	if id == "" {
		return ""
	}
	return e.GetNode() + "\x00" + o.GetKind() + "\x00" + id
}

// maxOpenRows bounds the rows a collapser holds before printing.
const maxOpenRows = 100000

// add takes the next event of a listing (newest first).
func (c *collapser) add(e *pb.Event) {
	if c.all || c.p.format == "json" {
		c.p.event(e)
		return
	}
	t := e.GetTime().AsTime()
	// Groups whose oldest row is a gap newer than this one are over; the
	// leading ones are printed.
	n := 0
	for n < len(c.groups) {
		g := c.groups[n]
		if g.evs[len(g.evs)-1].GetTime().AsTime().Sub(t) < stormGap {
			break
		}
		c.print(g)
		n++
	}
	c.groups = c.groups[n:]
	if k := stormKey(e); k != "" {
		for _, g := range c.groups {
			if g.key == k && g.evs[len(g.evs)-1].GetTime().AsTime().Sub(t) < stormGap {
				g.evs = append(g.evs, e)
				c.bound()
				return
			}
		}
		c.groups = append(c.groups, &stormGroup{key: k, evs: []*pb.Event{e}})
	} else {
		c.groups = append(c.groups, &stormGroup{evs: []*pb.Event{e}})
	}
	c.bound()
}

// bound prints what is held past maxOpenRows.
func (c *collapser) bound() {
	rows := 0
	for _, g := range c.groups {
		rows += len(g.evs)
	}
	if rows > maxOpenRows {
		c.flush()
	}
}

// flush prints every group held.
func (c *collapser) flush() {
	for _, g := range c.groups {
		c.print(g)
	}
	c.groups = nil
}

func (c *collapser) print(g *stormGroup) {
	if len(g.evs) == 1 {
		c.p.event(g.evs[0])
		return
	}
	c.p.row(eventHeader, stormRow(g.evs, c.p.format == "wide"))
}

// stormRow is the table row of a storm: the earliest time, the kind with
// the count, the largest victim, its size, how the kills were judged, and
// the largest culprit.
func stormRow(evs []*pb.Event, wide bool) string {
	var largest, culprit *pb.Event
	var bestRSS, bestCulprit int64 = -1, -1
	first := evs[0].GetTime().AsTime()
	judged := map[string]int{}
	for _, e := range evs {
		if t := e.GetTime().AsTime(); t.Before(first) {
			first = t
		}
		o := e.GetOom()
		if rss := o.GetVictims()[0].GetRssBytes(); largest == nil || rss > bestRSS {
			largest, bestRSS = e, rss
		}
		if c := o.GetCulprit(); c != nil && c.GetRssBytes() > bestCulprit {
			culprit, bestCulprit = e, c.GetRssBytes()
		}
		judged[tableCells(e, wide)[6]]++
	}
	cells := tableCells(largest, wide)
	cells[0] = first.UTC().Format("2006-01-02T15:04:05Z")
	cells[2] += fmt.Sprintf(" ×%d", len(evs))
	cells[3] += fmt.Sprintf(" +%d more", len(evs)-1)
	cells[6] = countsLabel(judged)
	if culprit != nil {
		cells[7] = tableCells(culprit, wide)[7]
	}
	return strings.Join(cells, "\t")
}

// tableCells is an OOM kill's event row in cells: time, node, kind,
// victim, RSS, request/limit, collateral, culprit.
func tableCells(e *pb.Event, wide bool) []string {
	cells := strings.Split(tableRow(wire.ToAnalysis(e), wide), "\t")
	return append([]string{cells[0], e.GetNode()}, cells[1:]...)
}

// countsLabel writes counts by label, most first: "no ×31, unknown ×790"
// reads "unknown ×790, no ×31"; one label alone is the label.
func countsLabel(m map[string]int) string {
	if len(m) == 1 {
		for k := range m {
			return k
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// victimGroup is the victims of one container in an incident.
type victimGroup struct {
	label   string
	victims []*pb.Process
	largest *pb.Process
}

// groupVictims groups an incident's victims by container (by pod, cgroup
// or "unattributed" when there is none), largest groups first.
func groupVictims(vs []*pb.Process, wide bool) []*victimGroup {
	byKey := map[string]*victimGroup{}
	var order []*victimGroup
	for _, v := range vs {
		w := v.GetWorkload()
		key := w.GetContainerId()
		if key == "" {
			key = w.GetPodUid() + "\x00" + w.GetCgroup()
		}
		g := byKey[key]
		if g == nil {
			aw := wire.ToAnalysis(&pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Victims: []*pb.Process{v}}}}).Victims[0].Workload
			label := processCell(0, "", aw, wide)
			label = strings.TrimSpace(label)
			if w.GetCgroup() == "" && w.GetPodUid() == "" && w.GetContainerId() == "" {
				label = "unattributed"
			}
			g = &victimGroup{label: label}
			byKey[key] = g
			order = append(order, g)
		}
		g.victims = append(g.victims, v)
		if g.largest == nil || v.GetRssBytes() > g.largest.GetRssBytes() {
			g.largest = v
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return len(order[i].victims) > len(order[j].victims) })
	return order
}

// victimsCell is an incident's victims in one cell: the largest groups
// with their counts, "runner ×821, api ×2, +3 more".
func victimsCell(vs []*pb.Process, wide bool) string {
	gs := groupVictims(vs, wide)
	if len(gs) == 0 {
		return "-"
	}
	var parts []string
	for i, g := range gs {
		if i == 2 {
			parts = append(parts, fmt.Sprintf("+%d more", len(gs)-2))
			break
		}
		s := g.label
		if len(g.victims) > 1 {
			s += fmt.Sprintf(" ×%d", len(g.victims))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// procLabel is "hog[1903] 129.0 MiB".
func procLabel(p *pb.Process) string {
	s := fmt.Sprintf("%s[%d]", p.GetComm(), p.GetPid())
	if p.RssBytes != nil {
		s += " " + analysis.Bytes(p.GetRssBytes())
	}
	return s
}

// victimLines lists an incident's victims under its row (--all): a line
// per container, its count, its largest and every victim.
func victimLines(vs []*pb.Process, wide bool) []string {
	var out []string
	for _, g := range groupVictims(vs, wide) {
		names := make([]string, len(g.victims))
		for i, v := range g.victims {
			names[i] = procLabel(v)
		}
		out = append(out, fmt.Sprintf("%s: %s (largest %s): %s", g.label, plural(len(g.victims), "kill"),
			procLabel(g.largest), strings.Join(names, ", ")))
	}
	return out
}
