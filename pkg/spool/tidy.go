package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// tidyLocked deletes the oldest segments that hold no pending event and,
// when an old pending event keeps too many dead segments alive, moves it to
// the active segment first. Failures are logged and counted: the spool stays
// correct, only larger.
func (s *Spool) tidyLocked() {
	if err := s.removeDeadLocked(); err != nil {
		s.tidyFailedLocked(err, "cannot delete an old spool segment")
		return
	}
	// A few segments per call: the caller holds the lock, and the next
	// calls go on.
	for moves := 0; moves < maxMovesPerTidy && len(s.segs) > 1 && s.bloatedLocked(); moves++ {
		if err := s.moveLocked(s.segs[0]); err != nil {
			s.tidyFailedLocked(err, "cannot compact the spool")
			return
		}
		if err := s.removeDeadLocked(); err != nil {
			s.tidyFailedLocked(err, "cannot delete an old spool segment")
			return
		}
	}
}

// tidyFailedLocked counts a tidying failure and logs it, at most once a
// minute: on a full disk every ack would fail the same way.
func (s *Spool) tidyFailedLocked(err error, msg string) {
	s.stats.TidyErrors++
	if now := time.Now(); now.Sub(s.tidyLogged) >= time.Minute {
		s.log.WithError(err).WithField("tidy_errors", s.stats.TidyErrors).Warn(msg)
		s.tidyLogged = now
	}
}

// maxMovesPerTidy bounds the segments tidyLocked rewrites at once.
const maxMovesPerTidy = 4

// maxSegments is the number of segment files that makes the oldest pending
// events move, whatever their size.
const maxSegments = 64

// bloatedLocked says whether old segments hold too much that is dead.
func (s *Spool) bloatedLocked() bool {
	if len(s.segs) > maxSegments {
		return true
	}
	var disk int64
	for _, sg := range s.segs {
		disk += sg.size
	}
	return disk > 2*s.liveBytes+2*s.opts.SegmentBytes
}

// removeDeadLocked deletes the oldest segments while they hold no pending
// event and are not the active one.
func (s *Spool) removeDeadLocked() error {
	for len(s.segs) > 1 && s.segs[0].live == 0 {
		if _, err := s.dropSegmentLocked(s.segs[0]); err != nil {
			return err
		}
		s.segs = s.segs[1:]
	}
	return nil
}

// dropSegmentLocked closes sg and deletes it, or moves it to CorruptDir
// when it is corrupt and returns its new path.
func (s *Spool) dropSegmentLocked(sg *segment) (string, error) {
	_ = sg.f.Close()
	path := filepath.Join(s.dir, sg.name)
	s.dirDirty = true
	if sg.corrupt && s.opts.KeepCorrupt > 0 {
		return quarantine(s.dir, path, s.opts.KeepCorrupt)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove segment: %w", err)
	}
	return "", nil
}

// moveLocked copies the pending events of sg, with their order numbers, to
// the active segment and syncs, so that sg can be deleted.
func (s *Spool) moveLocked(sg *segment) error {
	var moved []*entry
	for i := s.head; i < len(s.q); i++ {
		if e := s.q[i]; !e.gone && e.seg == sg {
			moved = append(moved, e)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	data := s.buf[:0]
	starts := make([]int, len(moved))
	for i, e := range moved {
		b, err := s.readBytesLocked(e)
		if err != nil {
			return err
		}
		var start int
		data, start = beginFrame(data, recPut)
		data = append(data, putMoved, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.LittleEndian.PutUint64(data[start+frameHeader+2:], e.lsn)
		data = append(data, b...)
		data = finishFrame(data, start)
		starts[i] = start
	}
	s.buf = data[:0]
	seg, off, err := s.writeLocked(data)
	if err != nil {
		return err
	}
	if err := s.syncLocked(); err != nil {
		return err
	}
	for i, e := range moved {
		sg.live--
		sg.liveBytes -= e.size
		e.seg = seg
		e.off = off + int64(starts[i]) + eventOffset
		seg.live++
		seg.liveBytes += e.size
	}
	return nil
}

// quarantine moves the file at path to dir/CorruptDir, keeping the newest
// keep files there, and returns its new path.
func quarantine(dir, path string, keep int) (string, error) {
	cdir := filepath.Join(dir, CorruptDir)
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	dst := filepath.Join(cdir, fmt.Sprintf("%019d-%s", time.Now().UnixNano(), filepath.Base(path)))
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	ents, err := os.ReadDir(cdir)
	if err != nil {
		return dst, fmt.Errorf("quarantine: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > keep {
		if err := os.Remove(filepath.Join(cdir, names[0])); err != nil {
			return dst, fmt.Errorf("quarantine: %w", err)
		}
		names = names[1:]
	}
	return dst, nil
}
