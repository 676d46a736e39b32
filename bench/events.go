package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// KillCapture is the real kernel log whose OOM kill the aggregator hooks
// send and store: a container memory.max kill on Debian's 6.1 cloud kernel,
// read back whole from /dev/kmsg (relative to the repository root).
const KillCapture = "pkg/analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg"

// benchBoot is the boot ID of every generated event.
const benchBoot = "6a1e0c52-95c4-4d7e-8f6b-0b3d7f1c2e90"

// Cluster is the shape of the generated events' cluster.
type Cluster struct {
	Nodes, Namespaces, Pods int
}

// killTemplate reads KillCapture and returns its kill as the agent sends
// it (analysis.ReadLog, then wire.FromAnalysis): kernel lines, victim,
// trigger, top consumer, culprit and the explanation, about 5.4 kB of
// protobuf.
func killTemplate(repoRoot string) (*pb.OOMKill, error) {
	f, err := os.Open(filepath.Join(repoRoot, KillCapture))
	if err != nil {
		return nil, fmt.Errorf("kill template: %w", err)
	}
	defer f.Close()
	var kill *pb.OOMKill
	if _, err := analysis.ReadLog(f, analysis.StreamOptions{}, func(e analysis.Event) {
		if kill == nil {
			kill = wire.OOMKill(e)
		}
	}); err != nil {
		return nil, fmt.Errorf("kill template: %w", err)
	}
	if kill == nil || kill.GetVictims() == nil {
		return nil, errors.New("kill template: no kill in " + KillCapture)
	}
	return kill, nil
}

// podKills makes the template's kill happen in pods of a cluster: each
// variant is the template moved to another pod (its pod UID, container ID
// and cgroup replaced everywhere, kernel lines included, as they would
// read there) with the names an agent's runtime lookup adds: namespace
// "ns-N", pod "app-N-xxxxx", container "main".
type podKills struct {
	tmpl     *pb.OOMKill
	uid, ctr string
	c        Cluster
}

func newPodKills(tmpl *pb.OOMKill, c Cluster) *podKills {
	w := tmpl.GetVictims()[0].GetWorkload()
	return &podKills{tmpl: tmpl, uid: w.GetPodUid(), ctr: w.GetContainerId(), c: c}
}

// kill returns the kill of pod (0 <= pod < Pods), whose namespace is
// pod % Namespaces. Every variant is a new message.
func (k *podKills) kill(pod int) (*pb.OOMKill, string) {
	uid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", 0x5e000000+pod, pod%0x10000, pod%0x1000, pod%0x1000, 0xa000000+pod)
	ctr := fmt.Sprintf("%064x", 0xc0000000+pod)
	ns := fmt.Sprintf("ns-%d", pod%k.c.Namespaces)
	podName := fmt.Sprintf("app-%d-%05x", pod/k.c.Namespaces, pod*7919%0xfffff)
	repl := strings.NewReplacer(k.uid, uid, strings.ReplaceAll(k.uid, "-", "_"), strings.ReplaceAll(uid, "-", "_"), k.ctr, ctr)
	out := proto.Clone(k.tmpl).(*pb.OOMKill)
	for i, l := range out.Lines {
		out.Lines[i] = repl.Replace(l)
	}
	out.OomMemcg = repl.Replace(out.OomMemcg)
	out.Reason = repl.Replace(out.Reason)
	ws := []*pb.Workload{out.GetTrigger().GetWorkload(), out.GetCulprit().GetWorkload()}
	for _, p := range append(append([]*pb.Process(nil), out.Victims...), out.TopConsumers...) {
		ws = append(ws, p.GetWorkload())
	}
	for _, w := range ws {
		if w == nil {
			continue
		}
		w.Cgroup = repl.Replace(w.Cgroup)
		w.PodUid, w.ContainerId = uid, ctr
		w.Namespace, w.PodName, w.ContainerName = ns, podName, "main"
	}
	return out, ns
}

// killEvent wraps a kill as node's event seq at t (its monotonic time,
// which the store keeps but does not index, grows with seq).
func killEvent(node string, seq int64, t time.Time, kill *pb.OOMKill) *pb.Event {
	return &pb.Event{Node: node, BootId: benchBoot, Seq: seq, Time: timestamppb.New(t),
		Monotonic: durationpb.New(time.Hour + time.Duration(seq)*time.Millisecond), Payload: &pb.Event_Oom{Oom: kill}}
}

// nodeName is the name of node i.
func nodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

// randomPods returns n pods of c drawn by rng.
func randomPods(rng *rand.Rand, c Cluster, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = rng.IntN(c.Pods)
	}
	return out
}
