package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	durpb "google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/transport"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// remote holds the flags of the commands that talk to the aggregator.
type remote struct {
	g      *globals
	filter filterFlags
}

type filterFlags struct {
	since, until string
	node         string
	namespace    string
	pod          string
	container    string
	kind         string
	collateral   bool
	types        string
	verdicts     string
}

func (r *remote) addFilterFlags(fs *pflag.FlagSet) {
	f := &r.filter
	fs.StringVar(&f.since, "since", "", "only events after this: a duration ago (2h) or an RFC 3339 time")
	fs.StringVar(&f.until, "until", "", "only events before this: a duration ago or an RFC 3339 time")
	fs.StringVar(&f.node, "node", "", "only events of this node")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "only events touching pods of this namespace")
	fs.StringVar(&f.pod, "pod", "", "only events touching this pod (name or UID)")
	fs.StringVar(&f.container, "container", "", "only events touching this container (name or ID)")
	fs.StringVar(&f.kind, "kind", "", "only OOM kills of this kind: node, limit, cpuset, mempolicy, unknown")
	fs.BoolVar(&f.collateral, "collateral", false, "only collateral kills")
	fs.StringVar(&f.types, "type", "", "only these event types, comma-separated: oom, loss, exit, warning")
	fs.StringVar(&f.verdicts, "verdict", "", "only container exits with these verdicts, comma-separated (oom-limit, oom-pod-limit, oom-node, oom-child, not-oom, graceful)")
}

// check validates the shared flags of a command that talks to the
// aggregator.
func (r *remote) check() error {
	if r.g.server == "" {
		return usageError{errors.New("no aggregator: set --server or OOMWATCH_SERVER")}
	}
	if strings.Contains(r.g.server, ",") {
		if _, err := transport.ParseServers(r.g.server); err != nil {
			return usageError{err}
		}
	}
	if err := r.g.checkOutput(); err != nil {
		return err
	}
	if err := r.g.transport.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

func (r *remote) dial() (*grpc.ClientConn, error) {
	opts, err := transport.DialOptions(r.g.transport, r.serverName())
	if err != nil {
		return nil, err
	}
	// A watch that lost the aggregator connects again within seconds of
	// its return (gRPC's default backoff grows to 2 minutes).
	opts = append(opts, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: watchRetryMax}}))
	conn, err := transport.NewClient(r.g.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", r.g.server, err)
	}
	return conn, nil
}

// query builds the filter from the flags and connects: the first steps of
// every command that asks the aggregator. The caller closes the connection.
func (r *remote) query() (pb.QueryServiceClient, *pb.EventFilter, *grpc.ClientConn, error) {
	if err := r.check(); err != nil {
		return nil, nil, nil, err
	}
	filter, err := r.filter.pbFilter(time.Now())
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	conn, err := r.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	return pb.NewQueryServiceClient(conn), filter, conn, nil
}

// list asks the aggregator for up to limit items (0: all), pages of at
// most pageMax, with fetch, which prints each page; it says "no <what>"
// when there were none.
func (r *remote) list(io IO, what string, limit, pageMax int,
	fetch func(client pb.QueryServiceClient, filter *pb.EventFilter, size int32, token string) (int, string, error)) error {
	client, filter, conn, err := r.query()
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := pages(limit, pageMax, func(size int32, token string) (int, string, error) { return fetch(client, filter, size, token) })
	if err != nil {
		return err
	}
	if n == 0 && r.g.output != "json" {
		fmt.Fprintln(io.Stderr, "no "+what)
	}
	return nil
}

// pages fetches pages of at most max items until there is no next page or
// limit items came (limit 0: all). fetch returns how many items a page had
// and the next page's token.
func pages(limit, max int, fetch func(size int32, token string) (int, string, error)) (int, error) {
	token, n := "", 0
	for {
		size := max
		if limit > 0 {
			size = min(max, limit-n)
		}
		got, next, err := fetch(int32(size), token)
		if err != nil {
			return n, err
		}
		n += got
		token = next
		if token == "" || (limit > 0 && n >= limit) {
			return n, nil
		}
	}
}

