package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const boot = "0f3c6bd0-8a5e-4a36-9d6b-2b1c8e1f0a11"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func open(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oomwatch.db")
	s, err := Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func proc(pid int32, comm, ns, pod, ctr string, rss int64) *pb.Process {
	return &pb.Process{Pid: pid, Comm: comm, RssBytes: proto.Int64(rss), Workload: &pb.Workload{
		Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr, WorkloadKind: "container"}}
}

// oom is an OOM kill on node at t0+at whose victim runs in ns/pod/ctr.
func oom(node string, seq int64, at time.Duration, kind, ns, pod, ctr string) *pb.Event {
	return &pb.Event{
		Node: node, BootId: boot, Seq: seq,
		Time:      timestamppb.New(t0.Add(at)),
		Monotonic: durationpb.New(at),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
			Kind:     kind,
			Complete: true,
			Victims:  []*pb.Process{proc(int32(1000+seq), "worker", ns, pod, ctr, 100<<20)},
			Trigger:  proc(int32(2000+seq), "trigger", ns, pod, ctr, 0),
			Culprit: &pb.Culprit{Pid: int32(3000 + seq), Comm: "hog", RssBytes: proto.Int64(seq << 20), Tasks: 1,
				Source: "task-dump", Workload: &pb.Workload{Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr}},
			Lines: []string{"worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"},
		}},
	}
}

func loss(node string, seq int64, at time.Duration) *pb.Event {
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(t0.Add(at)),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 3, AfterSeq: seq - 4, NextSeq: seq}}}
}

func exit(node string, seq int64, at time.Duration, verdict, ns, pod, ctr string, collateral bool) *pb.Event {
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(t0.Add(at)),
		Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{
			Workload: &pb.Workload{Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr},
			ExitCode: 137, RuntimeReason: "OOMKilled", Verdict: verdict, Collateral: collateral}}}
}

