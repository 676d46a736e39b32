// Package spool is the agent's bounded on-disk queue of events the
// aggregator has not acknowledged yet. An event is durable once Put returns:
// the agent may be killed right after and the event is sent after the
// restart. The sender takes pending events with Next, removes each with Ack
// once the aggregator has stored it, and calls Rewind after a reconnect to
// send again what was not acknowledged. Delivery is at least once: after a
// crash a few acknowledged events may be sent again, and the aggregator
// deduplicates them by key.
//
// # On disk
//
// The directory holds segment files, seg-<16 hex digits>.log, written in
// order of their number and only appended to. A segment is a run of framed
// records, [magic][length][CRC32C][body] (see record.go): a state record
// first (the drop report and the next order number when the segment was
// created), then puts (one event with its order number), acks (keys removed)
// and drops (keys removed to stay in bounds, with what they add to the drop
// report). Open replays every segment in order. Put batches its records into
// one write and one fsync (plus one of the directory when it started a new
// segment); Ack writes its record at once but leaves the fsync to the next
// Put or Sync, so a kill loses no ack and a power loss may resend a few
// events.
//
// A segment is deleted once every event put in it is acknowledged or dropped
// and it is the oldest one (acks of its events may live in newer segments, so
// deleting a newer one first could bring events back). When an old pending
// event keeps too many dead segments alive, its still pending events are
// copied, with their order number, to the newest segment and the old segment
// is deleted.
//
// Open keeps every record whose checksum and contents are valid. A segment
// with a torn tail, garbled bytes or garbage is reported in the Recovery;
// its pending events are copied to a new segment and the file is moved to
// the corrupt/ subdirectory (the newest Options.KeepCorrupt files are kept
// there for inspection).
//
// # Drops
//
// When a Put would exceed Options.MaxEvents or Options.MaxBytes, the oldest
// pending events are dropped (never the new ones, unless a single batch is
// larger than the spool, in which case its oldest go too) and counted in a
// DropReport, which is persisted in the same write as the new events.
// TakeDropped hands the report to a function that turns it into a Loss
// event, puts that event and resets the report in one record: either both
// happen or neither, so a crash can neither lose the count nor report it
// twice, and the Loss event is then delivered like any other event.
//
// # Storage failures
//
// A write, create or fsync that fails (disk full, quota, I/O error, a
// read-only file system) is returned wrapping ErrStorage, with nothing
// applied: the caller keeps the events elsewhere and tries again later; the
// next write goes to a fresh segment, so spooling resumes by itself once
// the disk takes writes again. Open tolerates such a failure too (see
// Recovery.WriteErr). An Ack whose record cannot be written removes the
// event all the same and returns ErrNotDurable: the event may be sent again
// after a restart, which the aggregator deduplicates.
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/durable"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Defaults of Options.
const (
	DefaultMaxEvents    = 10000
	DefaultMaxBytes     = 64 << 20
	DefaultSegmentBytes = 4 << 20
	DefaultKeepCorrupt  = 4
)

// CauseLossType is the type of loss events, which overflow drops last.
const CauseLossType = "loss"

// CorruptDir is the subdirectory of the spool that corrupt segments are
// moved to.
const CorruptDir = "corrupt"

// Errors.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("spool closed")
	// ErrInvalidEvent is returned by Put for a nil event or one without a
	// payload (it has no key).
	ErrInvalidEvent = errors.New("invalid event")
	// ErrTooLarge is returned by Put for an event larger than MaxBytes.
	ErrTooLarge = errors.New("event larger than the spool")
	// ErrKeyPending is returned by TakeDropped when the Loss event's key is
	// already pending.
	ErrKeyPending = errors.New("event key already pending")
	// ErrCorrupt is wrapped by Recovery.Err when Open found corrupt data.
	ErrCorrupt = errors.New("corrupt spool data")
	// ErrOptions is wrapped by Open for invalid options.
	ErrOptions = errors.New("invalid spool options")
	// ErrStorage is wrapped by every error of writing, creating or syncing
	// a spool file (ENOSPC, EDQUOT, EIO, EROFS, ...): the operation had no
	// effect and may succeed later.
	ErrStorage = errors.New("spool storage failed")
	// ErrNotDurable is wrapped by Ack when the event was removed but the
	// removal could not be written: after a restart the event may be
	// pending again (and is sent again, which is harmless).
	ErrNotDurable = errors.New("removal not durable")
)

// Options bound a spool. Zero values mean the defaults.
type Options struct {
	// MaxEvents bounds the number of pending events.
	MaxEvents int
	// MaxBytes bounds the pending events' size on disk (their records).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	SegmentBytes int64
	// KeepCorrupt is how many corrupt files are kept in CorruptDir; a
	// negative value deletes them at once.
	KeepCorrupt int

	// noSync skips every fsync, for fuzzing the parser faster.
	noSync bool
	// fault, when set, is asked before each write, file creation and
	// fsync; an error it returns is taken as that operation's failure
	// (tests inject a full or broken disk with it).
	fault func(op string) error
}

