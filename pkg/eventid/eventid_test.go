package eventid

import (
	"errors"
	"testing"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ev   *pb.Event
		want string
	}{
		{&pb.Event{Node: "n1", BootId: "b1", Seq: 42, Payload: &pb.Event_Oom{Oom: &pb.OOMKill{}}}, "n1/b1/oom/42"},
		{&pb.Event{Node: "n1", BootId: "b1", Seq: -1, Payload: &pb.Event_Loss{Loss: &pb.Loss{}}}, "n1/b1/loss/-1"},
		{&pb.Event{Node: "n1", BootId: "b1", Seq: 7, Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{}}}, "n1/b1/exit/7"},
	} {
		id := Of(tc.ev)
		if got := id.String(); got != tc.want || String(tc.ev) != tc.want {
			t.Errorf("ID %q, want %q", got, tc.want)
		}
		back, err := Parse(tc.want)
		if err != nil || back != id {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.want, back, err, id)
		}
		if k := id.Key(); k != tc.want[len("n1/"):] {
			t.Errorf("key %q", k)
		}
	}
	if TypeOf(&pb.Event{}) != "" {
		t.Error("an event without payload has a type")
	}
}

func TestParseMalformed(t *testing.T) {
	for _, s := range []string{"", "a/b/c", "a/b/oom/x", "a/b/oom/1/2", "/b/oom/1", "a//oom/1", "a/b//1"} {
		if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v, want ErrMalformed", s, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("n1/b1/oom/42")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err == nil {
			if back, err := Parse(id.String()); err != nil || back != id {
				t.Errorf("%q -> %+v does not round-trip: %+v %v", s, id, back, err)
			}
		}
	})
}
