package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/exits"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// maxExplainScan bounds the events explain reads from the aggregator.
const maxExplainScan = 5000

func explainCmd(io IO, g *globals) *cobra.Command {
	r := &remote{g: g}
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "explain POD [CONTAINER] | explain EVENT-ID",
		Short: "Tell the story of a pod's recent container exits: OOM kill or not, whose memory, kernel lines",
		Long: "Tells the story of a pod's recent container exits that ended in a signal: for each, the verdict\n" +
			"(oom-limit, oom-pod-limit, oom-node, oom-child, not-oom, graceful), why, and the kernel's lines.\n" +
			"POD is a pod name or UID; CONTAINER a container name or ID (prefix). OOM kills in the pod with no\n" +
			"exit record are shown too, and the memory warnings that preceded each kill. EVENT-ID\n" +
			"(<node>/<boot>/<type>/<seq>, as -o wide and the web UI show it) tells one event's story.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return runExplain(cmd.Context(), io, r, limit, all, pos)
		},
	}
	r.addFilterFlags(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many exits and OOM kills, newest first (0: all)")
	cmd.Flags().BoolVar(&all, "all", false, "list every process of a storm (many OOM kills in a container that kept running), not the first few")
	return cmd
}

func runExplain(ctx context.Context, io IO, r *remote, limit int, all bool, pos []string) error {
	if id, err := eventid.Parse(pos[0]); err == nil && len(pos) == 1 {
		return explainEvent(ctx, io, r, id.String(), all)
	}
	pod, container := pos[0], strings.ToLower(r.filter.container)
	if len(pos) == 2 {
		container = strings.ToLower(pos[1])
	}
	if r.filter.pod != "" && r.filter.pod != pod {
		return usageError{fmt.Errorf("--pod %q conflicts with POD %q", r.filter.pod, pod)}
	}
	r.filter.pod = pod
	if r.filter.types == "" {
		r.filter.types = eventid.TypeExit + "," + eventid.TypeOOM
	}
	// The aggregator indexes container names, not IDs: what may be an ID
	// (prefix) is matched here only.
	r.filter.container = ""
	if strings.Trim(container, "0123456789abcdef") != "" {
		r.filter.container = container
	}
	client, filter, conn, err := r.query()
	if err != nil {
		return err
	}
	defer conn.Close()

	s := story{pod: pod, namespace: r.filter.namespace, container: container, all: all}
	token := ""
	for scanned := 0; scanned < maxExplainScan; {
		resp, err := client.ListEvents(ctx, &pb.ListEventsRequest{Filter: filter, PageSize: 500, PageToken: token})
		if err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		for _, e := range resp.GetEvents() {
			s.add(e)
		}
		scanned += len(resp.GetEvents())
		token = resp.GetNextPageToken()
		if token == "" || (limit > 0 && s.exits >= limit) {
			break
		}
	}
	entries := s.entries(limit)
	out := bufio.NewWriter(io.Stdout)
	defer out.Flush()
	if r.g.output == "json" {
		// Each entry's event as the aggregator keeps it: an exit carries
		// its verdict, explanation, evidence and the kill it was joined
		// with; a kill with no exit record its reason and raw lines.
		for _, e := range entries {
			if err := apiJSON(out, e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(entries) == 0 {
		fmt.Fprintf(io.Stderr, "no exits or OOM kills recorded for %s\n", s.subject())
		return nil
	}
	s.print(termWriter{out}, entries, r.g.output == "wide")
	return nil
}

// story collects the exits and OOM kills of one pod, newest first.
type story struct {
	pod, namespace, container string
	list                      []*pb.Event
	exits                     int
	explained                 map[string]bool // OOM event IDs an exit names
	// names seen in the events, for the heading.
	podName, podNS, podUID string
	// spans are the oom-child stories seen: the OOM kills they tell are
	// not shown again.
	spans []span
	// all lists every victim of a story.
	all bool
	// kills are the OOM kills seen, by ID: an exit's kill tells the
	// warnings that preceded it.
	kills map[string]*pb.Event
	// one is set when the story is of one event, named by its ID: every
	// workload matches.
	one bool
}

// keepKill keeps an OOM kill that has warnings, for the exit that names it.
func (s *story) keepKill(e *pb.Event) {
	if len(e.GetOom().GetPrecedingWarnings()) == 0 || len(s.kills) >= maxExplainScan {
		return
	}
	if s.kills == nil {
		s.kills = map[string]*pb.Event{}
	}
	s.kills[e.GetId()] = e
}

// span is an oom-child story's container and time.
type span struct {
	cid         string
	first, last time.Time
}

// told tells whether a story tells the OOM kill e.
func (s *story) told(e *pb.Event) bool {
	v := s.victimIn(e)
	if v == nil || e.GetTime() == nil {
		return false
	}
	t := e.GetTime().AsTime()
	for _, sp := range s.spans {
		if sp.cid != "" && sp.cid == v.GetWorkload().GetContainerId() && !t.Before(sp.first) && !t.After(sp.last) {
			return true
		}
	}
	return false
}

func (s *story) add(e *pb.Event) {
	switch {
	case e.GetExit() != nil:
		w := e.GetExit().GetWorkload()
		if !s.matches(w) {
			return
		}
		s.learn(w)
		if s.explained == nil {
			s.explained = map[string]bool{}
		}
		if id := e.GetExit().GetOomEventId(); id != "" {
			s.explained[id] = true
		}
		if x := e.GetExit(); x.GetVerdict() == exits.VerdictOOMChild {
			for _, v := range x.GetVictims() {
				if v.GetOomEventId() != "" && len(s.explained) < maxExplainScan {
					s.explained[v.GetOomEventId()] = true
				}
			}
			if x.GetFirstKillAt() != nil && x.GetLastKillAt() != nil {
				s.spans = append(s.spans, span{cid: w.GetContainerId(), first: x.GetFirstKillAt().AsTime(), last: x.GetLastKillAt().AsTime()})
			}
		}
		s.exits++
	case e.GetOom() != nil:
		// The filter also matches kills where the pod was only the trigger
		// or the culprit: keep those that killed in it.
		if s.victimIn(e) == nil {
			return
		}
		s.learn(s.victimIn(e).GetWorkload())
		s.keepKill(e)
	default:
		return
	}
	s.list = append(s.list, e)
}

// victimIn returns the first victim of an OOM kill that ran in the pod
// (and container), or nil.
func (s *story) victimIn(e *pb.Event) *pb.Process {
	for _, v := range e.GetOom().GetVictims() {
		if s.matches(v.GetWorkload()) {
			return v
		}
	}
	return nil
}

func (s *story) matches(w *pb.Workload) bool {
	if s.one {
		return true
	}
	if w.GetPodName() != s.pod && w.GetPodUid() != s.pod {
		return false
	}
	if s.namespace != "" && w.GetNamespace() != "" && w.GetNamespace() != s.namespace {
		return false
	}
	if s.container != "" && strings.ToLower(w.GetContainerName()) != s.container &&
		!(len(s.container) >= 4 && strings.HasPrefix(strings.ToLower(w.GetContainerId()), s.container)) {
		return false
	}
	return true
}

func (s *story) learn(w *pb.Workload) {
	if s.podName == "" && w.GetPodName() != "" {
		s.podName, s.podNS = w.GetPodName(), w.GetNamespace()
	}
	if s.podUID == "" {
		s.podUID = w.GetPodUid()
	}
}

// entries returns the exits, and the OOM kills no exit explains, newest
// first, at most limit (0: all).
func (s *story) entries(limit int) []*pb.Event {
	var out []*pb.Event
	for _, e := range s.list {
		if e.GetOom() != nil && (s.explained[e.GetId()] || s.told(e)) {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

func (s *story) subject() string {
	var b strings.Builder
	b.WriteString("pod ")
	switch {
	case s.podName != "" && s.podNS != "":
		b.WriteString(s.podNS + "/" + s.podName)
	case s.podName != "":
		b.WriteString(s.podName)
	case s.namespace != "":
		b.WriteString(s.namespace + "/" + s.pod)
	default:
		b.WriteString(s.pod)
	}
	if s.podUID != "" && s.podUID != s.pod {
		b.WriteString(" (uid " + s.podUID + ")")
	}
	if s.container != "" {
		b.WriteString(", container " + s.container)
	}
	return b.String()
}

// print writes the story: a heading, then per exit or kill a line saying
// when, where and the verdict, the explanation, and the kernel's lines
// indented under it.
func (s *story) print(w io.Writer, entries []*pb.Event, wide bool) {
	nExit, nKill := 0, 0
	for _, e := range entries {
		if e.GetExit() != nil {
			nExit++
		} else {
			nKill++
		}
	}
	fmt.Fprintf(w, "%s: %s", capitalize(s.subject()), plural(nExit, "exit"))
	if nKill > 0 {
		fmt.Fprintf(w, " and %s with no exit record", plural(nKill, "OOM kill"))
	}
	fmt.Fprintln(w, ", newest first.")
	for _, e := range entries {
		fmt.Fprintln(w)
		when := "at an unknown time"
		if e.GetTime() != nil {
			when = e.GetTime().AsTime().UTC().Format(time.RFC3339)
		}
		var lines []string
		if x := e.GetExit(); x != nil {
			wl := x.GetWorkload()
			what := fmt.Sprintf("container %s exited with code %d", containerLabel(wl, wide), x.GetExitCode())
			if x.GetVerdict() == exits.VerdictOOMChild {
				what = fmt.Sprintf("OOM kill in container %s, which kept running", containerLabel(wl, wide))
				if n := x.GetChildKills(); n > 1 {
					what = fmt.Sprintf("%d OOM kills in container %s, which kept running", n, containerLabel(wl, wide))
				}
			}
			fmt.Fprintf(w, "%s on %s: %s [%s]\n", when, e.GetNode(), what, x.GetVerdict())
			fmt.Fprintf(w, "  %s\n", x.GetExplanation())
			s.printWarnings(w, s.killOf(x))
			if x.GetChildKills() > 1 {
				fmt.Fprintf(w, "  %s\n", storyVictims(x, s.all))
			}
			if t := x.GetStopRequestedAt(); t != nil {
				fmt.Fprintf(w, "  Stop requested at %s.\n", t.AsTime().UTC().Format(time.RFC3339Nano))
			}
			lines = x.GetEvidence()
			if len(lines) > 0 {
				fmt.Fprintf(w, "  Kernel log (%s):\n", x.GetOomEventId())
			}
		} else {
			o := e.GetOom()
			v := s.victimIn(e)
			fmt.Fprintf(w, "%s on %s: OOM kill of %s (pid %d) in container %s, no exit recorded [oom %s]\n",
				when, e.GetNode(), v.GetComm(), v.GetPid(), containerLabel(v.GetWorkload(), wide), kindLabel(o))
			fmt.Fprintf(w, "  %s\n", o.GetReason())
			s.printWarnings(w, e)
			lines = exits.Evidence(o.GetLines())
			if len(lines) > 0 {
				fmt.Fprintf(w, "  Kernel log (%s):\n", e.GetId())
			}
		}
		for _, l := range lines {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
}

// storyVictimsShown is how many victims of a story are named without --all.
const storyVictimsShown = 5

// storyVictims names a story's victims: the first few, or all.
func storyVictims(x *pb.ContainerExit, all bool) string {
	vs := x.GetVictims()
	shown := vs
	if !all && len(vs) > storyVictimsShown {
		shown = vs[:storyVictimsShown]
	}
	names := make([]string, len(shown))
	for i, v := range shown {
		names[i] = fmt.Sprintf("%s (pid %d", v.GetComm(), v.GetPid())
		if v.RssBytes != nil {
			names[i] += ", " + analysis.Bytes(v.GetRssBytes())
		}
		if v.GetAt() != nil {
			names[i] += ", " + v.GetAt().AsTime().UTC().Format("15:04:05.000Z")
		}
		names[i] += ")"
	}
	out := "Killed: " + strings.Join(names, ", ")
	switch more := int(x.GetChildKills()) - len(shown); {
	case more > 0 && len(shown) < len(vs):
		out += fmt.Sprintf(" and %d more (--all lists them)", more)
	case more > 0:
		out += fmt.Sprintf(" and %d more the agent did not list", more)
	}
	return out + "."
}

// containerLabel names a container in explain's story: its name (and,
// wide, its ID in full), else its ID.
func containerLabel(w *pb.Workload, wide bool) string {
	n := vocab.OfPB(w)
	id := n.ContainerID
	if !wide {
		id = vocab.ShortID(id)
	}
	switch {
	case n.ContainerName != "" && wide && id != "":
		return n.ContainerName + " (" + id + ")"
	case n.ContainerName != "":
		return n.ContainerName
	case id != "":
		return id
	}
	return "(unknown)"
}

func kindLabel(o *pb.OOMKill) string {
	if o.GetLimitScope() != "" {
		return o.GetKind() + "/" + o.GetLimitScope()
	}
	return o.GetKind()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
