// Package devkmsg is the live source of kernel log records: it tails
// /dev/kmsg through github.com/euank/go-kmsg-parser and turns its messages
// into kernlog.Records with the kernel's exact sequence number and monotonic
// timestamp, reopening the device when the kernel log overflows and reporting
// what was lost as explicit gaps.
//
// A Reader does that work in the goroutine that consumes the records, on
// kmsgparser's own channel: no second goroutine, no channel of our own and
// no allocation per record (kmsgparser's own three aside). Source.Run
// offers the same as a channel of Items, at the cost of a hop and a copy
// per record.
//
// It works around three defects of kmsgparser v2.0.0:
//   - its reader compares err == syscall.EPIPE, but os.File wraps the error
//     in *fs.PathError, so when the reader falls behind and records are
//     overwritten it closes its channel instead of skipping: Run reopens,
//     drops records it already delivered and reports the hole as a Gap;
//   - its Message keeps the "\n KEY=value" dictionary lines the kernel
//     appends: only the text before the first '\n' is kept (the kernel
//     escapes newlines inside the text as \x0a);
//   - its Timestamp is a boot time rounded to whole seconds plus the record's
//     microseconds: the exact microseconds are recovered (see clock), and
//     Wall computed from BootTime.
package devkmsg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// DefaultReopenTimeout is how long Run keeps trying to reopen /dev/kmsg
// before it gives up, when Options.ReopenTimeout is zero.
const DefaultReopenTimeout = 30 * time.Second

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
	// drainTimeout bounds how long Run waits for a parser's goroutine to
	// finish after closing it.
	drainTimeout = 2 * time.Second
)

// ErrReopen is returned by Run when /dev/kmsg could not be (re)opened, or
// its reader kept stopping before delivering a record, for longer than
// Options.ReopenTimeout.
var ErrReopen = errors.New("kernel log reader could not be reopened")

// ErrParserStopped is the cause given when a parser closed its channel
// without logging an error.
var ErrParserStopped = errors.New("kmsgparser stopped")

// Options configures a Source. Nil functions and zero durations mean the
// real /dev/kmsg and defaults, but After has no neutral zero: 0 is a
// checkpoint at the first record of the boot, so set -1 to read everything.
type Options struct {
	// Device is the kernel log device to read; empty means DevKmsg. A
	// container that mounts the host's device elsewhere names it here.
	Device string
	// After is the sequence number of the last record the caller has already
	// handled in this boot (its checkpoint): Run skips records with Seq <=
	// After, and reports a Gap if the oldest record left is newer than
	// After+1. Use -1 for no checkpoint, and always for a new boot: sequence
	// numbers restart at 0 on every boot and Run cannot tell boots apart (if
	// After is beyond the newest record it assumes a reboot, logs a warning
	// and starts from the oldest record rather than waiting forever).
	After int64
	// ReopenTimeout bounds how long Run keeps trying to reopen the kernel
	// log when opening fails or the reader stops without delivering a
	// record; zero means DefaultReopenTimeout.
	ReopenTimeout time.Duration
	// BootTime is added to each record's Mono to give its Wall time. Zero
	// means BootTime() is measured again at every (re)open.
	BootTime time.Time
	// NewParser creates a parser reading the kernel log from its oldest
	// record; nil means kmsgparser.NewParser for DevKmsg (which it always
	// opens), and a parser of the same contract for another Device.
	NewParser func() (kmsgparser.Parser, error)
	// Oldest reads the sequence number and exact timestamp in microseconds
	// of the oldest record now in the kernel log, bypassing the parser, to
	// calibrate it; nil means reading /dev/kmsg directly. It returns
	// ErrNoRecord if the log is empty.
	Oldest func() (seq, usec int64, err error)
	// Newest returns the sequence number of the newest record now in the
	// kernel log, or -1 if it is empty; nil means reading /dev/kmsg
	// directly. Run calls it once, and only when After >= 0.
	Newest func() (int64, error)
}

// Gap reports records the kernel overwrote (or the parser dropped) before
// they could be delivered.
type Gap struct {
	// AfterSeq is the last sequence number delivered (or the checkpoint).
	AfterSeq int64
	// NextSeq is the sequence number of the next record delivered.
	NextSeq int64
	// Lost is the number of records between them: NextSeq - AfterSeq - 1.
	Lost int64
	// Detected is when Run noticed the gap.
	Detected time.Time
}

