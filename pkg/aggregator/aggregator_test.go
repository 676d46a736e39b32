package aggregator

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/envflag"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func parse(args []string, env map[string]string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	if err := envflag.Parse(fs, args, func(k string) string { return env[k] }); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(o Options) bool
		ok    bool
	}{
		{name: "defaults need a transport", ok: false},
		{name: "defaults", args: []string{"--insecure"}, ok: true, check: func(o Options) bool {
			return o.Listen == ":7443" && o.DB == "/var/lib/oomwatch/oomwatch.db" && o.Retention == 30*24*time.Hour &&
				o.MaxEventsPerSecond == 100 && o.LogLevel == "info"
		}},
		{name: "environment", env: map[string]string{"OOMWATCH_INSECURE": "true", "OOMWATCH_LISTEN": "127.0.0.1:9000",
			"OOMWATCH_DB": "/tmp/x.db", "OOMWATCH_RETENTION": "7d", "OOMWATCH_MAX_EVENTS_PER_SECOND": "5"}, ok: true,
			check: func(o Options) bool {
				return o.Listen == "127.0.0.1:9000" && o.DB == "/tmp/x.db" && o.Retention == 7*24*time.Hour && o.MaxEventsPerSecond == 5
			}},
		{name: "flag over environment", args: []string{"--insecure", "--retention=72h"}, env: map[string]string{"OOMWATCH_RETENTION": "7d"}, ok: true,
			check: func(o Options) bool { return o.Retention == 72*time.Hour }},
		{name: "keep forever", args: []string{"--insecure", "--retention=0"}, ok: true, check: func(o Options) bool { return o.Retention == 0 }},
		{name: "bad retention", args: []string{"--insecure", "--retention=3x"}},
		{name: "bad listen", args: []string{"--insecure", "--listen=7443"}},
		{name: "empty db", args: []string{"--insecure", "--db="}},
		{name: "postgres db", args: []string{"--insecure", "--db=postgresql://oomwatch@db.example:5432/oomwatch?sslmode=verify-full"}, ok: true,
			check: func(o Options) bool {
				return o.DB == "postgresql://oomwatch@db.example:5432/oomwatch?sslmode=verify-full"
			}},
		{name: "bad postgres url", args: []string{"--insecure", "--db=postgres://oomwatch@db.example:port/oomwatch"}},
		{name: "bad postgres option", args: []string{"--insecure", "--db=postgres://oomwatch@db.example/oomwatch?sslmode=maybe"}},
		{name: "negative rate", args: []string{"--insecure", "--max-events-per-second=-1"}},
		{name: "bad log level", args: []string{"--insecure", "--log-level=loud"}},
		{name: "limit defaults", args: []string{"--insecure"}, ok: true, check: func(o Options) bool { return o.Limits == DefaultLimits }},
		{name: "limits from flags and environment", args: []string{"--insecure", "--max-connections=100", "--hello-timeout=3s", "--max-streams-per-connection=4"},
			env: map[string]string{"OOMWATCH_MAX_WATCHERS": "9", "OOMWATCH_MAX_EVENTS_PER_SECOND_PER_IDENTITY": "0"}, ok: true,
			check: func(o Options) bool {
				return o.Limits.MaxConnections == 100 && o.Limits.HelloTimeout == 3*time.Second && o.Limits.MaxStreamsPerConnection == 4 &&
					o.Limits.MaxWatchers == 9 && o.Limits.MaxEventsPerSecondPerIdentity == 0
			}},
		{name: "negative limit", args: []string{"--insecure", "--max-connections=-1"}},
		{name: "bad streams per connection", args: []string{"--insecure", "--max-streams-per-connection=-1"}},
		{name: "TLS without key", args: []string{"--tls-cert=c.pem"}},
		{name: "client-only TLS", args: []string{"--tls-ca=ca.pem"}},
		{name: "TLS and insecure", args: []string{"--insecure", "--tls-cert=c", "--tls-key=k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(tt.args, tt.env)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.check != nil && !tt.check(o) {
				t.Fatalf("parsed %+v", o)
			}
		})
	}
	var d days
	if err := d.Set("30d"); err != nil || d.String() != "30d" {
		t.Fatalf("days: %v %s", err, d.String())
	}
	if err := d.Set("90m"); err != nil || d.String() != "1h30m0s" {
		t.Fatalf("days: %v %s", err, d.String())
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestAggregator runs the whole process, on SQLite and on PostgreSQL:
// expired events are pruned at start, agents are served, and cancelling
// stops it cleanly.
func TestAggregator(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAggregator(t, filepath.Join(t.TempDir(), "oomwatch.db")) })
	t.Run("postgres", func(t *testing.T) { testAggregator(t, pgtest.DB(t)) })
}

func testAggregator(t *testing.T, db string) {
	st, err := OpenStore(context.Background(), db, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	old := oom("node-a", 1, "shop", "cart-1")
	old.Time = timestamppb.New(time.Now().Add(-48 * time.Hour))
	if _, err := st.Put(context.Background(), []*pb.Event{old}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	o := Options{Listen: "127.0.0.1:0", DB: db, Retention: 24 * time.Hour, LogLevel: "info", Transport: transport.Options{Insecure: true}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agg, err := NewAggregator(ctx, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()

	conn, err := grpc.NewClient(agg.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := pb.NewQueryServiceClient(conn)
	waitFor(t, func() bool {
		r, err := q.ListEvents(ctx, &pb.ListEventsRequest{})
		return err == nil && len(r.GetEvents()) == 0
	})
	fresh := oom("node-a", 2, "shop", "cart-1")
	fresh.Time = timestamppb.Now()
	st2, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st2.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a", BootId: boot}}})
	_ = st2.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: fresh}})
	// An open warning, which the at-risk gauges read from the store.
	warned := agentWarning("node-a", 0, 0)
	warned.Time, warned.GetWarning().Since = timestamppb.Now(), timestamppb.New(time.Now().Add(-time.Minute))
	_ = st2.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: warned}})
	for range 2 {
		if _, err := st2.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if agg.Server().Stats().Ingested != 2 {
		t.Fatalf("stats %+v", agg.Server().Stats())
	}
	if err := testutil.GatherAndCompare(agg.metrics.Registry, strings.NewReader(`
# HELP oomwatch_at_risk 1 per open warning of the most urgent 100 (forecasts by time left, then near-limit and limit-reclaim by ratio of the limit, then the rest).
# TYPE oomwatch_at_risk gauge
oomwatch_at_risk{container="api",kind="forecast",namespace="shop",node="node-a",pod="cart-1"} 1
`), "oomwatch_at_risk"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	// The store was closed and kept the fresh event.
	st, err = OpenStore(context.Background(), db, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(context.Background(), eventid.String(fresh)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(context.Background(), eventid.String(old)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired event: %v", err)
	}
}
