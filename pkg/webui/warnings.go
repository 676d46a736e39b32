package webui

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// warningsData is the "At risk" page: the open warnings, as `oomctl
// warnings` lists them.
type warningsData struct {
	Node, Namespace, Kind string
	All                   bool
	Kinds                 []option
	Rows                  []warningRow
	// More is set when the page shows only the newest of more warnings.
	More bool
}

// warningRow is one warning of the page.
type warningRow struct {
	ID       string
	Kind     string
	Node     string
	Who      who
	NodeOnly bool
	Figures  string
	Since    string
	Datetime string
	State    string
	Summary  string
}

// warnedLine is one warning that preceded a kill, on its card.
type warnedLine struct {
	Lead     string // "-4m12s"
	Kind     string
	Sentence string
	State    string
}

// warningKindWords are the kinds the page's form offers.
var warningKindWords = []string{"near-limit", "forecast", "limit-reclaim", "pressure", "node-low"}

// warnings is the "At risk" page: what is open now (all=1: also the
// resolved and stale warnings), newest first.
func (u *UI) warnings(w http.ResponseWriter, r *http.Request) {
	p, err := params(r.URL.RawQuery, "node", "namespace", "kind", "all")
	if err != nil {
		u.failErr(w, r, "", err)
		return
	}
	d := warningsData{Node: strings.TrimSpace(p["node"]), Namespace: strings.TrimSpace(p["namespace"]), Kind: p["kind"]}
	if len(d.Node) > maxName || len(d.Namespace) > maxName {
		u.fail(w, r, http.StatusBadRequest, "A node or namespace name is at most 253 characters.")
		return
	}
	f := &pb.EventFilter{Types: []string{eventid.TypeWarning}, Node: d.Node, Namespace: d.Namespace}
	if d.Kind != "" {
		k := vocab.WarningKindOf(d.Kind)
		if k == pb.WarningKind_WARNING_KIND_UNSPECIFIED {
			u.fail(w, r, http.StatusBadRequest, "Unknown kind "+d.Kind+": choose "+strings.Join(warningKindWords, ", ")+".")
			return
		}
		f.WarningKinds = []pb.WarningKind{k}
	}
	if d.All, err = checkbox(p["all"]); err != nil {
		u.fail(w, r, http.StatusBadRequest, "all: want 1 (also resolved warnings) or nothing.")
		return
	}
	f.OpenWarningsOnly = !d.All
	evs, next, err := u.st.List(r.Context(), f, u.opts.PageSize, "")
	if err != nil {
		u.failErr(w, r, "page", err)
		return
	}
	d.More = next != ""
	now := u.opts.Now()
	for _, e := range evs {
		if e.GetWarning() != nil {
			d.Rows = append(d.Rows, warningRowOf(e, now))
		}
	}
	for _, k := range append([]string{""}, warningKindWords...) {
		label := k
		if k == "" {
			label = "any"
		}
		d.Kinds = append(d.Kinds, option{Value: k, Label: label, Selected: k == d.Kind})
	}
	u.render(w, r, http.StatusOK, "warnings", "", page{Title: "At risk", Nav: "warnings", Data: d})
}

func warningRowOf(e *pb.Event, now time.Time) warningRow {
	m := e.GetWarning()
	out := warningRow{ID: e.GetId(), Kind: vocab.WarningKind(m.GetWarningKind()), Node: e.GetNode(),
		Figures: vocab.WarningFigures(m.GetWarningKind(), m.GetFigures()), State: vocab.WarningState(m, wire.IsStale(e, now)),
		Summary: m.GetSummary()}
	if out.Summary == "" {
		out.Summary = vocab.Warning(m)
	}
	if wl := m.GetWorkload(); wl.GetCgroup() != "" {
		out.Who = whoOf(wl)
	} else {
		out.NodeOnly = true
	}
	if s := m.GetSince(); s != nil {
		out.Since = age(now, s.AsTime())
		out.Datetime = s.AsTime().UTC().Format(time.RFC3339)
	}
	return out
}

// warnedOf is what a kill's card and timeline say of the warnings that
// preceded it: vocab.Preceding's words, capitalized, and a line each,
// oldest first.
func warnedOf(e *pb.Event) (string, []warnedLine) {
	o := e.GetOom()
	ws := slices.Clone(o.GetPrecedingWarnings())
	if len(ws) == 0 {
		return "", nil
	}
	slices.SortStableFunc(ws, func(a, b *pb.PrecedingWarning) int {
		return cmp.Compare(b.GetLead().AsDuration(), a.GetLead().AsDuration())
	})
	out := make([]warnedLine, len(ws))
	for i, w := range ws {
		out[i] = warnedLine{Lead: "-" + vocab.Duration(w.GetLead().AsDuration()), Kind: vocab.WarningKind(w.GetWarningKind()),
			Sentence: vocab.PrecedingSentence(w, vocab.PrecedingWho(o, w)), State: vocab.PrecedingState(w, e.GetTime().AsTime())}
	}
	s := vocab.Preceding(ws)
	return strings.ToUpper(s[:1]) + s[1:], out
}
