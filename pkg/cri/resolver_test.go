package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
)

const unreachableMsg = "container runtime unreachable; names unavailable"

func countMsg(entries []*logrus.Entry, msg string) int {
	n := 0
	for _, e := range entries {
		if e.Message == msg {
			n++
		}
	}
	return n
}

func TestResolverWithoutRuntime(t *testing.T) {
	ctx := context.Background()
	// No socket: Dial fails with ErrUnavailable and the agent goes on with
	// a resolver over no cache.
	_, err := Dial(ctx, filepath.Join(t.TempDir(), "containerd.sock"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Dial error = %v, want ErrUnavailable", err)
	}
	log, hook := testLog()
	r := NewResolver(nil, log)
	for i := 0; i < 3; i++ {
		if _, ok := r.Container(ctx, cdContainer); ok {
			t.Fatal("found a container without a runtime")
		}
		if _, ok := r.Pod(ctx, cdPodUID); ok {
			t.Fatal("found a pod without a runtime")
		}
	}
	if n := countMsg(hook.AllEntries(), unreachableMsg); n != 1 {
		t.Errorf("logged %q %d times, want once", unreachableMsg, n)
	}
}

func TestResolverRuntimeGoneAway(t *testing.T) {
	f, sock := containerdFake(t)
	log, hook := testLog()
	cl := dialFake(t, sock)
	c := NewCache(cl.Runtime(), log, CacheOptions{})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(c, log)
	if x, ok := r.Container(ctx, cdContainer); !ok || x.Name != "api" {
		t.Fatalf("Container = %+v, %v", x, ok)
	}
	// The runtime goes away: cached entries still resolve, misses log once.
	f.setListErr(errors.New("gone"))
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, ok := r.Container(ctx, "ffffffffffff"); ok {
			t.Fatal("found an unknown container")
		}
		r.mu.Lock()
		r.lastRefresh = r.lastRefresh.Add(-2 * missRefreshEvery) // let it retry
		r.mu.Unlock()
	}
	if _, ok := r.Container(ctx, cdContainer); !ok {
		t.Error("a cached container stopped resolving when the runtime went away")
	}
	if n := countMsg(hook.AllEntries(), unreachableMsg); n != 1 {
		t.Errorf("logged %q %d times, want once", unreachableMsg, n)
	}
}

func TestResolverRefreshesOnMiss(t *testing.T) {
	f, sock := containerdFake(t)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(c, log)
	// Created after the last poll, OOM-killed before the next one.
	f.addPod(sandbox("sb2", "uid2", "shop", "late", nil, nil), `{}`)
	f.addCtr("sb2", running("c2c2c2c2", "late", "img", nil), `{}`)
	x, ok := r.Container(ctx, "c2c2c2c2")
	if !ok || x.PodName != "late" {
		t.Fatalf("Container after a miss = %+v, %v", x, ok)
	}
	if _, ok := r.Pod(ctx, "uid2"); !ok {
		t.Fatal("pod not found")
	}
	// A second miss within the second does not list again.
	n := f.callCount("ListContainers")
	if _, ok := r.Container(ctx, "0000000000"); ok {
		t.Fatal("found an unknown container")
	}
	if got := f.callCount("ListContainers"); got != n {
		t.Errorf("ListContainers called %d more times within the rate limit", got-n)
	}
}

// Refresh (an OOM report starts) lists the runtime's containers at once, so
// a container removed right after its kill is still resolved from the
// cache; within 200 ms it does not list again.
func TestResolverRefreshBeforeRemoval(t *testing.T) {
	f, sock := containerdFake(t)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(c, log)
	f.addPod(sandbox("sb3", "uid3", "batch", "job-x7", nil, nil), `{}`)
	f.addCtr("sb3", running("c3c3c3c3", "migrate", "img", nil), `{}`)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	n := f.callCount("ListContainers")
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.callCount("ListContainers"); got != n {
		t.Errorf("listed %d more times within 200 ms", got-n)
	}
	// The Job's pod is deleted at once.
	f.removeCtr("c3c3c3c3")
	f.removePod("sb3")
	if x, ok := r.Container(ctx, "c3c3c3c3"); !ok || x.Name != "migrate" || x.PodName != "job-x7" {
		t.Fatalf("Container after removal = %+v, %v", x, ok)
	}
}

// ContainerNow lists the runtime on a miss even right after a listing: a
// kill just attributed to a container started since.
func TestResolverContainerNow(t *testing.T) {
	f, sock := containerdFake(t)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	ctx := context.Background()
	r := NewResolver(c, log)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f.addPod(sandbox("sb4", "uid4", "batch", "job-y2", nil, nil), `{}`)
	f.addCtr("sb4", running("c4c4c4c4", "migrate", "img", nil), `{}`)
	if x, ok := r.ContainerNow(ctx, "c4c4c4c4"); !ok || x.PodName != "job-y2" {
		t.Fatalf("ContainerNow = %+v, %v", x, ok)
	}
	n := f.callCount("ListContainers")
	if _, ok := r.ContainerNow(ctx, "c4c4c4c4"); !ok || f.callCount("ListContainers") != n {
		t.Fatal("a known container made the runtime list again")
	}
}
