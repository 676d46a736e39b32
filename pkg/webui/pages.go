package webui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/wire"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// incidentsData is the incidents page.
type incidentsData struct {
	Filter filter
	Rows   []row
	// Next is the next (older) page; First the first, from a later page.
	Next, First string
	// Nodes are the nodes listed, offered by the node field.
	Nodes []string
	Kinds []option
}

// option is one choice of a select.
type option struct {
	Value, Label string
	Selected     bool
}

// incidents is the front page: the fleet's incidents, newest first.
func (u *UI) incidents(w http.ResponseWriter, r *http.Request) {
	p, f, ok := u.filtered(w, r, "page", "partial")
	if !ok {
		return
	}
	list, next, err := u.st.Incidents(r.Context(), f.proto(), u.opts.Gap, u.opts.PageSize, p["page"])
	if err != nil {
		u.failErr(w, r, "page", err)
		return
	}
	now := u.opts.Now()
	d := incidentsData{Filter: f}
	for _, in := range list {
		d.Rows = append(d.Rows, rowOf(in, now))
		if !slices.Contains(d.Nodes, in.GetNode()) {
			d.Nodes = append(d.Nodes, in.GetNode())
		}
	}
	slices.Sort(d.Nodes)
	choices := []option{{"", "any", false}, {"node", "node-level", false}, {"limit", "limit", false}}
	if !slices.ContainsFunc(choices, func(o option) bool { return o.Value == f.Kind }) {
		// A rarer kind, from the address.
		choices = append(choices, option{f.Kind, f.Kind, false})
	}
	for _, o := range choices {
		o.Selected = o.Value == f.Kind
		d.Kinds = append(d.Kinds, o)
	}
	if next != "" {
		d.Next = with("/", f.values(), "page", next)
	}
	pg := page{Title: "Incidents", Nav: "incidents", Data: d}
	if p["page"] != "" {
		d.First = with("/", f.values(), "", "")
		pg.Data = d
	} else if u.feed != nil {
		pg.Live = with("/live", f.values(), "", "")
	}
	if p["partial"] != "" {
		u.render(w, r, http.StatusOK, "incidents", "live", pg)
		return
	}
	u.render(w, r, http.StatusOK, "incidents", "", pg)
}

// incidentData is the incident page.
type incidentData struct {
	ID        string
	Node      string
	NodeURL   string
	Boot      string
	Heading   string
	Kind      string
	NodeLevel bool
	Time      string
	Datetime  string
	Age       string
	Duration  string
	Kills     int
	Collat    int
	Culprit   *culprit
	Trigger   *proc
	Summary   string
	Truncated bool
	Timeline  []kill
	// TimelineMore counts kills left off the timeline.
	TimelineMore int
	// FoldTimeline folds a long timeline: Groups tell the storm.
	FoldTimeline bool
	// Groups are the victims by container, largest first.
	Groups []victimGroup
	// Cards are the kills detailed on this page.
	Cards      []kill
	Page       int
	Pages      int
	Prev, Next string
}

// maxTimeline bounds the timeline's rows.
const maxTimeline = 1000

// killSeq reads the node, boot and sequence number of a kill's or an
// incident's address.
func killSeq(r *http.Request) (eventid.ID, bool) {
	node, boot := r.PathValue("node"), r.PathValue("boot")
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	return eventid.ID{Node: node, BootID: boot, Type: eventid.TypeOOM, Seq: seq}, err == nil && node != "" && boot != ""
}

// killAddr reads a kill's address and its query, which takes the names
// allowed; on a bad one it answers the request and returns false.
func (u *UI) killAddr(w http.ResponseWriter, r *http.Request, what string, allowed ...string) (eventid.ID, map[string]string, bool) {
	id, ok := killSeq(r)
	if !ok {
		u.fail(w, r, http.StatusNotFound, "This is not the address of "+what+".")
		return id, nil, false
	}
	p, err := params(r.URL.RawQuery, allowed...)
	if err != nil {
		u.failErr(w, r, "", err)
		return id, nil, false
	}
	return id, p, true
}

