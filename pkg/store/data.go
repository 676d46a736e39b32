package store

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
)

// How an event's bytes are kept in the data column: its protobuf
// encoding, or, for an event larger than compressAbove that S2 shrinks,
// a header of two bytes (0x00 and the format, formatS2) and the
// compressed encoding. No protobuf encoding of an event starts with 0x00
// (there is no field number 0), so the rows stored before, and the events
// too small to gain, read as they are.
//
// A kill with its kernel lines (5.6 kB) becomes 2.6 kB: a row that fits
// a page of either database instead of spilling onto another, fewer bytes
// logged, written and sent to PostgreSQL, for ~3 µs of compression and
// ~1 µs of decompression per event.
const (
	compressAbove = 1024
	formatS2      = 1
	// maxUnpacked bounds what a stored row may decompress to (an event
	// the aggregator accepts is at most 1 MiB): a damaged or forged row
	// cannot make a reader allocate more.
	maxUnpacked = 16 << 20
)

// errDataFormat: a row's data has the compressed header and a format
// this build does not know, or damaged compressed bytes.
var errDataFormat = errors.New("stored event data")

// pack returns what the data column keeps for the encoding raw.
func pack(raw []byte) []byte {
	if len(raw) <= compressAbove {
		return raw
	}
	// Compressed into scratch, then copied out at its size: a record
	// waiting for its commit keeps the row, not S2's worst case.
	bp := packScratch.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxScratch {
			packScratch.Put(bp)
		}
	}()
	if need := s2.MaxEncodedLen(len(raw)); cap(*bp) < need {
		*bp = make([]byte, need)
	}
	n := len(s2.Encode((*bp)[:cap(*bp)], raw))
	if 2+n >= len(raw) {
		return raw
	}
	out := make([]byte, 2+n)
	out[0], out[1] = 0, formatS2
	copy(out[2:], (*bp)[:n])
	return out
}

// packScratch holds pack's compression buffers; one grown past
// maxScratch by a large event is not kept.
var packScratch = sync.Pool{New: func() any { return new([]byte) }}

const maxScratch = 64 << 10

// unpack returns the protobuf encoding kept in data.
func unpack(data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != 0 {
		return data, nil
	}
	if len(data) < 2 || data[1] != formatS2 {
		return nil, fmt.Errorf("%w: unknown format (a newer oomwatch's?)", errDataFormat)
	}
	n, err := s2.DecodedLen(data[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDataFormat, err)
	}
	if n > maxUnpacked {
		return nil, fmt.Errorf("%w: %d bytes decompressed, more than %d", errDataFormat, n, maxUnpacked)
	}
	raw, err := s2.Decode(make([]byte, n), data[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDataFormat, err)
	}
	return raw, nil
}
