package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Recovery is what Open found on disk.
type Recovery struct {
	// Segments is the number of segment files read.
	Segments int
	// Events is the number of pending events recovered.
	Events int
	// Dropped is the number of recovered events dropped at once because
	// they exceeded the bounds (smaller bounds than before); they are in the
	// drop report too.
	Dropped int64
	// Corrupt lists the segment files with unreadable parts.
	Corrupt []CorruptFile
	// WriteErr, when set, wraps ErrStorage: Open could not write (a full
	// or read-only disk). The spool is open with what it read; its next
	// write tries again, and Put fails with ErrStorage until one succeeds.
	// Corrupt files are then kept in place until a later Open.
	WriteErr error
}

// CorruptFile describes one segment file with unreadable parts. Its
// readable records were kept; the file was moved to CorruptDir (MovedTo) or
// deleted (MovedTo empty).
type CorruptFile struct {
	Name string
	Size int64
	// BadBytes and BadRanges are the bytes that are no valid record, in
	// how many runs (a torn tail is one run at the end).
	BadBytes  int64
	BadRanges int
	// BadRecords counts records whose checksum held but whose contents did
	// not decode.
	BadRecords int
	MovedTo    string
}

// Err returns an error wrapping ErrCorrupt that describes the corrupt files,
// or nil when there were none.
func (r Recovery) Err() error {
	if len(r.Corrupt) == 0 {
		return nil
	}
	parts := make([]string, len(r.Corrupt))
	for i, c := range r.Corrupt {
		parts[i] = fmt.Sprintf("%s: %d bad bytes in %d runs, %d bad records", c.Name, c.BadBytes, c.BadRanges, c.BadRecords)
	}
	return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(parts, "; "))
}

