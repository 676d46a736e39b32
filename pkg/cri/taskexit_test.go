package cri

import (
	"context"
	"sync"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
)

func TestDecodeTaskExit(t *testing.T) {
	raw := func(ev *eventsapi.TaskExit) []byte {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	main := raw(&eventsapi.TaskExit{ContainerID: "c1", ID: "c1", ExitStatus: 137})
	for _, tc := range []struct {
		name, topic, url string
		value            []byte
		want             TaskExit
		ok               bool
	}{
		{"main process", taskExitTopic, "types.containerd.io/" + taskExitType, main, TaskExit{ContainerID: "c1", ExitCode: 137}, true},
		{"bare type name", taskExitTopic, taskExitType, main, TaskExit{ContainerID: "c1", ExitCode: 137}, true},
		{"exec'd process", taskExitTopic, taskExitType, raw(&eventsapi.TaskExit{ContainerID: "c1", ID: "probe-1", ExitStatus: 1}), TaskExit{}, false},
		{"other topic", "/tasks/oom", taskExitType, main, TaskExit{}, false},
		{"other type", taskExitTopic, "containerd.events.TaskOOM", main, TaskExit{}, false},
		{"garbage", taskExitTopic, taskExitType, []byte{0xff, 0xff, 0xff}, TaskExit{}, false},
		{"no container", taskExitTopic, taskExitType, raw(&eventsapi.TaskExit{ExitStatus: 9}), TaskExit{}, false},
		{"status beyond a byte", taskExitTopic, taskExitType, raw(&eventsapi.TaskExit{ContainerID: "c1", ExitStatus: 1 << 31}), TaskExit{ContainerID: "c1", ExitCode: 255}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeTaskExit(tc.topic, tc.url, tc.value)
			got.At = time.Time{}
			if ok != tc.ok || got != tc.want {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzDecodeTaskExit(f *testing.F) {
	b, _ := proto.Marshal(&eventsapi.TaskExit{ContainerID: "c1", ID: "c1", ExitStatus: 137})
	f.Add(b)
	f.Fuzz(func(t *testing.T, value []byte) {
		if te, ok := decodeTaskExit(taskExitTopic, taskExitType, value); ok && (te.ContainerID == "" || te.ExitCode < 0) {
			t.Errorf("decoded %+v", te)
		}
	})
}

// taskExitCache runs a cache over a containerd-like fake without a CRI
// event stream, whose polls never come again after the first: only the
// task exit events can tell it of an exit.
func taskExitCache(t *testing.T) (*fakeRuntime, *fakeBus, func() []Container, *Cache) {
	t.Helper()
	bus := newFakeBus()
	f := &fakeRuntime{name: "containerd", bus: bus}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "shop", "cart", nil, nil), `{}`)
	f.addCtr("sb1", running("c1", "api", "img", nil), `{}`)
	var mu sync.Mutex
	var exits []Container
	log, _ := testLog()
	client := dialFake(t, sock)
	c := NewCache(client.Runtime(), log, CacheOptions{PollInterval: time.Hour, TaskExits: client,
		OnExit: func(x Container) {
			mu.Lock()
			exits = append(exits, x)
			mu.Unlock()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "first refresh", func() bool { _, ok := c.Container("c1"); return ok })
	select {
	case <-bus.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the cache never subscribed to the task events")
	}
	return f, bus, func() []Container {
		mu.Lock()
		defer mu.Unlock()
		return append([]Container(nil), exits...)
	}, c
}

// The runtime removed the container before anyone asked (kubelet removes a
// deleted pod's containers at its next relist): the exit comes from the
// event alone, once.
func TestCacheTaskExitOfRemovedContainer(t *testing.T) {
	f, bus, exits, _ := taskExitCache(t)
	f.removeCtr("c1")
	bus.exit("c1", "c1", 137)
	bus.exit("c1", "c1", 137) // a repeat is no second exit
	waitFor(t, "the exit from the event", func() bool { return len(exits()) > 0 })
	time.Sleep(100 * time.Millisecond)
	got := exits()
	if len(got) != 1 {
		t.Fatalf("%d exits reported, want 1", len(got))
	}
	if x := got[0]; x.ID != "c1" || x.ExitCode != 137 || x.FinishedAt.IsZero() || x.PodName != "cart" || x.Name != "api" {
		t.Errorf("exit %+v", x)
	}
}

// A poll between the container's removal and the exit's event found it
// gone: the event still tells the exit.
func TestCacheTaskExitAfterAPollSawTheRemoval(t *testing.T) {
	f, bus, exits, c := taskExitCache(t)
	f.removeCtr("c1")
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if x, _ := c.Container("c1"); x.Removed.IsZero() {
		t.Fatal("the poll did not see the removal")
	}
	bus.exit("c1", "c1", 137)
	waitFor(t, "the exit from the event", func() bool { return len(exits()) > 0 })
	if x := exits()[0]; x.ExitCode != 137 || x.Name != "api" {
		t.Errorf("exit %+v", x)
	}
}

// A poll listed the container exited but its status was already gone
// (CI, containerd 1.6: stopped with 1 s, removed at once): the poll has no
// exit code and reports nothing; the exit's event still tells it, with
// its code.
func TestCacheTaskExitAfterAPollMissedTheStatus(t *testing.T) {
	f, bus, exits, c := taskExitCache(t)
	f.goneAfterListing("c1")
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := exits(); len(got) != 0 {
		t.Fatalf("the poll reported an exit it had no code for: %+v", got)
	}
	if x, _ := c.Container("c1"); x.State != StateExited {
		t.Fatalf("the poll did not keep the listing's exited state (or a check of the container would take it for running): %+v", x)
	}
	if err := c.Refresh(context.Background()); err != nil { // a second poll, still without the code
		t.Fatal(err)
	}
	if got := exits(); len(got) != 0 {
		t.Fatalf("the second poll reported an exit it had no code for: %+v", got)
	}
	f.removeCtr("c1")
	bus.exit("c1", "c1", 137)
	waitFor(t, "the exit from the event", func() bool { return len(exits()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if got := exits(); len(got) != 1 || got[0].ExitCode != 137 || got[0].Name != "api" || got[0].FinishedAt.IsZero() {
		t.Errorf("exits %+v, want one with code 137", got)
	}
}

// The runtime still has the container: the exit carries the runtime's own
// reason, from its status.
func TestCacheTaskExitConfirmedByStatus(t *testing.T) {
	f, bus, exits, _ := taskExitCache(t)
	bus.exit("c1", "probe", 1) // an exec'd probe ending is not the container's exit
	time.Sleep(300 * time.Millisecond)
	if n := len(exits()); n != 0 {
		t.Fatalf("an exec'd process's exit reported as the container's (%d exits)", n)
	}
	finished := time.Now().UnixNano()
	f.exit("c1", 137, "OOMKilled", finished)
	bus.exit("c1", "c1", 137)
	waitFor(t, "the exit", func() bool { return len(exits()) > 0 })
	if x := exits()[0]; x.ExitCode != 137 || x.Reason != "OOMKilled" || x.FinishedAt.UnixNano() != finished {
		t.Errorf("exit %+v, want the runtime's status", x)
	}
}

// A runtime that is not containerd (CRI-O) has no native event service:
// the cache polls, silently.
func TestCacheWithoutTaskEvents(t *testing.T) {
	f := &fakeRuntime{name: "cri-o"}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "shop", "cart", nil, nil), `{}`)
	log, hook := testLog()
	client := dialFake(t, sock)
	c := NewCache(client.Runtime(), log, CacheOptions{PollInterval: 10 * time.Millisecond, TaskExits: client})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	f.addCtr("sb1", running("c1", "api", "img", nil), `{}`)
	waitFor(t, "poll to find the container", func() bool { _, ok := c.Container("c1"); return ok })
	f.exit("c1", 137, "OOMKilled", time.Now().UnixNano())
	waitFor(t, "poll to see the exit", func() bool { x, _ := c.Container("c1"); return x.State == StateExited })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if w := entriesAt(hook, logrus.InfoLevel); len(w) != 0 {
		t.Errorf("logged above debug: %v", w[0].Message)
	}
}

// A poll listed the container exited without its code, and a later one
// got its status: the exit is reported then, once, with the runtime's code.
func TestCacheCodelessExitReportedByTheNextStatus(t *testing.T) {
	f, _, exits, c := taskExitCache(t)
	f.goneAfterListing("c1")
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	finished := time.Now().UnixNano()
	f.setStatusGone("c1", false)
	f.exit("c1", 137, "OOMKilled", finished)
	for range 2 {
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := exits()
	if len(got) != 1 || got[0].ExitCode != 137 || got[0].Reason != "OOMKilled" || got[0].FinishedAt.UnixNano() != finished {
		t.Errorf("exits %+v, want one with code 137 and the runtime's reason", got)
	}
}

// The runtime's CRI still says running after every wait (it lags its own
// event): the exit is taken from the event, once, rather than left to a
// poll that may come after kubelet removed the container.
func TestCacheTaskExitWhileStatusLags(t *testing.T) {
	d := exitConfirmDelays
	t.Cleanup(func() { exitConfirmDelays = d }) // after the cache's own cleanup has stopped it
	exitConfirmDelays = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	_, bus, exits, _ := taskExitCache(t)
	bus.exit("c1", "c1", 137)
	waitFor(t, "the exit from the event", func() bool { return len(exits()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if got := exits(); len(got) != 1 || got[0].ExitCode != 137 || got[0].Name != "api" || got[0].FinishedAt.IsZero() {
		t.Errorf("exits %+v, want one with code 137", got)
	}
}
