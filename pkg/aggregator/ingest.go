package aggregator

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// gate admits a stream's events until shutdown closes it, counting them so
// that the stream acknowledges every event admitted before it ends.
type gate struct {
	mu       sync.Mutex
	closed   bool
	admitted int
}

func (g *gate) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.admitted++
	return true
}

// close stops admitting and returns how many were admitted.
func (g *gate) close() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.admitted
}

// Stream takes one agent's events. The first message must be a Hello
// naming the node (which, with mutual TLS, the client certificate must
// name too) and boot; then every event is validated, rate-limited per
// node, committed with those of the other streams, and acknowledged once
// durable. An invalid event ends the stream with codes.InvalidArgument
// after the events before it are acknowledged; nothing of it is stored.
// An event of another node than the Hello's is refused with
// codes.PermissionDenied when the client certificate does not name that
// node either (mutual TLS), else with codes.InvalidArgument. A node over
// its rate gets codes.ResourceExhausted; shutdown, codes.Unavailable.
func (s *Server) Stream(st grpc.BidiStreamingServer[pb.StreamRequest, pb.StreamResponse]) error {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "aggregator shutting down")
	}
	ctx := st.Context()
	id := principal(ctx)
	// Refusals log at Debug: a flood must not become a flood of log
	// lines; they are counted (oomwatch_limit_refusals_total).
	switch s.ingestQuota.acquire(id) {
	case "identity":
		s.limits.refuse(LimitIngestPerIdentity)
		s.log.WithField("identity", id).Debug("ingest stream refused: the identity holds too many")
		return status.Errorf(codes.ResourceExhausted, "this identity holds %d ingest streams already; close some", s.cfg.Limits.MaxIngestStreamsPerIdentity)
	case "total":
		s.limits.refuse(LimitIngestTotal)
		s.log.WithField("identity", id).Debug("ingest stream refused: the aggregator holds its maximum")
		return status.Errorf(codes.ResourceExhausted, "the aggregator serves %d ingest streams already; retry later", s.cfg.Limits.MaxIngestStreams)
	}
	defer s.ingestQuota.release(id)
	first, err := s.recvHello(st)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if err := ValidateHello(hello); err != nil {
		s.reject(RejectHello)
		// Not InvalidArgument: that tells an agent one of its events is
		// bad; a bad Hello is its configuration.
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if err := transport.AuthorizeNode(ctx, hello.GetNode(), s.cfg.AgentIdentity); err != nil {
		s.reject(RejectPermission)
		return status.Error(codes.PermissionDenied, err.Error())
	}
	log := s.log.WithFields(logrus.Fields{"node": hello.GetNode(), "boot_id": hello.GetBootId(), "agent_version": hello.GetAgentVersion()})
	if p, ok := peer.FromContext(ctx); ok {
		log = log.WithField("peer", p.Addr.String())
	}
	s.streams.Add(1)
	defer s.streams.Add(-1)
	log.Info("agent connected")

	g := &gate{}
	pending := make(chan *ticket, s.cfg.StreamWindow)
	// term is how the stream ends, set by the reader before it closes
	// pending.
	var term error
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		defer close(pending)
		term = s.read(st, hello, id, g, pending, log)
	}()

	taken := 0
	// held is a ticket taken from pending while acknowledgements were
	// gathered, not yet committed: the next to acknowledge.
	var held *ticket
	ack := func(t *ticket) error {
		select {
		case <-t.done:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		if t.err != nil {
			return status.Errorf(codes.Unavailable, "store: %v", t.err)
		}
		if !hello.GetBatchAcks() {
			return st.Send(&pb.StreamResponse{BootId: t.key.bootID, Type: t.key.typ, EventType: eventid.TypeToPB(t.key.typ), Seq: t.key.seq,
				Duplicate: t.res.Duplicate})
		}
		// The events committed with t that follow it go in the same
		// response.
		acks := []*pb.Ack{t.ack()}
	gather:
		for len(acks) < maxAcksPerResponse {
			select {
			case next, ok := <-pending:
				if !ok {
					break gather
				}
				taken++
				if !next.committed() {
					// Not yet, or failed: acknowledged (or its error
					// returned) on its own, next.
					held = next
					break gather
				}
				acks = append(acks, next.ack())
			default:
				break gather
			}
		}
		return st.Send(&pb.StreamResponse{Acks: acks})
	}
	for {
		if held != nil {
			t := held
			held = nil
			if err := ack(t); err != nil {
				return err
			}
			continue
		}
		select {
		case t, ok := <-pending:
			if !ok {
				if term != nil {
					log.WithError(term).Info("agent stream ended")
				} else {
					log.Info("agent disconnected")
				}
				return term
			}
			taken++
			if err := ack(t); err != nil {
				return err
			}
		case <-s.draining:
			// Acknowledge what was admitted, then let the agent go.
			for n := g.close(); held != nil || taken < n; {
				t := held
				held = nil
				if t == nil {
					var ok bool
					if t, ok = <-pending; !ok {
						break
					}
					taken++
				}
				if err := ack(t); err != nil {
					return err
				}
			}
			log.Info("agent stream closed for shutdown")
			return status.Error(codes.Unavailable, "aggregator shutting down")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// read receives a stream's events and hands them to the committer and,
// in order, to the stream's acknowledger through pending. It returns how
// the stream should end: nil when the agent closed it.
func (s *Server) read(st grpc.BidiStreamingServer[pb.StreamRequest, pb.StreamResponse], hello *pb.Hello, id string, g *gate, pending chan<- *ticket, log *logrus.Entry) error {
	ctx := st.Context()
	for {
		req, f, err := recvRequest(st)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rec, err := s.accept(ctx, req.GetEvent(), eventWire(f.b), hello, id, g, log)
		f.free()
		if errors.Is(err, errNotAdmitted) {
			// Shutting down: not taken, not acknowledged; the agent sends
			// it again to the next aggregator.
			return nil
		}
		if err != nil {
			return err
		}
		// The ticket holds its weight until its commit, which bounds the
		// events and memory of all streams together (Config.MaxInFlight,
		// MaxInFlightBytes).
		t := newTicket(rec)
		if err := s.inflight.Acquire(ctx, t.weigh(s.cfg.MaxInFlight, s.cfg.MaxInFlightBytes)); err != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		if err := s.commit.submit(ctx, t); err != nil {
			s.inflight.Release(t.weight)
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return status.Error(codes.Unavailable, err.Error())
		}
		select {
		case pending <- t:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// eventSize is the size of an event as received: its encoding's, wire,
// or when that is not known its decoding's encoded again.
func eventSize(ev *pb.Event, wire []byte) int {
	if wire == nil {
		return proto.Size(ev)
	}
	return len(wire)
}

// errNotAdmitted: accept's event came while the aggregator shuts down.
var errNotAdmitted = errors.New("not admitted: shutting down")

// accept checks a stream's event, wire its encoding as received (nil when
// not known), against the stream's Hello and the rate limits, and encodes
// it for the store. Its error ends the stream (errNotAdmitted without an
// error to the agent).
func (s *Server) accept(ctx context.Context, ev *pb.Event, wire []byte, hello *pb.Hello, id string, g *gate, log *logrus.Entry) (*store.Record, error) {
	if ev == nil {
		s.reject(RejectInvalid)
		return nil, status.Error(codes.InvalidArgument, "only the first message may be a Hello; then events")
	}
	if ev.GetNode() != hello.GetNode() {
		// With mutual TLS, speaking for a node the certificate does
		// not name is a matter of permission, not of form.
		if err := transport.AuthorizeNode(ctx, ev.GetNode(), s.cfg.AgentIdentity); err != nil {
			s.reject(RejectPermission)
			log.WithError(err).Warn("event of another node refused")
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
	}
	if err := validateEvent(ev, eventSize(ev, wire), hello, s.cfg.Now(), s.cfg.MaxClockSkew); err != nil {
		reason := RejectInvalid
		if errors.Is(err, ErrWrongNode) {
			reason = RejectWrongNode
		}
		s.reject(reason)
		log.WithError(err).WithFields(logrus.Fields{"seq": ev.GetSeq(), "type": eventid.TypeOf(ev)}).Warn("event rejected")
		return nil, status.Errorf(codes.InvalidArgument, "event seq %d: %v", ev.GetSeq(), err)
	}
	// The rate is the authenticated identity's (limitKey); an
	// anonymous caller has its peer address's bucket besides
	// (idLimiter), so that rotating node names in Hellos gains
	// nothing either way.
	if !s.limiter.allow(limitKey(ctx, hello.GetNode())) {
		s.reject(RejectFlood)
		s.limits.refuse(LimitEventsPerNode)
		log.Warn("agent over its event rate; stream ended")
		return nil, status.Errorf(codes.ResourceExhausted, "%s is over %g events/s; slow down and retry", limitKey(ctx, hello.GetNode()), s.cfg.MaxEventsPerSecond)
	}
	if !s.idLimiter.allow(id) {
		s.reject(RejectFlood)
		s.limits.refuse(LimitEventsPerIdentity)
		log.WithField("identity", id).Warn("identity over its event rate; stream ended")
		return nil, status.Errorf(codes.ResourceExhausted, "this identity is over %g events/s over all its nodes; slow down and retry", s.cfg.Limits.MaxEventsPerSecondPerIdentity)
	}
	if !g.admit() {
		return nil, errNotAdmitted
	}
	// Encoding here, on each stream's goroutine, keeps it off the
	// single committer.
	rec, err := store.EncodeWire(ev, wire, s.cfg.Now())
	if err != nil {
		s.reject(RejectInvalid)
		return nil, status.Errorf(codes.InvalidArgument, "event seq %d: %v", ev.GetSeq(), err)
	}
	return rec, nil
}

// recvHello receives a stream's first message, waiting at most
// Limits.HelloTimeout: a stream that says nothing is ended with
// codes.DeadlineExceeded, and while it waits it is counted in
// LimitStats.AwaitingHello.
func (s *Server) recvHello(st grpc.BidiStreamingServer[pb.StreamRequest, pb.StreamResponse]) (*pb.StreamRequest, error) {
	s.limits.awaitingHello.Add(1)
	defer s.limits.awaitingHello.Add(-1)
	type received struct {
		req *pb.StreamRequest
		err error
	}
	// Buffered: when the handler gives up, the stream's end unblocks Recv
	// and the goroutine leaves without a reader.
	got := make(chan received, 1)
	go func() {
		req, err := st.Recv()
		got <- received{req, err}
	}()
	timer := time.NewTimer(s.cfg.Limits.HelloTimeout)
	defer timer.Stop()
	select {
	case r := <-got:
		return r.req, r.err
	case <-timer.C:
		s.limits.refuse(LimitHelloTimeout)
		return nil, status.Errorf(codes.DeadlineExceeded, "no Hello within %s of the stream's start", s.cfg.Limits.HelloTimeout)
	case <-s.draining:
		return nil, status.Error(codes.Unavailable, "aggregator shutting down")
	case <-st.Context().Done():
		return nil, status.FromContextError(st.Context().Err()).Err()
	}
}