// Open opens the spool in dir, creating the directory if needed, and
// recovers the pending events and the drop report from it. The directory
// belongs to the spool: use a subdirectory of the agent's state directory.
// Files there that are not segments are left alone.
//
// Corrupt data does not make Open fail: it keeps every valid record and
// describes the rest in the Recovery, whose Err the agent should log and
// report. Nor does a failure to write (Recovery.WriteErr). Open fails only
// when the directory cannot be created or read.
func Open(dir string, opts Options, log *logrus.Entry) (*Spool, Recovery, error) {
	var rec Recovery
	if err := opts.withDefaults(); err != nil {
		return nil, rec, err
	}
	var mkdirErr error
	err := opts.injected(opMkdir)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		// A disk that takes no writes yet: open empty, and create the
		// directory with the first segment.
		if !isStorageErrno(err) {
			return nil, rec, fmt.Errorf("open spool: %w", err)
		}
		mkdirErr = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	s := &Spool{
		dir: dir, opts: opts, log: log,
		notify: make(chan struct{}, 1),
		byKey:  map[Key]*entry{},
	}
	ok := false
	defer func() {
		if !ok {
			for _, sg := range s.segs {
				_ = sg.f.Close()
			}
		}
	}()

	ents, err := os.ReadDir(dir)
	if err != nil && !(mkdirErr != nil && errors.Is(err, fs.ErrNotExist)) {
		return nil, rec, fmt.Errorf("open spool: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if id, isSeg := parseSegName(e.Name()); isSeg && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	r := newReplay()
	anyCorrupt := false
	lastClean := false
	for i, id := range ids {
		name := segName(id)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			return nil, rec, fmt.Errorf("open spool: %w", err)
		}
		sg := &segment{id: id, name: name, f: f}
		s.segs = append(s.segs, sg)
		data, err := readAll(f)
		if err != nil {
			return nil, rec, fmt.Errorf("open spool: read %s: %w", name, err)
		}
		sg.size = int64(len(data))
		cf := r.segment(sg, data)
		if cf.BadRanges > 0 || cf.BadRecords > 0 {
			sg.corrupt = true
			anyCorrupt = true
			rec.Corrupt = append(rec.Corrupt, cf)
		}
		lastClean = i == len(ids)-1 && !sg.corrupt && sg.size > 0
		s.nextSeg = id + 1
	}
	rec.Segments = len(ids)
	if mkdirErr != nil {
		s.stats.WriteErrors++
		s.needRoll = true
		rec.WriteErr = mkdirErr
	}
	s.nextLSN = r.nextLSN
	s.report = r.report
	for _, e := range r.pending {
		s.q = append(s.q, e)
	}
	slices.SortFunc(s.q, func(a, b *entry) int {
		switch {
		case a.lsn < b.lsn:
			return -1
		case a.lsn > b.lsn:
			return 1
		}
		return 0
	})
	for _, e := range s.q {
		s.byKey[e.key] = e
		s.liveBytes += e.size
		e.seg.live++
		e.seg.liveBytes += e.size
	}
	rec.Events = len(s.q)

	// Append to the last segment when all ends cleanly and it has room,
	// else start a new one.
	rolled := true
	if mkdirErr == nil && (anyCorrupt || !lastClean || s.active().size >= opts.SegmentBytes) {
		if err := s.rollLocked(); err != nil {
			// Open read-only for now: the first write starts a segment.
			s.stats.WriteErrors++
			s.needRoll = true
			rolled = false
			rec.WriteErr = fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	if anyCorrupt && rolled {
		// Copy every pending event out of the old segments, then remove
		// them all: the corrupt ones may have lost acks of events in older
		// segments, so those could not be deleted alone later.
		old := s.segs[:len(s.segs)-1]
		for _, sg := range old {
			if err := s.moveLocked(sg); err != nil {
				if !errors.Is(err, ErrStorage) {
					return nil, rec, fmt.Errorf("open spool: rewrite: %w", err)
				}
				// Keep every file as it is until a later Open.
				rec.WriteErr = err
				old = nil
				break
			}
		}
		moved := map[string]string{}
		for _, sg := range old {
			to, err := s.dropSegmentLocked(sg)
			if err != nil {
				return nil, rec, fmt.Errorf("open spool: %w", err)
			}
			moved[sg.name] = to
		}
		s.segs = s.segs[len(old):]
		for i := range rec.Corrupt {
			rec.Corrupt[i].MovedTo = moved[rec.Corrupt[i].Name]
		}
	}

	// Bounds may be smaller than when the events were put.
	// A failure to write here leaves the spool over its bounds until the
	// next Put, which drops what it must in the same write.
	before := s.report.Count
	if err := s.enforceLocked(); err != nil {
		if !errors.Is(err, ErrStorage) {
			return nil, rec, fmt.Errorf("open spool: %w", err)
		}
		rec.WriteErr = err
	}
	rec.Dropped = s.report.Count - before
	s.tidyLocked()
	if err := s.syncLocked(); err != nil {
		if !errors.Is(err, ErrStorage) {
			return nil, rec, fmt.Errorf("open spool: %w", err)
		}
		rec.WriteErr = err
	}
	rec.Events = len(s.byKey)
	ok = true
	fields := logrus.Fields{"dir": dir, "pending": len(s.byKey), "segments": len(s.segs)}
	if s.report.Count > 0 {
		fields["dropped_unreported"] = s.report.Count
	}
	if rec.WriteErr != nil {
		log.WithFields(fields).WithError(rec.WriteErr).Warn("spool opened, but it cannot be written to yet")
	} else {
		log.WithFields(fields).Info("spool opened")
	}
	return s, rec, nil
}

// enforceLocked drops the oldest pending events while the spool exceeds its
// bounds.
func (s *Spool) enforceLocked() error {
	var dropped []*entry
	count, total := len(s.byKey), s.liveBytes
	for i := s.head; i < len(s.q) && (count > s.opts.MaxEvents || total > s.opts.MaxBytes); i++ {
		if e := s.q[i]; !e.gone {
			dropped = append(dropped, e)
			count--
			total -= e.size
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	var body dropBody
	for _, e := range dropped {
		body.Delta.add(e.key, e.time)
		body.Keys = append(body.Keys, jsonKey{B: e.key.BootID, T: e.key.Type, S: e.key.Seq})
	}
	data, err := appendJSONRecord(nil, recDrop, body)
	if err != nil {
		return err
	}
	if _, _, err := s.writeLocked(data); err != nil {
		return err
	}
	if err := s.syncLocked(); err != nil {
		return err
	}
	for _, e := range dropped {
		s.removeLocked(e)
	}
	s.report.merge(body.Delta)
	s.stats.Dropped += body.Delta.Count
	s.log.WithField("dropped", body.Delta.Count).Warn("spool over its bounds at open: dropped the oldest pending events")
	return nil
}

// isStorageErrno tells whether err comes from a disk that takes no writes
// now but may later: full, over quota, read-only, failing.
func isStorageErrno(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func readAll(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && n != len(data) {
		return nil, err
	}
	return data[:n], nil
}

// replay rebuilds the spool's state from its records.
type replay struct {
	pending map[Key]*entry
	report  DropReport
	nextLSN uint64
}

func newReplay() *replay { return &replay{pending: map[Key]*entry{}} }

// segment applies the records of one segment, whose contents are data, and
// describes what in it was unreadable.
func (r *replay) segment(sg *segment, data []byte) CorruptFile {
	cf := CorruptFile{Name: sg.name, Size: int64(len(data))}
	bad := scan(data, func(rr rawRecord) {
		if err := r.record(sg, rr); err != nil {
			cf.BadRecords++
		}
	})
	for _, sp := range bad {
		cf.BadBytes += sp.n
	}
	cf.BadRanges = len(bad)
	return cf
}

// record applies one record.
func (r *replay) record(sg *segment, rr rawRecord) error {
	switch rr.typ {
	case recState:
		var st stateBody
		if err := decodeJSON(rr.body, &st); err != nil {
			return err
		}
		r.report = st.Dropped
		r.nextLSN = max(r.nextLSN, st.NextLSN)
	case recPut:
		p, err := decodePut(rr.body)
		if err != nil {
			return err
		}
		ev := &pb.Event{}
		if err := proto.Unmarshal(p.event, ev); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
		k := KeyOf(ev)
		if k.Type == "" {
			return fmt.Errorf("%w: event without payload", errBadRecord)
		}
		if p.lsn == ^uint64(0) {
			return fmt.Errorf("%w: order number out of range", errBadRecord)
		}
		r.nextLSN = max(r.nextLSN, p.lsn+1)
		if p.flags&putTake != 0 {
			r.report = DropReport{}
		}
		if r.pending[k] != nil {
			return nil
		}
		var t int64
		if ev.GetTime() != nil {
			t = unixNano(ev.GetTime().AsTime())
		}
		r.pending[k] = &entry{
			key: k, lsn: p.lsn, seg: sg, off: rr.off + eventOffset,
			n: len(p.event), size: rr.size, time: t,
		}
	case recAck:
		keys, err := decodeAck(rr.body)
		if err != nil {
			return err
		}
		for _, k := range keys {
			delete(r.pending, k)
		}
	case recDrop:
		var d dropBody
		if err := decodeJSON(rr.body, &d); err != nil {
			return err
		}
		for _, k := range d.Keys {
			delete(r.pending, Key{BootID: k.B, Type: k.T, Seq: k.S})
		}
		r.report.merge(d.Delta)
	default:
		return fmt.Errorf("%w: unknown record type %q", errBadRecord, rr.typ)
	}
	return nil
}