// Operations that Options.fault is asked about.
const (
	opWrite  = "write"
	opCreate = "create"
	opSync   = "sync"
	opMkdir  = "mkdir"
)

func (o *Options) injected(op string) error {
	if o.fault == nil {
		return nil
	}
	return o.fault(op)
}

func (o *Options) withDefaults() error {
	if o.MaxEvents < 0 || o.MaxBytes < 0 || o.SegmentBytes < 0 {
		return fmt.Errorf("%w: negative bound", ErrOptions)
	}
	if o.MaxEvents == 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.KeepCorrupt == 0 {
		o.KeepCorrupt = DefaultKeepCorrupt
	}
	return nil
}

// Key identifies an event: the aggregator keeps one event per key.
type Key struct {
	BootID string
	// Type is oom, loss or exit: the event's payload.
	Type string
	Seq  int64
}

// String returns "<boot_id>/<type>/<seq>".
func (k Key) String() string { return eventid.ID{BootID: k.BootID, Type: k.Type, Seq: k.Seq}.Key() }

// KeyOf returns an event's key.
func KeyOf(ev *pb.Event) Key {
	return Key{BootID: ev.GetBootId(), Type: eventid.TypeOf(ev), Seq: ev.GetSeq()}
}

// Stats are a spool's figures, for metrics.
type Stats struct {
	// Pending and Bytes are the events not acknowledged yet and their size.
	Pending int
	Bytes   int64
	// DiskBytes and Segments are the segment files' total size and number.
	DiskBytes int64
	Segments  int
	// Counters since Open.
	Put, Duplicates, Acked, Dropped int64
	// Unreadable counts pending events that could not be read back from
	// disk; they are removed and logged.
	Unreadable int64
	// TidyErrors counts failures to delete or compact old segments.
	TidyErrors int64
	// WriteErrors counts writes, creations and fsyncs that failed (see
	// ErrStorage); AckWriteErrors those of them that were acks' records.
	WriteErrors, AckWriteErrors int64
}

// Spool is an on-disk queue of events. Its methods are safe for concurrent
// use: typically Put from the reader and Next, Ack and Rewind from the
// sender.
type Spool struct {
	dir    string
	opts   Options
	log    *logrus.Entry
	notify chan struct{}

	mu     sync.Mutex
	closed bool
	// segs is in file order; the last one is active (appended to).
	segs     []*segment
	needRoll bool
	dirDirty bool
	nextSeg  uint64
	nextLSN  uint64

	byKey map[Key]*entry
	// q holds entries in LSN order; entries before head are all gone, the
	// others may be (lazily removed).
	q    []*entry
	head int
	// cur is the index in q of the next entry to hand out.
	cur       int
	gone      int
	liveBytes int64

	report DropReport
	stats  Stats
	buf    []byte
	// tidyLogged is when a tidying failure was last logged.
	tidyLogged time.Time
}

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

type entry struct {
	key Key
	lsn uint64
	seg *segment
	// off and n locate the event's protobuf bytes in seg; size is the whole
	// record's.
	off  int64
	n    int
	size int64
	// time is the event's time in Unix nanoseconds, 0 when unset.
	time int64
	gone bool
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

// Notify returns a channel that receives a value after events are added.
// The channel holds one value: a reader that was busy still sees it.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Len returns the number of pending events.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// Bytes returns the pending events' size on disk.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveBytes
}

// Stats returns the spool's figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending = len(s.byKey)
	st.Bytes = s.liveBytes
	st.Segments = len(s.segs)
	for _, sg := range s.segs {
		st.DiskBytes += sg.size
	}
	return st
}

// Dropped returns the drops not reported yet with TakeDropped.
func (s *Spool) Dropped() DropReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report.clone()
}

// Put adds events durably: when it returns nil, they survive a crash. An
// event whose key is already pending is ignored. When the spool would exceed
// its bounds, the oldest pending events are dropped and counted in the drop
// report. Put fails without writing anything for an invalid or too large
// event.
func (s *Spool) Put(ctx context.Context, events ...*pb.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool put: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.putLocked(events, 0); err != nil {
		return fmt.Errorf("spool put: %w", err)
	}
	s.tidyLocked()
	return nil
}