// incident is one incident's page: a timeline of its kills, then each
// kill in detail, a page of them at a time.
func (u *UI) incident(w http.ResponseWriter, r *http.Request) {
	id, p, ok := u.killAddr(w, r, "an incident", "page")
	if !ok {
		return
	}
	seq := id.Seq
	pageNo := 1
	if s := p["page"]; s != "" {
		var err error
		if pageNo, err = strconv.Atoi(s); err != nil || pageNo < 1 {
			u.fail(w, r, http.StatusBadRequest, fmt.Sprintf("page=%q: want a page number from 1.", s))
			return
		}
	}
	ik, err := u.st.IncidentOf(r.Context(), id.String(), u.opts.Gap)
	if err != nil {
		u.failErr(w, r, "incident", err)
		return
	}
	in := ik.Incident
	if want := incidentPath(in.GetId()); want != r.URL.Path {
		// The address of a later kill of the incident: show it there.
		http.Redirect(w, r, want+"#kill-"+strconv.FormatInt(seq, 10), http.StatusFound)
		return
	}
	per := u.opts.KillsPerPage
	pages := (len(ik.Kills) + per - 1) / per
	if pageNo > pages {
		u.fail(w, r, http.StatusBadRequest, fmt.Sprintf("page=%d: this incident has %d page(s) of kills.", pageNo, pages))
		return
	}
	now := u.opts.Now()
	start, end := in.GetStart().AsTime(), in.GetEnd().AsTime()
	d := incidentData{
		ID:        in.GetId(),
		Node:      in.GetNode(),
		NodeURL:   with("/", url.Values{"node": {in.GetNode()}}, "", ""),
		Boot:      in.GetBootId(),
		Kind:      kindLabel(wire.IncidentKind(in), ""),
		NodeLevel: wire.IncidentKind(in) == "node",
		Time:      start.UTC().Format(stampLayout),
		Datetime:  start.UTC().Format(time.RFC3339Nano),
		Age:       age(now, start),
		Duration:  span(end.Sub(start)),
		Kills:     int(in.GetKills()),
		Collat:    int(in.GetCollateral()),
		Culprit:   culpritOf(in.GetCulprit()),
		Truncated: ik.Truncated,
		Page:      pageNo,
		Pages:     pages,
	}
	if d.NodeLevel {
		d.Heading = "Node " + in.GetNode() + " ran out of memory"
	} else if d.Kills == 1 {
		d.Heading = "Memory limit hit on " + in.GetNode()
	} else {
		d.Heading = "Memory limits hit on " + in.GetNode()
	}
	if t := in.GetTrigger(); t != nil {
		tp := procOf(t)
		d.Trigger = &tp
	}
	d.Summary = summary(in, ik.Kills)
	// Victims by container only for a storm: otherwise the timeline
	// says it all.
	if gs := victimGroups(ik.Kills); len(gs) > 0 && gs[0].Kills > 1 {
		d.Groups = gs
	}
	d.FoldTimeline = len(ik.Kills) >= foldTimelineFrom
	base := incidentPath(in.GetId())
	pageURL := func(n int) string {
		if n <= 1 {
			return base
		}
		return base + "?page=" + strconv.Itoa(n)
	}
	total := end.Sub(start)
	for i, e := range ik.Kills {
		if i >= maxTimeline {
			d.TimelineMore = len(ik.Kills) - maxTimeline
			break
		}
		k := killOf(e, start, now)
		k.N = i + 1
		k.Chart, k.Lines = nil, nil
		// Marks are 4 wide on a strip of 1000.
		k.X = 498
		if total > 0 {
			k.X = int(e.GetTime().AsTime().Sub(start) * 996 / total)
		}
		k.URL = "#" + k.Anchor
		if n := i/per + 1; n != pageNo {
			k.URL = pageURL(n) + k.URL
		}
		d.Timeline = append(d.Timeline, k)
	}
	for i := (pageNo - 1) * per; i < min(pageNo*per, len(ik.Kills)); i++ {
		k := killOf(ik.Kills[i], start, now)
		k.N = i + 1
		d.Cards = append(d.Cards, k)
	}
	if pageNo > 1 {
		d.Prev = pageURL(pageNo - 1)
	}
	if pageNo < pages {
		d.Next = pageURL(pageNo + 1)
	}
	u.render(w, r, http.StatusOK, "incident", "", page{Title: d.Heading + ", " + d.Time, Nav: "incidents", Data: d})
}

