// Package webui is the aggregator's web pages: the incidents of the fleet,
// newest first, updated live; an incident's kills with the memory each
// workload held; every kill that touched a pod. Pages are rendered on the
// server from html/template with a little plain JavaScript (live updates
// over server-sent events, fed by the aggregator's watch hub), and
// everything they need is embedded in the binary: no CDN, nothing fetched
// at run time. A filter form is a plain GET form, so the pages work
// without JavaScript.
package webui

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the pages read (package store).
type Store interface {
	List(ctx context.Context, f *pb.EventFilter, pageSize int, pageToken string) ([]*pb.Event, string, error)
	Get(ctx context.Context, id string) (*pb.Event, error)
	Incidents(ctx context.Context, f *pb.EventFilter, gap time.Duration, pageSize int, pageToken string) ([]*pb.Incident, string, error)
	IncidentOf(ctx context.Context, id string, gap time.Duration) (*store.IncidentKills, error)
}

// Feed is the live source of newly stored events (the aggregator's watch
// hub).
type Feed interface {
	// Subscribe starts a feed of the events matching f, queueing at most
	// buffer of them.
	Subscribe(f *pb.EventFilter, buffer int) (Subscription, error)
}

// Subscription is one live feed. It never blocks the producer: when its
// queue overflows, what was queued is dropped and Behind is closed.
type Subscription interface {
	// Ready holds a token when events may be waiting.
	Ready() <-chan struct{}
	// Behind is closed when events were dropped.
	Behind() <-chan struct{}
	// Closing is closed when the producer shuts down.
	Closing() <-chan struct{}
	// Take returns the queued events, oldest first.
	Take() []*pb.Event
	Close()
}

// Options tune the pages. Zero values take the defaults.
type Options struct {
	// Gap separates incidents, as in `oomctl incidents --gap`. Default
	// store.DefaultGap.
	Gap time.Duration
	// PageSize is how many incidents a page lists. Default 50.
	PageSize int
	// KillsPerPage is how many kills an incident page details. Default 25.
	KillsPerPage int
	// LiveBuffer bounds the events queued for one live page. Default 256.
	LiveBuffer int
	// MaxLive bounds the live pages open at once. Default 256.
	MaxLive int
	// Heartbeat is how often an idle live page is pinged. Default 20 s.
	Heartbeat time.Duration
	// WriteTimeout bounds writing one response or one live message.
	// Default 30 s.
	WriteTimeout time.Duration
	// Now is the clock the pages show ages by (tests). Default time.Now.
	// Write deadlines always use the real clock.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Gap <= 0 {
		o.Gap = store.DefaultGap
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.KillsPerPage <= 0 {
		o.KillsPerPage = 25
	}
	if o.LiveBuffer <= 0 {
		o.LiveBuffer = 256
	}
	if o.MaxLive <= 0 {
		o.MaxLive = 256
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 20 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// UI serves the pages. It is an http.Handler.
type UI struct {
	st    Store
	feed  Feed
	opts  Options
	log   *logrus.Entry
	pages map[string]*template.Template
	// assets are the static files by name, with their ETags.
	assets map[string]asset
	mux    *http.ServeMux
	live   atomic.Int64
}

type asset struct {
	body  []byte
	etag  string
	ctype string
}

// Page templates: each is rendered inside layout.html.
var pageNames = []string{"incidents", "incident", "pod", "warnings", "error"}

// New returns the pages over st; feed may be nil (no live updates).
func New(st Store, feed Feed, o Options, log *logrus.Entry) (*UI, error) {
	o.defaults()
	u := &UI{st: st, feed: feed, opts: o, log: log, pages: map[string]*template.Template{}, assets: map[string]asset{}}
	if err := u.loadAssets(); err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"asset": func(name string) string { return "/static/" + name + "?v=" + u.assets[name].etag },
	}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webui templates: %w", err)
		}
		u.pages[name] = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.incidents)
	mux.HandleFunc("GET /incidents/{node}/{boot}/{seq}", u.incident)
	mux.HandleFunc("GET /kills/{node}/{boot}/{seq}", u.kill)
	mux.HandleFunc("GET /kills/{node}/{boot}/{seq}/kernel.txt", u.kernel)
	mux.HandleFunc("GET /pods/{pod}", u.pod)
	mux.HandleFunc("GET /warnings", u.warnings)
	mux.HandleFunc("GET /live", u.serveLive)
	mux.HandleFunc("GET /static/{name}", u.static)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			u.fail(w, r, http.StatusMethodNotAllowed, "Only GET is served here.")
			return
		}
		u.fail(w, r, http.StatusNotFound, "There is no page at this address.")
	})
	u.mux = mux
	return u, nil
}

