package aggregator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// asCaller is a stream interceptor that makes the "test-identity"
// metadata the call's authenticated principal, as transport's
// authentication would from a certificate or a token.
func asCaller(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	md, _ := metadata.FromIncomingContext(ss.Context())
	if v := md.Get("test-identity"); len(v) > 0 {
		ss = callerStream{ss, transport.WithCaller(ss.Context(), transport.Principal{Name: "test:" + v[0], Role: transport.RoleAll})}
	}
	return h(srv, ss)
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c callerStream) Context() context.Context { return c.ctx }

func withCallers(cfg Config) Config {
	cfg.GRPCOptions = append(cfg.GRPCOptions, grpc.ChainStreamInterceptor(asCaller))
	return cfg
}

func TestHelloTimeout(t *testing.T) {
	e := start(t, Config{Limits: Limits{HelloTimeout: 300 * time.Millisecond}})
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Visible while it waits.
	waitFor(t, func() bool { return e.srv.LimitStats().AwaitingHello == 1 })
	_, err = st.Recv()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a stream without a Hello ended with %v, want DeadlineExceeded", err)
	}
	waitFor(t, func() bool { return e.srv.LimitStats().AwaitingHello == 0 })
	if got := e.srv.LimitStats().Refused[LimitHelloTimeout]; got != 1 {
		t.Fatalf("hello timeouts = %d, want 1", got)
	}
	// An agent that says Hello in time is served as before.
	a := e.agent(t, ctx, conn, "node-a")
	if err := a.send(oom("node-a", 1, "shop", "cart-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.acks(1); err != nil {
		t.Fatal(err)
	}
}

func TestIngestStreamsPerIdentity(t *testing.T) {
	e := start(t, withCallers(Config{Limits: Limits{MaxIngestStreamsPerIdentity: 3, HelloTimeout: time.Minute}}))
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func(token string) error {
		c := metadata.AppendToOutgoingContext(ctx, "test-identity", token)
		st, err := pb.NewIngestServiceClient(conn).Stream(c)
		if err != nil {
			return err
		}
		// Held without a Hello: still counted. A refused stream ends at
		// once; a held one is still open after a moment.
		got := make(chan error, 1)
		go func() { _, err := st.Recv(); got <- err }()
		select {
		case err := <-got:
			return err
		case <-time.After(300 * time.Millisecond):
			return nil
		}
	}
	for i := range 3 {
		if err := open("mallory"); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if err := open("mallory"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stream over the identity's bound: %v, want ResourceExhausted", err)
	}
	// Another identity is not affected.
	if err := open("alice"); err != nil {
		t.Fatalf("another identity's stream: %v", err)
	}
	if got := e.srv.LimitStats().Refused[LimitIngestPerIdentity]; got != 1 {
		t.Fatalf("refusals = %d, want 1", got)
	}
}

func TestWatchersBounded(t *testing.T) {
	e := start(t, withCallers(Config{Limits: Limits{MaxWatchersPerIdentity: 2, MaxWatchers: 3}}))
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch := func(token string) error {
		c := metadata.AppendToOutgoingContext(ctx, "test-identity", token)
		w, err := pb.NewQueryServiceClient(conn).Watch(c, &pb.WatchRequest{})
		if err != nil {
			return err
		}
		got := make(chan error, 1)
		go func() { _, err := w.Recv(); got <- err }()
		select {
		case err := <-got:
			return err
		case <-time.After(300 * time.Millisecond):
			return nil
		}
	}
	for _, tc := range []struct {
		token string
		want  codes.Code
	}{
		{"a", codes.OK}, {"a", codes.OK},
		{"a", codes.ResourceExhausted}, // per identity
		{"b", codes.OK},
		{"c", codes.ResourceExhausted}, // in total
	} {
		if err := watch(tc.token); status.Code(err) != tc.want {
			t.Fatalf("watch as %q: %v, want %v", tc.token, err, tc.want)
		}
	}
	ls := e.srv.LimitStats()
	if ls.Refused[LimitWatchPerIdentity] != 1 || ls.Refused[LimitWatchTotal] != 1 {
		t.Fatalf("refusals %v", ls.Refused)
	}
	if _, err := e.srv.Subscribe(&pb.EventFilter{}, 0); err != ErrTooManyWatchers {
		t.Fatalf("web feed over the total: %v, want ErrTooManyWatchers", err)
	}
}

// A shared identity that claims a new node name in every Hello still has
// one bucket over all of them.
func TestIdentityRateNotRotatable(t *testing.T) {
	e := start(t, Config{MaxEventsPerSecond: 1, MaxEventsBurst: 5,
		Limits: Limits{MaxEventsPerSecondPerIdentity: 1, MaxEventsBurstPerIdentity: 12}})
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acked := 0
	var last error
	for n := range 10 {
		node := fmt.Sprintf("node-%d", n)
		a := e.agent(t, ctx, conn, node)
		var evs []*pb.Event
		for i := range 5 {
			evs = append(evs, oom(node, int64(i), "shop", "cart"))
		}
		_ = a.send(evs...)
		got, err := a.acks(5)
		acked += len(got)
		if err != nil {
			last = err
			break
		}
		_ = a.st.CloseSend()
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Fatalf("rotating node names: ended with %v, want ResourceExhausted", last)
	}
	if acked < 12 || acked > 14 {
		t.Fatalf("%d events taken, want about the identity's burst (12)", acked)
	}
	if e.srv.LimitStats().Refused[LimitEventsPerIdentity] != 1 {
		t.Fatalf("refusals %v", e.srv.LimitStats().Refused)
	}
}

func TestQuota(t *testing.T) {
	q := newQuota(2, 3)
	steps := []struct {
		id, want string
	}{{"a", ""}, {"a", ""}, {"a", "identity"}, {"b", ""}, {"c", "total"}}
	for _, s := range steps {
		if got := q.acquire(s.id); got != s.want {
			t.Fatalf("acquire(%q) = %q, want %q", s.id, got, s.want)
		}
	}
	q.release("a")
	if got := q.acquire("c"); got != "" {
		t.Fatalf("after a release: %q", got)
	}
	if q.acquireTotal() {
		t.Fatal("acquireTotal over the total succeeded")
	}
}

// A stream message that is not protobuf is the client's error.
func TestMalformedMessageInvalidArgument(t *testing.T) {
	e := start(t, Config{})
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
		pb.IngestService_Stream_FullMethodName, grpc.ForceCodecV2(rawTestCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.SendMsg([]byte{0xff, 0xff, 0xff})
	var resp []byte
	if err := cs.RecvMsg(&resp); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed message: %v, want InvalidArgument", err)
	}
	// Well-formed streams are decoded as before.
	a := e.agent(t, ctx, conn, "node-a")
	if err := a.send(oom("node-a", 1, "shop", "cart-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.acks(1); err != nil {
		t.Fatal(err)
	}
}

type rawTestCodec struct{}

func (rawTestCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawTestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawTestCodec) Name() string { return "proto" }
