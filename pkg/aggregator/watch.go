package aggregator

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// watcher is one Watch call: its filter and a bounded queue.
type watcher struct {
	filter *pb.EventFilter
	// openNow: the filter asked for open warnings only (see liveFilter).
	openNow bool
	max     int
	mu      sync.Mutex
	queue   []*pb.Event
	late    bool
	// from is the oldest batch (hub.publish's sequence) whose events the
	// queue holds; sending is set while the events take gave are being
	// sent, sentFrom the oldest batch among them. A watcher holds the
	// events of every batch since the oldest of the two.
	from, sentFrom uint64
	sending        bool
	// ready holds a token when the queue may not be empty.
	ready chan struct{}
	// behind is closed when the queue overflowed or the watcher fell too
	// far behind (hub.lag).
	behind chan struct{}
}

// offer queues the events of batch seq, or marks the watcher behind when
// they do not fit.
func (w *watcher) offer(evs []*pb.Event, seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.late {
		return
	}
	if len(w.queue)+len(evs) > w.max {
		w.drop()
		return
	}
	if len(w.queue) == 0 {
		w.from = seq
	}
	w.queue = append(w.queue, evs...)
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// drop marks the watcher behind and lets its queue go. The caller holds
// w.mu.
func (w *watcher) drop() {
	if !w.late {
		w.late, w.queue = true, nil
		close(w.behind)
	}
}

// take empties the queue, for a consumer that is done with the events
// when it takes the next (the web UI's, which turns them into text at
// once).
func (w *watcher) take() []*pb.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// takeToSend empties the queue, for a consumer that holds the events
// until it calls sent: they count as held by the watcher until then.
func (w *watcher) takeToSend() []*pb.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	w.sending, w.sentFrom = len(q) > 0, w.from
	return q
}

// sent tells that the events takeToSend gave are sent.
func (w *watcher) sent() {
	w.mu.Lock()
	w.sending = false
	w.mu.Unlock()
}

// oldest returns the oldest batch whose events w holds, and false when it
// holds none (or is behind, about to let them go).
func (w *watcher) oldest() (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.late:
		return 0, false
	case w.sending:
		return w.sentFrom, true
	case len(w.queue) > 0:
		return w.from, true
	}
	return 0, false
}

// hub hands committed events to the watchers. publish never blocks: a
// watcher whose queue would overflow, or which still holds events of a
// batch published before the last lag bytes of events, is marked behind
// and disconnected.
type hub struct {
	// now is the clock staleness is judged by.
	now func() time.Time
	// lag bounds the memory (heapSize) of the events published after the
	// oldest batch a watcher holds: what the watchers hold together beyond
	// the latest batch, shared or not.
	lag      int64
	mu       sync.RWMutex
	watchers map[*watcher]struct{}
	// Under pubMu: the sequence of the next batch, and the batches
	// published since the oldest a watcher holds (held, oldest first,
	// with the memory of their events that some watcher took).
	pubMu     sync.Mutex
	next      uint64
	held      []heldBatch
	heldBytes int64
}

// heldBatch is a published batch that a watcher may still hold.
type heldBatch struct {
	seq   uint64
	bytes int64
}

func newHub(now func() time.Time, lag int64) *hub {
	return &hub{now: now, lag: lag, watchers: map[*watcher]struct{}{}}
}

func (h *hub) add(f *pb.EventFilter, max int) *watcher {
	w := &watcher{filter: liveFilter(f), openNow: f.GetOpenWarningsOnly(), max: max, ready: make(chan struct{}, 1), behind: make(chan struct{})}
	h.mu.Lock()
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	return w
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
}

// watched reports whether any watcher is registered.
func (h *hub) watched() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.watchers) > 0
}

// liveFilter is the filter a watcher's events are matched by. A watcher of
// open warnings (open_warnings_only) gets every revision of the warnings
// its other fields select: the opening, the updates, and the resolution
// too, so that a live view learns when to drop one; but not an open
// revision already stale when it arrives (an agent's replay after a long
// outage), which is not open now (see publish).
func liveFilter(f *pb.EventFilter) *pb.EventFilter {
	if !f.GetOpenWarningsOnly() {
		return f
	}
	f = proto.CloneOf(f)
	f.OpenWarningsOnly = false
	f.Types = []string{eventid.TypeWarning}
	return f
}

