// Package clitest reads what oomctl prints with -o json back into the
// API's messages, for the tests that run oomctl: package cli's own, the
// end-to-end, Kubernetes and fault tests, and the web UI's, which replay
// what the end-to-end scenarios stored. oomctl prints one message per
// line in protojson's mapping (the .proto's field names, RFC 3339 times,
// enums by name); a line is read with protojson, skipping the fields a
// later release adds.
package clitest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// maxLine bounds a line: an OOM kill with its raw kernel lines is a few
// hundred KiB at most.
const maxLine = 16 << 20

// ReadEvents reads the lines of `oomctl events`, `watch`, `explain` or
// `analyze` with -o json: one event each. An event's type is its payload
// (eventid.TypeOf); wire.ToAnalysis gives an OOM kill in the engine's
// words ("limit", "yes").
func ReadEvents(r io.Reader) ([]*pb.Event, error) {
	return read(r, func() *pb.Event { return new(pb.Event) })
}

// ReadIncidents reads the lines of `oomctl incidents -o json`.
func ReadIncidents(r io.Reader) ([]*pb.Incident, error) {
	return read(r, func() *pb.Incident { return new(pb.Incident) })
}

func read[M proto.Message](r io.Reader, newMsg func() M) ([]M, error) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []M
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		m := newMsg()
		if err := opts.Unmarshal(line, m); err != nil {
			return nil, fmt.Errorf("line %d: %w: %.200s", n, err, line)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Event is an event read back in the engine's words, as the end-to-end and
// Kubernetes tests assert on it: the envelope, an OOM kill's fields as
// analysis.Event (wire.ToAnalysis: kinds, scopes and verdicts as the words
// "limit", "container", "yes"), and a loss's count. Node is the node's
// name; the kill's node memory is Event.Event.Node.
type Event struct {
	ID, Node, BootID string
	// Type is oom, loss or exit: which payload the event has.
	Type string
	// Received is when the aggregator stored it; zero when not set.
	Received time.Time
	// Lost is a loss's count of records or events.
	Lost int64
	// Event is an OOM kill's fields; for every type, Seq and Time are
	// the event's.
	analysis.Event
}

// Flatten turns an event read with ReadEvents into an Event.
func Flatten(e *pb.Event) Event {
	out := Event{ID: e.GetId(), Node: e.GetNode(), BootID: e.GetBootId(), Type: eventid.TypeOf(e), Lost: e.GetLoss().GetLost()}
	if e.GetOom() != nil {
		out.Event = wire.ToAnalysis(e)
	}
	out.Seq = e.GetSeq()
	if e.GetTime() != nil {
		t := e.GetTime().AsTime()
		out.Time = &t
	}
	if e.GetReceived() != nil {
		out.Received = e.GetReceived().AsTime()
	}
	return out
}
