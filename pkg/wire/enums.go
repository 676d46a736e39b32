package wire

import (
	"errors"
	"fmt"
	"slices"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The API's enums and the words of the engine and of earlier releases'
// string fields, one table each: the only place they are paired. A writer
// sets both the enum and the string (readers of earlier releases read the
// string); a reader takes the enum, and the string of an event written
// before the enum existed.

// enumTable pairs an enum's values with their words.
type enumTable[E ~int32] struct {
	toPB   map[string]E
	fromPB map[E]string
}

func newTable[E ~int32](words map[string]E) enumTable[E] {
	t := enumTable[E]{toPB: words, fromPB: make(map[E]string, len(words))}
	for w, e := range words {
		t.fromPB[e] = w
	}
	return t
}

// pb is the enum of a word; 0 (UNSPECIFIED) for "" and unknown words.
func (t enumTable[E]) pb(word string) E { return t.toPB[word] }

// word is the word of e, else old (the string field of an event written
// before the enum); "" for an unknown value without a string.
func (t enumTable[E]) word(e E, old string) string {
	if w, ok := t.fromPB[e]; ok {
		return w
	}
	return old
}

// Words reports whether word is one the table knows.
func (t enumTable[E]) known(word string) bool {
	_, ok := t.toPB[word]
	return ok
}

var (
	kinds = newTable(map[string]pb.OOMKind{
		analysis.KindNode: pb.OOMKind_OOM_KIND_NODE, analysis.KindLimit: pb.OOMKind_OOM_KIND_LIMIT,
		analysis.KindCpuset: pb.OOMKind_OOM_KIND_CPUSET, analysis.KindMempolicy: pb.OOMKind_OOM_KIND_MEMPOLICY,
		analysis.KindUnknown: pb.OOMKind_OOM_KIND_UNKNOWN,
	})
	scopes = newTable(map[string]pb.LimitScope{
		analysis.ScopeContainer: pb.LimitScope_LIMIT_SCOPE_CONTAINER, analysis.ScopePod: pb.LimitScope_LIMIT_SCOPE_POD,
		analysis.ScopeOther: pb.LimitScope_LIMIT_SCOPE_OTHER, analysis.ScopeAllocatable: pb.LimitScope_LIMIT_SCOPE_NODE_ALLOCATABLE,
	})
	sources = newTable(map[string]pb.CulpritSource{
		analysis.SourceTaskDump: pb.CulpritSource_CULPRIT_SOURCE_TASK_DUMP, analysis.SourceVictims: pb.CulpritSource_CULPRIT_SOURCE_VICTIMS,
		analysis.SourceTrigger: pb.CulpritSource_CULPRIT_SOURCE_TRIGGER, analysis.SourceIncident: pb.CulpritSource_CULPRIT_SOURCE_INCIDENT,
	})
	// The exit verdicts' words are package exits' Verdict* constants
	// (exits imports wire, so they are spelled here; a test of exits pairs
	// every one of them).
	exitVerdicts = newTable(map[string]pb.ExitVerdict{
		"oom-limit": pb.ExitVerdict_EXIT_VERDICT_OOM_LIMIT, "oom-pod-limit": pb.ExitVerdict_EXIT_VERDICT_OOM_POD_LIMIT,
		"oom-node": pb.ExitVerdict_EXIT_VERDICT_OOM_NODE, "oom-child": pb.ExitVerdict_EXIT_VERDICT_OOM_CHILD,
		"not-oom": pb.ExitVerdict_EXIT_VERDICT_NOT_OOM, "graceful": pb.ExitVerdict_EXIT_VERDICT_GRACEFUL,
	})
)

// KindToPB is an OOM kind's enum.
func KindToPB(kind string) pb.OOMKind { return kinds.pb(kind) }

// Kind is an OOM kill's kind (analysis.Kind*).
func Kind(k *pb.OOMKill) string { return kinds.word(k.GetOomKind(), k.GetKind()) }

// KnownKind reports whether kind is an OOM kind.
func KnownKind(kind string) bool { return kinds.known(kind) }

// IncidentKind is an incident's kind: node or limit.
func IncidentKind(in *pb.Incident) string { return kinds.word(in.GetOomKind(), in.GetKind()) }

// ScopeToPB is a limit scope's enum.
func ScopeToPB(scope string) pb.LimitScope { return scopes.pb(scope) }

// Scope is a limit kill's scope (analysis.Scope*), "" for other kills.
func Scope(k *pb.OOMKill) string { return scopes.word(k.GetScope(), k.GetLimitScope()) }

// KnownScope reports whether scope is a limit scope.
func KnownScope(scope string) bool { return scopes.known(scope) }

// SourceToPB is a culprit source's enum.
func SourceToPB(source string) pb.CulpritSource { return sources.pb(source) }

// Source is what a culprit was judged from (analysis.Source*).
func Source(c *pb.Culprit) string { return sources.word(c.GetCulpritSource(), c.GetSource()) }

// KnownSource reports whether source is a culprit source.
func KnownSource(source string) bool { return sources.known(source) }

// ExitVerdictToPB is an exit verdict's enum.
func ExitVerdictToPB(verdict string) pb.ExitVerdict { return exitVerdicts.pb(verdict) }

// Why is a container exit's verdict (package exits' Verdict* words).
func Why(x *pb.ContainerExit) string { return exitVerdicts.word(x.GetExitVerdict(), x.GetVerdict()) }

// KnownExitVerdict reports whether verdict is an exit verdict.
func KnownExitVerdict(verdict string) bool { return exitVerdicts.known(verdict) }

// ErrFilter is wrapped by FoldFilter for enum values it does not know.
var ErrFilter = errors.New("invalid filter")

// FoldFilter folds a filter's enum fields into its string fields, where
// the store reads them: a reader of this release may set either (oomctl
// and the web UI of earlier releases set the strings). It fails on an
// enum value outside the API, and on a kind given both ways, differently.
// warning_kinds and open_warnings_only imply the warning type: the types
// become [warning] when they are empty or name it, and the filter fails
// when they name other types only. Warning kinds stay enums (the store
// reads them).
func FoldFilter(f *pb.EventFilter) error {
	if f == nil {
		return nil
	}
	if e := f.GetOomKind(); e != pb.OOMKind_OOM_KIND_UNSPECIFIED {
		k, ok := kinds.fromPB[e]
		switch {
		case !ok:
			return fmt.Errorf("%w: oom_kind %d", ErrFilter, e)
		case f.GetKind() != "" && f.GetKind() != k:
			return fmt.Errorf("%w: kind %q and oom_kind %s disagree", ErrFilter, f.GetKind(), e)
		}
		f.Kind = k
	}
	for _, e := range f.GetEventTypes() {
		t := eventid.TypeFromPB(e, "")
		if t == "" {
			return fmt.Errorf("%w: event type %d", ErrFilter, e)
		}
		if !slices.Contains(f.Types, t) {
			f.Types = append(f.Types, t)
		}
	}
	for _, e := range f.GetExitVerdicts() {
		v, ok := exitVerdicts.fromPB[e]
		if !ok {
			return fmt.Errorf("%w: exit verdict %d", ErrFilter, e)
		}
		if !slices.Contains(f.Verdicts, v) {
			f.Verdicts = append(f.Verdicts, v)
		}
	}
	for _, k := range f.GetWarningKinds() {
		if _, ok := pb.WarningKind_name[int32(k)]; !ok || k == pb.WarningKind_WARNING_KIND_UNSPECIFIED {
			return fmt.Errorf("%w: warning kind %d", ErrFilter, k)
		}
	}
	if len(f.GetWarningKinds()) > 0 || f.GetOpenWarningsOnly() {
		if len(f.Types) > 0 && !slices.Contains(f.Types, eventid.TypeWarning) {
			return fmt.Errorf("%w: warning_kinds and open_warnings_only select warnings, types %v do not", ErrFilter, f.Types)
		}
		f.Types = []string{eventid.TypeWarning}
	}
	f.OomKind, f.EventTypes, f.ExitVerdicts = pb.OOMKind_OOM_KIND_UNSPECIFIED, nil, nil
	return nil
}

// check reports an enum value outside the API, or one that disagrees with
// the string field beside it.
func (t enumTable[E]) check(e E, old string) error {
	if e == 0 {
		return nil
	}
	w, ok := t.fromPB[e]
	switch {
	case !ok:
		return fmt.Errorf("unknown value %d", e)
	case old != "" && old != w:
		return fmt.Errorf("%q, but the string beside it says %q", w, old)
	}
	return nil
}

// CheckKill reports the first enum field of an OOM kill that is outside
// the API or disagrees with its string field.
func CheckKill(k *pb.OOMKill) (field string, err error) {
	if err := kinds.check(k.GetOomKind(), k.GetKind()); err != nil {
		return "oom_kind", err
	}
	if err := scopes.check(k.GetScope(), k.GetLimitScope()); err != nil {
		return "scope", err
	}
	if c := k.GetCulprit(); c != nil {
		if err := sources.check(c.GetCulpritSource(), c.GetSource()); err != nil {
			return "culprit.culprit_source", err
		}
	}
	return "", nil
}

// CheckExit is CheckKill for a container exit.
func CheckExit(x *pb.ContainerExit) (field string, err error) {
	if err := exitVerdicts.check(x.GetExitVerdict(), x.GetVerdict()); err != nil {
		return "exit_verdict", err
	}
	if c := x.GetCulprit(); c != nil {
		if err := sources.check(c.GetCulpritSource(), c.GetSource()); err != nil {
			return "culprit.culprit_source", err
		}
	}
	return "", nil
}
