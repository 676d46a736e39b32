// Package checkpoint keeps the agent's resume point: the sequence number of
// the last kernel log record fully handled, with the boot it belongs to, in
// one small file replaced atomically. After a restart in the same boot the
// agent reads the kernel log from the record after it; after a reboot (a
// different boot ID) kernel sequence numbers start again and the checkpoint
// no longer applies.
//
// The file is strict JSON with a CRC32C over the state, so a torn or garbled
// file is detected and reported (ErrCorrupt) instead of being misread as a
// resume point; the agent then replays what is still in the kernel log and
// the aggregator deduplicates.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/oomwatch/oomwatch/pkg/durable"
)

// FileName is the checkpoint's file name inside the state directory.
const FileName = "checkpoint.json"

// version is the file format's version.
const version = 1

// maxFileSize bounds what Load reads: a checkpoint is a few hundred bytes,
// anything much larger is not one.
const maxFileSize = 64 << 10

// ErrCorrupt is wrapped by Load and Parse when the checkpoint file exists
// but cannot be trusted: truncated, garbled, checksum mismatch, unknown
// version or out-of-range values.
var ErrCorrupt = errors.New("corrupt checkpoint")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// State is the agent's resume point.
type State struct {
	// BootID is the kernel boot ID (/proc/sys/kernel/random/boot_id) the
	// sequence number belongs to.
	BootID string
	// Seq is the sequence number of the last kernel record fully handled in
	// that boot, or -1 when nothing was handled.
	Seq int64
	// Updated is when the state was saved.
	Updated time.Time
}

// Fresh returns the state of an agent that has handled nothing yet.
func Fresh() State { return State{Seq: -1} }

// After returns the checkpoint to resume from in the boot bootID: s.Seq when
// s belongs to that boot, else -1 (a reboot: read the kernel log from its
// oldest record).
func (s State) After(bootID string) int64 {
	if s.BootID == "" || s.BootID != bootID {
		return -1
	}
	return s.Seq
}

// fileJSON is the file's outer object. CRC32C is computed over the exact
// bytes of State as they appear in the file.
type fileJSON struct {
	Version int             `json:"version"`
	State   json.RawMessage `json:"state"`
	CRC32C  *uint32         `json:"crc32c"`
}

type stateJSON struct {
	BootID  string    `json:"boot_id"`
	Seq     *int64    `json:"seq"`
	Updated time.Time `json:"updated"`
}

// Marshal returns the file contents for s.
func Marshal(s State) ([]byte, error) {
	seq := s.Seq
	st, err := json.Marshal(stateJSON{BootID: s.BootID, Seq: &seq, Updated: s.Updated.UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	sum := crc32.Checksum(st, castagnoli)
	out, err := json.Marshal(fileJSON{Version: version, State: st, CRC32C: &sum})
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return append(out, '\n'), nil
}

// Parse decodes a checkpoint file's contents. Anything but exactly one
// well-formed object of the current version with a matching checksum and
// in-range values is an error wrapping ErrCorrupt.
func Parse(data []byte) (State, error) {
	var f fileJSON
	if err := strictDecode(data, &f); err != nil {
		return Fresh(), fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if f.Version != version {
		return Fresh(), fmt.Errorf("%w: version %d, want %d", ErrCorrupt, f.Version, version)
	}
	if f.State == nil || f.CRC32C == nil {
		return Fresh(), fmt.Errorf("%w: missing state or checksum", ErrCorrupt)
	}
	if sum := crc32.Checksum(f.State, castagnoli); sum != *f.CRC32C {
		return Fresh(), fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, sum, *f.CRC32C)
	}
	var st stateJSON
	if err := strictDecode(f.State, &st); err != nil {
		return Fresh(), fmt.Errorf("%w: state: %w", ErrCorrupt, err)
	}
	if st.Seq == nil || *st.Seq < -1 {
		return Fresh(), fmt.Errorf("%w: missing or negative sequence number", ErrCorrupt)
	}
	return State{BootID: st.BootID, Seq: *st.Seq, Updated: st.Updated}, nil
}

// strictDecode decodes exactly one JSON value with no unknown fields and
// nothing but white space after it.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the object")
	}
	return nil
}

// Load reads the checkpoint in dir. A missing file is a fresh start:
// Fresh() and no error. A corrupt file returns Fresh() and an error wrapping
// ErrCorrupt, which the agent reports before starting from the oldest kernel
// record. Other errors (permissions, I/O) also come with Fresh().
func Load(dir string) (State, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Fresh(), nil
	}
	if err != nil {
		return Fresh(), fmt.Errorf("load checkpoint: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Fresh(), fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Fresh(), fmt.Errorf("load checkpoint %s: %w: larger than %d bytes", path, ErrCorrupt, maxFileSize)
	}
	s, err := Parse(data)
	if err != nil {
		return Fresh(), fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	return s, nil
}

// Save replaces the checkpoint in dir with s atomically and durably: it
// writes a temporary file, syncs it, renames it over the checkpoint and syncs
// the directory, so a crash leaves either the old or the new checkpoint. A
// zero s.Updated is saved as the current time.
func Save(dir string, s State) (err error) {
	if s.Updated.IsZero() {
		s.Updated = time.Now()
	}
	data, err := Marshal(s)
	if err != nil {
		return err
	}
	// A fixed temporary name: a crash between create and rename leaves one
	// file that the next Save truncates, not one more per crash.
	tmp, err := os.OpenFile(filepath.Join(dir, FileName+".tmp"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("save checkpoint: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save checkpoint: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save checkpoint: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// Recorder saves the checkpoint of one boot in one directory. Its Save
// method matches what the agent's pipeline expects of a checkpointer.
type Recorder struct {
	// Dir is the state directory.
	Dir string
	// BootID is the current boot.
	BootID string
}

// Save records seq as the last kernel record handled in r's boot.
func (r Recorder) Save(seq int64) error {
	return Save(r.Dir, State{BootID: r.BootID, Seq: seq, Updated: time.Now()})
}
