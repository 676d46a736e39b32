// Package webuitest reads the events the end-to-end scenarios stored, as
// `oomctl events -o json` prints them (one event per line), back into the
// wire events an agent sends, for tests of the web UI that fill an
// aggregator with real kernel results.
package webuitest

import (
	"fmt"
	"io"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// ReadEvents decodes the events, in their order. Each must come back with
// the ID it was printed with: what is read is what the aggregator stored.
// What the aggregator set (the ID, the time it received the event) is
// cleared, as an agent sends it.
func ReadEvents(r io.Reader) ([]*pb.Event, error) {
	evs, err := clitest.ReadEvents(r)
	if err != nil {
		return nil, err
	}
	for i, e := range evs {
		if e.GetPayload() == nil {
			return nil, fmt.Errorf("event %d (%s): no payload", i+1, e.GetId())
		}
		if id := eventid.String(e); id != e.GetId() {
			return nil, fmt.Errorf("event %d: read back as %s, printed as %s", i+1, id, e.GetId())
		}
		e.Id, e.Received = "", nil
	}
	return evs, nil
}
