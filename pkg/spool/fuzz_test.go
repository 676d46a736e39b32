package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// seedSegment returns the segment file of a spool that saw puts, acks, a
// drop and a taken drop report.
func seedSegment(f *testing.F) []byte {
	dir := f.TempDir()
	s, _, err := Open(dir, Options{MaxEvents: 4}, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 6 {
		if err := s.Put(ctx, oomEvent("b1", i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := s.Ack("b1", "oom", 4); err != nil {
		f.Fatal(err)
	}
	if _, err := s.TakeDropped(ctx, func(r DropReport) *pb.Event { return r.Loss("n1", "b1", 99, epoch) }); err != nil {
		f.Fatal(err)
	}
	s.Close()
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(m) != 1 {
		f.Fatalf("segments %v", m)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		f.Fatal(err)
	}
	return data
}

func addSeeds(f *testing.F) {
	seg := seedSegment(f)
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	flipped := slices.Clone(seg)
	flipped[len(flipped)/2] ^= 0x10
	f.Add(flipped)
	f.Add(append(slices.Clone(seg), frameMagic[:]...))
	f.Add(append(append([]byte("garbage"), seg...), "more garbage"...))
	f.Add([]byte{})
	f.Add(frameMagic[:])
}

// FuzzScan: scan never panics, every record it returns has a valid
// checksum, and records and bad spans cover the input exactly, in order.
func FuzzScan(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		pos := int64(0)
		var recs []rawRecord
		bad := scan(data, func(r rawRecord) { recs = append(recs, r) })
		ri, bi := 0, 0
		for pos < int64(len(data)) {
			switch {
			case ri < len(recs) && recs[ri].off == pos:
				r := recs[ri]
				hdr := data[r.off : r.off+frameHeader]
				if !bytes.Equal(hdr[:4], frameMagic[:]) {
					t.Fatalf("record at %d without magic", r.off)
				}
				n := int64(binary.LittleEndian.Uint32(hdr[4:]))
				if n+frameHeader != r.size || r.bodyOff != r.off+frameHeader+1 || int64(len(r.body)) != n-1 {
					t.Fatalf("record at %d: bad geometry %+v", r.off, r)
				}
				crc := crc32.Checksum(append(slices.Clone(hdr[4:8]), data[r.off+frameHeader:r.off+r.size]...), castagnoli)
				if crc != binary.LittleEndian.Uint32(hdr[8:]) {
					t.Fatalf("record at %d returned with a bad checksum", r.off)
				}
				pos += r.size
				ri++
			case bi < len(bad) && bad[bi].off == pos && bad[bi].n > 0:
				pos += bad[bi].n
				bi++
			default:
				t.Fatalf("nothing covers offset %d", pos)
			}
		}
		if pos != int64(len(data)) || ri != len(recs) || bi != len(bad) {
			t.Fatalf("coverage ends at %d of %d, %d/%d records, %d/%d spans", pos, len(data), ri, len(recs), bi, len(bad))
		}
	})
}

// FuzzOpen: arbitrary bytes as a segment never make Open fail or panic;
// every event it returns is one of a record with a valid checksum; the spool
// it leaves opens cleanly with the same events.
func FuzzOpen(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var valid []*pb.Event
		scan(data, func(r rawRecord) {
			if r.typ != recPut {
				return
			}
			if p, err := decodePut(r.body); err == nil {
				ev := &pb.Event{}
				if proto.Unmarshal(p.event, ev) == nil {
					valid = append(valid, ev)
				}
			}
		})
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(7)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		// No fsync: this is about parsing, and it is 10x faster.
		opts := Options{KeepCorrupt: -1, noSync: true}
		s, _, err := Open(dir, opts, quietLog())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got := drain(s)
		for _, ev := range got {
			if !slices.ContainsFunc(valid, func(v *pb.Event) bool { return proto.Equal(v, ev) }) {
				t.Fatalf("event %v is from no valid record", ev)
			}
		}
		_ = s.Dropped()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, rec, err := Open(dir, opts, quietLog())
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer s2.Close()
		if rec.Err() != nil {
			t.Fatalf("second Open found corruption: %v", rec.Err())
		}
		if g, w := keys(drain(s2)), keys(got); !slices.Equal(g, w) {
			t.Fatalf("second Open: events %v, first %v", g, w)
		}
	})
}
