package migration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

const boot = "0f3c6bd0-8a5e-4a36-9d6b-2b1c8e1f0a11"

// t0 is the fixture's first kill: recent, so that retention-free queries
// and open warnings both have something to say.
var t0 = time.Now().Add(-6 * time.Hour).Truncate(time.Second)

func workload(ns, pod, ctr string) *pb.Workload {
	return &pb.Workload{Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr, WorkloadKind: "container",
		Cgroup: "/kubepods/" + pod + "/" + ctr}
}

func oom(node string, seq int64, at time.Time, kind, ns, pod string, collateral bool) *pb.Event {
	k := &pb.OOMKill{Kind: kind, Complete: true,
		Victims: []*pb.Process{{Pid: int32(1000 + seq), Comm: "worker", RssBytes: proto.Int64(seq << 20), Workload: workload(ns, pod, "api")}},
		Trigger: &pb.Process{Pid: int32(2000 + seq), Comm: "trigger", Workload: workload(ns, pod, "api")},
		Culprit: &pb.Culprit{Pid: 9, Comm: "hog", RssBytes: proto.Int64(1 << 30), Tasks: 1, Source: "task-dump", Workload: workload("batch", "etl-1", "spark")},
		Lines:   []string{fmt.Sprintf("worker invoked oom-killer: seq %d", seq)}}
	if kind == "limit" {
		k.OomMemcg = "/kubepods/" + pod
	}
	if collateral {
		k.Collateral, k.CollateralVerdict = true, pb.CollateralVerdict_COLLATERAL_VERDICT_YES
	}
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(at), Payload: &pb.Event_Oom{Oom: k}}
}

func exit(node string, seq int64, at time.Time, verdict, ns, pod string, rev int64, kills int32) *pb.Event {
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(at), Revision: rev,
		Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{Workload: workload(ns, pod, "api"), ExitCode: 137, RuntimeReason: "OOMKilled",
			Verdict: verdict, ChildKills: kills}}}
}

func warning(node string, seq int64, kind pb.WarningKind, pod string, since, at time.Time, rev int64, resolved bool) *pb.Event {
	m := &pb.MemoryWarning{WarningKind: kind, State: pb.WarningState_WARNING_STATE_OPEN, Since: timestamppb.New(since),
		Figures: &pb.WarningFigures{WorkingSetBytes: 400 << 20, LimitBytes: 512 << 20, Ratio: 0.78}, Summary: "near its limit",
		Workload: workload("shop", pod, "api")}
	if resolved {
		m.State, m.Resolution = pb.WarningState_WARNING_STATE_RESOLVED, "cleared"
	}
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(at), Revision: rev, Payload: &pb.Event_Warning{Warning: m}}
}

// mid is a time between the receptions of history's two halves.
var mid time.Time

