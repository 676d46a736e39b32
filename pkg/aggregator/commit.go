package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/metrics"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// errCommitterStopped: an event arrived after the last commit.
var errCommitterStopped = errors.New("committer stopped")

// ticket is one event waiting for its commit.
type ticket struct {
	// rec is dropped once committed; the acknowledgement needs only key.
	// It is released (store.Record.Release): it keeps the stored bytes,
	// and ev is decoded from them after the commit when asked.
	rec *store.Record
	ev  *pb.Event
	// sum is what the metrics count; weight what the ticket holds of
	// Config.MaxInFlightBytes (see weigh).
	sum    metrics.Summary
	weight int64
	key    ackKey
	// done is closed once res or err is set.
	done chan struct{}
	res  store.PutResult
	err  error
}

// ackKey is what an acknowledgement names.
type ackKey struct {
	bootID, typ string
	seq         int64
}

// maxAcksPerResponse bounds the acknowledgements of one StreamResponse
// (about 60 bytes each).
const maxAcksPerResponse = 256

// committed tells, without waiting, whether the ticket's event is
// committed without error.
func (t *ticket) committed() bool {
	select {
	case <-t.done:
		return t.err == nil
	default:
		return false
	}
}

// ack is the acknowledgement of a committed ticket.
func (t *ticket) ack() *pb.Ack {
	return &pb.Ack{BootId: t.key.bootID, EventType: eventid.TypeToPB(t.key.typ), Seq: t.key.seq, Duplicate: t.res.Duplicate}
}

// newTicket makes the ticket of an encoded record, which it releases.
func newTicket(rec *store.Record) *ticket {
	ev := rec.Event()
	typ := eventid.TypeOf(ev)
	t := &ticket{rec: rec, sum: metrics.Summarize(ev, typ), key: ackKey{bootID: ev.GetBootId(), typ: typ, seq: ev.GetSeq()},
		done: make(chan struct{})}
	rec.Release()
	return t
}

// ticketOverhead is about what a ticket holds besides its record.
const ticketOverhead = 256

// weigh sets the ticket's weight: the memory it holds, at least a share
// of maxBytes that makes maxCount tickets fill it, and at most all of it.
func (t *ticket) weigh(maxCount int, maxBytes int64) int64 {
	t.weight = min(max(int64(ticketOverhead+t.rec.Footprint()), maxBytes/int64(maxCount)), maxBytes)
	return t.weight
}

// event returns the committed event, decoding it once.
func (t *ticket) event() (*pb.Event, error) {
	if t.ev != nil {
		return t.ev, nil
	}
	e, err := t.rec.Decoded()
	if err != nil {
		return nil, err
	}
	t.ev = e
	return e, nil
}

// committer is the group commit: it gathers the events of every stream
// for up to wait (or max events), stores them in one transaction, one
// fsync, and then completes every ticket. Under load the next batch
// gathers while the current one commits, so batches grow with the load.
type committer struct {
	st       Store
	wait     time.Duration
	max      int
	in       chan *ticket
	quit     chan struct{}
	finished chan struct{}
	after    func([]*ticket)
	log      *logrus.Entry
}

func newCommitter(st Store, wait time.Duration, max int, after func([]*ticket), log *logrus.Entry) *committer {
	return &committer{st: st, wait: wait, max: max, in: make(chan *ticket, 2*max), quit: make(chan struct{}),
		finished: make(chan struct{}), after: after, log: log}
}

// submit queues a ticket for the next commit.
func (c *committer) submit(ctx context.Context, t *ticket) error {
	select {
	case <-c.finished:
		return errCommitterStopped
	default:
	}
	select {
	case c.in <- t:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.finished:
		return errCommitterStopped
	}
}

// stop makes run commit what is queued and return. Nothing may be
// submitted after stop is called.
func (c *committer) stop() { close(c.quit) }

// run commits until stop.
func (c *committer) run() {
	defer close(c.finished)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]*ticket, 0, c.max)
	for {
		select {
		case t := <-c.in:
			batch = append(batch, t)
		case <-c.quit:
			for {
				select {
				case t := <-c.in:
					batch = append(batch, t)
					if len(batch) == c.max {
						c.flush(batch)
						batch = batch[:0]
					}
				default:
					c.flush(batch)
					return
				}
			}
		}
		timer.Reset(c.wait)
	gather:
		for len(batch) < c.max {
			select {
			case t := <-c.in:
				batch = append(batch, t)
			case <-timer.C:
				break gather
			case <-c.quit:
				break gather
			}
		}
		timer.Stop()
		c.flush(batch)
		batch = batch[:0]
	}
}

// flush stores a batch and completes its tickets.
func (c *committer) flush(batch []*ticket) {
	if len(batch) == 0 {
		return
	}
	recs := make([]*store.Record, len(batch))
	for i, t := range batch {
		recs[i] = t.rec
	}
	// Not a request's context: a commit under way finishes even when its
	// streams are gone, so that what is stored is what was acknowledged
	// or will be replayed.
	res, err := c.st.PutRecords(context.Background(), recs)
	if err == nil && len(res) != len(batch) {
		err = fmt.Errorf("store returned %d results for %d events", len(res), len(batch))
	}
	if err != nil {
		c.log.WithError(err).WithField("events", len(batch)).Error("commit failed")
	} else {
		c.log.WithField("events", len(batch)).Debug("committed")
	}
	for i, t := range batch {
		if err != nil {
			t.err = err
		} else {
			t.res = res[i]
		}
	}
	// Watchers and counters first, then the acknowledgements. A ticket
	// waiting for its stream to acknowledge it holds no event.
	c.after(batch)
	for _, t := range batch {
		t.rec, t.ev = nil, nil
		close(t.done)
	}
}