// Item is one element of the stream Run produces: a gap when Gap is non-nil,
// otherwise a record.
type Item struct {
	// Record is the kernel record; valid when Gap is nil. Its Message is
	// owned by the Item (Run copies it).
	Record kernlog.Record
	// Gap, when non-nil, reports lost records instead.
	Gap *Gap
}

// Source is a live source of kernel records from /dev/kmsg.
type Source struct {
	log  *logrus.Entry
	opts Options
}

// New returns a Source that logs to log and reads as opts says.
func New(log *logrus.Entry, opts Options) *Source {
	if opts.After < 0 {
		opts.After = -1
	}
	if opts.ReopenTimeout <= 0 {
		opts.ReopenTimeout = DefaultReopenTimeout
	}
	if opts.Device == "" {
		opts.Device = DevKmsg
	}
	dev := opts.Device
	if opts.NewParser == nil {
		opts.NewParser = kmsgparser.NewParser
		if dev != DevKmsg {
			opts.NewParser = func() (kmsgparser.Parser, error) { return openDevice(dev) }
		}
	}
	if opts.Oldest == nil {
		opts.Oldest = func() (int64, int64, error) { return readOldest(dev) }
	}
	if opts.Newest == nil {
		opts.Newest = func() (int64, error) { return readNewest(dev) }
	}
	return &Source{log: log, opts: opts}
}

// Reader reads the kernel log in the goroutine that consumes it. That
// goroutine waits on C, in a select with its own channels if it likes, and
// hands every receive to Take:
//
//	for {
//		select {
//		case m, ok := <-r.C():
//			gap, rec, err := r.Take(ctx, m, ok)
//			...
//		case <-ctx.Done():
//			...
//		}
//	}
//
// A Reader is not safe for concurrent use, except Stop: a consumer that
// waits on C with a plain receive (the cheapest wait: a select costs about a
// hundred nanoseconds more per record) is woken by Stop from another
// goroutine, e.g. with context.AfterFunc. A slow consumer does not lose
// records silently: kmsgparser's reader blocks on its channel, the kernel's
// ring buffer (the bounded buffer here) overwrites its oldest records, and
// Take reports them as a Gap after reopening.
type Reader struct {
	s    *Source
	sess *session
	// last is the sequence number of the last record delivered, or the
	// checkpoint, or -1.
	last int64
	// failingSince and backoff pace reopening while it fails.
	failingSince time.Time
	backoff      time.Duration
	// rec is the record Take returns.
	rec kernlog.Record
	// mu guards sess against Stop; stopped is set by Stop.
	mu      sync.Mutex
	stopped bool
}