// TakeDropped reports the drops: when any event was dropped since the last
// call, it calls loss with the drop report and, in one durable record, puts
// the event loss returns and resets the report. It returns the report taken,
// or an empty one (without calling loss) when nothing was dropped. On error
// the report is kept. loss runs with the spool locked and must not call it;
// DropReport.Loss builds a suitable event.
func (s *Spool) TakeDropped(ctx context.Context, loss func(DropReport) *pb.Event) (DropReport, error) {
	if err := ctx.Err(); err != nil {
		return DropReport{}, fmt.Errorf("spool take dropped: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return DropReport{}, ErrClosed
	}
	if s.report.Count == 0 {
		return DropReport{}, nil
	}
	r := s.report.clone()
	ev := loss(r)
	if ev == nil || eventid.TypeOf(ev) == "" {
		return DropReport{}, fmt.Errorf("spool take dropped: %w: loss event without payload", ErrInvalidEvent)
	}
	if s.byKey[KeyOf(ev)] != nil {
		return DropReport{}, fmt.Errorf("spool take dropped: %w: %s", ErrKeyPending, KeyOf(ev))
	}
	if _, err := s.putLocked([]*pb.Event{ev}, putTake); err != nil {
		return DropReport{}, fmt.Errorf("spool take dropped: %w", err)
	}
	s.tidyLocked()
	return r, nil
}

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

// Next returns up to n pending events not handed out since Open or the last
// Rewind, oldest first, and marks them handed out. An event that cannot be
// read back from disk is logged, counted in Stats.Unreadable and removed.
func (s *Spool) Next(n int) []*pb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || n <= 0 {
		return nil
	}
	var out []*pb.Event
	var bad []*entry
	for s.cur < len(s.q) && len(out) < n {
		e := s.q[s.cur]
		s.cur++
		if e.gone {
			continue
		}
		ev, err := s.readLocked(e)
		if err != nil {
			s.log.WithError(err).WithField("key", e.key.String()).Error("cannot read a spooled event back; dropping it")
			bad = append(bad, e)
			continue
		}
		out = append(out, ev)
	}
	if len(bad) > 0 {
		keys := make([]Key, len(bad))
		for i, e := range bad {
			keys[i] = e.key
		}
		if err := s.ackLocked(keys); err != nil {
			s.log.WithError(err).Error("cannot remove unreadable events from the spool")
		}
		s.stats.Unreadable += int64(len(bad))
	}
	return out
}

// readLocked reads e's event from its segment.
func (s *Spool) readLocked(e *entry) (*pb.Event, error) {
	b := make([]byte, e.n)
	if _, err := e.seg.f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", e.seg.name, e.off, err)
	}
	ev := &pb.Event{}
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("decode event in %s at %d: %w", e.seg.name, e.off, err)
	}
	return ev, nil
}

// readBytesLocked reads e's event bytes.
func (s *Spool) readBytesLocked(e *entry) ([]byte, error) {
	b := make([]byte, e.n)
	if _, err := e.seg.f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", e.seg.name, e.off, err)
	}
	return b, nil
}

// Rewind makes Next start again from the oldest pending event, for a new
// connection: events handed out but not acknowledged are sent again.
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = s.head
}

// Holds tells whether an event with this key is pending: put and not yet
// acknowledged or dropped. A producer that updates an event under the same
// key waits until it is not, since Put drops a pending key's duplicate.
func (s *Spool) Holds(bootID, typ string, seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[Key{BootID: bootID, Type: typ, Seq: seq}] != nil
}

// Ack removes the event with this key: the aggregator has stored it. The
// removal is written at once and made durable by the next Put or Sync; an
// unknown key (already acknowledged, or dropped) is not an error.
func (s *Spool) Ack(bootID, typ string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	k := Key{BootID: bootID, Type: typ, Seq: seq}
	e := s.byKey[k]
	if e == nil {
		return nil
	}
	err := s.ackLocked([]Key{k})
	if err != nil {
		// The aggregator has the event: forget it all the same. Without
		// its ack record it may come back after a restart and be sent
		// again, unless its segment is deleted first.
		s.stats.AckWriteErrors++
		s.removeLocked(e)
		err = fmt.Errorf("spool ack %s: %w: %w", k, ErrNotDurable, err)
	}
	s.stats.Acked++
	s.tidyLocked()
	return err
}

func (s *Spool) ackLocked(keys []Key) error {
	data := appendAck(s.buf[:0], keys...)
	s.buf = data[:0]
	if _, _, err := s.writeLocked(data); err != nil {
		return err
	}
	for _, k := range keys {
		if e := s.byKey[k]; e != nil {
			s.removeLocked(e)
		}
	}
	return nil
}

// Sync makes the acks written so far durable.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.syncLocked()
}

// Close syncs and closes the spool's files. Further calls return ErrClosed
// (Next returns nothing).
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	err := s.syncLocked()
	for _, sg := range s.segs {
		if cerr := sg.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", sg.name, cerr)
		}
	}
	s.closed = true
	return err
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
