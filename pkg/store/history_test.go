package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// TestHistory reads a store back in the order it stored its events, in
// pages, each row as stored (the latest revision, its received time and
// bytes), with the store still open beside it, and never changes the file.
func TestHistory(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	first := put(t, s, oom("node-a", 1, 3*time.Minute, "limit", "shop", "cart-1", "api"), loss("node-a", 2, time.Minute))
	child := exit("node-a", 3, 2*time.Minute, "oom-child", "ci", "runner-1", "runner", false)
	put(t, s, child)
	time.Sleep(2 * time.Millisecond)
	child2 := exit("node-a", 3, 2*time.Minute, "oom-child", "ci", "runner-1", "runner", false)
	child2.Revision, child2.GetExit().ChildKills = 2, 4
	if res := put(t, s, child2); !res[0].Updated || !first[0].Stored {
		t.Fatalf("update %+v", res)
	}
	// The WAL holds what was just committed; the history must see it.
	before := fileBytes(t, path)

	h, err := OpenHistory(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if n, err := h.Count(ctx); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	var got []*Record
	var after int64
	for {
		recs, next, err := h.Next(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			if next != after {
				t.Fatalf("the end moved the position from %d to %d", after, next)
			}
			break
		}
		got, after = append(got, recs...), next
	}
	wantIDs := []string{"node-a/" + boot + "/oom/1", "node-a/" + boot + "/loss/2", "node-a/" + boot + "/exit/3"}
	if len(got) != len(wantIDs) {
		t.Fatalf("%d records, want %d", len(got), len(wantIDs))
	}
	for i, r := range got {
		row := r.Row()
		stored, err := s.Get(ctx, row.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.ID != wantIDs[i] || !proto.Equal(r.Event(), stored) {
			t.Errorf("record %d: %s %v, want %s as stored", i, row.ID, r.Event(), wantIDs[i])
		}
		if row.Received != Nanos(stored.GetReceived().AsTime()) || row.Time != Nanos(rowTime(stored)) || len(row.Refs) == 0 && row.Type != "loss" {
			t.Errorf("record %d: %+v", i, row)
		}
	}
	if rev := got[2].Row().Revision; rev != 2 || got[2].Event().GetExit().GetChildKills() != 4 {
		t.Errorf("exit at revision %d, want the latest, 2", rev)
	}
	h.Close()
	if !bytes.Equal(before, fileBytes(t, path)) {
		t.Error("reading the history changed the database file")
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHistoryRefuses: what is not an oomwatch database is refused, and
// left as it was (nothing created or written).
func TestHistoryRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherApp := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", "file:"+otherApp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, tooNew := open(t)
	if _, err := s.wc.ExecContext(context.Background(), `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A real store whose first page is overwritten: SQLite's header gone.
	corrupt := filepath.Join(dir, "corrupt.db")
	s2, err := Open(context.Background(), corrupt, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	put(t, s2, oom("node-a", 1, 0, "limit", "shop", "cart-1", "api"))
	s2.Close()
	b := fileBytes(t, corrupt)
	copy(b, bytes.Repeat([]byte{0xff}, 512))
	write("corrupt.db", b)
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"missing", filepath.Join(dir, "nope.db"), fs.ErrNotExist},
		{"a directory", dir, ErrNotStore},
		{"empty", write("empty.db", nil), ErrNotStore},
		{"not SQLite", write("text.db", bytes.Repeat([]byte("not a database\n"), 400)), ErrNotStore},
		{"another application's SQLite", otherApp, ErrNotStore},
		{"a corrupt store", corrupt, ErrNotStore},
		{"a newer oomwatch's", tooNew, ErrSchemaTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if fi, err := os.Stat(tc.path); err == nil && fi.Mode().IsRegular() {
				before = fileBytes(t, tc.path)
			}
			h, err := OpenHistory(context.Background(), tc.path)
			if err == nil {
				h.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenHistory = %v, want %v", err, tc.want)
			}
			if before != nil && !bytes.Equal(before, fileBytes(t, tc.path)) {
				t.Error("the file was changed")
			}
			if _, err := os.Stat(tc.path); errors.Is(tc.want, fs.ErrNotExist) && err == nil {
				t.Error("a missing file was created")
			}
		})
	}
}

// TestHistoryOldSchema reads a database of schema version 1 (before
// revisions, limited cgroups and warnings): the columns it lacks read as
// their migrations' defaults.
func TestHistoryOldSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := oom("node-a", 1, time.Minute, "limit", "shop", "cart-1", "api")
	r, err := Encode(e, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		`CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO events (id, node, boot_id, type, seq, time, received, kind, collateral, verdict, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.id, r.node, r.boot, r.typ, r.seq, r.t, r.received, r.cols.kind, false, "", r.data); err != nil {
		t.Fatal(err)
	}
	h, err := OpenHistory(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	recs, _, err := h.Next(context.Background(), 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Next = %d records, %v", len(recs), err)
	}
	row := recs[0].Row()
	if row.ID != r.id || row.Revision != 0 || row.Memcg != "" || row.Seen != 0 || row.Received != r.received || !proto.Equal(recs[0].Event(), e) {
		t.Errorf("row %+v", row)
	}
}
