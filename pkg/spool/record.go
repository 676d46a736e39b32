package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// A segment file is a sequence of framed records:
//
//	magic  [4]byte  0xA7 'S' 'P' 'L'
//	length uint32   little endian: len(body), at least 1
//	crc    uint32   little endian: CRC32C of the 4 length bytes then body
//	body   [length]byte: a record type byte, then the record
//
// The magic lets the scanner find the next record after a garbled one; the
// checksum covers the length so a corrupted length is detected too.
const (
	frameHeader = 12
	// maxBody bounds a record body: the scanner rejects larger lengths.
	maxBody = 1 << 30
)

var (
	frameMagic = [4]byte{0xA7, 'S', 'P', 'L'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Record types.
const (
	// recState: JSON stateBody. Starts every segment: the drop report and
	// the next LSN at the segment's creation, so that segments before it can
	// be deleted.
	recState byte = 'S'
	// recPut: flags byte, LSN uint64 little endian, protobuf pb.Event.
	recPut byte = 'P'
	// recAck: uvarint count, then that many keys (see appendKey).
	recAck byte = 'A'
	// recDrop: JSON dropBody: pending events dropped to stay in bounds.
	recDrop byte = 'D'
)

// Flags of a put record.
const (
	// putTake: this event reports the drops so far; replay resets the drop
	// report before adding the event.
	putTake byte = 1 << 0
	// putMoved: a copy of a pending event moved out of an older segment
	// (same LSN); replay ignores it when the key is already pending.
	putMoved byte = 1 << 1
)

// Sizes of a put record: the type, flags and LSN bytes before the event, and
// the event's offset in the frame.
const (
	putHeader   = 1 + 1 + 8
	eventOffset = frameHeader + putHeader
)

// errBadRecord is wrapped when a record's checksum holds but its body does
// not decode.
var errBadRecord = errors.New("undecodable record")

// beginFrame appends a frame header and the record type to buf and returns
// the new buffer and the frame's start; finishFrame fills the header in once
// the body is appended.
func beginFrame(buf []byte, typ byte) ([]byte, int) {
	start := len(buf)
	buf = append(buf, frameMagic[:]...)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return buf, start
}

func finishFrame(buf []byte, start int) []byte {
	body := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start+4:], uint32(len(body)))
	crc := crc32.Update(0, castagnoli, buf[start+4:start+8])
	crc = crc32.Update(crc, castagnoli, body)
	binary.LittleEndian.PutUint32(buf[start+8:], crc)
	return buf
}

// appendJSONRecord appends a record whose body is v in JSON.
func appendJSONRecord(buf []byte, typ byte, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return buf, fmt.Errorf("encode record: %w", err)
	}
	buf, start := beginFrame(buf, typ)
	buf = append(buf, data...)
	return finishFrame(buf, start), nil
}

// frameAt returns the length of the valid frame at data[off:], or 0.
func frameAt(data []byte, off int) int {
	rest := data[off:]
	if len(rest) < frameHeader || !bytes.Equal(rest[:4], frameMagic[:]) {
		return 0
	}
	n := binary.LittleEndian.Uint32(rest[4:])
	if n < 1 || n > maxBody || uint64(n) > uint64(len(rest)-frameHeader) {
		return 0
	}
	crc := crc32.Update(0, castagnoli, rest[4:8])
	crc = crc32.Update(crc, castagnoli, rest[frameHeader:frameHeader+int(n)])
	if crc != binary.LittleEndian.Uint32(rest[8:]) {
		return 0
	}
	return frameHeader + int(n)
}

// rawRecord is one checksummed record found by scan.
type rawRecord struct {
	// off is the frame's offset in the data.
	off int64
	typ byte
	// body is the record after its type byte; bodyOff its offset.
	body    []byte
	bodyOff int64
	// size is the whole frame's size.
	size int64
}

// span is a run of bytes that holds no valid record.
type span struct {
	off, n int64
}

// scan walks the records of a segment's contents, calling fn for each one
// whose frame and checksum are valid, in order. It returns the runs of bytes
// between them that are not valid records (a torn tail, garbage, a record
// with a flipped bit), after which it resynchronises on the next valid frame.
// Valid records and bad spans together cover data exactly.
func scan(data []byte, fn func(rawRecord)) []span {
	var bad []span
	off := 0
	for off < len(data) {
		if n := frameAt(data, off); n > 0 {
			fn(rawRecord{
				off: int64(off), typ: data[off+frameHeader],
				body: data[off+frameHeader+1 : off+n], bodyOff: int64(off + frameHeader + 1),
				size: int64(n),
			})
			off += n
			continue
		}
		next := len(data)
		for p := off + 1; p < len(data); {
			i := bytes.Index(data[p:], frameMagic[:])
			if i < 0 {
				break
			}
			if frameAt(data, p+i) > 0 {
				next = p + i
				break
			}
			p += i + 1
		}
		bad = append(bad, span{off: int64(off), n: int64(next - off)})
		off = next
	}
	return bad
}

// appendKey encodes a key: uvarint-prefixed boot ID and type, varint seq.
func appendKey(buf []byte, k Key) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(k.BootID)))
	buf = append(buf, k.BootID...)
	buf = binary.AppendUvarint(buf, uint64(len(k.Type)))
	buf = append(buf, k.Type...)
	return binary.AppendVarint(buf, k.Seq)
}

func readString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, fmt.Errorf("%w: bad string", errBadRecord)
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// decodeAck decodes an ack record's body.
func decodeAck(b []byte) ([]Key, error) {
	n, w := binary.Uvarint(b)
	// Each key takes at least 3 bytes.
	if w <= 0 || n > uint64(len(b))/3 {
		return nil, fmt.Errorf("%w: bad ack count", errBadRecord)
	}
	b = b[w:]
	keys := make([]Key, 0, n)
	for range n {
		var k Key
		var err error
		if k.BootID, b, err = readString(b); err != nil {
			return nil, err
		}
		if k.Type, b, err = readString(b); err != nil {
			return nil, err
		}
		var w int
		if k.Seq, w = binary.Varint(b); w <= 0 {
			return nil, fmt.Errorf("%w: bad ack seq", errBadRecord)
		}
		b = b[w:]
		keys = append(keys, k)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes in ack", errBadRecord)
	}
	return keys, nil
}

// appendAck appends an ack record for keys.
func appendAck(buf []byte, keys ...Key) []byte {
	buf, start := beginFrame(buf, recAck)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		buf = appendKey(buf, k)
	}
	return finishFrame(buf, start)
}

// stateBody is a state record.
type stateBody struct {
	NextLSN uint64     `json:"next_lsn"`
	Dropped DropReport `json:"dropped"`
}

// dropBody is a drop record: the keys removed and what they add to the
// drop report.
type dropBody struct {
	Delta DropReport `json:"delta"`
	Keys  []jsonKey  `json:"keys"`
}

type jsonKey struct {
	B string `json:"b"`
	T string `json:"t"`
	S int64  `json:"s"`
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRecord, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data", errBadRecord)
	}
	return nil
}

// putRecord is a decoded put record's header.
type putRecord struct {
	flags byte
	lsn   uint64
	// event is the protobuf bytes, aliasing the scanned data.
	event []byte
}

func decodePut(b []byte) (putRecord, error) {
	// b starts after the type byte.
	if len(b) < putHeader-1 {
		return putRecord{}, fmt.Errorf("%w: short put", errBadRecord)
	}
	return putRecord{flags: b[0], lsn: binary.LittleEndian.Uint64(b[1:9]), event: b[9:]}, nil
}

// unixNano returns t in nanoseconds, or 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
