package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// killOf is the OOM kill an exit names, when the story saw it and it had
// warnings: the exit's own kill, else (an oom-child story) its first
// victim's.
func (s *story) killOf(x *pb.ContainerExit) *pb.Event {
	if k := s.kills[x.GetOomEventId()]; k != nil {
		return k
	}
	for _, v := range x.GetVictims() {
		if k := s.kills[v.GetOomEventId()]; k != nil {
			return k
		}
	}
	return nil
}

// printWarnings writes the warnings that preceded a kill, oldest first,
// under its explanation: what vocab.Preceding says of them, then a line
// each with its lead time, kind and sentence. A kill without warnings
// prints nothing.
func (s *story) printWarnings(w io.Writer, kill *pb.Event) {
	ws := kill.GetOom().GetPrecedingWarnings()
	if len(ws) == 0 {
		return
	}
	sorted := append([]*pb.PrecedingWarning(nil), ws...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].GetLead().AsDuration() > sorted[j].GetLead().AsDuration() })
	fmt.Fprintf(w, "  %s.\n", capitalize(vocab.Preceding(sorted)))
	for _, pw := range sorted {
		fmt.Fprintf(w, "      %-8s %-13s %s (%s)\n", "-"+vocab.Duration(pw.GetLead().AsDuration()),
			vocab.WarningKind(pw.GetWarningKind()), oneLine(vocab.PrecedingSentence(pw, vocab.PrecedingWho(kill.GetOom(), pw))),
			vocab.PrecedingState(pw, kill.GetTime().AsTime()))
	}
}

// explainEvent tells the story of one event named by its ID: an exit (with
// the warnings before the kill it names), an OOM kill, or a warning.
func explainEvent(ctx context.Context, io IO, r *remote, id string, all bool) error {
	if err := r.check(); err != nil {
		return err
	}
	conn, err := r.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	resp, err := client.GetEvent(ctx, &pb.GetEventRequest{Id: id})
	if err != nil {
		return fmt.Errorf("get event %s: %w", id, err)
	}
	e := resp.GetEvent()
	out := bufio.NewWriter(io.Stdout)
	defer out.Flush()
	if r.g.output == "json" {
		return apiJSON(out, e)
	}
	s := story{all: all, one: true}
	switch {
	case e.GetExit() != nil:
		x := e.GetExit()
		s.learn(x.GetWorkload())
		s.exits = 1
		// The kill it names tells the warnings before it.
		if kid := x.GetOomEventId(); kid != "" {
			if k, err := client.GetEvent(ctx, &pb.GetEventRequest{Id: kid}); err == nil {
				s.keepKill(k.GetEvent())
			}
		}
	case e.GetOom() != nil:
		for _, v := range e.GetOom().GetVictims() {
			s.learn(v.GetWorkload())
		}
		s.keepKill(e)
	case e.GetWarning() != nil:
		printWarning(out, e)
		return nil
	default:
		fmt.Fprintf(io.Stderr, "event %s is a %s event: nothing to explain\n", id, typeWord(e))
		return nil
	}
	s.list = []*pb.Event{e}
	if s.podName == "" && s.podUID == "" {
		s.pod = "(unknown)"
	}
	s.print(termWriter{out}, s.list, r.g.output == "wide")
	return nil
}

// printWarning tells one warning: when and where, its state, its sentence.
func printWarning(w io.Writer, e *pb.Event) {
	m := e.GetWarning()
	when := "at an unknown time"
	if m.GetSince() != nil {
		when = m.GetSince().AsTime().UTC().Format(time.RFC3339)
	}
	state := "open"
	if m.GetState() == pb.WarningState_WARNING_STATE_RESOLVED {
		state = "resolved"
	}
	fmt.Fprintf(w, "%s on %s: %s warning of %s [%s]\n", when, e.GetNode(), vocab.WarningKind(m.GetWarningKind()),
		warningWorkload(m.GetWorkload(), true), state)
	fmt.Fprintf(w, "  %s\n", oneLine(warningSummary(m)))
}

// typeWord names an event's type for a sentence.
func typeWord(e *pb.Event) string {
	if e.GetLoss() != nil {
		return "loss"
	}
	return "unknown"
}
