package cri

import (
	"sync"

	eventsapi "github.com/containerd/containerd/api/events"
	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeBus is containerd's native event service as the fake runtime's
// socket serves it beside CRI: it sends every published envelope to every
// subscriber, as containerd does (the topic filter is applied here too).
type fakeBus struct {
	eventsv1.UnimplementedEventsServer
	mu   sync.Mutex
	subs []chan *types.Envelope
	// subscribed is closed at the first subscription.
	subscribed chan struct{}
	once       sync.Once
}

func newFakeBus() *fakeBus { return &fakeBus{subscribed: make(chan struct{})} }

func (b *fakeBus) Subscribe(_ *eventsv1.SubscribeRequest, s eventsv1.Events_SubscribeServer) error {
	ch := make(chan *types.Envelope, 64)
	b.mu.Lock()
	b.subs = append(b.subs, ch)
	b.mu.Unlock()
	b.once.Do(func() { close(b.subscribed) })
	for {
		select {
		case <-s.Context().Done():
			return nil
		case env := <-ch:
			if err := s.Send(env); err != nil {
				return err
			}
		}
	}
}

// exit publishes a TaskExit of process processID in container id.
func (b *fakeBus) exit(id, processID string, code uint32) {
	ev := &eventsapi.TaskExit{ContainerID: id, ID: processID, Pid: 4242, ExitStatus: code, ExitedAt: timestamppb.Now()}
	raw, err := proto.Marshal(ev)
	if err != nil {
		panic(err)
	}
	b.publish(&types.Envelope{Timestamp: timestamppb.Now(), Namespace: "k8s.io", Topic: taskExitTopic,
		Event: &anypb.Any{TypeUrl: taskExitType, Value: raw}})
}

func (b *fakeBus) publish(env *types.Envelope) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		ch <- env
	}
}