func (r *remote) serverName() string {
	if strings.Contains(r.g.server, ",") {
		// Replicas: each verified as its own host (transport.NewClient).
		return ""
	}
	host := r.g.server
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// pbFilter turns the filter flags into the API's filter.
func (f filterFlags) pbFilter(now time.Time) (*pb.EventFilter, error) {
	out := &pb.EventFilter{Node: f.node, Namespace: f.namespace, Pod: f.pod, Container: f.container,
		Kind: f.kind, CollateralOnly: f.collateral}
	for _, t := range splitList(f.types) {
		if t != eventid.TypeOOM && t != eventid.TypeLoss && t != eventid.TypeExit && t != eventid.TypeWarning {
			return nil, fmt.Errorf("-type %q: want oom, loss, exit or warning", t)
		}
		out.Types = append(out.Types, t)
	}
	out.Verdicts = splitList(f.verdicts)
	switch f.kind {
	case "", analysis.KindNode, analysis.KindLimit, analysis.KindCpuset, analysis.KindMempolicy, analysis.KindUnknown:
	default:
		return nil, fmt.Errorf("-kind %q: want node, limit, cpuset, mempolicy or unknown", f.kind)
	}
	var err error
	if out.Since, err = parseWhen(f.since, now); err != nil {
		return nil, fmt.Errorf("-since: %w", err)
	}
	if out.Until, err = parseWhen(f.until, now); err != nil {
		return nil, fmt.Errorf("-until: %w", err)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseWhen reads "2h" (that long ago) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, errors.New("want a duration (30m, 2h) or an RFC 3339 time")
	}
	return timestamppb.New(t), nil
}

func eventsCmd(io IO, g *globals) *cobra.Command {
	r := &remote{g: g}
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List the OOM kills, losses and exits the aggregator keeps, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p := newPrinter(io.Stdout, g.output)
			defer p.flush()
			c := &collapser{p: p, all: all}
			defer c.flush()
			return r.list(io, "events", limit, 500, func(client pb.QueryServiceClient, filter *pb.EventFilter, size int32, token string) (int, string, error) {
				resp, err := client.ListEvents(ctx, &pb.ListEventsRequest{Filter: filter, PageSize: size, PageToken: token})
				if err != nil {
					return 0, "", fmt.Errorf("list events: %w", err)
				}
				for _, e := range resp.GetEvents() {
					c.add(e)
				}
				return len(resp.GetEvents()), resp.GetNextPageToken(), p.err
			})
		},
	}
	r.addFilterFlags(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many events, newest first (0: all)")
	cmd.Flags().BoolVar(&all, "all", false, "one row per OOM kill: storms (many kills of one container within a minute) are not collapsed into one row")
	return cmd
}

func watchCmd(io IO, g *globals) *cobra.Command {
	r := &remote{g: g}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print new events as the aggregator stores them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			client, filter, conn, err := r.query()
			if err != nil {
				return err
			}
			defer conn.Close()
			w := newWatch(client, filter, "watch", io.Stderr, newPrinter(io.Stdout, g.output), nil)
			stream, err := w.start(ctx)
			if err != nil {
				return err
			}
			return w.follow(ctx, stream)
		},
	}
	r.addFilterFlags(cmd.Flags())
	return cmd
}

func incidentsCmd(io IO, g *globals) *cobra.Command {
	r := &remote{g: g}
	var limit int
	var gap time.Duration
	var all bool
	cmd := &cobra.Command{
		Use:   "incidents",
		Short: "List memory-pressure incidents: kills on a node close together in time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p := newPrinter(io.Stdout, g.output)
			p.all = all
			defer p.flush()
			return r.list(io, "incidents", limit, 200, func(client pb.QueryServiceClient, filter *pb.EventFilter, size int32, token string) (int, string, error) {
				resp, err := client.ListIncidents(ctx, &pb.ListIncidentsRequest{Filter: filter, PageSize: size,
					PageToken: token, Gap: durationpb(gap)})
				if err != nil {
					return 0, "", fmt.Errorf("list incidents: %w", err)
				}
				for _, inc := range resp.GetIncidents() {
					p.incident(inc)
				}
				return len(resp.GetIncidents()), resp.GetNextPageToken(), p.err
			})
		},
	}
	r.addFilterFlags(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many incidents, newest first (0: all)")
	cmd.Flags().DurationVar(&gap, "gap", time.Minute, "kills on a node further apart than this start a new incident")
	cmd.Flags().BoolVar(&all, "all", false, "list every victim under its incident, by container")
	return cmd
}

// printer writes events and incidents as a table or JSON lines.
type printer struct {
	w      io.Writer
	format string
	tw     *tabwriter.Writer
	header string
	live   bool
	// all lists an incident's victims under it.
	all bool
	// err is the first error writing JSON.
	err error
}

func newPrinter(w io.Writer, format string) *printer {
	return &printer{w: w, format: format}
}

// json prints m as a line of JSON, keeping the first error.
func (p *printer) json(m proto.Message) {
	if err := apiJSON(p.w, m); err != nil && p.err == nil {
		p.err = err
	}
}

func (p *printer) row(header, line string) {
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	}
	if p.header != header {
		fmt.Fprintln(p.tw, header)
		p.header = header
	}
	fmt.Fprintln(p.tw, termSafe(line))
}

func (p *printer) flush() {
	if p.tw != nil {
		p.tw.Flush()
		if p.live {
			// A live watch prints each row as it comes; its header once.
			p.tw = nil
		}
	}
}

const eventHeader = "TIME\tNODE\tKIND\tVICTIM\tRSS\tREQ/LIMIT\tCOLLATERAL\tCULPRIT"