// history makes an SQLite store of n OOM kills in storms on three nodes
// (some at the very same time, stored apart), losses, exits and oom-child
// stories updated by revision, warnings opened, refreshed and resolved,
// and returns its path, closed.
func history(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oomwatch.db")
	ctx := context.Background()
	s, err := store.Open(ctx, path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(evs ...*pb.Event) {
		t.Helper()
		if _, err := s.Put(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []string{"node-a", "node-b", "node-c"}
	kinds := []string{"limit", "node", "limit", "pod-limit"}
	var batch []*pb.Event
	for i := range n {
		// Storms of 5 kills 10 s apart, 10 min between storms.
		at := t0.Add(time.Duration(i/5)*10*time.Minute + time.Duration(i%5)*10*time.Second)
		node := nodes[i%3]
		if i%7 == 3 {
			// The same instant as the kill before, on another node.
			at = t0.Add(time.Duration((i-1)/5)*10*time.Minute + time.Duration((i-1)%5)*10*time.Second)
		}
		batch = append(batch, oom(node, int64(100+i), at, kinds[i%4], []string{"shop", "bank"}[i%2], fmt.Sprintf("cart-%d", i%4), i%5 == 2))
		if i%11 == 0 {
			batch = append(batch, &pb.Event{Node: node, BootId: boot, Seq: int64(5000 + i), Time: timestamppb.New(at.Add(time.Second)),
				Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 3, AfterSeq: 1, NextSeq: 5}}})
		}
		if i%13 == 0 {
			batch = append(batch, exit(node, int64(7000+i), at.Add(2*time.Second), "oom-limit", "shop", fmt.Sprintf("cart-%d", i%4), 0, 0))
		}
		if len(batch) >= 17 {
			put(batch...)
			batch = nil
		}
		if i == n/2 {
			// What is stored from here on is received at or after mid.
			time.Sleep(5 * time.Millisecond)
			mid = time.Now()
		}
	}
	put(batch...)
	// An oom-child story told three times, the last stored separately; a
	// replay of an older revision changes nothing.
	put(exit("node-a", 900, t0.Add(time.Minute), "oom-child", "ci", "runner-1", 1, 1))
	put(exit("node-a", 900, t0.Add(time.Minute), "oom-child", "ci", "runner-1", 3, 5), exit("node-a", 900, t0.Add(time.Minute), "oom-child", "ci", "runner-1", 2, 2))
	now := time.Now()
	fc, nl := pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningKind_WARNING_KIND_NEAR_LIMIT
	put(warning("node-a", 950, fc, "cart-1", now.Add(-10*time.Minute), now.Add(-10*time.Minute), 0, false),
		warning("node-b", 951, nl, "cart-2", now.Add(-2*time.Hour), now.Add(-2*time.Hour), 0, false),
		warning("node-c", 952, nl, "cart-3", now.Add(-time.Hour), now.Add(-time.Hour), 0, false))
	put(warning("node-a", 950, fc, "cart-1", now.Add(-10*time.Minute), now.Add(-time.Minute), 4, false),
		warning("node-c", 952, nl, "cart-3", now.Add(-time.Hour), now.Add(-30*time.Minute), 1, true))
	return path
}

// filters are the queries compared between the original and the copy.
func filters() []*pb.EventFilter {
	return []*pb.EventFilter{
		nil,
		{Node: "node-b"},
		{Namespace: "shop"},
		{Pod: "cart-1"},
		{Pod: "uid-cart-2"},
		{Container: "api", Namespace: "bank"},
		{Kind: "limit"},
		{CollateralOnly: true},
		{Types: []string{"exit"}},
		{Types: []string{"loss", "warning"}},
		{Verdicts: []string{"oom-child"}},
		{OpenWarningsOnly: true},
		{Since: timestamppb.New(t0.Add(time.Hour)), Until: timestamppb.New(t0.Add(3 * time.Hour))},
		{ReceivedSince: timestamppb.New(mid)},
	}
}

// sameAnswers fails unless the two stores answer List, Incidents, Get,
// IncidentOf and OpenWarnings alike, over pages of a few events.
func sameAnswers(t *testing.T, want, got store.Backend) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for _, f := range filters() {
		a, b := listAll(t, want, f), listAll(t, got, f)
		if len(a) == 0 && f == nil {
			t.Fatal("the original lists nothing")
		}
		sameEvents(t, fmt.Sprintf("List(%v)", f), a, b)
		if f == nil {
			ids = eventIDs(a)
		}
		for _, gap := range []time.Duration{30 * time.Second, 5 * time.Minute} {
			x, y := incidentsAll(t, want, f, gap), incidentsAll(t, got, f, gap)
			if len(x) != len(y) {
				t.Fatalf("Incidents(%v, %v): %d, want %d", f, gap, len(y), len(x))
			}
			for i := range x {
				if !proto.Equal(x[i], y[i]) {
					t.Fatalf("Incidents(%v, %v) #%d:\n%v\nwant\n%v", f, gap, i, y[i], x[i])
				}
			}
		}
	}
	for _, id := range ids {
		a, errA := want.Get(ctx, id)
		b, errB := got.Get(ctx, id)
		if errA != nil || errB != nil || !proto.Equal(a, b) {
			t.Fatalf("Get(%s): %v %v, want %v %v", id, b, errB, a, errA)
		}
		if a.GetOom() == nil {
			continue
		}
		x, errA := want.IncidentOf(ctx, id, time.Minute)
		y, errB := got.IncidentOf(ctx, id, time.Minute)
		if errA != nil || errB != nil || !proto.Equal(x.Incident, y.Incident) || x.Truncated != y.Truncated {
			t.Fatalf("IncidentOf(%s): %v %v, want %v %v", id, y, errB, x, errA)
		}
		sameEvents(t, "IncidentOf("+id+")", x.Kills, y.Kills)
	}
	now := time.Now()
	ca, wa, errA := want.OpenWarnings(ctx, now, 10)
	cb, wb, errB := got.OpenWarnings(ctx, now, 10)
	if errA != nil || errB != nil || fmt.Sprint(ca) != fmt.Sprint(cb) || len(wa) == 0 {
		t.Fatalf("OpenWarnings: %v %v, want %v %v", cb, errB, ca, errA)
	}
	sameEvents(t, "OpenWarnings", wa, wb)
}