// Open opens the kernel log for reading after Options.After, trying again
// as Take does (see Run) until ReopenTimeout. Each call starts again from
// Options.After. Close the Reader when done.
func (s *Source) Open(ctx context.Context) (*Reader, error) {
	r := &Reader{s: s, last: s.opts.After, backoff: minBackoff}
	if r.last >= 0 {
		r.last = s.checkAfter(r.last)
	}
	if err := r.reopen(ctx, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// C returns the channel on which the next message arrives. It changes when
// the log is reopened: call C again for every wait.
func (r *Reader) C() <-chan kmsgparser.Message { return r.sess.ch }

// Take interprets what a receive from C gave: m, and ok false if C was
// closed. It returns the records lost before this message (gap) and the
// record it carries (rec); either or both may be nil: a message already
// delivered before a reopen gives neither. rec is valid until the next call
// of Take or Close; its Message is the text without the kernel's dictionary
// lines, and shares m's memory: it must not be modified (copy it to keep
// it).
//
// When C was closed (kmsgparser stops at an overflow of the kernel log),
// Take reopens the log, waiting with a backoff while that fails; it returns
// an error wrapping ctx's when ctx ends, or wrapping ErrReopen when the log
// cannot be reopened within ReopenTimeout.
func (r *Reader) Take(ctx context.Context, m kmsgparser.Message, ok bool) (gap *Gap, rec *kernlog.Record, err error) {
	sess := r.sess
	if !ok {
		r.s.stop(sess)
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("devkmsg: %w", err)
		}
		var stopped error
		if sess.n == 0 {
			stopped = fmt.Errorf("reader stopped before delivering a record: %w", sess.log.cause())
		} else {
			r.s.log.WithError(sess.log.cause()).WithField("last_seq", r.last).
				Warn("kernel log reader stopped; reopening")
		}
		return nil, nil, r.reopen(ctx, stopped)
	}
	sess.n++
	seq := int64(m.SequenceNumber)
	// Pin on every message, including those skipped below: a record
	// already delivered is as good a calibration point as any.
	if !sess.clk.exact {
		if pinned, moved := sess.clk.pin(seq, m.Timestamp, r.s.opts.Oldest); pinned {
			r.s.log.WithFields(logrus.Fields{"seq": seq, "correction": moved}).
				Debug("kernel log clock calibrated")
		}
	}
	if seq <= r.last {
		return nil, nil, nil
	}
	if r.last >= 0 && seq > r.last+1 {
		gap = &Gap{AfterSeq: r.last, NextSeq: seq, Lost: seq - r.last - 1, Detected: time.Now()}
		r.s.log.WithFields(logrus.Fields{"after_seq": gap.AfterSeq, "next_seq": gap.NextSeq, "lost": gap.Lost}).
			Warn("kernel log records lost")
	}
	mono := sess.clk.mono(m.Timestamp)
	// Field by field: cheaper than a composite literal here.
	r.rec.Seq = seq
	r.rec.Mono = mono
	r.rec.HasMono = true
	r.rec.Wall = sess.boot.Add(mono)
	r.rec.Priority = m.Priority
	r.rec.Message = body(m.Message)
	r.last = seq
	return gap, &r.rec, nil
}

// body returns the text of a kmsgparser Message, without the dictionary
// lines ("\n SUBSYSTEM=...") and the trailing newline the kernel appends
// (it escapes a newline inside the text as \x0a, so the first '\n' ends
// it), as bytes that share the string's memory. kmsgparser makes a new
// string for every record and keeps none, so nothing else sees them; not
// copying them saves a copy of every record on the hot path, and the
// Record's Message is read-only (see Take).
func body(msg string) []byte {
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" {
		// Empty, not nil, as a copy into a buffer was.
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(msg), len(msg))
}

// Stop closes the parser, so that C closes once the messages it holds are
// received, and the next Take fails if ctx has ended, else reopens. Unlike
// the other methods it may be called from any goroutine.
func (r *Reader) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.sess != nil {
		r.s.stop(r.sess)
	}
}

// Close stops the parser and waits for its goroutine (see shutdown).
func (r *Reader) Close() {
	r.Stop()
	if r.sess != nil {
		r.s.shutdown(r.sess)
		r.setSession(nil)
	}
}

// setSession makes sess current; a parser opened after Stop is stopped at
// once.
func (r *Reader) setSession(sess *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sess = sess
	if sess != nil && r.stopped {
		r.s.stop(sess)
	}
}

// reopen opens a parser, retrying with a backoff until ReopenTimeout.
// stopped, when not nil, is why the last parser counts as a failure (it
// stopped before delivering a record): the first attempt waits too.
func (r *Reader) reopen(ctx context.Context, stopped error) error {
	s := r.s
	r.setSession(nil)
	err := stopped
	if err == nil {
		// The last parser delivered records: a fresh start.
		r.failingSince, r.backoff = time.Time{}, minBackoff
	}
	for {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("devkmsg: %w", cerr)
		}
		if err == nil {
			sess, oerr := s.open()
			if oerr == nil {
				r.setSession(sess)
				return nil
			}
			err = oerr
		}
		now := time.Now()
		if r.failingSince.IsZero() {
			r.failingSince = now
		}
		left := s.opts.ReopenTimeout - now.Sub(r.failingSince)
		if left <= 0 {
			return fmt.Errorf("devkmsg: %w for %v: %w", ErrReopen, s.opts.ReopenTimeout, err)
		}
		wait := min(r.backoff, left)
		s.log.WithError(err).WithField("retry_in", wait).Warn("cannot read kernel log")
		if !sleep(ctx, wait) {
			return fmt.Errorf("devkmsg: %w", ctx.Err())
		}
		r.backoff = min(2*r.backoff, maxBackoff)
		err = nil
	}
}