// publish offers events to every watcher whose filter they match, then
// disconnects the watchers that hold events of batches published more
// than h.lag bytes ago. Batches are published one at a time.
func (h *hub) publish(events []*pb.Event) {
	if len(events) == 0 {
		return
	}
	now := h.now()
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	seq := h.next
	h.next++
	// The memory of each event some watcher takes, counted once.
	sized := make([]bool, len(events))
	var bytes int64
	var match []*pb.Event
	for w := range h.watchers {
		match = match[:0]
		for i, e := range events {
			if store.MatchesAt(w.filter, e, now) && (!w.openNow || !wire.IsStale(e, now)) {
				match = append(match, e)
				if !sized[i] {
					sized[i] = true
					bytes += heapSize(e)
				}
			}
		}
		if len(match) > 0 {
			w.offer(match, seq)
		}
	}
	if bytes > 0 {
		// A batch no watcher took is held by none.
		h.held = append(h.held, heldBatch{seq: seq, bytes: bytes})
		h.heldBytes += bytes
	}
	h.trim()
}

// trim forgets the batches no watcher holds, and while those held before
// the latest come to more than h.lag bytes, disconnects the watchers that
// hold the oldest. The caller holds h.mu (read) and h.pubMu.
func (h *hub) trim() {
	for {
		oldest, any := uint64(0), false
		for w := range h.watchers {
			if from, ok := w.oldest(); ok && (!any || from < oldest) {
				oldest, any = from, true
			}
		}
		if !any {
			h.held, h.heldBytes = h.held[:0], 0
			return
		}
		n := 0
		for n < len(h.held) && h.held[n].seq < oldest {
			h.heldBytes -= h.held[n].bytes
			n++
		}
		h.held = append(h.held[:0], h.held[n:]...)
		if len(h.held) == 0 {
			return
		}
		latest := h.held[len(h.held)-1]
		if h.lag <= 0 || h.heldBytes-latest.bytes <= h.lag || oldest >= latest.seq {
			return
		}
		for w := range h.watchers {
			if from, ok := w.oldest(); ok && from == oldest {
				w.mu.Lock()
				w.drop()
				w.mu.Unlock()
			}
		}
	}
}

// Watch streams the events committed from now on that match the filter,
// each revision of an updated event again (see liveFilter for warnings).
// A watcher that cannot keep up (WatchBuffer events queued, or events
// held from before the last WatchLagBytes committed) is ended with
// codes.ResourceExhausted; it should list what it missed and watch again.
func (s *Server) Watch(req *pb.WatchRequest, st grpc.ServerStreamingServer[pb.WatchResponse]) error {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "aggregator shutting down")
	}
	if err := validateFilter(req.GetFilter()); err != nil {
		return err
	}
	ctx := st.Context()
	id := principal(ctx)
	switch s.watchQuota.acquire(id) {
	case "identity":
		s.limits.refuse(LimitWatchPerIdentity)
		return status.Errorf(codes.ResourceExhausted, "this identity holds %d watchers already; close some", s.cfg.Limits.MaxWatchersPerIdentity)
	case "total":
		s.limits.refuse(LimitWatchTotal)
		s.log.WithField("identity", id).Debug("watcher refused: the aggregator holds its maximum")
		return status.Errorf(codes.ResourceExhausted, "the aggregator serves %d watchers already; retry later", s.cfg.Limits.MaxWatchers)
	}
	defer s.watchQuota.release(id)
	w := s.hub.add(req.GetFilter(), s.cfg.WatchBuffer)
	defer s.hub.remove(w)
	// The aggregator's time once the watcher is added: every event stored
	// from then on reaches it. A client that loses the watch lists what
	// was stored since (EventFilter.received_since) when it watches again.
	if err := st.SendHeader(metadata.Pairs(wire.WatchStartHeader, s.cfg.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	s.watchers.Add(1)
	defer s.watchers.Add(-1)

	// Sending runs apart so that a client that stops reading, which blocks
	// Send, is still disconnected once its queue overflows: returning ends
	// the call and unblocks Send.
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-w.ready:
				for _, e := range w.takeToSend() {
					if err := st.Send(&pb.WatchResponse{Event: e}); err != nil {
						sendErr <- err
						return
					}
				}
				w.sent()
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-w.behind:
		s.watchersDropped.Add(1)
		s.log.WithFields(logrus.Fields{"buffer": s.cfg.WatchBuffer, "lag_bytes": s.cfg.WatchLagBytes}).
			Warn("watcher fell behind; disconnected")
		return status.Errorf(codes.ResourceExhausted, "watcher fell behind (more than %d events queued, or more than %d MiB of events committed since the oldest it has not received); list what was missed and watch again",
			s.cfg.WatchBuffer, s.cfg.WatchLagBytes>>20)
	case err := <-sendErr:
		return err
	case <-s.draining:
		return status.Error(codes.Unavailable, "aggregator shutting down")
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
