package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/recent"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const (
	// watchRetryMax is the longest wait between two attempts to watch
	// again after the aggregator went away.
	watchRetryMax = 5 * time.Second
	// watchCatchUpMax bounds the events listed after watching again; past
	// it the watch says how to list the rest.
	watchCatchUpMax = 10000
	// watchSeenMax bounds the events remembered as printed, so that one
	// both listed and watched is printed once.
	watchSeenMax = 4 * watchCatchUpMax
	// catchUpOverlap is how far before the cursor a catch-up lists. With
	// replicas on one PostgreSQL database, a watch gets the other
	// replicas' events a moment after they commit, stamped received by
	// their clocks: one received before the last event printed may still
	// have been on its way when the watch ended. What is listed again is
	// printed once (seen).
	catchUpOverlap = 10 * time.Second
)

// watch is one live view of the aggregator's events. When the aggregator
// goes away (a restart, the OOM killer) or drops a watcher that fell
// behind, it watches again and first prints what was stored meanwhile:
// every event received since the last one it printed (the aggregator's
// clock), or since the watch began (wire.WatchStartHeader).
type watch struct {
	client pb.QueryServiceClient
	filter *pb.EventFilter
	// what begins its messages ("watch", "watch warnings").
	what   string
	stderr io.Writer
	p      *printer
	print  func(*pb.Event)
	// cursor is the aggregator's time from which nothing was missed.
	cursor time.Time
	// began is when the first Watch began: a catch-up never lists from
	// before it.
	began time.Time
	seen  *recent.Map[string, struct{}]
	// cancel ends the current Watch.
	cancel context.CancelFunc
}

func newWatch(client pb.QueryServiceClient, filter *pb.EventFilter, what string, stderr io.Writer, p *printer, print func(*pb.Event)) *watch {
	if print == nil {
		print = p.event
	}
	return &watch{client: client, filter: filter, what: what, stderr: stderr, p: p, print: print,
		seen: recent.NewMap[string, struct{}](watchSeenMax)}
}

// open starts a Watch and takes the aggregator's time as it began. The
// Watch before it, if any, is closed.
func (w *watch) open(ctx context.Context) (pb.QueryService_WatchClient, time.Time, error) {
	if w.cancel != nil {
		w.cancel()
	}
	ctx, w.cancel = context.WithCancel(ctx)
	stream, err := w.client.Watch(ctx, &pb.WatchRequest{Filter: w.filter})
	if err != nil {
		return nil, time.Time{}, err
	}
	md, err := stream.Header()
	if err != nil {
		return nil, time.Time{}, err
	}
	var start time.Time
	if v := md.Get(wire.WatchStartHeader); len(v) == 1 {
		start, _ = time.Parse(time.RFC3339Nano, v[0]) // zero when unreadable: no catch-up
	}
	return stream, start, nil
}

// start opens the first Watch; the caller lists what it wants, then calls
// follow.
func (w *watch) start(ctx context.Context) (pb.QueryService_WatchClient, error) {
	stream, start, err := w.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.what, err)
	}
	w.cursor, w.began = start, start
	return stream, nil
}

// follow prints the events of stream as they come, and of the Watches
// that follow it, until ctx ends (nil) or the aggregator refuses the watch
// for good (the error).
func (w *watch) follow(ctx context.Context, stream pb.QueryService_WatchClient) error {
	w.p.live = true
	defer func() { w.cancel() }()
	for {
		err := w.recv(stream)
		if ctx.Err() != nil {
			return nil
		}
		if !watchAgain(err) {
			return fmt.Errorf("%s: %w", w.what, err)
		}
		fmt.Fprintf(w.stderr, "%s: %s; watching again\n", w.what, status.Convert(err).Message())
		if stream, err = w.again(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", w.what, err)
		}
	}
}

// again watches again and prints what was stored meanwhile. An aggregator
// shutting down may still take the Watch and then fail the listing: both
// are tried again, waiting longer each time up to watchRetryMax.
func (w *watch) again(ctx context.Context) (pb.QueryService_WatchClient, error) {
	delay := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, watchRetryMax)
		stream, _, err := w.open(ctx)
		if err == nil {
			if err = w.catchUp(ctx); err == nil {
				return stream, nil
			}
		}
		if !watchAgain(err) {
			return nil, err
		}
	}
}

func (w *watch) recv(stream pb.QueryService_WatchClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		w.show(resp.GetEvent())
		if w.p.err != nil {
			return w.p.err
		}
	}
}

// show prints an event unless it was printed already (listed and watched),
// and tells whether it did.
func (w *watch) show(e *pb.Event) bool {
	key := fmt.Sprintf("%s@%d", e.GetId(), e.GetRevision())
	if w.seen.Has(key) {
		return false
	}
	w.seen.Put(key, struct{}{})
	w.print(e)
	w.p.flush()
	if r := e.GetReceived().AsTime(); e.GetReceived() != nil && r.After(w.cursor) {
		w.cursor = r
	}
	return true
}

// watchAgain tells whether a watch that ended with err is worth opening
// again: the aggregator went away or dropped the watcher (behind, or at
// its limit of watchers for now). A refusal (permission, a bad filter) is
// not.
func watchAgain(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

// catchUp prints what the aggregator stored from a little before the
// cursor on (catchUpOverlap, never before the first Watch began; the new
// Watch is already open: nothing falls between), in the order stored.
func (w *watch) catchUp(ctx context.Context) error {
	if w.cursor.IsZero() {
		fmt.Fprintf(w.stderr, "%s: the aggregator does not say when a watch begins: events stored while the watch was down are not shown (oomctl events lists them)\n", w.what)
		return nil
	}
	f := proto.Clone(w.filter).(*pb.EventFilter)
	since := w.cursor.Add(-catchUpOverlap)
	if since.Before(w.began) {
		since = w.began
	}
	f.ReceivedSince = timestamppb.New(since)
	var missed []*pb.Event
	_, err := pages(watchCatchUpMax, 500, func(size int32, token string) (int, string, error) {
		resp, err := w.client.ListEvents(ctx, &pb.ListEventsRequest{Filter: f, PageSize: size, PageToken: token})
		if err != nil {
			return 0, "", fmt.Errorf("list what was stored while the watch was down: %w", err)
		}
		missed = append(missed, resp.GetEvents()...)
		return len(resp.GetEvents()), resp.GetNextPageToken(), nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(missed, func(a, b *pb.Event) int { return a.GetReceived().AsTime().Compare(b.GetReceived().AsTime()) })
	from, shown := w.cursor, 0
	for _, e := range missed {
		if w.show(e) {
			shown++
		}
	}
	if len(missed) >= watchCatchUpMax {
		fmt.Fprintf(w.stderr, "%s: more than %d events were stored while the watch was down; %d of them are shown (oomctl events lists them all)\n",
			w.what, watchCatchUpMax, watchCatchUpMax)
	}
	if w.p.err != nil {
		return w.p.err
	}
	fmt.Fprintf(w.stderr, "%s: watching again; %d events stored since %s shown first\n", w.what, shown, from.UTC().Format(time.RFC3339))
	return nil
}
