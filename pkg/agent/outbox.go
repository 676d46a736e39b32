package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/spool"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Store is the agent's durable queue: the spool.
type Store interface {
	Put(ctx context.Context, events ...*pb.Event) error
	Next(n int) []*pb.Event
	Ack(bootID, typ string, seq int64) error
	Rewind()
	Notify() <-chan struct{}
}

// CauseUnwritable is the Loss cause of events the agent could neither spool
// (its state directory refused writes: full, over quota, read-only, I/O
// errors) nor keep in memory until the aggregator had them.
const CauseUnwritable = "spool-unwritable"

// Defaults of OutboxOptions.
const (
	DefaultMemoryEvents = 1024
	DefaultMemoryBytes  = 8 << 20
	DefaultRetryEvery   = time.Second
)

// OutboxOptions bound an Outbox.
type OutboxOptions struct {
	// Node and BootID name the agent's loss events; only OOM events of
	// BootID hold the checkpoint back (see HeldFrom).
	Node, BootID string
	// MaxEvents and MaxBytes bound the events kept in memory while the
	// spool cannot be written; past them the oldest are dropped and
	// reported as lost.
	MaxEvents int
	MaxBytes  int64
	// RetryEvery is how often a failing spool is tried again.
	RetryEvery time.Duration
}

// OutboxStats are an Outbox's figures, for metrics.
type OutboxStats struct {
	// Writable is false from a failed spool write to the next good one.
	Writable bool
	// WriteErrors counts puts the spool failed; AckErrors acks whose
	// removal could not be written.
	WriteErrors, AckErrors int64
	// Held and HeldBytes are the events in memory now (not durable, not
	// acknowledged yet).
	Held      int
	HeldBytes int64
	// Direct counts events that went to memory because the spool failed;
	// Respooled those written to the spool later; Lost those dropped from
	// memory (reported as CauseUnwritable losses).
	Direct, Respooled, Lost int64
}

// Outbox is what the agent's producers put events into and what the sender
// drains. Events go to the spool; while the spool cannot be written they
// are kept in a bounded queue in memory and sent from there as soon as the
// aggregator is reachable, and every RetryEvery the spool is tried again
// with them. Events dropped from the full memory queue are counted and
// reported with TakeLost.
type Outbox struct {
	store  Store
	opts   OutboxOptions
	log    *logrus.Entry
	notify chan struct{}
	kick   chan struct{}
	now    func() time.Time

	mu       sync.Mutex
	mem      []held
	inMem    map[spool.Key]bool
	cur      int
	memBytes int64
	failing  error
	lastErr  error
	lastTry  time.Time
	lost     spool.DropReport
	lossKey  spool.Key
	stats    OutboxStats
	// logs are rate-limited: when each kind was last logged, and what
	// happened since.
	lostLogged, ackLogged, failLogged time.Time
	lostSince, ackSince               int64
}

type held struct {
	ev   *pb.Event
	key  spool.Key
	size int64
	// sent: handed to the sender at least once. The aggregator may have
	// stored it without the ack reaching back, so it is dropped last:
	// counting it lost could count a stored event.
	sent bool
}

// logEvery bounds how often the repeated failures are logged.
const logEvery = time.Minute

// NewOutbox returns an Outbox in front of store.
func NewOutbox(store Store, opts OutboxOptions, log *logrus.Entry) *Outbox {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMemoryEvents
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMemoryBytes
	}
	if opts.RetryEvery <= 0 {
		opts.RetryEvery = DefaultRetryEvery
	}
	return &Outbox{store: store, opts: opts, log: log, notify: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		now: time.Now, inMem: map[spool.Key]bool{}}
}