func (p *printer) event(e *pb.Event) {
	if p.format == "json" {
		p.json(e)
		return
	}
	wide := p.format == "wide"
	when := "-"
	if e.Time != nil {
		when = e.Time.AsTime().UTC().Format("2006-01-02T15:04:05Z")
	}
	switch {
	case e.GetOom() != nil:
		row := tableRow(wire.ToAnalysis(e), wide)
		// tableRow starts with the time; put the node after it.
		if i := strings.IndexByte(row, '\t'); i >= 0 {
			row = row[:i] + "\t" + e.GetNode() + row[i:]
		}
		p.row(eventHeader, row)
	case e.GetLoss() != nil:
		l := e.GetLoss()
		p.row(eventHeader, strings.Join([]string{when, e.GetNode(), "loss:" + l.GetCause(),
			fmt.Sprintf("%d lost", l.GetLost()), "-", "-", "-", l.GetDetail()}, "\t"))
	case e.GetExit() != nil:
		x := e.GetExit()
		w := wire.ToAnalysis(&pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Victims: []*pb.Process{{Workload: x.GetWorkload()}}}}}).Victims[0].Workload
		what, rss := fmt.Sprintf("exit %d", x.GetExitCode()), "-"
		if n := x.GetChildKills(); n > 1 {
			// An oom-child story: how many, and the largest.
			what = fmt.Sprintf("%d killed", n)
		}
		if l := x.GetLargest(); l != nil && l.RssBytes != nil {
			rss = analysis.Bytes(l.GetRssBytes())
		}
		kind := "exit:" + x.GetVerdict()
		if p.live && e.GetRevision() > 1 {
			// A watch sees a story again each time it grows.
			kind += " (updated)"
		}
		p.row(eventHeader, strings.Join([]string{when, e.GetNode(), kind,
			processCell(0, what, w, wide), rss, requestLimit(w), wire.ExitVerdict(x),
			x.GetExplanation()}, "\t"))
	case e.GetWarning() != nil:
		p.row(eventHeader, warningRow(e, wide, p.live))
	}
}

// collateralCell counts an incident's collateral kills, and the kills whose
// verdict is unknown apart: "0, 790 unknown" is honest, "790" is not.
func collateralCell(inc *pb.Incident) string {
	out := fmt.Sprint(inc.GetCollateral())
	if n := inc.GetCollateralUnknown(); n > 0 {
		out += fmt.Sprintf(", %d unknown", n)
	}
	return out
}

const incidentHeader = "START\tNODE\tKIND\tKILLS\tCOLLATERAL\tDURATION\tCULPRIT\tTRIGGER\tVICTIMS"

func (p *printer) incident(inc *pb.Incident) {
	if p.format == "json" {
		p.json(inc)
		return
	}
	wide := p.format == "wide"
	start := inc.GetStart().AsTime()
	dur := inc.GetEnd().AsTime().Sub(start).Round(time.Millisecond)
	culprit := "-"
	if c := inc.GetCulprit(); c != nil {
		ev := wire.ToAnalysis(&pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Culprit: c}}})
		culprit = processCell(ev.Culprit.PID, ev.Culprit.Comm, ev.Culprit.Workload, wide)
		if ev.Culprit.RSSBytes != nil {
			culprit += " " + analysis.Bytes(*ev.Culprit.RSSBytes)
		}
	}
	trigger := "-"
	if t := inc.GetTrigger(); t != nil {
		ev := wire.ToAnalysis(&pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Trigger: t}}})
		trigger = processCell(ev.Trigger.PID, ev.Trigger.Comm, ev.Trigger.Workload, wide)
	}
	p.row(incidentHeader, strings.Join([]string{start.UTC().Format("2006-01-02T15:04:05Z"), inc.GetNode(),
		inc.GetKind(), fmt.Sprint(inc.GetKills()), collateralCell(inc), dur.String(), culprit, trigger,
		victimsCell(inc.GetVictims(), wide)}, "\t"))
	if p.all {
		// Under the VICTIMS column, with every column empty before it,
		// so the table keeps its alignment.
		for _, l := range victimLines(inc.GetVictims(), wide) {
			fmt.Fprintln(p.tw, strings.Repeat("\t", 8)+l)
		}
	}
}

func durationpb(d time.Duration) *durpb.Duration { return durpb.New(d) }

// apiJSON writes a message of the API as one line of JSON: its protojson
// mapping with the .proto's field names (times in RFC 3339, enums by name,
// 64-bit integers as strings, fields at their zero value left out),
// compacted: protojson varies its whitespace on purpose, and a line must
// read the same on every run to be grepped ("oom":{ is an OOM kill). Every
// `-o json` of oomctl prints through it.
func apiJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	var line bytes.Buffer
	line.Grow(len(b) + 1)
	if err := json.Compact(&line, b); err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	line.WriteByte('\n')
	_, err = w.Write(line.Bytes())
	return err
}
