package agent

import (
	"context"
	"time"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// How a Pipeline is driven: records from a channel of Items (tests, the
// synthetic source) or from a devkmsg.Reader (the agent), and the tick
// that closes reports once the log is quiet.

// Run consumes items until the channel closes or ctx ends. It returns nil
// when the channel closed while ctx was live, else ctx's error. Tests and synthetic sources use
// it; the agent reads /dev/kmsg with RunReader.
func (p *Pipeline) Run(ctx context.Context, items <-chan devkmsg.Item) error {
	parent := ctx
	ctx, t := p.startTicker(ctx)
	defer t.stop()
	var rec kernlog.Record
	for {
		select {
		case <-ctx.Done():
			return t.err(ctx)
		case it, ok := <-items:
			p.mu.Lock()
			var err error
			if !ok {
				err = p.end(ctx)
			} else {
				var r *kernlog.Record
				if it.Gap == nil {
					rec = it.Record
					r = &rec
				}
				err = p.take(ctx, it.Gap, r, len(items))
			}
			p.mu.Unlock()
			if !ok && err == nil && parent.Err() != nil {
				// The source closed its channel because ctx ended: the
				// end is ctx's, whichever case the select saw. (A parent
				// closes its Done before it cancels its children, so
				// the source may see it before ours has ended.)
				return context.Cause(parent)
			}
			if err != nil || !ok {
				return err
			}
		}
	}
}

// RunReader consumes the kernel log that r reads until ctx ends or r fails
// (it cannot reopen the log), and returns why. It waits for the next
// record with a plain receive on r's channel, the cheapest wait there is:
// the ticker runs on its own goroutine, and the end of ctx stops r.
func (p *Pipeline) RunReader(ctx context.Context, r *devkmsg.Reader) error {
	ctx, t := p.startTicker(ctx)
	defer t.stop()
	defer context.AfterFunc(ctx, r.Stop)()
	for {
		c := r.C()
		m, ok := <-c
		if !ok {
			// The parser stopped: Take reopens the log, outside the lock
			// since it may wait.
			if _, _, err := r.Take(ctx, m, ok); err != nil {
				if ctx.Err() != nil {
					return t.err(ctx)
				}
				return err
			}
			continue
		}
		p.mu.Lock()
		gap, rec, err := r.Take(ctx, m, ok)
		if err == nil {
			err = p.take(ctx, gap, rec, len(c))
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// take handles what the source gave, a gap and a record either of which
// may be nil, with waiting records queued behind them. Events are spooled
// in batches while records queue up (an OOM storm): one fsync for many
// kills; the checkpoint follows them. The caller holds p.mu.
func (p *Pipeline) take(ctx context.Context, gap *devkmsg.Gap, rec *kernlog.Record, waiting int) error {
	if p.idle && gap == nil && rec != nil && p.asm.Skip(rec) {
		p.skipped(rec, waiting)
		return nil
	}
	// Until this record is handled the state is unknown: an error below
	// leaves the slow path on.
	p.idle = false
	if gap != nil {
		if err := p.handleGap(ctx, gap); err != nil {
			return err
		}
	}
	if rec != nil {
		p.handleRecord(rec)
	}
	if waiting == 0 || len(p.ready) >= 256 {
		if err := p.flush(ctx); err != nil {
			return err
		}
		p.advance()
	}
	p.retick()
	p.idle = !p.asm.Open() && len(p.ready) == 0 && !p.holding()
	return nil
}

// skipped is take for an ordinary record (the Assembler skipped it) while
// the pipeline is idle: no report open, no event ready, none held. Most
// kernel records take this path, so it does only what take would do for
// them in that state: count the record, move the checkpoint up to it when
// no record waits, and wake the tick if the checkpoint is newly behind.
// Only take makes the pipeline idle, and nothing else makes it busy (the
// tick only closes reports and sends events), so idle is never stale in
// the direction that matters. The caller holds p.mu.
func (p *Pipeline) skipped(rec *kernlog.Record, waiting int) {
	p.count(rec)
	if waiting == 0 && p.lastSeq > p.safe {
		p.safe = p.lastSeq
	}
	// The tick's mode only changes here when the checkpoint falls behind:
	// once behind, reading more records keeps it behind.
	if p.mode != tickSlow || !p.checkpointBehind() {
		p.retick()
	}
}

// Drain closes the open report, judges the reports waiting and sends their
// events, as Run does when its channel closes: for a caller whose source
// has ended for good after RunReader returned (a replay of a recorded log,
// a benchmark). The agent does not call it when it stops: it leaves an
// open report to the next start, which reads it again from the checkpoint.
func (p *Pipeline) Drain(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end(ctx)
}

// end handles the end of the source: every open report is closed and sent.
// The caller holds p.mu.
func (p *Pipeline) end(ctx context.Context) error {
	p.publish()
	p.asm.Flush()
	p.stream.Flush()
	if err := p.flush(ctx); err != nil {
		return err
	}
	p.advance()
	return nil
}

// Tick modes: the tick closes reports once the log is quiet, and saves the
// checkpoint. It comes every Idle/2 while a report is open or events wait,
// every CheckpointEvery while the checkpoint is behind, not at all
// otherwise: an idle agent wakes only for kernel records.
const (
	tickFast = iota
	tickSlow
	tickOff
)

// ticker runs a Pipeline's tick on its own goroutine, so that the reader
// need not select on it for every record; the two share p.mu.
type ticker struct {
	p      *Pipeline
	t      *time.Ticker
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// startTicker starts the tick goroutine. The context returned ends with
// ctx, or when a tick fails (t.err then says why).
func (p *Pipeline) startTicker(ctx context.Context) (context.Context, *ticker) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := &ticker{p: p, t: time.NewTicker(p.cfg.Idle / 2), cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	p.tick, p.mode = t.t, tickFast
	p.quietSince, p.tickRead = time.Now(), p.nread
	p.mu.Unlock()
	go func() {
		defer close(t.done)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.t.C:
				if err := p.onTick(ctx, now); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	return ctx, t
}

// stop ends the tick goroutine and saves the checkpoint a last time.
func (t *ticker) stop() {
	t.cancel(nil)
	<-t.done
	t.t.Stop()
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publish()
	p.saveCheckpoint(true)
}

// err returns why ctx (from startTicker) ended.
func (t *ticker) err(ctx context.Context) error {
	return context.Cause(ctx)
}

// onTick closes the open report once the log has been quiet for Idle and
// saves the checkpoint.
func (p *Pipeline) onTick(ctx context.Context, now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Quiet means no record handled since quietSince: however long the
	// last one took to handle (a slow lookup holds p.mu), the tick comes
	// after it, so it must not cut a report before its kill line.
	p.publish()
	if p.nread != p.tickRead {
		p.tickRead, p.quietSince = p.nread, now
	}
	if idle := now.Sub(p.quietSince); idle >= p.cfg.Idle {
		p.asm.Expire(idle)
		// A quiet log has nothing more to say of the waiting reports.
		p.stream.Flush()
		if err := p.flush(ctx); err != nil {
			return err
		}
		p.advance()
	}
	p.saveCheckpoint(false)
	p.retick()
	return nil
}

// holding tells whether reports wait in the stream to be judged.
func (p *Pipeline) holding() bool {
	_, ok := p.stream.HeldFrom()
	return ok
}

// retick sets the tick's mode from the pipeline's state. The caller holds
// p.mu.
func (p *Pipeline) retick() {
	want := tickSlow
	switch {
	case p.asm.Open() || len(p.ready) > 0 || p.holding():
		want = tickFast
	case !p.checkpointBehind():
		want = tickOff
	}
	if want == tickFast {
		p.busy = true
	}
	if want == p.mode {
		return
	}
	if want == tickOff && p.busy {
		p.busy = false
		if p.cfg.Quiet != nil {
			// Its own goroutine: Quiet may collect garbage, which must
			// not hold up the reader waiting for p.mu.
			go p.cfg.Quiet()
		}
	}
	if p.mode == tickOff {
		// The log was quiet until the record that woke the tick.
		p.tickRead, p.quietSince = p.nread, time.Now()
	}
	p.mode = want
	switch want {
	case tickFast:
		p.tick.Reset(p.cfg.Idle / 2)
	case tickSlow:
		p.tick.Reset(p.cfg.CheckpointEvery)
	default:
		p.tick.Stop()
	}
}
