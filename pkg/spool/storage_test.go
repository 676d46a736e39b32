package spool

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// disk injects storage failures into a spool: while err is set, the
// operations in ops fail with it.
type disk struct {
	mu  sync.Mutex
	err error
	ops map[string]bool
}

func (d *disk) fail(err error, ops ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
	d.ops = map[string]bool{}
	for _, op := range ops {
		d.ops[op] = true
	}
}

func (d *disk) heal() { d.fail(nil) }

func (d *disk) fault(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil && d.ops[op] {
		return d.err
	}
	return nil
}

// TestStorageFailure: with the disk failing, Put fails with ErrStorage and
// changes nothing, Ack forgets the event without making it durable, and the
// spool takes writes again by itself once the disk heals.
func TestStorageFailure(t *testing.T) {
	errnos := []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS}
	opsets := map[string][]string{
		"write":          {opWrite},
		"write and roll": {opWrite, opCreate},
		"fsync":          {opSync},
	}
	for _, errno := range errnos {
		for name, ops := range opsets {
			t.Run(errno.Error()+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				d := &disk{}
				s, _ := mustOpen(t, dir, Options{fault: d.fault})
				putOneByOne(t, s, oomEvents("b1", 0, 3))
				wantKeys(t, drain(s), oomEvents("b1", 0, 3))

				d.fail(errno, ops...)
				err := s.Put(ctx, oomEvents("b1", 3, 5)...)
				if !errors.Is(err, ErrStorage) || !errors.Is(err, errno) {
					t.Fatalf("Put on a failing disk = %v, want ErrStorage and %v", err, errno)
				}
				if s.Len() != 3 {
					t.Fatalf("Len = %d after a failed Put, want 3", s.Len())
				}
				// The event is forgotten either way; the ack's record is
				// not written (or not synced, when it starts a segment).
				err = s.Ack("b1", "oom", 0)
				if !errors.Is(err, ErrNotDurable) {
					t.Fatalf("Ack on a failing disk = %v, want ErrNotDurable", err)
				}
				if s.Len() != 2 {
					t.Fatalf("Len = %d after the ack, want 2", s.Len())
				}
				st := s.Stats()
				if st.WriteErrors == 0 || st.AckWriteErrors != 1 {
					t.Errorf("stats %+v", st)
				}

				d.heal()
				if err := s.Put(ctx, oomEvents("b1", 5, 7)...); err != nil {
					t.Fatalf("Put after the disk healed: %v", err)
				}
				s.Rewind()
				got := drain(s)
				want := append(oomEvents("b1", 1, 3), oomEvents("b1", 5, 7)...)
				wantKeys(t, got, want)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				// After a restart the events put are there; the one whose
				// ack was not written may be too, and so may those written
				// but not synced (sent again: harmless).
				s2, rec := mustOpen(t, dir, Options{})
				defer s2.Close()
				if rec.Err() != nil || rec.WriteErr != nil {
					t.Fatalf("recovery %+v", rec)
				}
				got = slices.DeleteFunc(drain(s2), func(e *pb.Event) bool {
					return e.GetSeq() == 0 || ops[0] == opSync && (e.GetSeq() == 3 || e.GetSeq() == 4)
				})
				wantKeys(t, got, want)
			})
		}
	}
}

// TestOpenUnwritable: Open on a disk that takes no writes succeeds with what
// it can read, and the spool starts writing once the disk heals.
func TestOpenUnwritable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    int
	}{
		{name: "empty", prepare: func(t *testing.T, dir string) {}},
		{name: "no directory", prepare: func(t *testing.T, dir string) {}},
		{name: "pending events", want: 4, prepare: func(t *testing.T, dir string) {
			s, _ := mustOpen(t, dir, Options{})
			putOneByOne(t, s, oomEvents("b1", 0, 4))
			s.Close()
		}},
		{name: "torn tail", want: 3, prepare: func(t *testing.T, dir string) {
			s, _ := mustOpen(t, dir, Options{})
			putOneByOne(t, s, oomEvents("b1", 0, 4))
			s.Close()
			seg := segFiles(t, dir)[0]
			st, _ := os.Stat(seg)
			os.Truncate(seg, st.Size()-3)
		}},
		{name: "over its bounds", want: 4, prepare: func(t *testing.T, dir string) {
			s, _ := mustOpen(t, dir, Options{})
			putOneByOne(t, s, oomEvents("b1", 0, 6))
			s.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			tc.prepare(t, dir)
			d := &disk{}
			d.fail(syscall.ENOSPC, opWrite, opCreate)
			if tc.name == "no directory" {
				d.fail(syscall.EROFS, opWrite, opCreate, opMkdir)
			} else if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			s, rec, err := Open(dir, Options{MaxEvents: 4, fault: d.fault}, quietLog())
			if err != nil {
				t.Fatalf("Open on a full disk: %v", err)
			}
			defer s.Close()
			if !errors.Is(rec.WriteErr, ErrStorage) && tc.name != "pending events" {
				t.Errorf("WriteErr = %v, want ErrStorage", rec.WriteErr)
			}
			if got := len(drain(s)); got != min(tc.want, 4) && tc.name != "over its bounds" || tc.name == "over its bounds" && got != 6 {
				t.Errorf("%d events readable", got)
			}
			if err := s.Put(ctx, oomEvent("b2", 1)); !errors.Is(err, ErrStorage) {
				t.Fatalf("Put on a full disk = %v", err)
			}
			d.heal()
			if err := s.Put(ctx, oomEvent("b2", 1)); err != nil {
				t.Fatalf("Put after the disk healed: %v", err)
			}
			if s.Len() > 4 {
				t.Errorf("Len = %d, over the bound 4 once writes work", s.Len())
			}
			s.Close()
			s2, rec := mustOpen(t, dir, Options{MaxEvents: 4})
			defer s2.Close()
			got := drain(s2)
			if len(got) == 0 || KeyOf(got[len(got)-1]) != KeyOf(oomEvent("b2", 1)) {
				t.Errorf("after a restart: %v (recovery %+v)", keys(got), rec)
			}
		})
	}
}
