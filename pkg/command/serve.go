package command

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// ServeHTTP serves h on ln until ctx ends, then shuts the server down,
// giving requests in flight 5 s. It returns nil once shut down, or the
// error that stopped it before. The agent's and the aggregator's metrics
// servers are both this.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *logrus.Entry) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.WithField("addr", ln.Addr().String()).Info("serving metrics")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
