package security

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestMeasureCosts measures what the aggregator's memory pays for an open
// connection (mutual TLS done), an idle Ingest stream (Hello sent) and an
// idle Watch stream, the figures the defaults of server.Limits are sized
// from. It runs with OOMWATCH_MEASURE=1 (a measurement, not a check).
func TestMeasureCosts(t *testing.T) {
	if os.Getenv("OOMWATCH_MEASURE") == "" {
		t.Skip("a measurement: run with OOMWATCH_MEASURE=1")
	}
	const conns, perConn = 1000, 16
	a := startAggregator(t, "--max-watchers", "100000", "--max-watchers-per-identity", "100000", "--max-ingest-streams-per-identity", "100000")
	settle := func() int64 {
		time.Sleep(3 * time.Second)
		return a.status("VmRSS")
	}
	base := settle()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cs []*grpc.ClientConn
	for range conns {
		c := a.dial(t, sharedAgent)
		c.Connect()
		cs = append(cs, c)
	}
	for _, c := range cs {
		for s := c.GetState(); s != connectivity.Ready; s = c.GetState() {
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			if !c.WaitForStateChange(wctx, s) {
				t.Fatal("connection not ready")
			}
			wcancel()
		}
	}
	withConns := settle()
	for i, c := range cs {
		for j := range perConn / 2 {
			openIngest(t, ctx, c, fmt.Sprintf("node-%d-%d", i, j))
		}
	}
	waitFor(t, 60*time.Second, "ingest streams", func() bool { return a.metric(t, "oomwatch_ingest_streams") >= conns*perConn/2 })
	withIngest := settle()
	for _, c := range cs {
		for range perConn / 2 {
			if _, err := pb.NewQueryServiceClient(c).Watch(ctx, &pb.WatchRequest{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 60*time.Second, "watchers", func() bool { return a.metric(t, "oomwatch_watchers") >= conns*perConn/2 })
	withWatch := settle()
	n := float64(conns * perConn / 2)
	t.Logf("MEASURED (mutual TLS, GOMEMLIMIT %s): base RSS %d MiB; per connection %.1f KiB; per idle ingest stream %.1f KiB; per idle watch stream %.1f KiB; peak RSS %d MiB",
		goMemLimit, base>>20, float64(withConns-base)/conns/1024, float64(withIngest-withConns)/n/1024,
		float64(withWatch-withIngest)/n/1024, a.status("VmHWM")>>20)
}
