package bench

import "fmt"

// Score is how a parser's findings on one input compare with its kills.
type Score struct {
	// Kills is the number of kills in the input.
	Kills int
	// Found counts kills reported at all (a finding with the victim's PID,
	// from a field or from event text).
	Found int
	// Extra counts findings that match no kill, or repeat one.
	Extra int
	// PIDs counts kills whose PID was reported in a field; PIDInText says
	// the parser gives PIDs only inside free text.
	PIDs      int
	PIDInText bool
	// CgroupKnown counts kills whose cgroup the kernel printed; Cgroups
	// those the parser attributed to that cgroup. NodeCgroupKnown and
	// NodeCgroups are the same for node-level kills alone.
	CgroupKnown, Cgroups         int
	NodeCgroupKnown, NodeCgroups int
	// Kinds counts kills reported as node-level or limit correctly;
	// KindInText says only the kill line's text tells.
	Kinds      int
	KindInText bool
}

// ScoreFindings scores findings against the kills of an input.
func ScoreFindings(kills []Kill, found []Finding) Score {
	s := Score{Kills: len(kills)}
	byPID := map[int][]Finding{}
	for _, f := range found {
		byPID[f.PID] = append(byPID[f.PID], f)
		s.PIDInText = s.PIDInText || f.PIDInText
		s.KindInText = s.KindInText || f.KindInText
	}
	seen := map[int]bool{}
	for _, k := range kills {
		if k.Cgroup != "" {
			s.CgroupKnown++
			if k.Kind == KindNode {
				s.NodeCgroupKnown++
			}
		}
		fs := byPID[k.PID]
		if len(fs) == 0 || seen[k.PID] {
			continue
		}
		seen[k.PID] = true
		s.Found++
		f := fs[0]
		if !f.PIDInText {
			s.PIDs++
		}
		if k.Cgroup != "" && f.Cgroup == k.Cgroup {
			s.Cgroups++
			if k.Kind == KindNode {
				s.NodeCgroups++
			}
		}
		if f.Kind == k.Kind {
			s.Kinds++
		}
	}
	s.Extra = len(found) - s.Found
	return s
}

// KillsCell renders found/kills, with extras.
func (s Score) KillsCell() string {
	if s.Kills == 0 && s.Extra == 0 {
		return "-"
	}
	c := fmt.Sprintf("%d/%d", s.Found, s.Kills)
	if s.Extra > 0 {
		c += fmt.Sprintf(" +%d", s.Extra)
	}
	return c
}

// PIDCell renders the PID column.
func (s Score) PIDCell() string {
	switch {
	case s.Kills == 0:
		return "-"
	case s.PIDInText:
		return "text only"
	}
	return fmt.Sprintf("%d/%d", s.PIDs, s.Kills)
}

// CgroupCell renders the cgroup column.
func (s Score) CgroupCell() string {
	if s.CgroupKnown == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", s.Cgroups, s.CgroupKnown)
}

// KindCell renders the node-vs-limit column.
func (s Score) KindCell() string {
	switch {
	case s.Kills == 0:
		return "-"
	case s.KindInText:
		return "text only"
	}
	return fmt.Sprintf("%d/%d", s.Kinds, s.Kills)
}
