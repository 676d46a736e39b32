package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// TestProbes: /healthz is liveness alone; /readyz fails when either
// liveness or readiness does, with the reason in the body, and readiness
// is asked within ReadyTimeout.
func TestProbes(t *testing.T) {
	down := errors.New("database unreachable")
	stopping := errors.New("shutting down")
	for _, tc := range []struct {
		name              string
		probes            Probes
		healthz, readyz   int
		healthzS, readyzS string
	}{
		{"no checks", Probes{}, 200, 200, "ok", "ok"},
		{"not ready, still live", Probes{Ready: func(context.Context) error { return down }}, 200, 503, "ok", "database unreachable"},
		{"not live, so not ready", Probes{Live: func() error { return stopping }, Ready: func(context.Context) error { return nil }},
			503, 503, "shutting down", "shutting down"},
		{"no readiness: as liveness", Probes{Live: func() error { return stopping }}, 503, 503, "shutting down", "shutting down"},
		{"readiness has a deadline", Probes{Ready: func(ctx context.Context) error {
			d, ok := ctx.Deadline()
			if !ok || time.Until(d) > ReadyTimeout {
				return errors.New("no deadline")
			}
			return nil
		}}, 200, 200, "ok", "ok"},
		{"a readiness check that hangs is cut off", Probes{Ready: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}, 200, 503, "ok", "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- ServeProbes(ctx, ln, prometheus.NewRegistry(), tc.probes, logrus.NewEntry(logrus.New()))
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("ServeProbes: %v", err)
				}
			}()
			for _, c := range []struct {
				path string
				code int
				body string
			}{{"/healthz", tc.healthz, tc.healthzS}, {"/readyz", tc.readyz, tc.readyzS}} {
				resp, err := http.Get("http://" + ln.Addr().String() + c.path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.code || !strings.Contains(string(b), c.body) {
					t.Errorf("%s: %d %q, want %d %q", c.path, resp.StatusCode, b, c.code, c.body)
				}
			}
		})
	}
}
