package webui

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// stream is one live connection, read line by line.
type stream struct {
	resp  *http.Response
	lines chan string
}

func (e *env) openLive(t *testing.T, query string) *stream {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/live" + query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &stream{resp: resp, lines: make(chan string, 100)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

// next returns the next line that is not blank, or "EOF".
func (s *stream) next(t *testing.T) string {
	t.Helper()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return "EOF"
			}
			if l != "" {
				return l
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no line in 10 s")
		}
	}
}

// waitSubscribed waits for n open subscriptions.
func (e *env) waitSubscribed(t *testing.T, n int) []*fakeSub {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		subs := e.feed.open()
		if len(subs) == n {
			return subs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", len(subs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLive(t *testing.T) {
	e := newEnv(t, Options{Heartbeat: 50 * time.Millisecond, MaxLive: 2})
	at := time.Date(2026, 11, 27, 8, 45, 0, 0, time.UTC)

	t.Run("kills matching the page", func(t *testing.T) {
		s := e.openLive(t, "?namespace=shop&collateral=1")
		if l := s.next(t); l != "retry: 3000" {
			t.Fatalf("first line %q", l)
		}
		subs := e.waitSubscribed(t, 1)
		if f := subs[0].f; f.GetNamespace() != "shop" || !f.GetCollateralOnly() || strings.Join(f.GetTypes(), ",") != "oom" {
			t.Fatalf("subscribed with %v", f)
		}
		other := named(50, at) // not collateral: filtered out
		match := named(51, at)
		match.GetOom().Collateral, match.GetOom().CollateralVerdict = true, pb.CollateralVerdict_COLLATERAL_VERDICT_YES
		match.Id = "node-b/11111111-2222-3333-4444-555555555555/oom/51"
		e.feed.publish(other, match)
		var got []string
		for len(got) < 2 {
			l := s.next(t)
			if strings.HasPrefix(l, ":") {
				continue // heartbeat
			}
			got = append(got, l)
		}
		if got[0] != "event: kill" || !strings.HasPrefix(got[1], "data: ") {
			t.Fatalf("message %q", got)
		}
		var ev liveEvent
		if err := json.Unmarshal([]byte(strings.TrimPrefix(got[1], "data: ")), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != match.GetId() {
			t.Fatalf("event %+v, want the collateral kill", ev)
		}
		if ev.Node != "node-b" || !ev.Collateral || ev.Victim != "java (pid 4051) in pod shop/cart-7d9 › api" || ev.Kind != "limit · container" {
			t.Fatalf("event %+v", ev)
		}
		// Idle: pings keep proxies from closing the stream.
		for {
			if l := s.next(t); l == ": ping" {
				break
			}
		}
		s.resp.Body.Close()
		e.waitSubscribed(t, 0)
	})

	t.Run("a page that fell behind reloads", func(t *testing.T) {
		s := e.openLive(t, "")
		s.next(t)
		subs := e.waitSubscribed(t, 1)
		close(subs[0].behind)
		for {
			l := s.next(t)
			if l == "event: reload" {
				break
			}
			if l == "EOF" {
				t.Fatal("ended without a reload")
			}
		}
		for {
			if l := s.next(t); l == "EOF" {
				break
			}
		}
		e.waitSubscribed(t, 0)
	})

	t.Run("shutdown ends the stream", func(t *testing.T) {
		s := e.openLive(t, "?pod=cart-7d9")
		s.next(t)
		subs := e.waitSubscribed(t, 1)
		if f := subs[0].f; f.GetPod() != "cart-7d9" || strings.Join(f.GetTypes(), ",") != "oom,exit" {
			t.Fatalf("pod page subscribed with %v", f)
		}
		close(subs[0].closing)
		for {
			if l := s.next(t); l == "EOF" {
				break
			}
		}
		e.waitSubscribed(t, 0)
	})

	t.Run("bounded", func(t *testing.T) {
		a := e.openLive(t, "")
		b := e.openLive(t, "")
		a.next(t)
		b.next(t)
		e.waitSubscribed(t, 2)
		resp, err := http.Get(e.srv.URL + "/live")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("third live page: status %d, want 503", resp.StatusCode)
		}
		a.resp.Body.Close()
		b.resp.Body.Close()
		e.waitSubscribed(t, 0)
	})

	t.Run("refused", func(t *testing.T) {
		for query, want := range map[string]int{"?kind=x": 400, "?pods=x": 400} {
			resp, err := http.Get(e.srv.URL + "/live" + query)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s: status %d, want %d", query, resp.StatusCode, want)
			}
		}
		e.feed.mu.Lock()
		e.feed.err = errors.New("aggregator shutting down")
		e.feed.mu.Unlock()
		defer func() {
			e.feed.mu.Lock()
			e.feed.err = nil
			e.feed.mu.Unlock()
		}()
		resp, err := http.Get(e.srv.URL + "/live")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("feed refusing: status %d", resp.StatusCode)
		}
	})
}
