package spool

import (
	"encoding/binary"
	"fmt"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

type putItem struct {
	key   Key
	lsn   uint64
	t     int64
	start int // frame start in s.buf
	size  int64
}

// putLocked writes events as one batch with one sync. It returns how many
// were added.
func (s *Spool) putLocked(events []*pb.Event, flags byte) (int, error) {
	items := make([]putItem, 0, len(events))
	seen := make(map[Key]bool, len(events))
	buf := s.buf[:0]
	defer func() { s.buf = buf[:0] }()
	for _, ev := range events {
		if ev == nil {
			return 0, fmt.Errorf("%w: nil event", ErrInvalidEvent)
		}
		k := KeyOf(ev)
		if k.Type == "" {
			return 0, fmt.Errorf("%w: event %s/%d has no payload", ErrInvalidEvent, k.BootID, k.Seq)
		}
		if s.byKey[k] != nil || seen[k] {
			s.stats.Duplicates++
			continue
		}
		seen[k] = true
		var start int
		buf, start = beginFrame(buf, recPut)
		buf = append(buf, flags, 0, 0, 0, 0, 0, 0, 0, 0)
		var err error
		if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf, ev); err != nil {
			return 0, fmt.Errorf("encode event %s: %w", k, err)
		}
		size := int64(len(buf) - start)
		if size > s.opts.MaxBytes {
			return 0, fmt.Errorf("%w: event %s takes %d bytes, the spool %d", ErrTooLarge, k, size, s.opts.MaxBytes)
		}
		var t int64
		if ev.GetTime() != nil {
			t = unixNano(ev.GetTime().AsTime())
		}
		items = append(items, putItem{key: k, t: t, start: start, size: size})
	}
	if len(items) == 0 {
		return 0, nil
	}
	// Order numbers are taken even if the write fails, so that a retry
	// never reuses one that may have reached the disk.
	for i := range items {
		it := &items[i]
		it.lsn = s.nextLSN
		s.nextLSN++
		binary.LittleEndian.PutUint64(buf[it.start+frameHeader+2:], it.lsn)
		finishFrame(buf[:it.start+int(it.size)], it.start)
	}

	// Plan the drops: the oldest pending first, then the oldest of the batch.
	count := len(s.byKey) + len(items)
	total := s.liveBytes
	for _, it := range items {
		total += it.size
	}
	over := func() bool { return count > s.opts.MaxEvents || total > s.opts.MaxBytes }
	var dropped []*entry
	// Loss reports go last: dropping one would lose the count it carries.
	for _, losses := range []bool{false, true} {
		for i := s.head; i < len(s.q) && over(); i++ {
			if e := s.q[i]; !e.gone && (e.key.Type == CauseLossType) == losses {
				dropped = append(dropped, e)
				count--
				total -= e.size
			}
		}
	}
	skip := 0
	for skip < len(items) && over() {
		count--
		total -= items[skip].size
		skip++
	}
	var delta DropReport
	dropKeys := make([]jsonKey, 0, len(dropped))
	for _, e := range dropped {
		delta.add(e.key, e.time)
		dropKeys = append(dropKeys, jsonKey{B: e.key.BootID, T: e.key.Type, S: e.key.Seq})
	}
	for _, it := range items[:skip] {
		delta.add(it.key, it.t)
	}
	kept := items[skip:]

	var data []byte
	if len(kept) > 0 {
		data = buf[kept[0].start:]
	}
	if delta.Count > 0 {
		// The drop record follows the puts: a put that takes the report
		// resets it before these drops are added.
		var err error
		if data, err = appendJSONRecord(data, recDrop, dropBody{Delta: delta, Keys: dropKeys}); err != nil {
			return 0, err
		}
	}
	seg, off, err := s.writeLocked(data)
	if err != nil {
		return 0, err
	}
	if err := s.syncLocked(); err != nil {
		return 0, err
	}

	// Durable: apply.
	if flags&putTake != 0 {
		s.report = DropReport{}
	}
	for _, it := range kept {
		rel := int64(it.start - kept[0].start)
		s.addLocked(&entry{
			key: it.key, lsn: it.lsn, seg: seg, off: off + rel + eventOffset,
			n: int(it.size - eventOffset), size: it.size, time: it.t,
		})
	}
	for _, e := range dropped {
		s.removeLocked(e)
	}
	s.report.merge(delta)
	s.stats.Dropped += delta.Count
	s.stats.Put += int64(len(kept))
	if delta.Count > 0 {
		s.log.WithFields(logrus.Fields{"dropped": delta.Count, "pending": len(s.byKey)}).
			Warn("spool full: dropped the oldest pending events")
	}
	if len(kept) > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return len(kept), nil
}

func (s *Spool) addLocked(e *entry) {
	s.byKey[e.key] = e
	s.q = append(s.q, e)
	s.liveBytes += e.size
	e.seg.live++
	e.seg.liveBytes += e.size
}

// removeLocked marks e gone.
func (s *Spool) removeLocked(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	delete(s.byKey, e.key)
	s.gone++
	s.liveBytes -= e.size
	e.seg.live--
	e.seg.liveBytes -= e.size
	for s.head < len(s.q) && s.q[s.head].gone {
		s.head++
		s.gone--
	}
	if s.cur < s.head {
		s.cur = s.head
	}
	if s.head > 1024 && s.head > len(s.q)/2 || s.gone > 1024 && s.gone > (len(s.q)-s.head)/2 {
		s.compactQueueLocked()
	}
}

// compactQueueLocked drops the gone entries from q.
func (s *Spool) compactQueueLocked() {
	q := make([]*entry, 0, len(s.byKey)+16)
	cur := 0
	for i, e := range s.q {
		if i < s.cur && !e.gone {
			cur++
		}
		if !e.gone {
			q = append(q, e)
		}
	}
	s.q, s.head, s.cur, s.gone = q, 0, cur, 0
}
