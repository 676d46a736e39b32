package webui

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Bounds of query parameters.
const (
	// maxName bounds a node, namespace or pod: a DNS subdomain.
	maxName = 253
	// maxParam bounds any other parameter (a page token).
	maxParam = 1024
)

// params reads a request's query: only the parameters the page knows,
// each at most once, valid UTF-8 and bounded. Anything else is a
// badRequest saying what was wrong.
func params(raw string, known ...string) (map[string]string, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badf("The query string is malformed: %v.", err)
	}
	out := make(map[string]string, len(q))
	for k, vs := range q {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return nil, badf("Unknown query parameter %q: this page takes none.", k)
			}
			return nil, badf("Unknown query parameter %q: this page takes %s.", k, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return nil, badf("The query parameter %q is given %d times; give it once.", k, len(vs))
		}
		v := vs[0]
		if len(v) > maxParam || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, badf("The query parameter %q is too long or has characters no name has.", k)
		}
		out[k] = v
	}
	return out, nil
}

// filter is the incidents page's filter form.
type filter struct {
	Node       string
	Namespace  string
	Kind       string
	Collateral bool
}

// kinds a filter may name; the form offers the first two.
var kinds = []string{analysis.KindNode, analysis.KindLimit, analysis.KindCpuset, analysis.KindMempolicy, analysis.KindUnknown}

// filtered reads a page's query: the filter's parameters and the page's
// own (extra). On a bad one it answers the request and returns false.
func (u *UI) filtered(w http.ResponseWriter, r *http.Request, extra ...string) (map[string]string, filter, bool) {
	p, err := params(r.URL.RawQuery, slices.Concat(filterParams, extra)...)
	if err == nil {
		var f filter
		if f, err = filterOf(p); err == nil {
			return p, f, true
		}
	}
	u.failErr(w, r, "", err)
	return nil, filter{}, false
}

// filterParams are the parameters filterOf reads.
var filterParams = []string{"node", "namespace", "kind", "collateral"}

// filterOf reads the filter's parameters.
func filterOf(p map[string]string) (filter, error) {
	f := filter{Node: strings.TrimSpace(p["node"]), Namespace: strings.TrimSpace(p["namespace"]), Kind: p["kind"]}
	if len(f.Node) > maxName || len(f.Namespace) > maxName {
		return filter{}, badf("A node or namespace name is at most %d characters.", maxName)
	}
	if f.Kind != "" && !slices.Contains(kinds, f.Kind) {
		return filter{}, badf("Unknown kind %q: choose node (node-level) or limit.", f.Kind)
	}
	var err error
	if f.Collateral, err = checkbox(p["collateral"]); err != nil {
		return filter{}, badf("collateral=%q: want 1 (only collateral kills) or nothing.", p["collateral"])
	}
	return f, nil
}

// checkbox reads a checkbox.
func checkbox(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "0", "false", "off":
		return false, nil
	case "1", "true", "on", "yes":
		return true, nil
	}
	return false, strconv.ErrSyntax
}

// Any reports whether the filter selects anything.
func (f filter) Any() bool { return f != filter{} }

// proto is the store's filter of OOM kills.
func (f filter) proto() *pb.EventFilter {
	return &pb.EventFilter{Node: f.Node, Namespace: f.Namespace, Kind: f.Kind, CollateralOnly: f.Collateral, Types: []string{"oom"}}
}

// values are the filter's query parameters, for links.
func (f filter) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("node", f.Node)
	set("namespace", f.Namespace)
	set("kind", f.Kind)
	if f.Collateral {
		v.Set("collateral", "1")
	}
	return v
}

// with returns "path?query" of the values plus one more.
func with(path string, v url.Values, key, val string) string {
	q := url.Values{}
	for k, vs := range v {
		q[k] = vs
	}
	if val != "" {
		q.Set(key, val)
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