// summary says what happened in an incident in a sentence or two.
func summary(in *pb.Incident, kills []*pb.Event) string {
	var b strings.Builder
	n := in.GetKills()
	if n == 1 {
		b.WriteString("1 kill")
	} else {
		fmt.Fprintf(&b, "%d kills in %s", n, span(in.GetEnd().AsTime().Sub(in.GetStart().AsTime())))
	}
	switch c := in.GetCollateral(); {
	case c == 0:
		b.WriteString(", none collateral")
	case c == n && n == 1:
		b.WriteString(", collateral")
	case c == n:
		b.WriteString(", all collateral")
	default:
		fmt.Fprintf(&b, ", %d collateral", c)
	}
	if u := in.GetCollateralUnknown(); u > 0 {
		fmt.Fprintf(&b, " (%d not known)", u)
	}
	if m := in.GetLimitedCgroup(); m != "" {
		fmt.Fprintf(&b, ", all at the limit of %s", m)
	}
	if c := culpritOf(in.GetCulprit()); c != nil {
		fmt.Fprintf(&b, ". The largest memory holder was %s", c.Who.Label)
		if c.Who.QoS != "" {
			fmt.Fprintf(&b, " (%s)", c.Who.QoS)
		}
		if c.RSS != "" {
			fmt.Fprintf(&b, " with %s", c.RSS)
		}
	}
	b.WriteString(".")
	for _, e := range kills {
		if !e.GetOom().GetCollateral() || len(e.GetOom().GetVictims()) == 0 {
			continue
		}
		v := procOf(e.GetOom().GetVictims()[0])
		first := "The first collateral victim was"
		if in.GetCollateral() == 1 {
			first = "The collateral victim was"
		}
		fmt.Fprintf(&b, " %s %s in %s", first, v.Name, v.Who.Label)
		if v.Who.QoS != "" {
			fmt.Fprintf(&b, " (%s)", v.Who.QoS)
		}
		b.WriteString(".")
		break
	}
	return b.String()
}

// kill redirects a kill's address to the kill on its incident's page.
func (u *UI) kill(w http.ResponseWriter, r *http.Request) {
	kid, _, ok := u.killAddr(w, r, "a kill")
	if !ok {
		return
	}
	id, seq := kid.String(), kid.Seq
	ik, err := u.st.IncidentOf(r.Context(), id, u.opts.Gap)
	if err != nil {
		u.failErr(w, r, "kill", err)
		return
	}
	target := incidentPath(ik.Incident.GetId())
	for i, e := range ik.Kills {
		if e.GetId() == id {
			if n := i/u.opts.KillsPerPage + 1; n > 1 {
				target += "?page=" + strconv.Itoa(n)
			}
			break
		}
	}
	http.Redirect(w, r, target+"#kill-"+strconv.FormatInt(seq, 10), http.StatusFound)
}

