package sample

import (
	"testing"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/sample/sampletest"
)

// The fixture trees are package sampletest's (the agent's tests use them
// too); these are the short names this package's tests use.

// tree is a sampletest.Tree with its paths at hand.
type tree struct {
	*sampletest.Tree
	root, proc string
	mode       cgroupstat.Mode
}

func newTree(tb testing.TB, mode cgroupstat.Mode) *tree {
	tb.Helper()
	t := sampletest.New(tb, mode)
	return &tree{Tree: t, root: t.Root, proc: t.Proc, mode: mode}
}

func (tr *tree) write(rel, content string) { tr.TB.Helper(); tr.Write(rel, content) }
func (tr *tree) dir(cg string) string      { return tr.Dir(cg) }
func (tr *tree) abs(cg string) string      { return tr.Abs(cg) }

// mem are a group's figures as the fixture writes them (sampletest.Mem).
type mem struct {
	usage, inactive int64
	limit, high     string
	highEvents      uint64
	maxEvents       uint64
	oom, oomKill    uint64
	underOOM        bool
	psi             string
}

// group writes the memory files of cgroup cg.
func (tr *tree) group(cg string, m mem) {
	tr.TB.Helper()
	tr.Group(cg, sampletest.Mem{Usage: m.usage, Inactive: m.inactive, Limit: m.limit, High: m.high,
		HighEvents: m.highEvents, MaxEvents: m.maxEvents, OOM: m.oom, OOMKill: m.oomKill, UnderOOM: m.underOOM, PSI: m.psi})
}

var (
	cgroupfsPaths = sampletest.CgroupfsPaths
	systemdPaths  = sampletest.SystemdPaths
)

const v1Unlimited = sampletest.V1Unlimited

func (tr *tree) writeProc(rel, content string) { tr.TB.Helper(); tr.WriteProc(rel, content) }
