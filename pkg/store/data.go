package store

import (
	_ "embed"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
)

// How an event's bytes are kept in the data column: its protobuf
// encoding, or, for an event larger than compressAbove that S2 shrinks,
// a header of two bytes (0x00 and the format) and the compressed
// encoding: formatS2, plain S2 (rows of earlier releases), or formatDict1,
// S2 with dict1.txt as its dictionary (what pack writes now). No protobuf
// encoding of an event starts with 0x00 (there is no field number 0), so
// the rows stored before, and the events too small to gain, read as they
// are.
//
// A kill with its kernel lines (5.6 kB) becomes 2.5 kB with plain S2 and
// 1.5 kB with the dictionary (the kills of the real logs in package
// analysis's testdata: 1.8 and 1.3 kB on average, TestDict1Gains), which
// holds what every OOM report repeats and no single event does: the
// kernel's words for the report's lines (stack frames, registers,
// memory.stat's keys, Mem-Info), kubelet's and the runtimes' cgroup names,
// the reasons' phrases. The row is written twice (the WAL, then the
// database) and sent to PostgreSQL, so each byte saved is saved three
// times (BenchmarkPackKills: the CPU of each form).
const (
	compressAbove = 1024
	formatS2      = 1
	formatDict1   = 2
	// maxUnpacked bounds what a stored row may decompress to (an event
	// the aggregator accepts is at most 1 MiB): a damaged or forged row
	// cannot make a reader allocate more.
	maxUnpacked = 16 << 20
)

// dict1Text is formatDict1's dictionary. Rows depend on every byte of it:
// it must never change (TestDict1Frozen); a better dictionary is a new
// format.
//
//go:embed dict1.txt
var dict1Text []byte

var dict1 = s2.MakeDict(dict1Text, nil)

// errDataFormat: a row's data has the compressed header and a format
// this build does not know, or damaged compressed bytes.
var errDataFormat = errors.New("stored event data")

// pack returns what the data column keeps for the encoding raw.
//
// The compression runs on packers' goroutines, not the caller's: S2's
// dictionary encoder keeps a 64 KiB table on its goroutine's stack, which
// grows the stack of every goroutine that calls it to 128 KiB and leaves
// it so. Called by each agent stream of the aggregator, that was 139 MiB
// of stacks with 1,000 streams (measured, against the aggregator's limit
// of 1 GiB); on one goroutine per CPU it is a few hundred KiB. The hop
// costs two channel operations per large event.
func pack(raw []byte) []byte {
	if len(raw) <= compressAbove {
		return raw
	}
	packers.start.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			go packer()
		}
	})
	done := packDone.Get().(chan []byte)
	packers.jobs <- packJob{raw: raw, done: done}
	out := <-done
	packDone.Put(done)
	return out
}

// packJob is a compression for a packer: raw's packed form is sent to done.
type packJob struct {
	raw  []byte
	done chan []byte
}

// packers are the goroutines that compress for pack, started on first use
// and kept for the process's life.
var packers = struct {
	start sync.Once
	jobs  chan packJob
}{jobs: make(chan packJob)}

// packDone holds pack's reply channels.
var packDone = sync.Pool{New: func() any { return make(chan []byte, 1) }}

// packer compresses pack's jobs, each into its scratch, then copied out at
// its size: a record waiting for its commit keeps the row, not S2's worst
// case. A scratch grown past maxScratch by a large event is not kept.
func packer() {
	var scratch []byte
	for j := range packers.jobs {
		if need := s2.MaxEncodedLen(len(j.raw)); cap(scratch) < need {
			scratch = make([]byte, need)
		}
		n := len(dict1.Encode(scratch[:cap(scratch)], j.raw))
		if 2+n >= len(j.raw) {
			j.done <- j.raw
		} else {
			out := make([]byte, 2+n)
			out[0], out[1] = 0, formatDict1
			copy(out[2:], scratch[:n])
			j.done <- out
		}
		if cap(scratch) > maxScratch {
			scratch = nil
		}
	}
}

const maxScratch = 64 << 10

// unpack returns the protobuf encoding kept in data.
func unpack(data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != 0 {
		return data, nil
	}
	if len(data) < 2 || (data[1] != formatS2 && data[1] != formatDict1) {
		return nil, fmt.Errorf("%w: unknown format (a newer oomwatch's?)", errDataFormat)
	}
	n, err := s2.DecodedLen(data[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDataFormat, err)
	}
	if n > maxUnpacked {
		return nil, fmt.Errorf("%w: %d bytes decompressed, more than %d", errDataFormat, n, maxUnpacked)
	}
	var raw []byte
	if data[1] == formatDict1 {
		raw, err = dict1.Decode(make([]byte, n), data[2:])
	} else {
		raw, err = s2.Decode(make([]byte, n), data[2:])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDataFormat, err)
	}
	return raw, nil
}
