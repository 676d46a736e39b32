package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// walRestarts reads the checkpoint sequence number of a WAL's header
// (bytes 12-15), which SQLite increments each time it starts a copied WAL
// over, and the WAL file's size.
func walRestarts(t *testing.T, path string) (uint32, int64) {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 {
		t.Fatalf("WAL of %d bytes", len(b))
	}
	return binary.BigEndian.Uint32(b[12:16]), int64(len(b))
}

// bulky is a kill whose kernel lines compress little, so that a batch of
// them fills WAL pages.
func bulky(r *rand.Rand, seq int64) *pb.Event {
	e := oom("node-a", seq, time.Duration(seq)*time.Millisecond, "limit", "ns", fmt.Sprintf("pod-%d", seq%50), "app")
	lines := make([]string, 400)
	for i := range lines {
		lines[i] = fmt.Sprintf("%016x %016x %016x", r.Uint64(), r.Uint64(), r.Uint64())
	}
	e.GetOom().Lines = lines
	return e
}

// TestCheckpointPolicy: the WAL is copied into the database once the
// policy's time has passed since the last copy, or once it has grown past
// the policy's size, and not before: copied, it is started over at the
// next commit.
func TestCheckpointPolicy(t *testing.T) {
	for _, c := range []struct {
		name      string
		p         checkpointPolicy
		wantCopy  bool
		wantBelow int64 // the WAL file's largest size (0: not checked)
		batches   int
	}{
		{"time passed", checkpointPolicy{after: 100 * time.Millisecond, walBytes: 1 << 30}, true, 0, 2},
		{"time not passed, small WAL", checkpointPolicy{after: time.Hour, walBytes: 1 << 30}, false, 0, 2},
		// ~4 MB of WAL in all, written in commits of ~0.3 MB.
		{"WAL past its size", checkpointPolicy{after: time.Hour, walBytes: 1 << 20}, true, 5 << 19, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "oomwatch.db")
			s, err := openWith(context.Background(), path, quietLog(), c.p)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := rand.New(rand.NewPCG(1, 2))
			var seq int64
			batch := func() {
				evs := make([]*pb.Event, 20)
				for i := range evs {
					seq++
					evs[i] = bulky(r, seq)
				}
				put(t, s, evs...)
			}
			batch()
			first, _ := walRestarts(t, path)
			var largest int64
			for range c.batches - 1 {
				// Ticks enough for the policy to act on what is there.
				time.Sleep(3 * checkpointTick / 2)
				batch()
				_, size := walRestarts(t, path)
				largest = max(largest, size)
			}
			last, size := walRestarts(t, path)
			t.Logf("WAL: %d bytes now, %d at most", size, largest)
			if copied := last != first; copied != c.wantCopy {
				t.Errorf("WAL started over: %v (checkpoint sequence %d -> %d), want %v", copied, first, last, c.wantCopy)
			}
			if c.wantBelow > 0 && largest >= c.wantBelow {
				t.Errorf("the WAL's file grew to %d bytes, want under %d", largest, c.wantBelow)
			}
		})
	}
}
