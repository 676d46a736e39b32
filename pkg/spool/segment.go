package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/oomwatch/oomwatch/pkg/durable"
)

type segment struct {
	id   uint64
	name string
	f    *os.File
	size int64
	// live and liveBytes count the pending events whose record is here.
	live      int
	liveBytes int64
	// empty is the size of the segment with only its state record: it is
	// not rolled before it holds more.
	empty   int64
	dirty   bool
	corrupt bool
}

func segName(id uint64) string { return fmt.Sprintf("seg-%016x.log", id) }

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	hex, ok = strings.CutSuffix(hex, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	// Larger numbers are not ours (and could make the next one wrap).
	return id, err == nil && id < 1<<62
}

// writeLocked appends data to the active segment, starting a new one first
// when needed, and returns the segment and data's offset in it.
func (s *Spool) writeLocked(data []byte) (*segment, int64, error) {
	a := s.active()
	if s.needRoll || a == nil || a.size+int64(len(data)) > s.opts.SegmentBytes && a.size > a.empty {
		if err := s.rollLocked(); err != nil {
			s.stats.WriteErrors++
			return nil, 0, fmt.Errorf("%w: %w", ErrStorage, err)
		}
		a = s.active()
	}
	base := a.size
	err := s.opts.injected(opWrite)
	if err == nil {
		_, err = a.f.WriteAt(data, base)
	}
	if err != nil {
		// Leave no partial record behind if possible, and write the next
		// records to a fresh segment either way.
		_ = a.f.Truncate(base)
		s.needRoll = true
		s.stats.WriteErrors++
		return nil, 0, fmt.Errorf("%w: write %s: %w", ErrStorage, a.name, err)
	}
	a.size += int64(len(data))
	a.dirty = true
	return a, base, nil
}

func (s *Spool) active() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// rollLocked starts a new segment with a state record.
func (s *Spool) rollLocked() error {
	if a := s.active(); a != nil && a.dirty {
		if err := s.fsync(a.f); err != nil {
			return fmt.Errorf("sync %s: %w", a.name, err)
		}
		a.dirty = false
	}
	id := s.nextSeg
	name := segName(id)
	path := filepath.Join(s.dir, name)
	if err := s.opts.injected(opCreate); err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// Open could not create the directory (a read-only disk then).
		if err = os.MkdirAll(s.dir, 0o700); err == nil {
			s.dirDirty = true
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	s.nextSeg++
	rec, err := appendJSONRecord(nil, recState, stateBody{NextLSN: s.nextLSN, Dropped: s.report})
	if err == nil {
		if err = s.opts.injected(opWrite); err == nil {
			_, err = f.WriteAt(rec, 0)
		}
		if err != nil {
			err = fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	s.segs = append(s.segs, &segment{id: id, name: name, f: f, size: int64(len(rec)), empty: int64(len(rec)), dirty: true})
	s.dirDirty = true
	s.needRoll = false
	return nil
}

// syncLocked makes everything written durable.
func (s *Spool) syncLocked() error {
	if a := s.active(); a != nil && a.dirty {
		if err := s.fsync(a.f); err != nil {
			// What reached the disk is unknown: write on in a new segment.
			s.needRoll = true
			s.stats.WriteErrors++
			return fmt.Errorf("%w: sync %s: %w", ErrStorage, a.name, err)
		}
		a.dirty = false
	}
	if s.dirDirty && !s.opts.noSync {
		if err := durable.SyncDir(s.dir); err != nil {
			s.stats.WriteErrors++
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s.dirDirty = false
	return nil
}

func (s *Spool) fsync(f *os.File) error {
	if err := s.opts.injected(opSync); err != nil {
		return err
	}
	if s.opts.noSync {
		return nil
	}
	return f.Sync()
}
