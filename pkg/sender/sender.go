// Package sender streams the agent's spooled events to the aggregator and
// removes each from the spool once the aggregator has acknowledged it. It
// reconnects with exponential backoff and jitter; delivery is at least once
// and the aggregator deduplicates.
package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Queue is the spool as the sender sees it.
type Queue interface {
	// Next returns up to n pending events not yet handed out, oldest first.
	Next(n int) []*pb.Event
	// Ack removes the event with this key for good.
	Ack(bootID, typ string, seq int64) error
	// Rewind hands out every pending event again from the oldest (after a
	// reconnect, unacknowledged events are sent again).
	Rewind()
	// Notify is signalled when events are added.
	Notify() <-chan struct{}
}

// Config wires a Sender.
type Config struct {
	// Conn is the client connection to the aggregator.
	Conn   grpc.ClientConnInterface
	Node   string
	BootID string
	// Window bounds the events sent and not yet acknowledged. Default 256.
	Window int
	// MinBackoff and MaxBackoff bound the wait between reconnects.
	// Defaults 200 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Version is reported in the Hello.
	Version string
}

// Stats counts what the sender did.
type Stats struct {
	Sent, Acked, Duplicates, SendErrors, Reconnects, Rejected int64
}

// Sender streams events from a Queue.
type Sender struct {
	cfg   Config
	q     Queue
	log   *logrus.Entry
	mu    sync.Mutex
	stats Stats
	// Connected, when set, is told of each stream's start and end.
	Connected func(bool)
}

// New returns a Sender.
func New(cfg Config, q Queue, log *logrus.Entry) *Sender {
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	return &Sender{cfg: cfg, q: q, log: log}
}

// Stats returns the counters so far.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Sender) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// ErrRejected reports an event the aggregator refused as invalid: sending
// it again would fail again, so it is dropped from the spool and logged.
var ErrRejected = errors.New("event rejected by the aggregator")

// Run streams until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	probe := false
	for {
		start := time.Now()
		window := s.cfg.Window
		if probe {
			window = 1
		}
		pending, err := s.stream(ctx, window)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrRejected) {
			if probe && len(pending) == 1 {
				// Sent alone and refused: this event is the bad one. It
				// would be refused forever; drop it and say so.
				k := pending[0]
				s.log.WithError(err).WithFields(logrus.Fields{"boot_id": k.boot, "type": k.typ, "seq": k.seq}).
					Error("aggregator rejected an event as invalid; dropping it from the spool")
				if aerr := s.q.Ack(k.boot, k.typ, k.seq); aerr != nil {
					return fmt.Errorf("drop rejected event: %w", aerr)
				}
				s.count(func(st *Stats) { st.Rejected++ })
				probe = false
				continue
			}
			// Find the bad event by sending one at a time.
			probe = true
		} else if err == nil {
			probe = false
		}
		s.count(func(st *Stats) { st.SendErrors++; st.Reconnects++ })
		if time.Since(start) > 10*time.Second {
			backoff = s.cfg.MinBackoff
		}
		// Full jitter: a fleet of agents reconnecting after an aggregator
		// restart spreads out instead of arriving at once.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		s.log.WithError(err).WithField("retry_in", wait.Round(time.Millisecond).String()).Warn("aggregator stream ended")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

type key struct {
	boot string
	typ  string
	seq  int64
}

// stream runs one Stream call until it fails, with at most window events
// unacknowledged; it returns the keys still unacknowledged.
func (s *Sender) stream(ctx context.Context, window int) (pending []key, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := pb.NewIngestServiceClient(s.cfg.Conn)
	st, err := client.Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{
		Node: s.cfg.Node, BootId: s.cfg.BootID, AgentVersion: s.cfg.Version, BatchAcks: true}}}); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	if s.Connected != nil {
		s.Connected(true)
		defer s.Connected(false)
	}
	s.q.Rewind()
	var mu sync.Mutex
	inflight := map[key]bool{}
	defer func() {
		mu.Lock()
		for k := range inflight {
			pending = append(pending, k)
		}
		mu.Unlock()
	}()
	acked := make(chan struct{}, 1)
	recvErr := make(chan error, 1)
	// take removes an acknowledged event from the spool.
	take := func(k key, duplicate bool) error {
		mu.Lock()
		known := inflight[k]
		delete(inflight, k)
		mu.Unlock()
		if !known {
			return nil
		}
		if err := s.q.Ack(k.boot, k.typ, k.seq); err != nil {
			return fmt.Errorf("ack spool: %w", err)
		}
		s.count(func(st *Stats) {
			st.Acked++
			if duplicate {
				st.Duplicates++
			}
		})
		return nil
	}
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			// An aggregator of an earlier release acknowledges one event
			// per response, in its own fields; a newer one, asked by the
			// Hello, any number in acks.
			if acks := resp.GetAcks(); len(acks) > 0 {
				for _, a := range acks {
					err = take(key{a.GetBootId(), eventid.TypeFromPB(a.GetEventType(), ""), a.GetSeq()}, a.GetDuplicate())
					if err != nil {
						break
					}
				}
			} else {
				err = take(key{resp.GetBootId(), eventid.TypeFromPB(resp.GetEventType(), resp.GetType()), resp.GetSeq()}, resp.GetDuplicate())
			}
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case acked <- struct{}{}:
			default:
			}
		}
	}()
	for {
		mu.Lock()
		room := window - len(inflight)
		mu.Unlock()
		if room > 0 {
			for _, ev := range s.q.Next(room) {
				k := key{ev.GetBootId(), eventid.TypeOf(ev), ev.GetSeq()}
				mu.Lock()
				inflight[k] = true
				mu.Unlock()
				if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: ev}}); err != nil {
					return nil, classify(s.waitErr(err, recvErr))
				}
				s.count(func(st *Stats) { st.Sent++ })
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-recvErr:
			return nil, classify(err)
		case <-s.q.Notify():
		case <-acked:
		}
	}
}

func classify(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("aggregator closed the stream")
	}
	if status.Code(err) == codes.InvalidArgument {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return err
}

// waitErr prefers the stream's real status over the io.EOF that Send
// returns once the server has ended the stream.
func (s *Sender) waitErr(sendErr error, recvErr <-chan error) error {
	if !errors.Is(sendErr, io.EOF) {
		return sendErr
	}
	select {
	case err := <-recvErr:
		return err
	case <-time.After(5 * time.Second):
		return sendErr
	}
}