// Put spools events, or keeps them in memory when the spool cannot be
// written. It fails only for what the spool refuses whatever the disk does
// (invalid events, a closed spool, ctx ended). Events kept in memory are
// not durable: see HeldFrom.
func (o *Outbox) Put(ctx context.Context, events ...*pb.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox put: %w", err)
	}
	// What the spool would refuse must not wait in memory for it.
	for _, ev := range events {
		if eventid.TypeOf(ev) == "" {
			return fmt.Errorf("outbox put: %w: event without payload", spool.ErrInvalidEvent)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing != nil && o.now().Sub(o.lastTry) < o.opts.RetryEvery {
		o.holdLocked(events)
		return nil
	}
	return o.spoolLocked(ctx, events)
}

// spoolLocked puts the events held in memory and then events in the spool.
// On a storage failure it keeps events in memory instead.
func (o *Outbox) spoolLocked(ctx context.Context, events []*pb.Event) error {
	batch := events
	if len(o.mem) > 0 {
		batch = make([]*pb.Event, 0, len(o.mem)+len(events))
		for _, h := range o.mem {
			batch = append(batch, h.ev)
		}
		batch = append(batch, events...)
	}
	err := o.store.Put(ctx, batch...)
	o.lastTry = o.now()
	switch {
	case err == nil:
		if o.failing != nil {
			o.log.WithFields(logrus.Fields{"respooled": len(o.mem), "direct_total": o.stats.Direct, "lost_total": o.stats.Lost}).
				Info("the spool takes writes again: events are durable again")
		}
		o.stats.Respooled += int64(len(o.mem))
		o.failing = nil
		o.mem, o.cur, o.memBytes = nil, 0, 0
		clear(o.inMem)
		return nil
	case errors.Is(err, spool.ErrStorage):
		o.stats.WriteErrors++
		if o.failing != nil && o.now().Sub(o.failLogged) >= logEvery {
			o.log.WithError(err).WithFields(logrus.Fields{"held": len(o.mem) + len(events), "direct_total": o.stats.Direct, "lost_total": o.stats.Lost}).
				Warn("the spool still cannot be written")
			o.failLogged = o.now()
		}
		if o.failing == nil {
			o.failLogged = o.now()
			o.log.WithError(err).WithField("held", len(o.mem)+len(events)).
				Error("cannot write to the spool: events are kept in memory and sent directly while the aggregator is reachable; spooling resumes when the disk takes writes again")
			select {
			case o.kick <- struct{}{}:
			default:
			}
		}
		o.failing, o.lastErr = err, err
		o.holdLocked(events)
		return nil
	}
	return err
}

// holdLocked keeps events in memory, dropping the oldest past the bounds.
func (o *Outbox) holdLocked(events []*pb.Event) {
	added := false
	for _, ev := range events {
		k := spool.KeyOf(ev)
		if o.inMem[k] {
			continue
		}
		size := int64(proto.Size(ev))
		o.mem = append(o.mem, held{ev: ev, key: k, size: size})
		o.inMem[k] = true
		o.memBytes += size
		o.stats.Direct++
		added = true
	}
	for len(o.mem) > o.opts.MaxEvents || o.memBytes > o.opts.MaxBytes && len(o.mem) > 1 {
		i := o.victimLocked()
		ev := o.mem[i].ev
		o.removeLocked(i)
		o.loseLocked(ev)
	}
	if added {
		select {
		case o.notify <- struct{}{}:
		default:
		}
	}
}

// victimLocked returns the index of the event to drop: the oldest never
// sent, then the oldest sent; loss reports last, since dropping one would
// lose the count it carries.
func (o *Outbox) victimLocked() int {
	for _, ok := range []func(h held) bool{
		func(h held) bool { return !h.sent && h.key.Type != spool.CauseLossType },
		func(h held) bool { return h.key.Type != spool.CauseLossType },
	} {
		if i := slices.IndexFunc(o.mem, ok); i >= 0 {
			return i
		}
	}
	return 0
}

// loseLocked counts ev as lost, for the next TakeLost.
func (o *Outbox) loseLocked(ev *pb.Event) {
	o.lost.Add(ev)
	o.stats.Lost++
	o.lostSince++
	if o.now().Sub(o.lostLogged) >= logEvery/6 {
		o.log.WithFields(logrus.Fields{"dropped": o.lostSince, "held": len(o.mem), "max_events": o.opts.MaxEvents}).
			Error("the spool cannot be written and the in-memory queue is full: the oldest events were dropped; they are reported as a loss")
		o.lostLogged, o.lostSince = o.now(), 0
	}
}

func (o *Outbox) removeLocked(i int) {
	h := o.mem[i]
	delete(o.inMem, h.key)
	o.memBytes -= h.size
	o.mem = slices.Delete(o.mem, i, i+1)
	if i < o.cur {
		o.cur--
	}
}

// Next returns up to n events not handed out since the last Rewind: the
// spool's first, then those held in memory.
func (o *Outbox) Next(n int) []*pb.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.store.Next(n)
	for len(out) < n && o.cur < len(o.mem) {
		out = append(out, o.mem[o.cur].ev)
		o.mem[o.cur].sent = true
		o.cur++
	}
	return out
}

