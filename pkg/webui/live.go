package webui

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// liveEvent is the data of one "kill" message: enough to announce it.
type liveEvent struct {
	ID         string `json:"id"`
	Node       string `json:"node"`
	Time       string `json:"time"`
	Kind       string `json:"kind"`
	Collateral bool   `json:"collateral"`
	Victim     string `json:"victim"`
}

// serveLive streams server-sent events to a live page: "kill" for each
// newly stored event matching the page's filter (the page then fetches
// its fresh rows), and "reload" when the feed fell behind and dropped
// events (the page fetches its rows, which the store has in full). It
// ends when the client leaves or the aggregator shuts down; EventSource
// reconnects by itself.
func (u *UI) serveLive(w http.ResponseWriter, r *http.Request) {
	if u.feed == nil {
		u.fail(w, r, http.StatusNotFound, "Live updates are off.")
		return
	}
	p, f, ok := u.filtered(w, r, "pod")
	if !ok {
		return
	}
	flt := f.proto()
	if pod := strings.TrimSpace(p["pod"]); pod != "" {
		if len(pod) > maxName {
			u.fail(w, r, http.StatusBadRequest, "A pod name or UID is at most 253 characters.")
			return
		}
		flt.Pod = pod
		flt.Types = []string{eventid.TypeOOM, eventid.TypeExit}
	}
	if u.live.Add(1) > int64(u.opts.MaxLive) {
		u.live.Add(-1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "503 too many live pages open", http.StatusServiceUnavailable)
		return
	}
	defer u.live.Add(-1)
	sub, err := u.feed.Subscribe(flt, u.opts.LiveBuffer)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "503 live updates unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer sub.Close()

	rc := http.NewResponseController(w)
	send := func(msg string) error {
		if err := rc.SetWriteDeadline(time.Now().Add(u.opts.WriteTimeout)); err != nil {
			return err
		}
		if _, err := io.WriteString(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Tells nginx-style proxies not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if send("retry: 3000\n: live\n\n") != nil {
		return
	}
	tick := time.NewTicker(u.opts.Heartbeat)
	defer tick.Stop()
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Closing():
			return
		case <-sub.Behind():
			_ = send("event: reload\ndata: events were dropped; fetch the page again\n\n")
			return
		case <-tick.C:
			if send(": ping\n\n") != nil {
				return
			}
		case <-sub.Ready():
			var b strings.Builder
			for _, e := range sub.Take() {
				data, err := json.Marshal(liveOf(e))
				if err != nil {
					continue
				}
				fmt.Fprintf(&b, "event: kill\ndata: %s\n\n", data)
			}
			if b.Len() > 0 && send(b.String()) != nil {
				return
			}
		}
	}
}

func liveOf(e *pb.Event) liveEvent {
	out := liveEvent{ID: e.GetId(), Node: e.GetNode(), Time: e.GetTime().AsTime().UTC().Format(stampLayout)}
	switch {
	case e.GetOom() != nil:
		k := e.GetOom()
		out.Kind = kindLabel(wire.Kind(k), wire.Scope(k))
		out.Collateral = k.GetCollateral()
		if v := k.GetVictims(); len(v) > 0 {
			p := procOf(v[0])
			out.Victim = p.Name + " in " + p.Who.Label
		}
	case e.GetExit() != nil:
		x := e.GetExit()
		out.Kind = "exit " + wire.Why(x)
		out.Collateral = x.GetCollateral()
		out.Victim = whoOf(x.GetWorkload()).Label + fmt.Sprintf(" exited with code %d", x.GetExitCode())
	case e.GetWarning() != nil:
		// Live pages ask for kills and exits; a warning that comes anyway
		// reads as one.
		m := e.GetWarning()
		out.Kind = "warning " + vocab.WarningKind(m.GetWarningKind())
		out.Victim = m.GetSummary()
	}
	if out.Victim == "" {
		out.Victim = "a process"
	}
	return out
}
