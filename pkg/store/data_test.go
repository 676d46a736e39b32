package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func killWithLines(n int) *pb.Event {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = "[ 1234.567890] [  " + strings.Repeat("7", i%5+1) + "]     0  4242  1024   512    8 0  0 worker"
	}
	return &pb.Event{Node: "node-a", BootId: "boot-1", Seq: 9, Time: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "limit", Lines: lines}}}
}

// TestPackRoundTrip: a large event is kept compressed and reads back the
// same; a small one, or one that does not shrink, is kept as its
// protobuf encoding.
func TestPackRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name       string
		e          *pb.Event
		compressed bool
	}{
		{"small", killWithLines(1), false},
		{"large", killWithLines(60), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Encode(c.e, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := proto.Marshal(r.Event())
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.data) > 0 && r.data[0] == 0; got != c.compressed {
				t.Fatalf("compressed = %v (%d bytes of %d), want %v", got, len(r.data), len(raw), c.compressed)
			}
			if c.compressed && r.data[1] != formatDict1 {
				t.Fatalf("format %d, want formatDict1", r.data[1])
			}
			if c.compressed && len(r.data) >= len(raw)/2 {
				t.Errorf("kept %d bytes of %d", len(r.data), len(raw))
			}
			back, err := Decode(r.data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, r.Event()) {
				t.Fatal("read back another event")
			}
		})
	}
	// Bytes that S2 cannot shrink stay as they are.
	noise := make([]byte, 4096)
	for i := range noise {
		noise[i] = byte(i*7919>>3) ^ byte(i*31)
	}
	if got := pack(noise); !bytes.Equal(got, noise) && len(got) >= len(noise) {
		t.Fatalf("incompressible data grew to %d bytes", len(got))
	}
}

// TestUnpackRejects: data with the compressed header that is damaged,
// of an unknown format, or that would decompress past the bound is an
// error, never a panic nor a huge allocation (a byte changed inside the
// compressed block may read as another event, as in a plain row: the
// databases' own checks are what catch that); rows stored before (plain
// protobuf) read as they are.
func TestUnpackRejects(t *testing.T) {
	r, err := Encode(killWithLines(60), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good := r.data
	bomb := append([]byte{0, formatS2}, s2.Encode(nil, make([]byte, maxUnpacked+1))...)
	dictBomb := append([]byte{0, formatDict1}, dict1.Encode(nil, make([]byte, maxUnpacked+1))...)
	for name, data := range map[string][]byte{
		"too large, dictionary": dictBomb,
		"header only":           {0},
		"unknown format":        append([]byte{0, 9}, good[2:]...),
		"truncated":             good[:len(good)/2],
		"bad length":            append([]byte{0, formatS2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, good[2:]...),
		"too large":             bomb,
	} {
		if _, err := Decode(data); err == nil {
			t.Errorf("%s: decoded", name)
		} else if !errors.Is(err, errDataFormat) {
			t.Errorf("%s: %v, want errDataFormat", name, err)
		}
	}
	raw, err := proto.Marshal(r.Event())
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Decode(raw); err != nil || !proto.Equal(e, r.Event()) {
		t.Fatalf("plain protobuf: %v", err)
	}
	// Rows of the releases that compressed with plain S2 read as before.
	old := append([]byte{0, formatS2}, s2.Encode(nil, raw)...)
	if e, err := Decode(old); err != nil || !proto.Equal(e, r.Event()) {
		t.Fatalf("plain S2: %v", err)
	}
}

// TestDict1Frozen: formatDict1's dictionary is what the rows stored with
// it were compressed against; a change would make them unreadable or
// read as other events.
func TestDict1Frozen(t *testing.T) {
	const want = "9f26c7cfc3a019719260f1c1efbbc3e8111d95418915259965dd85f3564d09b2"
	if got := fmt.Sprintf("%x", sha256.Sum256(dict1Text)); got != want {
		t.Fatalf("dict1.txt changed (sha256 %s): rows stored with formatDict1 depend on every byte; make a new format instead", got)
	}
	if dict1 == nil {
		t.Fatal("dict1.txt is no dictionary")
	}
}

// FuzzUnpack: whatever a row's data holds, Decode returns an event or an
// error.
func FuzzUnpack(f *testing.F) {
	r, err := Encode(killWithLines(60), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.data)
	f.Add([]byte{0, formatS2, 3, 0, 1, 2})
	f.Add([]byte{0, formatDict1, 40, 0xfe, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Decode(data)
	})
}

// TestPackKeepsCallersStacks: many goroutines storing large events (the
// aggregator's agent streams) keep small stacks: the compression's 64 KiB
// table lives on packers' stacks, not theirs (on the callers' own, 500 of
// them held 128 KiB each).
func TestPackKeepsCallersStacks(t *testing.T) {
	raw, err := proto.Marshal(killWithLines(60))
	if err != nil {
		t.Fatal(err)
	}
	const callers = 500
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	packed := make(chan struct{})
	hold := make(chan struct{})
	for range callers {
		go func() {
			if out := pack(raw); len(out) >= len(raw) {
				t.Error("not compressed")
			}
			packed <- struct{}{}
			<-hold
		}()
	}
	for range callers {
		<-packed
	}
	runtime.ReadMemStats(&after)
	close(hold)
	grown := int64(after.StackInuse) - int64(before.StackInuse)
	if limit := int64(callers * 32 << 10); grown > limit {
		t.Errorf("stacks grew by %d KiB for %d callers of pack, want under %d KiB", grown>>10, callers, limit>>10)
	}
	t.Logf("stacks grew by %d KiB for %d callers", grown>>10, callers)
}
