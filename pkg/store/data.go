package store

import (
	"errors"
	"fmt"

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
	buf := make([]byte, 2+s2.MaxEncodedLen(len(raw)))
	// s2.Encode writes from the start of the slice it is given.
	n := len(s2.Encode(buf[2:], raw))
	if 2+n >= len(raw) {
		return raw
	}
	buf[0], buf[1] = 0, formatS2
	return buf[:2+n]
}

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
