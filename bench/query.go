package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// QueryConfig sizes the query measurement.
type QueryConfig struct {
	// Events are stored over Span, ending now, in Cluster.
	Events  int
	Cluster Cluster
	Span    time.Duration
	// Queries of each kind are timed, after Warmup untimed ones.
	Queries, Warmup int
	// Window is the time range of each query.
	Window time.Duration
}

// The full and the short (CI) configurations.
var (
	QueryFull = QueryConfig{Events: 1_000_000, Cluster: Cluster{Nodes: 100, Namespaces: 50, Pods: 5000},
		Span: 30 * 24 * time.Hour, Queries: 500, Warmup: 20, Window: 24 * time.Hour}
	QueryShort = QueryConfig{Events: 20_000, Cluster: Cluster{Nodes: 100, Namespaces: 50, Pods: 5000},
		Span: 30 * 24 * time.Hour, Queries: 50, Warmup: 5, Window: 24 * time.Hour}
)

// QueryTarget is the p99 latency the queries must stay under.
const QueryTarget = 50 * time.Millisecond

// QueryResult is what RunQuery measured: the latencies of each query kind,
// sorted.
type QueryResult struct {
	Events        int
	Fill          time.Duration
	DBBytes       int64
	List          []time.Duration
	ListedPerPage float64
	Incidents     []time.Duration
	IncidentsPage float64
}

