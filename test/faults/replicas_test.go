package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// replica is one aggregator of several on one PostgreSQL database.
type replica struct {
	name, addr, db, dir string
	p                   *proc
}

// start runs the replica (again) and waits until it listens.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.p = start(t, "aggregator", filepath.Join(r.dir, r.name+".log"), "--listen", r.addr, "--db", r.db,
		"--insecure", "--max-events-per-second", "0")
	waitFor(t, 30*time.Second, r.name+" up", func() bool { return listening(r.addr) })
}

// stop shuts the replica down as Kubernetes does in a rolling update:
// SIGTERM, then SIGKILL after the grace period.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	_ = r.p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = r.p.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
		r.p.cmd.ProcessState = &os.ProcessState{}
	case <-time.After(30 * time.Second):
		t.Logf("%s did not stop within 30 s of SIGTERM: killed", r.name)
		r.p.kill()
	}
}

// watcher is a Watch of one replica's OOM kills, as a client of that
// replica sees them, until the replica goes away.
type watcher struct {
	mu   sync.Mutex
	ids  map[string]int
	done chan struct{}
}

func watch(t *testing.T, addr string) *watcher {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := pb.NewQueryServiceClient(conn).Watch(context.Background(),
		&pb.WatchRequest{Filter: &pb.EventFilter{Types: []string{"oom"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The Watch has begun once its header is in.
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	w := &watcher{ids: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.ids[fmt.Sprintf("%s@%d", r.GetEvent().GetId(), r.GetEvent().GetRevision())]++
			w.mu.Unlock()
		}
	}()
	return w
}

// missed returns how many of ids (event@revision) w did not see, and how
// many it saw twice.
func (w *watcher) missed(ids []string) (missed, twice int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if w.ids[id] == 0 {
			missed++
		}
	}
	for _, n := range w.ids {
		if n > 1 {
			twice++
		}
	}
	return missed, twice
}

// storedBefore returns the event@revision of every OOM kill in the
// database received before t, and how many rows and distinct event IDs
// the events table holds.
func storedBefore(t *testing.T, db string, before time.Time) (ids []string, rows, distinct int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	res, err := c.Query(ctx, `SELECT id, rev FROM events WHERE type = 'oom' AND received < $1`, before.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		var id string
		var rev int64
		if err := res.Scan(&id, &rev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprintf("%s@%d", id, rev))
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM events WHERE type = 'oom'`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return ids, rows, distinct
}

// TestFaultReplicas: three aggregators on one PostgreSQL database, four
// agents streaming to any of them (--server with the three addresses) and
// two kinds of watchers. One replica is SIGKILLed mid-stream and started
// again; then all three are restarted one by one (a rolling update); then
// the database crashes and starts again, all under load. Every kill is
// stored exactly once; a Watch on a replica that stayed up saw every kill
// of every replica; `oomctl watch` given the three addresses, which moves
// to another replica when its own goes, printed every kill once.
func TestFaultReplicas(t *testing.T) {
	dir := t.TempDir()
	db := pgtest.DB(t)
	var reps []*replica
	var addrs []string
	for i := range 3 {
		r := &replica{name: fmt.Sprintf("aggregator-%d", i), addr: freePort(t), db: db, dir: dir}
		r.start(t)
		reps, addrs = append(reps, r), append(addrs, r.addr)
	}
	servers := strings.Join(addrs, ",")

	// oomctl watch through everything that follows.
	outPath := filepath.Join(dir, "oomctl-watch.json")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	oomctl := startOut(t, "oomctl", filepath.Join(dir, "oomctl.log"), out, "watch", "--server", servers, "--insecure", "-o", "json", "--type", "oom")
	// Watches on the replicas that the SIGKILL leaves up.
	w1, w2 := watch(t, reps[1].addr), watch(t, reps[2].addr)

	const agents, kills = 4, 1200
	for i := range agents {
		agent(t, dir, fmt.Sprintf("node-r%d", i), servers, kills, 40)
	}
	waitFor(t, 60*time.Second, "some kills stored", func() bool { n, _, _ := count(t, reps[1].addr, "oom"); return n > 400 })
	reps[0].p.kill()
	time.Sleep(2 * time.Second)
	reps[0].start(t)
	time.Sleep(2 * time.Second)

	// Everything received so far must have reached the watchers of the
	// replicas that stayed up: they stop only in the rolling update below,
	// seconds later (replica 0 goes first).
	rolling := time.Now()
	for _, r := range reps {
		r.stop(t)
		r.start(t)
		time.Sleep(time.Second)
	}
	<-w1.done
	<-w2.done
	before, _, _ := storedBefore(t, db, rolling)
	for i, w := range []*watcher{w1, w2} {
		missed, twice := w.missed(before)
		record(row{scenario: fmt.Sprintf("replicas: Watch on surviving replica %d", i+1), sent: int64(len(before)),
			stored: int64(len(before) - missed), duplicates: int64(twice), lost: int64(missed)})
		if missed > 0 || twice > 0 {
			t.Errorf("the Watch on replica %d missed %d of the %d kills received before the rolling update and saw %d twice", i+1, missed, len(before), twice)
		}
	}

	// The database crashes under load and comes back.
	pgtest.Restart(t, 2*time.Second)

	waitStored(t, reps[2].addr, agents*kills, 180*time.Second)
	time.Sleep(2 * time.Second)
	all, rows, distinct := storedBefore(t, db, time.Now().Add(time.Hour))
	n, dups, _ := count(t, reps[0].addr, "oom")
	record(row{scenario: "replicas: SIGKILL, rolling, DB crash", sent: agents * kills, stored: distinct, duplicates: rows - distinct + dups,
		lost: agents*kills - distinct})
	if distinct != agents*kills || rows != distinct || n != distinct || dups != 0 {
		t.Fatalf("stored %d distinct kills in %d rows (listed %d, %d twice), want exactly %d once", distinct, rows, n, dups, agents*kills)
	}

	// oomctl printed each kill's revision once.
	// oomctl is on one replica, which hands on the others' kills as its
	// follower reads them: after the database's crash, once its listener
	// is back (at most 5 s between tries) and it has read their backlog.
	deadline := time.Now().Add(90 * time.Second)
	for len(printedIDs(t, outPath)) < agents*kills && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	// Its output is read whole once it has exited.
	_ = oomctl.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan struct{})
	go func() { _, _ = oomctl.cmd.Process.Wait(); close(exited) }()
	select {
	case <-exited:
		oomctl.cmd.ProcessState = &os.ProcessState{}
	case <-time.After(10 * time.Second):
		oomctl.kill()
	}
	printed := printedIDs(t, outPath)
	twice := 0
	for _, c := range printed {
		if c > 1 {
			twice++
		}
	}
	missed := 0
	for _, id := range all {
		if printed[id] == 0 {
			missed++
		}
	}
	record(row{scenario: "replicas: oomctl watch, 3 addresses", sent: agents * kills, stored: int64(len(printed)), duplicates: int64(twice), lost: int64(missed)})
	if missed > 0 {
		logs, _ := os.ReadFile(filepath.Join(dir, "oomctl.log"))
		t.Logf("oomctl's messages:\n%s", logs)
		for _, r := range reps {
			b, _ := os.ReadFile(filepath.Join(dir, r.name+".log"))
			t.Logf("%s's log (last 3 kB):\n%s", r.name, b[max(0, len(b)-3000):])
		}
		t.Fatalf("oomctl watch missed %d kills: %s", missed, missedDetail(t, db, all, printed))
	}
}

// printedIDs reads oomctl's JSON lines: how many times each kill's
// revision (event@revision) was printed.
func printedIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := clitest.ReadEvents(f)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		// The last line may be half written.
		t.Logf("reading oomctl's output: %v", err)
	}
	out := map[string]int{}
	for _, e := range evs {
		out[fmt.Sprintf("%s/%s/oom/%d@%d", e.GetNode(), e.GetBootId(), e.GetSeq(), e.GetRevision())]++
	}
	return out
}

// listening tells whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// missedDetail says when the first few kills oomctl missed were received,
// and by which writer.
func missedDetail(t *testing.T, db string, all []string, printed map[string]int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return err.Error()
	}
	defer c.Close(context.Background())
	var out []string
	for _, id := range all {
		if printed[id] > 0 || len(out) >= 10 {
			continue
		}
		ev, _, _ := strings.Cut(id, "@")
		var received, wseq, rev int64
		var writer string
		_ = c.QueryRow(ctx, `SELECT received, writer, wseq, rev FROM events WHERE id = $1`, ev).Scan(&received, &writer, &wseq, &rev)
		var revs []string
		for p := range printed {
			if strings.HasPrefix(p, ev+"@") {
				revs = append(revs, p)
			}
		}
		out = append(out, fmt.Sprintf("%s (revision %d) received %s by %s in its commit %d; printed: %v", ev, rev,
			time.Unix(0, received).UTC().Format("15:04:05.000"), writer, wseq, revs))
	}
	return strings.Join(out, "; ")
}
