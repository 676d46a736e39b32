// Package webuitest reads the events the end-to-end scenarios stored, as
// `oomctl events -o json` prints them (one JSON object per line), back into
// the wire events an agent sends, for tests of the web UI that fill an
// aggregator with real kernel results.
package webuitest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// line is one event of `oomctl events -o json`.
type line struct {
	ID     string `json:"id"`
	Node   string `json:"node"`
	BootID string `json:"boot_id"`
	Type   string `json:"type"`
	analysis.Event
	Loss *loss             `json:"loss"`
	Exit *pb.ContainerExit `json:"exit"`
}

type loss struct {
	Cause    string     `json:"cause"`
	Lost     int64      `json:"lost"`
	AfterSeq int64      `json:"after_seq"`
	NextSeq  int64      `json:"next_seq"`
	From     *time.Time `json:"from"`
	To       *time.Time `json:"to"`
	Detail   string     `json:"detail"`
	Time     *time.Time `json:"time"`
	Seq      int64      `json:"seq"`
}

// ReadEvents decodes the events, in their order. Each must come back with
// the ID it was printed with: what is read is what the aggregator stored.
func ReadEvents(r io.Reader) ([]*pb.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var out []*pb.Event
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		var e *pb.Event
		switch l.Type {
		case eventid.TypeOOM:
			e = wire.FromAnalysis(l.Node, l.BootID, l.Event)
		case eventid.TypeLoss:
			if l.Loss == nil {
				return nil, fmt.Errorf("line %d: a loss without its loss", n)
			}
			e = &pb.Event{Node: l.Node, BootId: l.BootID, Seq: l.Loss.Seq, Payload: &pb.Event_Loss{Loss: &pb.Loss{
				Cause: l.Loss.Cause, Lost: l.Loss.Lost, AfterSeq: l.Loss.AfterSeq, NextSeq: l.Loss.NextSeq,
				From: stamp(l.Loss.From), To: stamp(l.Loss.To), Detail: l.Loss.Detail}}}
			e.Time = stamp(l.Loss.Time)
		case eventid.TypeExit:
			if l.Exit == nil {
				return nil, fmt.Errorf("line %d: an exit without its exit", n)
			}
			e = &pb.Event{Node: l.Node, BootId: l.BootID, Seq: l.Seq, Payload: &pb.Event_Exit{Exit: l.Exit}}
			if l.Time != nil {
				e.Time = timestamppb.New(*l.Time)
			}
		default:
			return nil, fmt.Errorf("line %d: unknown type %q", n, l.Type)
		}
		if id := eventid.String(e); id != l.ID {
			return nil, fmt.Errorf("line %d: read back as %s, printed as %s", n, id, l.ID)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func stamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
