package aggregator

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	"github.com/oomwatch/oomwatch/pkg/transport"
)

// TestReadiness runs the aggregator with --metrics-addr over SQLite and
// over PostgreSQL reached through a relay: /readyz follows the database
// (503 with a short reason while it is cut off, 200 once it is back),
// /healthz stays 200 throughout (liveness must not restart every replica
// in a database outage).
func TestReadiness(t *testing.T) {
	t.Run("sqlite is ready once open", func(t *testing.T) {
		a := runWithMetrics(t, filepath.Join(t.TempDir(), "oomwatch.db"))
		waitProbe(t, a, "/readyz", 200, "ok")
		waitProbe(t, a, "/healthz", 200, "ok")
	})
	t.Run("postgres", func(t *testing.T) {
		proxy, db := pgtest.NewProxy(t, pgtest.DB(t))
		a := runWithMetrics(t, db)
		waitProbe(t, a, "/readyz", 200, "ok")
		for range 2 {
			proxy.Cut()
			waitProbe(t, a, "/readyz", 503, "database unreachable")
			waitProbe(t, a, "/healthz", 200, "ok")
			if err := proxy.Restore(); err != nil {
				t.Fatal(err)
			}
			waitProbe(t, a, "/readyz", 200, "ok")
		}
	})
}

// runWithMetrics runs an aggregator on db with a metrics listener, until
// the test ends, and returns the listener's address.
func runWithMetrics(t *testing.T, db string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := Options{Listen: "127.0.0.1:0", DB: db, LogLevel: "info", MetricsAddr: addr, Transport: transport.Options{Insecure: true}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	agg, err := NewAggregator(ctx, o, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	return addr
}

// waitProbe waits (at most 15 s) for path on the metrics listener at addr
// to answer code with a body containing body.
func waitProbe(t *testing.T, addr, path string, code int, body string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + addr + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code && strings.Contains(string(b), body) {
				return
			}
			last = resp.Status + " " + strings.TrimSpace(string(b))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s, want %d %q", path, last, code, body)
}