// Run sends the kernel's records, and Gap items for records lost, to out in
// sequence order until ctx ends, and closes out when it returns: a Reader
// behind a channel, for consumers that want one. It costs a goroutine hop
// and a copy of the message per record, which a Reader does not.
//
// Run blocks on out, so a slow consumer loses records only as a Reader's
// does, reported as a Gap. Run returns ctx's error, wrapped, when ctx ends,
// or an error wrapping ErrReopen when the log cannot be reopened within
// ReopenTimeout. Each call starts again from Options.After.
func (s *Source) Run(ctx context.Context, out chan<- Item) error {
	defer close(out)
	r, err := s.Open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var m kmsgparser.Message
		var ok bool
		select {
		case <-ctx.Done():
			return fmt.Errorf("devkmsg: %w", ctx.Err())
		case m, ok = <-r.C():
		}
		gap, rec, err := r.Take(ctx, m, ok)
		if err != nil {
			return err
		}
		if gap != nil && !send(ctx, out, Item{Gap: gap}) {
			return fmt.Errorf("devkmsg: %w", ctx.Err())
		}
		if rec != nil {
			it := Item{Record: *rec}
			it.Record.Message = bytes.Clone(rec.Message)
			if !send(ctx, out, it) {
				return fmt.Errorf("devkmsg: %w", ctx.Err())
			}
		}
	}
}

// checkAfter returns the checkpoint to use: after, unless it is beyond the
// newest record, which means sequence numbers restarted (a reboot).
func (s *Source) checkAfter(after int64) int64 {
	newest, err := s.opts.Newest()
	if err != nil {
		s.log.WithError(err).Warn("cannot check the checkpoint against the kernel log; trusting it")
		return after
	}
	if after > newest {
		s.log.WithFields(logrus.Fields{"after": after, "newest_seq": newest}).
			Warn("checkpoint is beyond the newest kernel record (new boot?); reading from the oldest record")
		return -1
	}
	return after
}

// session is one kmsgparser instance and what we know about its clock.
type session struct {
	p    kmsgparser.Parser
	ch   <-chan kmsgparser.Message
	log  *parserLogger
	clk  clock
	boot time.Time
	// n counts the messages the parser delivered.
	n int
}

// open creates and calibrates a parser (see clock).
func (s *Source) open() (*session, error) {
	sess := &session{
		boot: s.opts.BootTime,
		log:  &parserLogger{log: s.log.WithField("component", "kmsgparser")},
	}
	if sess.boot.IsZero() {
		b, err := BootTime()
		if err != nil {
			return nil, err
		}
		sess.boot = b
	}
	sess.clk.pendSeq, sess.clk.pins = -1, 1
	if seq, usec, err := s.opts.Oldest(); err != nil {
		s.log.WithError(err).Debug("cannot read the oldest kernel record; calibrating later")
	} else {
		sess.clk.pendSeq, sess.clk.pendUsec = seq, usec
	}
	u1, err := uptime()
	if err != nil {
		return nil, err
	}
	tA := time.Now()
	p, err := s.opts.NewParser()
	tB := time.Now()
	if err != nil {
		return nil, fmt.Errorf("open kernel log: %w", err)
	}
	u2, err := uptime()
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	sess.clk.estimate(u1, tA, tB, u2)
	p.SetLogger(sess.log)
	sess.p = p
	sess.ch = p.Parse()
	return sess, nil
}

// stop closes a parser once: its goroutine then closes its channel.
func (s *Source) stop(sess *session) {
	if sess.log.closing.Swap(true) {
		return
	}
	if err := sess.p.Close(); err != nil {
		s.log.WithError(err).Debug("close kernel log")
	}
}

// shutdown closes a parser and waits for its goroutine: kmsgparser sends
// without a way to cancel, so its channel must be drained until it closes.
// Closing the file ends its blocked read (/dev/kmsg is pollable, so the read
// waits in Go's poller, which Close wakes).
func (s *Source) shutdown(sess *session) {
	s.stop(sess)
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-sess.ch:
			if !ok {
				return
			}
		case <-timer.C:
			s.log.Warn("kernel log reader did not stop after close; leaving it to drain in the background")
			go func() {
				for range sess.ch {
				}
			}()
			return
		}
	}
}

// send sends it to out unless ctx ends first.
func send(ctx context.Context, out chan<- Item, it Item) bool {
	select {
	case out <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