// kernel serves a kill's kernel lines as plain text, as `oomctl analyze`
// reads them.
func (u *UI) kernel(w http.ResponseWriter, r *http.Request) {
	id, _, ok := u.killAddr(w, r, "a kill")
	if !ok {
		return
	}
	e, err := u.st.Get(r.Context(), id.String())
	if err != nil {
		u.failErr(w, r, "kill", err)
		return
	}
	var b strings.Builder
	for _, l := range e.GetOom().GetLines() {
		b.WriteString(kernlog.EscapeLine(l))
		b.WriteByte('\n')
	}
	if n := e.GetOom().GetLinesDropped(); n > 0 {
		fmt.Fprintf(&b, "# %d more lines were not kept by the agent\n", n)
	}
	u.deadline(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

// podData is the pod page.
type podData struct {
	Key       string
	Heading   string
	UID       string
	Namespace string
	Name      string
	QoS       string
	Nodes     []string
	// Containers seen in the pod's kills.
	Containers []string
	Kills      []kill
	Exits      []exit
	Next       string
	First      string
}

// exit is a container exit of the pod page.
type exit struct {
	Time, Datetime, Age string
	Node                string
	Container           string
	Code                int32
	Reason              string
	Verdict             string
	Explanation         string
	Collateral          bool
	KillURL             string
	// Story is an oom-child story's kills, nil for one kill.
	Story *story
}

// podPageSize is how many events a pod page reads.
const podPageSize = 200

// pod lists every kill that touched a pod, as victim, trigger or culprit,
// and the pod's containers' exits.
func (u *UI) pod(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("pod")
	if key == "" || len(key) > maxName {
		u.fail(w, r, http.StatusNotFound, "This is not the address of a pod.")
		return
	}
	p, err := params(r.URL.RawQuery, "namespace", "page", "partial")
	if err != nil {
		u.failErr(w, r, "", err)
		return
	}
	ns := strings.TrimSpace(p["namespace"])
	if len(ns) > maxName {
		u.fail(w, r, http.StatusBadRequest, "A namespace is at most 253 characters.")
		return
	}
	flt := &pb.EventFilter{Pod: key, Namespace: ns, Types: []string{eventid.TypeOOM, eventid.TypeExit}}
	evs, next, err := u.st.List(r.Context(), flt, podPageSize, p["page"])
	if err != nil {
		u.failErr(w, r, "pod", err)
		return
	}
	if len(evs) == 0 && p["page"] == "" {
		u.fail(w, r, http.StatusNotFound, "No kill or exit this aggregator keeps touched a pod named "+strconv.Quote(key)+".")
		return
	}
	now := u.opts.Now()
	d := podData{Key: key}
	match := func(w *pb.Workload) bool {
		return w != nil && (w.GetPodUid() == key || w.GetPodName() == key) && (ns == "" || w.GetNamespace() == ns)
	}
	learn := func(w *pb.Workload) {
		if !match(w) {
			return
		}
		if d.UID == "" {
			d.UID = w.GetPodUid()
		}
		if d.Name == "" && w.GetPodName() != "" {
			d.Name, d.Namespace = w.GetPodName(), w.GetNamespace()
		}
		if d.QoS == "" {
			d.QoS = qosName(w.GetQos())
		}
		if c := containerLabel(w); c != "" && !slices.Contains(d.Containers, c) {
			d.Containers = append(d.Containers, c)
		}
	}
	for _, e := range evs {
		if !slices.Contains(d.Nodes, e.GetNode()) {
			d.Nodes = append(d.Nodes, e.GetNode())
		}
		if x := e.GetExit(); x != nil {
			learn(x.GetWorkload())
			d.Exits = append(d.Exits, exitOf(e, now))
			continue
		}
		k := e.GetOom()
		for _, v := range k.GetVictims() {
			learn(v.GetWorkload())
		}
		learn(k.GetTrigger().GetWorkload())
		learn(k.GetCulprit().GetWorkload())
		roles := podRoles(e, key, ns)
		if len(roles) == 0 {
			// Only in the task dump: neither victim, trigger nor culprit.
			continue
		}
		kv := killOf(e, e.GetTime().AsTime(), now)
		kv.Roles = roles
		d.Kills = append(d.Kills, kv)
	}
	slices.Sort(d.Nodes)
	switch {
	case d.Name != "" && d.Namespace != "":
		d.Heading = "Pod " + d.Namespace + "/" + d.Name
	case d.Name != "":
		d.Heading = "Pod " + d.Name
	default:
		d.Heading = "Pod " + key
	}
	v := url.Values{}
	if ns != "" {
		v.Set("namespace", ns)
	}
	self := "/pods/" + url.PathEscape(key)
	if next != "" {
		d.Next = with(self, v, "page", next)
	}
	pg := page{Title: d.Heading, Nav: "pods", Data: d}
	if p["page"] != "" {
		d.First = with(self, v, "", "")
		pg.Data = d
	} else if u.feed != nil {
		lv := url.Values{"pod": {key}}
		if ns != "" {
			lv.Set("namespace", ns)
		}
		pg.Live = "/live?" + lv.Encode()
	}
	if p["partial"] != "" {
		u.render(w, r, http.StatusOK, "pod", "live", pg)
		return
	}
	u.render(w, r, http.StatusOK, "pod", "", pg)
}

func exitOf(e *pb.Event, now time.Time) exit {
	x := e.GetExit()
	t := e.GetTime().AsTime()
	out := exit{
		Time: t.UTC().Format(stampLayout), Datetime: t.UTC().Format(time.RFC3339Nano), Age: age(now, t),
		Node: e.GetNode(), Container: containerLabel(x.GetWorkload()), Code: x.GetExitCode(),
		Reason: x.GetRuntimeReason(), Verdict: wire.Why(x), Explanation: x.GetExplanation(), Collateral: x.GetCollateral(),
	}
	if id := x.GetOomEventId(); id != "" {
		out.KillURL = killPath(id)
	}
	out.Story = storyOf(x)
	return out
}
