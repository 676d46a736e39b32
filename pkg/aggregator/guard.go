package aggregator

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Where a panic was caught (the keys of Stats.Panics).
const (
	PanicRequest = "request" // a gRPC handler
	PanicCommit  = "commit"  // what runs after a commit (metrics, Kubernetes Events)
)

// recovered turns a panic into an error, counting it and logging its
// stack: whatever an event holds, one request fails, never the process.
func (s *Server) recovered(where string, r any) error {
	s.panicsMu.Lock()
	s.panics[where]++
	s.panicsMu.Unlock()
	s.log.WithField("where", where).WithField("panic", fmt.Sprint(r)).
		WithField("stack", string(debug.Stack())).Error("panic caught; the request failed, the aggregator goes on")
	if s.cfg.OnPanic != nil {
		s.cfg.OnPanic(where)
	}
	return status.Error(codes.Internal, "internal error (a panic, caught and counted)")
}

// guardOptions are the interceptors that catch panics in every handler.
func (s *Server) guardOptions() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, s.recovered(PanicRequest, r)
			}
		}()
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = s.recovered(PanicRequest, r)
			}
		}()
		return h(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

// afterCommit runs f (a hook of a committed event) so that a panic in it
// is caught and counted: the event is stored and acknowledged whatever a
// metric or a Kubernetes Event makes of it.
func (s *Server) afterCommit(f func()) {
	defer func() {
		if r := recover(); r != nil {
			_ = s.recovered(PanicCommit, r)
		}
	}()
	f()
}
