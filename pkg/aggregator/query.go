package aggregator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/version"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Query limits.
const (
	// MaxFilterValues bounds a filter's types and verdicts.
	MaxFilterValues = 32
	// MaxPageTokenBytes bounds a page token.
	MaxPageTokenBytes = 1024
)

// validateFilter checks a filter as a status error.
func validateFilter(f *pb.EventFilter) error {
	if f == nil {
		return nil
	}
	if len(f.GetTypes())+len(f.GetEventTypes()) > MaxFilterValues || len(f.GetVerdicts())+len(f.GetExitVerdicts()) > MaxFilterValues ||
		len(f.GetWarningKinds()) > MaxFilterValues {
		return status.Errorf(codes.InvalidArgument, "filter: at most %d types, %d verdicts and %d warning kinds", MaxFilterValues, MaxFilterValues, MaxFilterValues)
	}
	if err := wire.FoldFilter(f); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	for _, v := range append([]string{f.GetNode(), f.GetNamespace(), f.GetPod(), f.GetKind(), f.GetContainer()}, f.GetVerdicts()...) {
		if len(v) > MaxStringBytes {
			return status.Errorf(codes.InvalidArgument, "filter: a value longer than %d bytes", MaxStringBytes)
		}
	}
	if err := store.ValidateFilter(f); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// pageSize checks a requested page size: 0 is the default, more than the
// maximum is the maximum.
func pageSize(n int32, token string) (int, error) {
	if n < 0 {
		return 0, status.Error(codes.InvalidArgument, "negative page_size")
	}
	if len(token) > MaxPageTokenBytes {
		return 0, status.Error(codes.InvalidArgument, "invalid page token")
	}
	switch {
	case n == 0:
		return store.DefaultPageSize, nil
	case n > store.MaxPageSize:
		return store.MaxPageSize, nil
	}
	return int(n), nil
}

// queryErr turns a store error into a status.
func (s *Server) queryErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, store.ErrBadPageToken), errors.Is(err, store.ErrInvalidFilter):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	s.log.WithError(err).Error(what + " failed")
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// ListEvents lists the events matching a filter, newest first.
func (s *Server) ListEvents(ctx context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	if err := validateFilter(req.GetFilter()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	evs, next, err := s.st.List(ctx, req.GetFilter(), size, req.GetPageToken())
	if err != nil {
		return nil, s.queryErr(ctx, "list events", err)
	}
	return &pb.ListEventsResponse{Events: evs, NextPageToken: next}, nil
}

// GetEvent returns one event by ID.
func (s *Server) GetEvent(ctx context.Context, req *pb.GetEventRequest) (*pb.GetEventResponse, error) {
	id := req.GetId()
	if id == "" || len(id) > 2*MaxStringBytes {
		return nil, status.Error(codes.InvalidArgument, "id must be <node>/<boot_id>/<type>/<seq>")
	}
	ev, err := s.st.Get(ctx, id)
	if err != nil {
		return nil, s.queryErr(ctx, "get event", err)
	}
	return &pb.GetEventResponse{Event: ev}, nil
}

// ListIncidents groups the OOM kills matching a filter into incidents,
// newest first.
func (s *Server) ListIncidents(ctx context.Context, req *pb.ListIncidentsRequest) (*pb.ListIncidentsResponse, error) {
	if err := validateFilter(req.GetFilter()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	gap := store.DefaultGap
	if g := req.GetGap(); g != nil {
		if g.CheckValid() != nil || g.AsDuration() < 0 {
			return nil, status.Error(codes.InvalidArgument, "gap must be a non-negative duration")
		}
		if g.AsDuration() > 0 {
			gap = g.AsDuration()
		}
	}
	in, next, err := s.st.Incidents(ctx, req.GetFilter(), gap, size, req.GetPageToken())
	if err != nil {
		return nil, s.queryErr(ctx, "list incidents", err)
	}
	return &pb.ListIncidentsResponse{Incidents: in, NextPageToken: next}, nil
}

// GetInfo tells the aggregator's version.
func (s *Server) GetInfo(context.Context, *pb.GetInfoRequest) (*pb.GetInfoResponse, error) {
	return &pb.GetInfoResponse{Version: version.String()}, nil
}
