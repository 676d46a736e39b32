package wire

import (
	"errors"
	"slices"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Every word has its own enum value and back, every enum value but
// UNSPECIFIED has a word: the proto and the engine name the same things.
func TestEnumTablesAreOneToOne(t *testing.T) {
	check := func(name string, words []string, values map[string]int32, toPB func(string) int32, known func(string) bool) {
		t.Helper()
		seen := map[int32]string{}
		for _, w := range words {
			e := toPB(w)
			if e == 0 || !known(w) {
				t.Errorf("%s: %q has no enum value", name, w)
			}
			if o, dup := seen[e]; dup {
				t.Errorf("%s: %q and %q share %d", name, w, o, e)
			}
			seen[e] = w
		}
		for n, v := range values {
			if _, ok := seen[v]; !ok && v != 0 {
				t.Errorf("%s: enum %s has no word", name, n)
			}
		}
		if toPB("") != 0 || toPB("nonsense") != 0 || known("nonsense") {
			t.Errorf("%s: unknown words map to a value", name)
		}
	}
	check("kind", []string{analysis.KindNode, analysis.KindLimit, analysis.KindCpuset, analysis.KindMempolicy, analysis.KindUnknown},
		pb.OOMKind_value, func(s string) int32 { return int32(KindToPB(s)) }, KnownKind)
	check("scope", []string{analysis.ScopeContainer, analysis.ScopePod, analysis.ScopeOther, analysis.ScopeAllocatable},
		pb.LimitScope_value, func(s string) int32 { return int32(ScopeToPB(s)) }, KnownScope)
	check("source", []string{analysis.SourceTaskDump, analysis.SourceVictims, analysis.SourceTrigger, analysis.SourceIncident},
		pb.CulpritSource_value, func(s string) int32 { return int32(SourceToPB(s)) }, KnownSource)
	check("exit verdict", []string{"oom-limit", "oom-pod-limit", "oom-node", "oom-child", "not-oom", "graceful"},
		pb.ExitVerdict_value, func(s string) int32 { return int32(ExitVerdictToPB(s)) }, KnownExitVerdict)
}

// A reader takes the enum, and the string of an event of an earlier
// release.
func TestReadersPreferTheEnum(t *testing.T) {
	old := &pb.OOMKill{Kind: "limit", LimitScope: "pod", Culprit: &pb.Culprit{Source: "victims"}}
	if Kind(old) != "limit" || Scope(old) != "pod" || Source(old.GetCulprit()) != "victims" {
		t.Errorf("earlier release: %s %s %s", Kind(old), Scope(old), Source(old.GetCulprit()))
	}
	cur := &pb.OOMKill{OomKind: pb.OOMKind_OOM_KIND_NODE, Scope: pb.LimitScope_LIMIT_SCOPE_UNSPECIFIED}
	if Kind(cur) != "node" || Scope(cur) != "" {
		t.Errorf("this release: %q %q", Kind(cur), Scope(cur))
	}
	if Why(&pb.ContainerExit{Verdict: "graceful"}) != "graceful" || Why(&pb.ContainerExit{ExitVerdict: pb.ExitVerdict_EXIT_VERDICT_NOT_OOM}) != "not-oom" {
		t.Error("exit verdicts")
	}
	if IncidentKind(&pb.Incident{Kind: "limit"}) != "limit" || IncidentKind(&pb.Incident{OomKind: pb.OOMKind_OOM_KIND_NODE}) != "node" {
		t.Error("incident kinds")
	}
}

// An agent that sends an enum outside the API, or one that contradicts
// its string, is refused with the field named.
func TestCheckKill(t *testing.T) {
	for _, tc := range []struct {
		k     *pb.OOMKill
		field string
	}{
		{&pb.OOMKill{Kind: "limit", OomKind: pb.OOMKind_OOM_KIND_LIMIT, LimitScope: "pod", Scope: pb.LimitScope_LIMIT_SCOPE_POD}, ""},
		{&pb.OOMKill{Kind: "limit"}, ""},
		{&pb.OOMKill{OomKind: 99}, "oom_kind"},
		{&pb.OOMKill{Kind: "node", OomKind: pb.OOMKind_OOM_KIND_LIMIT}, "oom_kind"},
		{&pb.OOMKill{LimitScope: "container", Scope: pb.LimitScope_LIMIT_SCOPE_POD}, "scope"},
		{&pb.OOMKill{Culprit: &pb.Culprit{Source: "trigger", CulpritSource: pb.CulpritSource_CULPRIT_SOURCE_VICTIMS}}, "culprit.culprit_source"},
	} {
		field, err := CheckKill(tc.k)
		if field != tc.field || (err == nil) != (tc.field == "") {
			t.Errorf("%v: field %q (%v), want %q", tc.k, field, err, tc.field)
		}
	}
	if f, err := CheckExit(&pb.ContainerExit{Verdict: "oom-node", ExitVerdict: pb.ExitVerdict_EXIT_VERDICT_GRACEFUL}); f != "exit_verdict" || err == nil {
		t.Errorf("exit: %q %v", f, err)
	}
}

func TestFoldFilter(t *testing.T) {
	f := &pb.EventFilter{Types: []string{"exit"}, EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_OOM, pb.EventType_EVENT_TYPE_EXIT},
		ExitVerdicts: []pb.ExitVerdict{pb.ExitVerdict_EXIT_VERDICT_NOT_OOM}, OomKind: pb.OOMKind_OOM_KIND_LIMIT}
	if err := FoldFilter(f); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Types, []string{"exit", "oom"}) || !slices.Equal(f.Verdicts, []string{"not-oom"}) || f.Kind != "limit" ||
		f.OomKind != 0 || f.EventTypes != nil || f.ExitVerdicts != nil {
		t.Errorf("folded %v", f)
	}
	for _, bad := range []*pb.EventFilter{
		{OomKind: 42}, {EventTypes: []pb.EventType{9}}, {ExitVerdicts: []pb.ExitVerdict{77}},
		{Kind: "node", OomKind: pb.OOMKind_OOM_KIND_LIMIT},
		{WarningKinds: []pb.WarningKind{0}}, {WarningKinds: []pb.WarningKind{99}},
		{Types: []string{"oom"}, OpenWarningsOnly: true},
		{EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_EXIT}, WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST}},
	} {
		if err := FoldFilter(bad); !errors.Is(err, ErrFilter) {
			t.Errorf("%v: %v, want ErrFilter", bad, err)
		}
	}
	if FoldFilter(nil) != nil {
		t.Error("nil filter")
	}
	// warning_kinds and open_warnings_only imply the warning type.
	for _, f := range []*pb.EventFilter{
		{OpenWarningsOnly: true},
		{WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_NODE_LOW}},
		{Types: []string{"oom", "warning"}, OpenWarningsOnly: true},
		{EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_WARNING}, WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST}},
	} {
		if err := FoldFilter(f); err != nil || !slices.Equal(f.Types, []string{"warning"}) {
			t.Errorf("%v: %v, want types [warning]", f, err)
		}
	}
}
