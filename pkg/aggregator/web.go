package aggregator

import (
	"context"
	"errors"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/connlimit"
	"github.com/oomwatch/oomwatch/pkg/transport"
	"github.com/oomwatch/oomwatch/pkg/webui"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// ErrShuttingDown: the server is draining and takes no new subscription.
var ErrShuttingDown = errors.New("aggregator shutting down")

// ErrTooManyWatchers: the aggregator serves Limits.MaxWatchers already.
var ErrTooManyWatchers = errors.New("too many live feeds open; retry later")

// Subscription is a live feed of the events committed from its start on
// that match its filter, for the web UI's server-sent events. Like a
// Watch call it never slows ingest: its queue is bounded, and when it
// would overflow the queue is dropped and Behind is closed, telling the
// consumer to reload what it shows from the store.
type Subscription struct {
	s    *Server
	w    *watcher
	once sync.Once
}

// Subscribe starts a feed of the events matching f, queueing at most
// buffer of them (0: Config.WatchBuffer). The caller must Close it.
func (s *Server) Subscribe(f *pb.EventFilter, buffer int) (*Subscription, error) {
	if s.isDraining() {
		return nil, ErrShuttingDown
	}
	if err := validateFilter(f); err != nil {
		return nil, err
	}
	if buffer <= 0 {
		buffer = s.cfg.WatchBuffer
	}
	if !s.watchQuota.acquireTotal() {
		s.limits.refuse(LimitWatchTotal)
		return nil, ErrTooManyWatchers
	}
	s.watchers.Add(1)
	return &Subscription{s: s, w: s.hub.add(f, buffer)}, nil
}

// Ready holds a token when events may be waiting for Take.
func (sub *Subscription) Ready() <-chan struct{} { return sub.w.ready }

// Behind is closed when the queue overflowed: events were dropped and no
// more come.
func (sub *Subscription) Behind() <-chan struct{} { return sub.w.behind }

// Closing is closed when the server begins to shut down.
func (sub *Subscription) Closing() <-chan struct{} { return sub.s.draining }

// Take empties the queue and returns what it held, oldest first.
func (sub *Subscription) Take() []*pb.Event { return sub.w.take() }

// Close ends the feed; it may be called more than once.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		sub.s.hub.remove(sub.w)
		sub.s.watchers.Add(-1)
		sub.s.watchQuota.releaseTotal()
		select {
		case <-sub.w.behind:
			sub.s.watchersDropped.Add(1)
		default:
		}
	})
}

// webFeed gives the web UI the server's live events.
type webFeed struct{ s *Server }

// Subscribe implements webui.Feed.
func (f webFeed) Subscribe(flt *pb.EventFilter, buffer int) (webui.Subscription, error) {
	sub, err := f.s.Subscribe(flt, buffer)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// newWeb builds the web UI's server and opens its listener: plaintext
// or TLS (mutual TLS with a client CA) and the bearer token, as gRPC.
func (a *Aggregator) newWeb() error {
	tlsCfg, err := transport.HTTPServerTLS(a.opts.Transport)
	if err != nil {
		return err
	}
	ui, err := webui.New(a.st, webFeed{a.srv}, webui.Options{}, a.log.WithField("component", "webui"))
	if err != nil {
		return err
	}
	h, err := transport.HTTPAuth(a.opts.Transport, transport.RoleReader, ui)
	if err != nil {
		return err
	}
	raw, err := net.Listen("tcp", a.opts.HTTPAddr)
	if err != nil {
		return err
	}
	lis, err := connlimit.New(raw, a.opts.Limits.MaxWebConnections)
	if err != nil {
		raw.Close()
		return err
	}
	a.webLis, a.webCap = lis, lis
	// No WriteTimeout: live pages stay open; each response and each live
	// message bounds its own writing.
	a.web = &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(debugWriter{a.log.WithField("component", "webui")}, "", 0),
	}
	return nil
}

// HTTPAddr returns the web UI's address, or nil when it is off.
func (a *Aggregator) HTTPAddr() net.Addr {
	if a.webLis == nil {
		return nil
	}
	return a.webLis.Addr()
}

// serveWeb serves the web UI until ctx ends. Live pages end when the gRPC
// server begins to drain; other requests get a few seconds to finish.
func (a *Aggregator) serveWeb(ctx context.Context) error {
	log := a.log.WithFields(logrus.Fields{"component": "webui", "addr": a.webLis.Addr().String()})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.web.Shutdown(sctx); err != nil {
			a.web.Close()
		}
	}()
	var err error
	if a.web.TLSConfig != nil {
		log.Info("serving the web UI over HTTPS")
		err = a.web.ServeTLS(a.webLis, "", "")
	} else {
		if a.opts.Transport.Token == "" && a.opts.Transport.TokenFile == "" {
			log.Warn("--insecure: the web UI is served over plaintext HTTP, without authentication")
		} else {
			log.Warn("--insecure: the web UI is served over plaintext HTTP; the token crosses the network in the clear")
		}
		err = a.web.Serve(a.webLis)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// debugWriter logs the HTTP server's own messages (TLS handshake errors of
// scanners, mostly) at debug level.
type debugWriter struct{ log *logrus.Entry }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
