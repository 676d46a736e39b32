package security

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const attackBoot = "0f3c6bd0-8a5e-4a36-9d6b-2b1c8e1f0a11"

// kill is a valid OOM kill event of node.
func kill(node string, seq int64) *pb.Event {
	w := &pb.Workload{Namespace: "shop", PodName: "cart-0", PodUid: "uid-cart-0", ContainerName: "api", WorkloadKind: "container"}
	return &pb.Event{
		Node: node, BootId: attackBoot, Seq: seq,
		Time:      timestamppb.New(time.Now().Add(-time.Minute)),
		Monotonic: durationpb.New(time.Duration(seq) * time.Second),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
			Kind:    "limit",
			Victims: []*pb.Process{{Pid: int32(100 + seq%1000), Comm: "worker", RssBytes: proto.Int64(1 << 20), Workload: w}},
			Culprit: &pb.Culprit{Pid: int32(100 + seq%1000), Comm: "worker", RssBytes: proto.Int64(1 << 20), Workload: w},
			Lines:   []string{"worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"},
		}},
	}
}

// ingest is one ingest stream, Hello sent.
type ingest struct {
	st grpc.BidiStreamingClient[pb.StreamRequest, pb.StreamResponse]
}

func openIngest(t *testing.T, ctx context.Context, conn *grpc.ClientConn, node string) *ingest {
	t.Helper()
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: node, BootId: attackBoot, AgentVersion: "attacker"}}}); err != nil {
		t.Fatal(err)
	}
	return &ingest{st: st}
}

// send sends ev and returns the stream's answer: nil for an
// acknowledgement, else the status it ended with.
func (in *ingest) send(ev *pb.Event) error {
	if err := in.st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: ev}}); err != nil {
		// The stream ended: Recv says why.
		_, rerr := in.st.Recv()
		return rerr
	}
	_, err := in.st.Recv()
	return err
}

// sendOnce opens a stream for ev's node, sends ev and returns the
// answer.
func sendOnce(t *testing.T, conn *grpc.ClientConn, ev *pb.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return openIngest(t, ctx, conn, ev.GetNode()).send(ev)
}

// codes counts outcomes by status code, for the table.
type outcomes struct {
	mu sync.Mutex
	n  map[codes.Code]int
}

func (o *outcomes) add(err error) {
	o.mu.Lock()
	if o.n == nil {
		o.n = map[codes.Code]int{}
	}
	o.n[status.Code(err)]++
	o.mu.Unlock()
}

func (o *outcomes) get(c codes.Code) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[c]
}

func (o *outcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var parts []string
	for _, c := range []codes.Code{codes.OK, codes.InvalidArgument, codes.PermissionDenied, codes.ResourceExhausted,
		codes.DeadlineExceeded, codes.Unavailable, codes.Canceled, codes.Internal, codes.Unknown} {
		if n := o.n[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	return strings.Join(parts, ", ")
}

// scenario runs one attack next to an honest agent streaming kills and
// records its row: attack returns what the attacker got.
func scenario(t *testing.T, name, protection string, args []string, attack func(t *testing.T, a *aggregator) string) {
	t.Helper()
	a := startAggregator(t, args...)
	h := a.honestAgent(t, "honest-node", 300, 30)
	// The honest agent is connected and streaming before the attack.
	waitFor(t, 30*time.Second, "the honest agent's first kills", func() bool {
		n, _ := a.stored(t, h.node)
		return n > 0
	})
	result := attack(t, a)
	a.up(t)
	stored := a.finish(t, h)
	peak := a.up(t)
	t.Logf("%s: %s; peak RSS %d MiB; honest kills stored %d of %d", name, result, peak>>20, stored, h.count)
	record(row{attack: name, result: result, protection: protection, peakRSS: peak, honestSent: h.count, honestStored: stored})
}