func sameEvents(t *testing.T, what string, want, got []*pb.Event) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			t.Fatalf("%s #%d: %s, want %s", what, i, got[i].GetId(), want[i].GetId())
		}
	}
}

func eventIDs(evs []*pb.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetId())
	}
	return out
}

func listAll(t *testing.T, s store.Backend, f *pb.EventFilter) []*pb.Event {
	t.Helper()
	var out []*pb.Event
	tok := ""
	for range 10000 {
		evs, next, err := s.List(context.Background(), f, 7, tok)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if next == "" {
			return out
		}
		tok = next
	}
	t.Fatal("too many pages")
	return nil
}

func incidentsAll(t *testing.T, s store.Backend, f *pb.EventFilter, gap time.Duration) []*pb.Incident {
	t.Helper()
	var out []*pb.Incident
	tok := ""
	for range 10000 {
		incs, next, err := s.Incidents(context.Background(), f, gap, 3, tok)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, incs...)
		if next == "" {
			return out
		}
		tok = next
	}
	t.Fatal("too many pages")
	return nil
}

func openSQLite(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPG(t *testing.T, url string) *pg.Store {
	t.Helper()
	s, err := pg.Open(context.Background(), url, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRun copies a history into a new PostgreSQL database: every query
// answers the same over the copy as over the original, and copying it
// again stores nothing twice.
func TestRun(t *testing.T) {
	path := history(t, 150)
	url := pgtest.DB(t)
	ctx := context.Background()
	h, err := store.OpenHistory(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	total, err := h.Count(ctx)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	o := Options{From: path, To: url, Batch: 16, LogLevel: "info"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c, err := Run(ctx, o, &out, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Read: total, Copied: total}); c != want {
		t.Fatalf("first run: %v, want %v", c, want)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("read %d, copied %d, updated 0, already present 0", total, total)) {
		t.Errorf("it printed %q", out.String())
	}
	sameAnswers(t, openSQLite(t, path), openPG(t, url))

	out.Reset()
	c, err = Run(ctx, o, &out, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Read: total, Present: total}); c != want {
		t.Fatalf("second run: %v, want %v", c, want)
	}
	sameAnswers(t, openSQLite(t, path), openPG(t, url))
}

// TestRunNewerInPostgres: an event PostgreSQL already holds at a newer
// revision (an agent re-sent it to a replica) is kept; one it holds older
// is replaced.
func TestRunNewerInPostgres(t *testing.T) {
	path := history(t, 10)
	url := pgtest.DB(t)
	ctx := context.Background()
	dst := openPG(t, url)
	// The story is at revision 3 in SQLite.
	if _, err := dst.Put(ctx, []*pb.Event{exit("node-a", 900, t0.Add(time.Minute), "oom-child", "ci", "runner-1", 9, 9)}); err != nil {
		t.Fatal(err)
	}
	// The warning is at revision 4 in SQLite: PostgreSQL has its first.
	w, err := openSQLite(t, path).Get(ctx, "node-a/"+boot+"/warning/950")
	if err != nil {
		t.Fatal(err)
	}
	w.Revision = 0
	if _, err := dst.Put(ctx, []*pb.Event{w}); err != nil {
		t.Fatal(err)
	}
	c, err := Run(ctx, Options{From: path, To: url, Batch: 4}, io.Discard, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if c.Updated != 1 || c.Present != 1 || c.Copied != c.Read-2 {
		t.Fatalf("counts %v, want 1 updated (the warning) and 1 present (the story)", c)
	}
	e, err := dst.Get(ctx, "node-a/"+boot+"/exit/900")
	if err != nil || e.GetRevision() != 9 {
		t.Fatalf("story at revision %d (%v), want PostgreSQL's 9", e.GetRevision(), err)
	}
	e, err = dst.Get(ctx, "node-a/"+boot+"/warning/950")
	if err != nil || e.GetRevision() != 4 {
		t.Fatalf("warning at revision %d (%v), want the history's 4", e.GetRevision(), err)
	}
}

// cutAfter is a Source that cuts the database off after its pages pages.
type cutAfter struct {
	Source
	pages int
	cut   func()
}

func (c *cutAfter) Next(ctx context.Context, after int64, n int) ([]*store.Record, int64, error) {
	if c.pages == 0 {
		c.cut()
	}
	c.pages--
	return c.Source.Next(ctx, after, n)
}

// TestCopyDatabaseGone: the database goes away mid-copy. The copy stops
// with an error that says what was committed, which is in the database;
// run again once it is back, the copy completes with nothing twice.
func TestCopyDatabaseGone(t *testing.T) {
	path := history(t, 120)
	url := pgtest.DB(t)
	proxy, via := pgtest.NewProxy(t, url)
	ctx := context.Background()
	h, err := store.OpenHistory(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	total, _ := h.Count(ctx)
	dst := openPG(t, via)
	first, err := Copy(ctx, &cutAfter{Source: h, pages: 3, cut: proxy.Cut}, dst, 10, nil, quietLog())
	if err == nil || !strings.Contains(err.Error(), "run it again") {
		t.Fatalf("Copy = %v, want an error that says to run it again", err)
	}
	if first.Read == 0 || first.Read >= total || first.Copied != first.Read {
		t.Fatalf("first copy: %v of %d", first, total)
	}
	// What it says was copied is committed, and nothing else.
	direct := openPG(t, url)
	if got := len(listAll(t, direct, nil)); int64(got) != first.Copied {
		t.Fatalf("PostgreSQL holds %d events, the copy said %d", got, first.Copied)
	}
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	second, err := Copy(ctx, h, dst, 10, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Read: total, Copied: total - first.Copied, Present: first.Copied}); second != want {
		t.Fatalf("second copy: %v, want %v", second, want)
	}
	sameAnswers(t, openSQLite(t, path), direct)
}

// TestRunRefuses: what is not an SQLite oomwatch database, or not a
// PostgreSQL URL, is refused with an error that says which, before
// PostgreSQL is touched, and never repeating the URL's password.
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	good := history(t, 3)
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("garbage!"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	const secretURL = "postgres://oomwatch:hunter2@127.0.0.1:1/oomwatch"
	for _, tc := range []struct {
		name     string
		o        Options
		validate string // Validate's error
		run      error  // else Run's
	}{
		{"no --from", Options{To: secretURL, Batch: 1}, "--from", nil},
		{"no --to", Options{From: good, Batch: 1}, "--to", nil},
		{"an SQLite --to", Options{From: good, To: filepath.Join(dir, "other.db"), Batch: 1}, "must be a PostgreSQL URL", nil},
		{"a MySQL --to", Options{From: good, To: "mysql://root:hunter2@db/oomwatch", Batch: 1}, "must be a PostgreSQL URL", nil},
		{"a PostgreSQL --from", Options{From: secretURL, To: secretURL, Batch: 1}, "--from must be the SQLite database file", nil},
		{"a garbled --to", Options{From: good, To: "postgres://oomwatch:hunter2@[::1/x", Batch: 1}, "invalid PostgreSQL URL", nil},
		{"a zero --batch", Options{From: good, To: secretURL}, "--batch", nil},
		{"a missing --from", Options{From: filepath.Join(dir, "nope.db"), To: secretURL, Batch: 1, LogLevel: "info"}, "", fs.ErrNotExist},
		{"a --from that is not SQLite", Options{From: garbage, To: secretURL, Batch: 1, LogLevel: "info"}, "", store.ErrNotStore},
		{"an unreachable --to", Options{From: good, To: secretURL + "?connect_timeout=2", Batch: 1, LogLevel: "info"}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.validate != "" {
				if err == nil || !strings.Contains(err.Error(), tc.validate) {
					t.Fatalf("Validate = %v, want %q", err, tc.validate)
				}
			} else if err != nil {
				t.Fatalf("Validate = %v", err)
			} else {
				_, err = Run(context.Background(), tc.o, io.Discard, quietLog())
				if err == nil || (tc.run != nil && !errors.Is(err, tc.run)) {
					t.Fatalf("Run = %v, want %v", err, tc.run)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestRunDamagedHistory: an SQLite file cut short (a copy taken while it
// was written, a full disk) or with pages overwritten is reported, never
// copied in part silently; what was copied before the damage was found is
// committed.
func TestRunDamagedHistory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		{"truncated", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size*2/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"pages overwritten", func(t *testing.T, path string, size int64) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, int(size/3)), size*2/3-4096); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := history(t, 400)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, path, fi.Size())
			url := pgtest.DB(t)
			c, err := Run(context.Background(), Options{From: path, To: url, Batch: 10}, io.Discard, quietLog())
			t.Logf("Run = %v, %v", c, err)
			if err == nil || !errors.Is(err, store.ErrNotStore) && !strings.Contains(err.Error(), "reading the SQLite history") {
				t.Fatalf("Run = %v, want an error that says the SQLite history is damaged", err)
			}
			if c.Copied > 0 {
				if n := int64(len(listAll(t, openPG(t, url), nil))); n != c.Copied {
					t.Errorf("PostgreSQL holds %d events, the copy said %d", n, c.Copied)
				}
			}
		})
	}
}