// QueryLatency measures the queries oomctl makes of a large store: it
// fills a database with 1M events through pkg/store (cmd/fillstore: the
// real kill of KillCapture, moved into 5,000 pods of 50 namespaces on 100
// nodes, at times spread evenly over 30 days), starts the aggregator binary
// over it, and times, through the gRPC API on loopback, `oomctl events -n
// NS --since T --until T+24h` (ListEvents, one page of 100, oomctl's
// default) and `oomctl incidents` with such a filter (ListIncidents, a
// page of 50, gap 1 m), each for a random namespace and day. It does so on
// SQLite, then on PostgreSQL (a server of package pgtest), with the same
// events and the same queries.
func QueryLatency(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	qc := QueryFull
	if cfg.Short {
		qc = QueryShort
	}
	bin, dir, err := buildAggregator(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fill, err := buildStatic(ctx, filepath.Join(cfg.RepoRoot, "bench"), dir, "./cmd/fillstore")
	if err != nil {
		return nil, err
	}
	var ms []Measurement
	sqliteDir := filepath.Join(dir, "db")
	r, err := RunQuery(ctx, cfg.RepoRoot, bin, fill, filepath.Join(sqliteDir, "oomwatch.db"), sqliteDir, qc, cfg.Log)
	if err != nil {
		return nil, err
	}
	ms = append(ms, queryRows("SQLite", r)...)
	// Its gigabytes are not needed any more.
	if err := os.RemoveAll(sqliteDir); err != nil {
		return nil, err
	}
	srv, err := startPostgres(cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	defer srv.Stop()
	url, err := newPostgresDB(ctx, srv, "query")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	r, err = RunQuery(ctx, cfg.RepoRoot, bin, fill, url, filepath.Join(dir, "pg"), qc, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	return append(ms, queryRows("PostgreSQL", r)...), nil
}

// queryRows are the rows of one backend's RunQuery.
func queryRows(backend string, r *QueryResult) []Measurement {
	where := fmt.Sprintf("%s events (%.1f GiB database, filled in %.0f s)", human(float64(r.Events)), float64(r.DBBytes)/(1<<30), r.Fill.Seconds())
	row := func(what string, lat []time.Duration, perPage float64, unit string) Measurement {
		m := Measurement{Name: fmt.Sprintf("query latency, %s, %s, over %s", backend, what, where),
			Value: fmt.Sprintf("p50 %s, p99 %s, max %s over %d queries (%.0f %s per page)",
				ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1]), len(lat), perPage, unit),
			Target: "p99 < " + ms(QueryTarget)}
		if r.Events < 1_000_000 {
			m.Verdict = VerdictNotMeasured
			m.Value += " (short run: not the target's size)"
		} else {
			m.Verdict = verdict(quantile(lat, 0.99) < QueryTarget)
		}
		return m
	}
	return []Measurement{
		row("ListEvents by namespace and a 24 h window, a page of 100", r.List, r.ListedPerPage, "events"),
		row("ListIncidents by namespace and a 24 h window, a page of 50", r.Incidents, r.IncidentsPage, "incidents"),
	}
}

// RunQuery fills db (an SQLite file, or a PostgreSQL URL of an empty
// database) with qc.Events events (fill is …/bench/cmd/fillstore), starts
// the aggregator bin over it (logging into dir) and times the queries.
func RunQuery(ctx context.Context, repoRoot, bin, fill, db, dir string, qc QueryConfig, progress io.Writer) (*QueryResult, error) {
	logf := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, "query: "+format+"\n", args...)
		}
	}
	end := time.Now().Truncate(time.Second)
	start := end.Add(-qc.Span)
	logf("storing %d events", qc.Events)
	t0 := time.Now()
	size, err := runFill(ctx, fill, repoRoot, db, qc, end)
	if err != nil {
		return nil, err
	}
	res := &QueryResult{Events: qc.Events, Fill: time.Since(t0), DBBytes: size}
	logf("stored in %s", res.Fill.Round(time.Second))

	// Retention off: the oldest events must not be pruned at start.
	agg, err := startAggregator(ctx, bin, db, filepath.Join(dir, "aggregator.log"), "--retention", "0", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer agg.stop()
	conn, err := grpc.NewClient(agg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	rng := rand.New(rand.NewPCG(5, 6))
	filter := func() *pb.EventFilter {
		from := start.Add(time.Duration(rng.Int64N(int64(qc.Span - qc.Window))))
		return &pb.EventFilter{Namespace: fmt.Sprintf("ns-%d", rng.IntN(qc.Cluster.Namespaces)),
			Since: timestamppb.New(from), Until: timestamppb.New(from.Add(qc.Window))}
	}
	var listed, incidents int
	for i := range qc.Warmup + qc.Queries {
		t := time.Now()
		lr, err := client.ListEvents(ctx, &pb.ListEventsRequest{Filter: filter(), PageSize: 100})
		d := time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if i >= qc.Warmup {
			res.List = append(res.List, d)
			listed += len(lr.GetEvents())
		}
		t = time.Now()
		ir, err := client.ListIncidents(ctx, &pb.ListIncidentsRequest{Filter: filter(), PageSize: 50, Gap: durationpb.New(time.Minute)})
		d = time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		if i >= qc.Warmup {
			res.Incidents = append(res.Incidents, d)
			incidents += len(ir.GetIncidents())
		}
	}
	slices.Sort(res.List)
	slices.Sort(res.Incidents)
	res.ListedPerPage = float64(listed) / float64(qc.Queries)
	res.IncidentsPage = float64(incidents) / float64(qc.Queries)
	if listed == 0 {
		return nil, fmt.Errorf("no event listed: the fill or the filter is wrong")
	}
	logf("ListEvents p99 %s, ListIncidents p99 %s", ms(quantile(res.List, 0.99)), ms(quantile(res.Incidents, 0.99)))
	return res, nil
}

// QueryEvents makes the events of the query measurement, in batches of
// at most batch, and hands each batch to put: qc.Events kills, each in a
// random pod of qc.Cluster (the kill of KillCapture moved there) on a
// random node, evenly spread over the span from start and in time order,
// as an aggregator receives them.
func QueryEvents(repoRoot string, qc QueryConfig, start time.Time, batch int, put func([]*pb.Event) error) error {
	tmpl, err := killTemplate(repoRoot)
	if err != nil {
		return err
	}
	pk := newPodKills(tmpl, qc.Cluster)
	kills := make([]*pb.OOMKill, qc.Cluster.Pods)
	for i := range kills {
		kills[i], _ = pk.kill(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([]int64, qc.Cluster.Nodes)
	step := int64(qc.Span) / int64(qc.Events)
	for lo := 0; lo < qc.Events; lo += batch {
		evs := make([]*pb.Event, 0, batch)
		for i := lo; i < min(lo+batch, qc.Events); i++ {
			node := rng.IntN(qc.Cluster.Nodes)
			seqs[node]++
			// Up to a second early: several nodes' events interleave.
			at := start.Add(time.Duration(step*int64(i) - rng.Int64N(int64(time.Second))))
			evs = append(evs, killEvent(nodeName(node), seqs[node], at, kills[rng.IntN(len(kills))]))
		}
		if err := put(evs); err != nil {
			return err
		}
	}
	return nil
}

// runFill runs fillstore (cmd/fillstore) to store qc's events, the last at
// end, in a new database at db, and returns the database's size in bytes.
func runFill(ctx context.Context, fill, repoRoot, db string, qc QueryConfig, end time.Time) (int64, error) {
	// SQLite takes 20,000 events a transaction; PostgreSQL about what the
	// aggregator commits at once under load (its bind message of 20,000
	// events is 110 MB, which it copies several times).
	batch := 20_000
	if strings.Contains(db, "://") {
		batch = 2_000
	}
	cmd := exec.CommandContext(ctx, fill, "-repo-root", repoRoot, "-db", db, "-events", strconv.Itoa(qc.Events),
		"-nodes", strconv.Itoa(qc.Cluster.Nodes), "-namespaces", strconv.Itoa(qc.Cluster.Namespaces),
		"-pods", strconv.Itoa(qc.Cluster.Pods), "-span", qc.Span.String(), "-end", end.Format(time.RFC3339Nano),
		"-batch", strconv.Itoa(batch))
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("fillstore: %w: %s", err, stderr.Bytes())
	}
	// Its output is the size.
	size, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fillstore's size: %w", err)
	}
	return size, nil
}