func (u *UI) loadAssets() error {
	return fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := "application/octet-stream"
		switch path.Ext(p) {
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		u.assets[path.Base(p)] = asset{body: b, etag: hex.EncodeToString(sum[:8]), ctype: ctype}
		return nil
	})
}

// ServeHTTP serves the pages. A panic in a handler is answered with 500
// and logged: the web UI never takes the aggregator down.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			u.log.WithField("path", r.URL.Path).Errorf("web UI handler panicked: %v", v)
			http.Error(w, "500 internal error", http.StatusInternalServerError)
		}
	}()
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	a, ok := u.assets[r.PathValue("name")]
	if !ok {
		u.fail(w, r, http.StatusNotFound, "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", `"`+a.etag+`"`)
	if r.URL.Query().Get("v") == a.etag {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// page is what every page template gets.
type page struct {
	Title string
	// Nav marks the current section.
	Nav  string
	Data any
	// Live is the server-sent events address of a page that updates.
	Live string
}

// render writes a page, or one of its templates alone (a live update),
// rendered in full before anything is written.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name, block string, p page) {
	var buf bytes.Buffer
	if block == "" {
		block = "layout"
	}
	if err := u.pages[name].ExecuteTemplate(&buf, block, p); err != nil {
		u.log.WithError(err).WithField("page", name).Error("web UI template failed")
		http.Error(w, "500 internal error: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	u.deadline(w)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	body := buf.Bytes()
	// A storm's incident page is large and compresses tenfold. The pages
	// hold no secret for a compression oracle to guess.
	if len(body) > 16<<10 && acceptsGzip(r) {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		_, _ = zw.Write(body)
		if zw.Close() == nil {
			h.Set("Content-Encoding", "gzip")
			body = z.Bytes()
		}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether the client takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// deadline bounds the writing of a response.
func (u *UI) deadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(u.opts.WriteTimeout))
}

// errorPage is the data of error.html.
type errorPage struct {
	Status  int
	Text    string
	Message string
}

// fail answers with an error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u.render(w, r, status, "error", "", page{Title: http.StatusText(status),
		Data: errorPage{Status: status, Text: http.StatusText(status), Message: msg}})
}

// badRequest is a query the pages cannot answer; its text says why.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// failErr answers with the page an error deserves.
func (u *UI) failErr(w http.ResponseWriter, r *http.Request, what string, err error) {
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		u.fail(w, r, http.StatusBadRequest, bad.msg)
	case errors.Is(err, store.ErrBadPageToken):
		u.fail(w, r, http.StatusBadRequest, "The page parameter is not one this aggregator made (or belongs to other filters). Start again from the first page.")
	case errors.Is(err, store.ErrInvalidFilter):
		u.fail(w, r, http.StatusBadRequest, "Invalid filter: "+err.Error())
	case errors.Is(err, store.ErrNotFound):
		u.fail(w, r, http.StatusNotFound, "No "+what+" has this address: it may never have existed, or it was deleted by the retention.")
	case r.Context().Err() != nil:
		// The client went away.
	default:
		u.log.WithError(err).WithField("path", r.URL.Path).Error("web UI query failed")
		u.fail(w, r, http.StatusInternalServerError, "The aggregator could not answer: "+strings.TrimSpace(err.Error()))
	}
}
