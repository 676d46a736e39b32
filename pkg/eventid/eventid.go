// Package eventid owns an event's identity: its type (from its payload),
// its ID "<node>/<boot_id>/<type>/<seq>" (the aggregator's key, the web
// UI's addresses, the exit events' link to their OOM kill) and its key
// within one node (what the agent's spool and the aggregator's dedup
// compare). Nothing else spells an ID.
package eventid

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Event types: an event's payload, part of its identity. An incident is
// not an event but has an ID of the same form, named by its first kill.
const (
	TypeOOM      = "oom"
	TypeLoss     = "loss"
	TypeExit     = "exit"
	TypeWarning  = "warning"
	TypeIncident = "incident"
)

// types pairs the event types with the API's enum.
var types = map[string]pb.EventType{TypeOOM: pb.EventType_EVENT_TYPE_OOM, TypeLoss: pb.EventType_EVENT_TYPE_LOSS,
	TypeExit: pb.EventType_EVENT_TYPE_EXIT, TypeWarning: pb.EventType_EVENT_TYPE_WARNING}

// TypeToPB is an event type's enum (UNSPECIFIED for an unknown type).
func TypeToPB(typ string) pb.EventType { return types[typ] }

// TypeFromPB is the type of an enum value, else old (the string field of a
// message of an earlier release).
func TypeFromPB(e pb.EventType, old string) string {
	for t, v := range types {
		if v == e {
			return t
		}
	}
	return old
}

// ErrMalformed is wrapped by Parse for a string that is no ID.
var ErrMalformed = errors.New("malformed event ID")

// TypeOf returns the type of an event's payload, or "" when it has none.
func TypeOf(e *pb.Event) string {
	switch e.GetPayload().(type) {
	case *pb.Event_Oom:
		return TypeOOM
	case *pb.Event_Loss:
		return TypeLoss
	case *pb.Event_Exit:
		return TypeExit
	case *pb.Event_Warning:
		return TypeWarning
	}
	return ""
}

// ID is an event's identity.
type ID struct {
	Node, BootID, Type string
	Seq                int64
}

// Of returns e's identity.
func Of(e *pb.Event) ID {
	return ID{Node: e.GetNode(), BootID: e.GetBootId(), Type: TypeOf(e), Seq: e.GetSeq()}
}

// String returns "<node>/<boot_id>/<type>/<seq>".
func (id ID) String() string {
	return id.Node + "/" + id.BootID + "/" + id.Type + "/" + strconv.FormatInt(id.Seq, 10)
}

// Key returns the identity within one node, "<boot_id>/<type>/<seq>".
func (id ID) Key() string {
	return id.BootID + "/" + id.Type + "/" + strconv.FormatInt(id.Seq, 10)
}

// String returns e's ID, "<node>/<boot_id>/<type>/<seq>".
func String(e *pb.Event) string { return Of(e).String() }

// Parse reads an ID made by String. Node names and boot IDs hold no "/"
// (the aggregator checks both).
func Parse(s string) (ID, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return ID{}, fmt.Errorf("%w: %q: want <node>/<boot_id>/<type>/<seq>", ErrMalformed, s)
	}
	seq, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %q: sequence number: %w", ErrMalformed, s, err)
	}
	return ID{Node: parts[0], BootID: parts[1], Type: parts[2], Seq: seq}, nil
}
