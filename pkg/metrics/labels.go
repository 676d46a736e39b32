package metrics

import "sync"

// OtherLabel is the label value that stands for every value past a
// label's bound, or outside its fixed set.
const OtherLabel = "other"

// MaxNamespaceValues and MaxNodeValues bound the distinct values of the
// labels that come from what agents send: a hostile agent could otherwise
// make a series per event, kept forever. Past them a value is OtherLabel
// (the events themselves are stored and queryable as sent).
const (
	MaxNamespaceValues = 500
	MaxNodeValues      = 5000
)

// bounded hands out label values: the first MaxLabelValues distinct ones
// as they are, every later one as OtherLabel.
type bounded struct {
	mu   sync.Mutex
	seen map[string]struct{}
	max  int
}

func newBounded(max int) *bounded { return &bounded{seen: map[string]struct{}{}, max: max} }

func (b *bounded) value(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return OtherLabel
	}
	b.seen[v] = struct{}{}
	return v
}

// oneOf returns v when it is one of set ("" included), else OtherLabel.
func oneOf(v string, set ...string) string {
	if v == "" {
		return v
	}
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return OtherLabel
}

// Label value sets of the kernel's and kubelet's words.
var (
	kinds  = []string{"node", "limit", "cpuset", "mempolicy", "unknown"}
	scopes = []string{"container", "pod", "allocatable", "other"}
	qoses  = []string{"guaranteed", "burstable", "besteffort"}
)
