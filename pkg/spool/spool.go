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
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

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