func put(t testing.TB, s *Store, evs ...*pb.Event) []PutResult {
	t.Helper()
	res, err := s.Put(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fixture is a small mixed store.
func fixture(t *testing.T) (*Store, []*pb.Event) {
	s, _ := open(t)
	evs := []*pb.Event{
		oom("node-a", 10, 1*time.Minute, "limit", "shop", "cart-1", "api"),
		oom("node-a", 20, 2*time.Minute, "node", "shop", "cart-2", "api"),
		oom("node-b", 10, 3*time.Minute, "limit", "bank", "ledger-0", "db"),
		loss("node-b", 30, 4*time.Minute),
		exit("node-a", 1, 5*time.Minute, "oom-limit", "shop", "cart-1", "api", false),
		exit("node-b", 2, 6*time.Minute, "oom-node", "bank", "ledger-0", "sidecar", true),
		exit("node-b", 3, 7*time.Minute, "not-oom", "web", "front-0", "nginx", false),
	}
	// Collateral node kill whose culprit sits in another namespace.
	c := oom("node-c", 5, 8*time.Minute, "node", "web", "front-0", "nginx")
	c.GetOom().Collateral, c.GetOom().CollateralVerdict = true, pb.CollateralVerdict_COLLATERAL_VERDICT_YES
	c.GetOom().Culprit.Workload = &pb.Workload{Namespace: "batch", PodName: "etl-9", PodUid: "uid-etl-9", ContainerName: "spark"}
	c.GetOom().TopConsumers = []*pb.Process{proc(9, "java", "batch", "etl-9", "spark", 1<<30)}
	evs = append(evs, c)
	put(t, s, evs...)
	return s, evs
}

// TestPruneLeavesNoRefs: pruned events leave no rows in refs (the
// conformance suite checks the listings).
func TestPruneLeavesNoRefs(t *testing.T) {
	s, _ := fixture(t)
	if n, err := s.Prune(context.Background(), t0.Add(3*time.Minute)); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	var refs int
	if err := s.r.QueryRow(`SELECT count(*) FROM refs WHERE event NOT IN (SELECT rowid FROM events)`).Scan(&refs); err != nil || refs != 0 {
		t.Fatalf("orphan refs %d %v", refs, err)
	}
}

func TestReopen(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	put(t, s, oom("node-a", 1, 0, "limit", "shop", "cart-1", "api"))
	if _, _, err := s.List(ctx, nil, 1, ""); err != nil {
		t.Fatal(err)
	}
	put(t, s, oom("node-a", 2, time.Second, "limit", "shop", "cart-1", "api"))
	_, tok, err := s.List(ctx, nil, 1, "")
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Get(ctx, "node-a/"+boot+"/oom/1"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	// Page tokens survive a restart.
	page, _, err := s2.List(ctx, nil, 1, tok)
	if err != nil || len(page) != 1 || page[0].GetSeq() != 1 {
		t.Fatalf("token after reopen: %v %v", page, err)
	}
	if res := put(t, s2, oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")); !res[0].Duplicate {
		t.Fatal("dedup lost after reopen")
	}
}

func TestSchemaTooNew(t *testing.T) {
	s, path := open(t)
	if _, err := s.wc.ExecContext(context.Background(), `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), path, quietLog()); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// TestSurvivesKill stores events in a child process, kills it with SIGKILL
// the moment Put has returned, and finds them all in the database.
func TestSurvivesKill(t *testing.T) {
	if path := os.Getenv("OOMWATCH_STORE_CHILD"); path != "" {
		s, err := Open(context.Background(), path, quietLog())
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := range 1 << 30 {
			var evs []*pb.Event
			for j := range 50 {
				evs = append(evs, oom("node-a", int64(i*50+j), time.Duration(i)*time.Millisecond, "limit", "shop", "cart-1", "api"))
			}
			if _, err := s.Put(context.Background(), evs); err != nil {
				fmt.Println("put:", err)
				os.Exit(1)
			}
			fmt.Printf("committed %d\n", (i+1)*50)
		}
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "OOMWATCH_STORE_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed int
	buf := make([]byte, 0, 1<<16)
	chunk := make([]byte, 4096)
	for committed < 2000 {
		n, err := out.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			t.Fatalf("child ended: %v: %s", err, buf)
		}
		lines := strings.Split(string(buf), "\n")
		for _, l := range lines[:len(lines)-1] {
			fmt.Sscanf(l, "committed %d", &committed)
		}
	}
	// Killed while it keeps writing: everything it reported must be there.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < committed {
		t.Fatalf("%d events survived, %d were committed", n, committed)
	}
	for seq := range committed {
		if _, err := s.Get(context.Background(), fmt.Sprintf("node-a/%s/oom/%d", boot, seq)); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
}

// TestQueryPlans checks that every filter shape reads an index in order:
// no full scan of events and no sort.
func TestQueryPlans(t *testing.T) {
	s, _ := fixture(t)
	since := timestamppb.New(t0)
	filters := []*pb.EventFilter{
		nil,
		{Since: since},
		{Namespace: "shop", Since: since},
		{Namespace: "shop", Pod: "cart-1", Container: "api"},
		{Container: "api", Kind: "node"},
		{Node: "node-a", Since: since},
		{Node: "node-a", Namespace: "shop"},
		{Types: []string{"exit"}, Verdicts: []string{"oom-limit"}},
		{Types: []string{"oom", "exit"}, CollateralOnly: true},
	}
	for _, f := range filters {
		for _, before := range []*cursor{nil, {t: 1, id: 1}} {
			stmt, args, _ := scan{f: f, cols: "e.rowid, e.time, e.data", limit: 10, before: before}.sql()
			rows, err := s.r.Query("EXPLAIN QUERY PLAN "+stmt, args...)
			if err != nil {
				t.Fatalf("%v: %v", f, err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			p := strings.Join(plan, "; ")
			if strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN e") && !strings.Contains(p, "USING INDEX") {
				t.Errorf("filter %v: plan %s", f, p)
			}
		}
	}
}

// TestPageSize: a new database has pages of 16 KiB; one created with
// SQLite's default 4 KiB pages (every database before) keeps them, and
// its events, when opened again, and takes new ones.
func TestPageSize(t *testing.T) {
	pageSize := func(s *Store) int {
		t.Helper()
		var n int
		if err := s.r.QueryRowContext(context.Background(), "PRAGMA page_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s, _ := open(t)
	if n := pageSize(s); n != 16384 {
		t.Errorf("new database: page_size %d", n)
	}

	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=page_size(4096)&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE x (y INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old, err := Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	put(t, old, oom("node-a", 1, time.Second, "limit", "shop", "cart", "app"))
	old.Close()
	old, err = Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	put(t, old, oom("node-a", 2, 2*time.Second, "limit", "shop", "cart", "app"))
	if n := pageSize(old); n != 4096 {
		t.Errorf("database of 4 KiB pages: page_size %d", n)
	}
	if evs, _, err := old.List(context.Background(), &pb.EventFilter{}, 10, ""); err != nil || len(evs) != 2 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
}

// TestPutGroupsByNode: PutRecords inserts a batch grouped by node (byNode),
// which must change nothing a caller sees: the results stay in the batch's
// order, the first copy of a repeated event is the one stored, each node's
// events keep their order in the store (their rowids, which break ties of
// time), and every event is found by its pod.
func TestPutGroupsByNode(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	at := time.Minute // one time for all: only rowids order them
	ev := func(node string, seq int64, pod string) *pb.Event {
		return oom(node, seq, at, "limit", "shop", pod, "api")
	}
	first := ev("node-c", 7, "cart-1")
	second := ev("node-c", 7, "cart-2") // the same identity, other contents
	batch := []*pb.Event{ev("node-c", 9, "cart-3"), ev("node-a", 2, "cart-4"), first, ev("node-b", 1, "cart-5"),
		ev("node-a", 1, "cart-6"), second, ev("node-c", 8, "cart-7")}
	res := put(t, s, batch...)
	want := []PutResult{{Stored: true}, {Stored: true}, {Stored: true}, {Stored: true}, {Stored: true}, {Duplicate: true}, {Stored: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("results %+v, want %+v", res, want)
	}
	if got, err := s.Get(ctx, first.GetId()); err != nil || got.GetOom().GetVictims()[0].GetWorkload().GetPodName() != "cart-1" {
		t.Fatalf("stored copy: %v, %v; want the first (cart-1)", got, err)
	}
	h, err := OpenHistory(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	recs, _, err := h.Next(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string][]int64{}
	for _, r := range recs {
		perNode[r.Row().Node] = append(perNode[r.Row().Node], r.Row().Seq)
	}
	for node, seqs := range map[string][]int64{"node-a": {2, 1}, "node-b": {1}, "node-c": {9, 7, 8}} {
		if !slices.Equal(perNode[node], seqs) {
			t.Errorf("%s stored in the order %v, want the batch's %v", node, perNode[node], seqs)
		}
	}
	for _, pod := range []string{"cart-1", "cart-3", "cart-4", "cart-5", "cart-6", "cart-7"} {
		evs, _, err := s.List(ctx, &pb.EventFilter{Pod: pod}, 10, "")
		if err != nil || len(evs) != 1 {
			t.Errorf("pod %s: %d events, %v; want 1", pod, len(evs), err)
		}
	}
	if evs, _, _ := s.List(ctx, &pb.EventFilter{Pod: "cart-2"}, 10, ""); len(evs) != 0 {
		t.Errorf("the duplicate's pod has %d events, want 0", len(evs))
	}
}