// Ack removes an event the aggregator has stored, from memory or from the
// spool. An ack the spool could not write is counted, not an error: the
// event may only be sent again after a restart.
func (o *Outbox) Ack(bootID, typ string, seq int64) error {
	k := spool.Key{BootID: bootID, Type: typ, Seq: seq}
	o.mu.Lock()
	if o.inMem[k] {
		o.removeLocked(slices.IndexFunc(o.mem, func(h held) bool { return h.key == k }))
		o.mu.Unlock()
		return nil
	}
	o.mu.Unlock()
	err := o.store.Ack(bootID, typ, seq)
	if !errors.Is(err, spool.ErrNotDurable) {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats.AckErrors++
	o.ackSince++
	if o.now().Sub(o.ackLogged) >= logEvery {
		o.log.WithError(err).WithField("acks", o.ackSince).
			Warn("cannot write acknowledgements to the spool: after a restart these events may be sent again (the aggregator drops the copies)")
		o.ackLogged, o.ackSince = o.now(), 0
	}
	return nil
}

// Rewind hands every pending event out again, from the spool's oldest.
func (o *Outbox) Rewind() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.store.Rewind()
	o.cur = 0
}

// Notify is signalled when events are added.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// HeldFrom returns the smallest sequence number of the OOM events of this
// boot kept only in memory: the kernel records from there on are not
// durable anywhere, so the checkpoint must stay before them, and a restart
// reads them again from the kernel log.
func (o *Outbox) HeldFrom() (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var from int64
	found := false
	for _, h := range o.mem {
		if h.key.Type == "oom" && h.key.BootID == o.opts.BootID && (!found || h.key.Seq < from) {
			from, found = h.key.Seq, true
		}
	}
	return from, found
}

// Stats returns the outbox's figures.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.stats
	st.Writable = o.failing == nil
	st.Held, st.HeldBytes = len(o.mem), o.memBytes
	return st
}

// Run forwards the spool's notifications and, while events wait in memory
// for the spool, tries it again every RetryEvery, until ctx ends.
func (o *Outbox) Run(ctx context.Context) error {
	for {
		var retry <-chan time.Time
		if o.waiting() {
			retry = time.After(o.opts.RetryEvery)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.store.Notify():
			select {
			case o.notify <- struct{}{}:
			default:
			}
		case <-o.kick:
		case <-retry:
			o.mu.Lock()
			if o.failing != nil && len(o.mem) > 0 {
				if err := o.spoolLocked(ctx, nil); err != nil && ctx.Err() == nil {
					o.log.WithError(err).Warn("cannot spool the events held in memory")
				}
			}
			o.mu.Unlock()
		}
	}
}

func (o *Outbox) waiting() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failing != nil && len(o.mem) > 0
}

// TakeLost reports the events dropped from memory: when there are any, it
// puts a Loss event with cause CauseUnwritable for them (in the spool, or
// in memory, never dropped before other events) and returns what it
// reported. While the previous such Loss event waits in memory, it waits.
func (o *Outbox) TakeLost(ctx context.Context) (spool.DropReport, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lost.Count == 0 || o.inMem[o.lossKey] {
		return spool.DropReport{}, nil
	}
	r := o.lost
	now := o.now()
	why := "unknown error"
	var errno syscall.Errno
	if errors.As(o.lastErr, &errno) {
		why = errno.Error()
	} else if o.lastErr != nil {
		why = o.lastErr.Error()
	}
	ev := r.LossEvent(CauseUnwritable,
		r.Describe(fmt.Sprintf("lost on node %s: its state directory refused writes (%s) and the in-memory queue was full", o.opts.Node, why)),
		o.opts.Node, o.opts.BootID, now.UnixNano(), now)
	o.lost = spool.DropReport{}
	if err := o.spoolLocked(ctx, []*pb.Event{ev}); err != nil {
		o.lost.Merge(r)
		return spool.DropReport{}, err
	}
	o.lossKey = spool.KeyOf(ev)
	return r, nil
}

// Holds tells whether an event with this key is still pending, in memory or
// in the spool: a producer that updates an event under the same key (an
// oom-child story, exits.Holder) waits until it is not, since the spool
// drops a pending key's duplicate.
func (o *Outbox) Holds(bootID, typ string, seq int64) bool {
	k := spool.Key{BootID: bootID, Type: typ, Seq: seq}
	o.mu.Lock()
	inMem := o.inMem[k]
	o.mu.Unlock()
	if inMem {
		return true
	}
	h, ok := o.store.(interface {
		Holds(bootID, typ string, seq int64) bool
	})
	return ok && h.Holds(bootID, typ, seq)
}
