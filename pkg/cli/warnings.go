package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// warningFlags are the flags of `oomctl warnings`.
type warningFlags struct {
	since                           string
	node, namespace, pod, container string
	kinds                           string
	all, watch                      bool
	limit                           int
}

// warningKindWords are the kinds --kind takes, in the order help lists them.
var warningKindWords = []string{"near-limit", "forecast", "limit-reclaim", "pressure", "node-low"}

func warningsCmd(io IO, g *globals) *cobra.Command {
	r := &remote{g: g}
	f := &warningFlags{}
	cmd := &cobra.Command{
		Use:   "warnings",
		Short: "List what is at risk now: the open memory warnings (near-limit, forecast, limit-reclaim, pressure, node-low)",
		Long: "Lists the memory warnings the agents have open now, newest first: cgroups near their limit,\n" +
			"forecast to reach it, reclaimed at it or stalled on memory, and nodes low on memory. --all adds the\n" +
			"resolved ones and those whose agent stopped refreshing them; --watch then follows their changes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWarnings(cmd.Context(), io, r, f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.since, "since", "", "only warnings changed after this: a duration ago (2h) or an RFC 3339 time")
	fs.StringVar(&f.node, "node", "", "only warnings of this node")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "only warnings of pods of this namespace")
	fs.StringVar(&f.pod, "pod", "", "only warnings of this pod (name or UID)")
	fs.StringVar(&f.container, "container", "", "only warnings of this container (name)")
	fs.StringVar(&f.kinds, "kind", "", "only these kinds, comma-separated: "+strings.Join(warningKindWords, ", "))
	fs.BoolVar(&f.all, "all", false, "also the resolved warnings, and those not refreshed recently")
	fs.BoolVarP(&f.watch, "watch", "w", false, "after the list, print each warning as it opens, changes and resolves")
	fs.IntVar(&f.limit, "limit", 200, "at most this many warnings, newest first (0: all)")
	_ = cmd.RegisterFlagCompletionFunc("kind", func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
		// A comma-separated list: complete its last word.
		done, _ := cutLast(typed)
		var out []string
		for _, k := range warningKindWords {
			out = append(out, done+k)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
	return cmd
}

// cutLast splits "a,b,c" into "a,b," and "c".
func cutLast(s string) (string, string) {
	i := strings.LastIndexByte(s, ',')
	return s[:i+1], s[i+1:]
}

// pbFilter turns the flags into the API's filter of warnings.
func (f *warningFlags) pbFilter(now time.Time) (*pb.EventFilter, error) {
	out := &pb.EventFilter{Types: []string{eventid.TypeWarning}, Node: f.node, Namespace: f.namespace, Pod: f.pod,
		Container: f.container, OpenWarningsOnly: !f.all}
	for _, k := range splitList(f.kinds) {
		pk := vocab.WarningKindOf(k)
		if pk == pb.WarningKind_WARNING_KIND_UNSPECIFIED {
			return nil, fmt.Errorf("--kind %q: want %s", k, strings.Join(warningKindWords, ", "))
		}
		out.WarningKinds = append(out.WarningKinds, pk)
	}
	var err error
	if out.Since, err = parseWhen(f.since, now); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if f.limit < 0 {
		return nil, fmt.Errorf("--limit %d: want 0 (all) or more", f.limit)
	}
	return out, nil
}

func runWarnings(ctx context.Context, io IO, r *remote, f *warningFlags) error {
	if err := r.check(); err != nil {
		return err
	}
	now := time.Now()
	filter, err := f.pbFilter(now)
	if err != nil {
		return usageError{err}
	}
	conn, err := r.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	p := newPrinter(io.Stdout, r.g.output)
	wp := &warningPrinter{p: p, states: f.all || f.watch, now: time.Now}

	var (
		w      *watch
		stream pb.QueryService_WatchClient
	)
	if f.watch {
		// Opened before the list, so that no change falls between the
		// two. Resolutions must come through: the live filter does not
		// ask for open warnings only.
		live := &pb.EventFilter{Types: filter.Types, Node: filter.Node, Namespace: filter.Namespace, Pod: filter.Pod,
			Container: filter.Container, WarningKinds: filter.WarningKinds}
		w = newWatch(client, live, "watch warnings", io.Stderr, p, func(e *pb.Event) { wp.print(e, true) })
		if stream, err = w.start(ctx); err != nil {
			return err
		}
	}
	n, err := pages(f.limit, 500, func(size int32, token string) (int, string, error) {
		resp, err := client.ListEvents(ctx, &pb.ListEventsRequest{Filter: filter, PageSize: size, PageToken: token})
		if err != nil {
			return 0, "", fmt.Errorf("list warnings: %w", err)
		}
		for _, e := range resp.GetEvents() {
			wp.print(e, false)
		}
		return len(resp.GetEvents()), resp.GetNextPageToken(), p.err
	})
	p.flush()
	if err != nil {
		return err
	}
	if n == 0 && r.g.output != "json" {
		if f.all {
			fmt.Fprintln(io.Stderr, "no warnings")
		} else {
			fmt.Fprintln(io.Stderr, "no open warnings: nothing is at risk now")
		}
	}
	if stream == nil {
		return nil
	}
	return w.follow(ctx, stream)
}

// warningPrinter writes warnings as a table or JSON lines.
type warningPrinter struct {
	p *printer
	// states adds the STATE column.
	states bool
	now    func() time.Time
}

const warningHeader = "KIND\tNODE\tWORKLOAD\tFIGURES\tSINCE"

// print writes one warning; change words its state as a change of a watch
// (opened, updated, resolved) rather than as a state (open, resolved).
// Events that are not warnings are skipped.
func (wp *warningPrinter) print(e *pb.Event, change bool) {
	m := e.GetWarning()
	if m == nil {
		return
	}
	if wp.p.format == "json" {
		wp.p.json(e)
		return
	}
	wide := wp.p.format == "wide"
	header := warningHeader
	cells := []string{vocab.WarningKind(m.GetWarningKind()), e.GetNode(), warningWorkload(m.GetWorkload(), wide),
		vocab.WarningFigures(m.GetWarningKind(), m.GetFigures()), warningSince(m, wp.now(), wide)}
	if wp.states {
		header += "\tSTATE"
		cells = append(cells, warningState(e, change, wp.now()))
	}
	if wide {
		header += "\tSUMMARY"
		cells = append(cells, warningSummary(m))
	}
	wp.p.row(header, strings.Join(cells, "\t"))
}

// warningWorkload is a warning's workload in a cell: "(node)" for the
// node's own.
func warningWorkload(w *pb.Workload, wide bool) string {
	if w.GetCgroup() == "" {
		return "(node)"
	}
	n := vocab.OfPB(w)
	if c := vocab.Cell(n, wide); c != "" {
		return c
	}
	return n.Cgroup
}

// warningSince is how long a warning has been open ("4m12s"), or for a
// resolved one when it opened; wide, the time it opened.
func warningSince(m *pb.MemoryWarning, now time.Time, wide bool) string {
	if m.GetSince() == nil {
		return "-"
	}
	at := m.GetSince().AsTime()
	if wide || m.GetState() == pb.WarningState_WARNING_STATE_RESOLVED {
		return at.UTC().Format("2006-01-02T15:04:05Z")
	}
	return vocab.Duration(now.Sub(at).Truncate(time.Second))
}

// warningState is a warning's state, or as a change of a watch.
func warningState(e *pb.Event, change bool, now time.Time) string {
	m := e.GetWarning()
	switch {
	case !change || m.GetState() == pb.WarningState_WARNING_STATE_RESOLVED:
		return vocab.WarningState(m, wire.IsStale(e, now))
	case e.GetRevision() == 0:
		return "opened"
	}
	return "updated"
}

// warningSummary is a warning's sentence: the agent's, else vocab's.
func warningSummary(m *pb.MemoryWarning) string {
	if s := m.GetSummary(); s != "" {
		return oneLine(s)
	}
	return vocab.Warning(m)
}

// oneLine keeps a table row on one line whatever a sentence holds.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// warningRow is a warning's row among the events of `oomctl events`:
// time, node, "warning:<kind>", workload, working set, request/limit, "-"
// and the summary.
func warningRow(e *pb.Event, wide, live bool) string {
	m := e.GetWarning()
	when := "-"
	if e.GetTime() != nil {
		when = e.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05Z")
	}
	kind := "warning:" + vocab.WarningKind(m.GetWarningKind())
	if live && e.GetRevision() > 0 && m.GetState() == pb.WarningState_WARNING_STATE_OPEN {
		kind += " (updated)"
	}
	f := m.GetFigures()
	ws, limit := "-", "-"
	if f.GetWorkingSetBytes() > 0 {
		ws = vocab.Bytes(f.GetWorkingSetBytes())
	}
	if w := m.GetWorkload(); w != nil {
		limit = requestLimit(wire.ToAnalysis(&pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Victims: []*pb.Process{{Workload: w}}}}}).Victims[0].Workload)
	}
	if l := f.GetLimitBytes(); l > 0 && limit == "-" {
		limit = "?/" + shortBytes(l)
	}
	return strings.Join([]string{when, e.GetNode(), kind, warningWorkload(m.GetWorkload(), wide), ws, limit, "-",
		warningSummary(m)}, "\t")
}
