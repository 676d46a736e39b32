package aggregator

import (
	"sync"
	"time"

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
	// ready holds a token when the queue may not be empty.
	ready chan struct{}
	// behind is closed when the queue overflowed.
	behind chan struct{}
}

// offer queues events, or marks the watcher behind when they do not fit.
func (w *watcher) offer(evs []*pb.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.late {
		return
	}
	if len(w.queue)+len(evs) > w.max {
		w.late, w.queue = true, nil
		close(w.behind)
		return
	}
	w.queue = append(w.queue, evs...)
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// take empties the queue.
func (w *watcher) take() []*pb.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// hub hands committed events to the watchers. publish never blocks: a
// watcher whose queue would overflow is marked behind and disconnected.
type hub struct {
	// now is the clock staleness is judged by.
	now      func() time.Time
	mu       sync.RWMutex
	watchers map[*watcher]struct{}
}

func newHub(now func() time.Time) *hub { return &hub{now: now, watchers: map[*watcher]struct{}{}} }

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

// publish offers events to every watcher whose filter they match.
func (h *hub) publish(events []*pb.Event) {
	if len(events) == 0 {
		return
	}
	now := h.now()
	h.mu.RLock()
	defer h.mu.RUnlock()
	var match []*pb.Event
	for w := range h.watchers {
		match = match[:0]
		for _, e := range events {
			if store.MatchesAt(w.filter, e, now) && (!w.openNow || !wire.IsStale(e, now)) {
				match = append(match, e)
			}
		}
		if len(match) > 0 {
			w.offer(match)
		}
	}
}

// Watch streams the events committed from now on that match the filter,
// each revision of an updated event again (see liveFilter for warnings).
// A watcher that cannot keep up (WatchBuffer events queued) is ended with
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
				for _, e := range w.take() {
					if err := st.Send(&pb.WatchResponse{Event: e}); err != nil {
						sendErr <- err
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-w.behind:
		s.watchersDropped.Add(1)
		s.log.WithField("buffer", s.cfg.WatchBuffer).Warn("watcher fell behind; disconnected")
		return status.Errorf(codes.ResourceExhausted, "watcher fell behind by more than %d events; list what was missed and watch again", s.cfg.WatchBuffer)
	case err := <-sendErr:
		return err
	case <-s.draining:
		return status.Error(codes.Unavailable, "aggregator shutting down")
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
